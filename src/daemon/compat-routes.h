/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "manager.h"

/* Opens the compat socket (see compat-socket.h) and serves the /v1 routes on it. */
int manager_compat_start(Manager *m);
