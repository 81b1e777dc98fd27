/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <assert.h>
#include <stdbool.h>

#include "config-build.h"
#include "macro.h"

/* The listening socket of the upstream-compatible /v1 HTTP API, and the two things upstream
 * clients look for beside it: <config dir>/daemon/daemon.sock and daemon/daemon.pid. */
typedef struct CompatSocket {
        int fd;
        char *path;            /* where the socket lives */
        bool bound_here;       /* we bound it (not socket-activated), so we unlink it */
        char *link_path;       /* the config-dir name published for clients, or NULL */
        char *env_link_path;   /* $CLAUDEMESH_DAEMON_DIR/daemon.sock when published, or NULL */
        char *pid_path;        /* our pid file, or NULL when another daemon owns the name */
} CompatSocket;

/* Takes the "compat" fd systemd passed (closing and logging any other fd), else binds
 * $XDG_RUNTIME_DIR/claudemesh/daemon.sock (0600, directory 0700; a stale socket is replaced,
 * one a live daemon answers on is not: -EADDRINUSE). Then publishes the config-dir link and
 * pid file, unless another live daemon answers there, and a link at
 * $CLAUDEMESH_DAEMON_DIR/daemon.sock when that is set (absolute), on the same terms. */
int compat_socket_open(const char *config_dir, CompatSocket **ret);

#if ENABLE_COMPAT
/* Removes only what is still ours: the link, the pid file, a socket we bound. */
CompatSocket *compat_socket_free(CompatSocket *s);
#else
/* Built with -Dcompat=disabled: nothing ever opens one. */
static inline CompatSocket *compat_socket_free(CompatSocket *s) {
        assert(!s);
        return NULL;
}
#endif
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatSocket *, compat_socket_free);
