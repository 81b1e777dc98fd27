/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

typedef struct Manager Manager;
typedef struct CompatServer CompatServer;

/* Opens the compat socket (see compat-socket.h), serves the /v1 routes on it and subscribes the
 * event streams to the daemon's events. The server is the caller's; free it before m. */
int compat_server_start(Manager *m, CompatServer **ret);
CompatServer *compat_server_free(CompatServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatServer *, compat_server_free);
