/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

#include "compat-socket.h"
#include "fileio.h"
#include "log.h"

#define COMPAT_FD_NAME "compat"

/* For the failed call just made: logs "<what> <path>: <error>" and returns -errno. */
static int log_errno_path(const char *path, const char *what) {
        int r = negative_errno();

        return log_error_errno(r, "%s %s: %m", what, path);
}

static int sockaddr_for(const char *path, struct sockaddr_un *sa, socklen_t *len) {
        size_t n = strlen(path);

        if (n >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        *sa = (struct sockaddr_un) { .sun_family = AF_UNIX };
        memcpy(sa->sun_path, path, n);
        *len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        return 0;
}

/* A socket is live when something accepts a connection on it; a leftover file refuses. */
static bool socket_answers(const char *path) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa;
        socklen_t len;

        if (sockaddr_for(path, &sa, &len) < 0)
                return false;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return false;
        return connect(fd, (struct sockaddr *) &sa, len) >= 0 || errno == EAGAIN;
}

static int take_activated_fd(int *ret_fd) {
        char **names = NULL;
        int n, found = -EBADF;

        n = sd_listen_fds_with_names(true, &names);
        if (n < 0)
                return log_error_errno(n, "Cannot read the sockets systemd passed: %m");
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names ? names[i] : "unknown";

                if (found < 0 && streq(name, COMPAT_FD_NAME) && sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) > 0) {
                        found = fd;
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                } else {
                        log_warning("Closing socket fd %d (\"%s\") passed by systemd: only one listening "
                                    "Unix stream socket named \"" COMPAT_FD_NAME "\" is used", fd, name);
                        close(fd);
                }
        }
        for (int i = 0; names && i < n; i++)
                free(names[i]);
        free(names);
        *ret_fd = found;
        return 0;
}

static int fd_socket_path(int fd, char **ret) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len = sizeof(sa);

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return negative_errno();
        if (len <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] != '/')
                return -EADDRNOTAVAIL;
        *ret = strndup(sa.sun_path, len - offsetof(struct sockaddr_un, sun_path));
        return *ret ? 0 : -ENOMEM;
}

static int default_socket_path(const char *config_dir, char **ret) {
        const char *runtime = getenv("XDG_RUNTIME_DIR");

        if (runtime && runtime[0] == '/')
                return asprintf(ret, "%s/claudemesh/daemon.sock", runtime) < 0 ? -ENOMEM : 0;
        return asprintf(ret, "%s/daemon/daemon.sock", config_dir) < 0 ? -ENOMEM : 0;
}

static int bind_socket(const char *path, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *dir = strdup(path);
        struct sockaddr_un sa;
        socklen_t len;
        mode_t old_umask;
        int r;

        if (!dir)
                return -ENOMEM;
        *strrchr(dir, '/') = '\0';
        r = mkdir_parents_mode(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        r = sockaddr_for(path, &sa, &len);
        if (r < 0)
                return log_error_errno(r, "Socket path %s is too long for a Unix socket", path);
        if (socket_answers(path))
                return log_error_errno(-EADDRINUSE, "Another daemon answers on %s; stop it first, or run "
                                       "this one with --no-compat", path);
        if (unlink(path) < 0 && errno != ENOENT)
                return log_errno_path(path, "Cannot remove the stale socket");

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return negative_errno();
        old_umask = umask(0177); /* never visible with a wider mode, not even briefly */
        r = bind(fd, (struct sockaddr *) &sa, len) < 0 ? negative_errno() : 0;
        umask(old_umask);
        if (r < 0)
                return log_error_errno(r, "Cannot bind %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_errno_path(path, "Cannot listen on");
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static bool link_points_at(const char *link, const char *target) {
        char buf[PATH_MAX];
        ssize_t n = readlink(link, buf, sizeof(buf) - 1);

        if (n < 0)
                return false;
        buf[n] = '\0';
        return streq(buf, target);
}

/* A symlink at link_path to our socket, unless another live daemon answers there. *ret is set
 * to the link's path once it is ours (left NULL otherwise). */
static int publish_link(CompatSocket *s, const char *link_path, char **ret) {
        if (streq(link_path, s->path))
                return 0;
        if (!link_points_at(link_path, s->path) && socket_answers(link_path)) {
                log_warning("Another daemon answers on %s; leaving it alone. Clients of the /v1 API reach "
                            "this daemon at %s", link_path, s->path);
                return 0;
        }
        if (unlink(link_path) < 0 && errno != ENOENT)
                return log_errno_path(link_path, "Cannot replace");
        if (symlink(s->path, link_path) < 0)
                return log_errno_path(link_path, "Cannot create the symlink");
        *ret = strdup(link_path);
        return *ret ? 0 : -ENOMEM;
}

/* Upstream's newer clients look in $CLAUDEMESH_DAEMON_DIR when it is set (apps/cli/src/daemon/
 * paths.ts:22-24): the socket is linked there too. Only an absolute path is taken. */
static int publish_daemon_dir(CompatSocket *s) {
        const char *dir = getenv("CLAUDEMESH_DAEMON_DIR");
        _cleanup_free_ char *link_path = NULL;
        int r;

        if (!dir || !dir[0])
                return 0;
        if (dir[0] != '/') {
                log_warning("Ignoring CLAUDEMESH_DAEMON_DIR=%s: not an absolute path", dir);
                return 0;
        }
        if (asprintf(&link_path, "%s/daemon.sock", dir) < 0)
                return -ENOMEM;
        if (s->link_path && streq(link_path, s->link_path))
                return 0;
        r = mkdir_parents_mode(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        return publish_link(s, link_path, &s->env_link_path);
}

static int publish(CompatSocket *s, const char *config_dir) {
        _cleanup_free_ char *dir = NULL, *link_path = NULL, *pid_path = NULL;
        char pid[32];
        int r;

        if (asprintf(&dir, "%s/daemon", config_dir) < 0 ||
            asprintf(&link_path, "%s/daemon.sock", dir) < 0 ||
            asprintf(&pid_path, "%s/daemon.pid", dir) < 0)
                return -ENOMEM;
        r = mkdir_parents_mode(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);

        if (!streq(link_path, s->path)) {
                if (!link_points_at(link_path, s->path) && socket_answers(link_path)) {
                        log_warning("Another daemon answers on %s; leaving it (and %s) alone. Clients of "
                                    "the /v1 API reach this daemon at %s", link_path, pid_path, s->path);
                        return publish_daemon_dir(s);
                }
                r = publish_link(s, link_path, &s->link_path);
                if (r < 0)
                        return r;
        }

        r = snprintf(pid, sizeof(pid), "%d\n", (int) getpid());
        r = write_file_atomic(pid_path, pid, (size_t) r, 0600);
        if (r < 0)
                return log_error_errno(r, "Cannot write %s: %m", pid_path);
        s->pid_path = TAKE_PTR(pid_path);
        return publish_daemon_dir(s);
}

int compat_socket_open(const char *config_dir, CompatSocket **ret) {
        _cleanup_(compat_socket_freep) CompatSocket *s = NULL;
        int r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->fd = -EBADF;

        r = take_activated_fd(&s->fd);
        if (r < 0)
                return r;
        if (s->fd >= 0) {
                r = fd_socket_path(s->fd, &s->path);
                if (r < 0)
                        return log_error_errno(r, "The socket systemd passed has no file system path: %m");
        } else {
                r = default_socket_path(config_dir, &s->path);
                if (r < 0)
                        return r;
                r = bind_socket(s->path, &s->fd);
                if (r < 0)
                        return r;
                s->bound_here = true;
        }

        r = publish(s, config_dir);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

static bool pid_file_is_ours(const char *path) {
        _cleanup_free_ char *text = NULL;

        if (read_full_file(path, 64, &text, NULL, NULL) < 0)
                return false;
        return atoi(text) == (int) getpid();
}

CompatSocket *compat_socket_free(CompatSocket *s) {
        if (!s)
                return NULL;
        if (s->link_path && link_points_at(s->link_path, s->path))
                (void) unlink(s->link_path);
        if (s->env_link_path && link_points_at(s->env_link_path, s->path))
                (void) unlink(s->env_link_path);
        if (s->pid_path && pid_file_is_ours(s->pid_path))
                (void) unlink(s->pid_path);
        if (s->bound_here && s->path)
                (void) unlink(s->path);
        if (s->fd >= 0)
                close(s->fd);
        free(s->link_path);
        free(s->env_link_path);
        free(s->pid_path);
        free(s->path);
        free(s);
        return NULL;
}
