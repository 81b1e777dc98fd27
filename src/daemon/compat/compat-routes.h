/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <assert.h>

#include "config-build.h"
#include "macro.h"

typedef struct Manager Manager;
typedef struct CompatServer CompatServer;

#if ENABLE_COMPAT
/* Opens the compat socket (see compat-socket.h), serves the /v1 routes on it and subscribes the
 * event streams to the daemon's events. The server is the caller's; free it before m. */
int compat_server_start(Manager *m, CompatServer **ret);
CompatServer *compat_server_free(CompatServer *s);
#else
/* Built with -Dcompat=disabled: there is no /v1 API to serve, as if --no-compat were given. */
static inline int compat_server_start(Manager *m, CompatServer **ret) {
        *ret = NULL;
        return 0;
}
static inline CompatServer *compat_server_free(CompatServer *s) {
        assert(!s);
        return NULL;
}
#endif
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatServer *, compat_server_free);
