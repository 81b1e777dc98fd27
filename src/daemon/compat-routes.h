/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "config-build.h"
#include "manager.h"

#if ENABLE_COMPAT
/* Opens the compat socket (see compat-socket.h) and serves the /v1 routes on it. */
int manager_compat_start(Manager *m);
#else
/* Built with -Dcompat=disabled: there is no /v1 API to serve. */
static inline int manager_compat_start(Manager *m) {
        return 0;
}
#endif
