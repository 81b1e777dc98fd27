/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "log.h"
#include "macro.h"
#include "probe.h"
#include "sandbox.h"

/* Not stdio: it lseek()s, which the sandbox refuses. */
static void say(const char *format, ...) _printf_(1, 2);
static void say(const char *format, ...) {
        char line[256];
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(line, sizeof line, format, ap);
        va_end(ap);
        if (n > 0)
                (void) !write(STDOUT_FILENO, line, (size_t) n < sizeof line ? (size_t) n : sizeof line - 1);
}

/* Only EPERM (seccomp) and EACCES (Landlock) are refusals; any other error would mean the
 * attempt got past the sandbox and failed for some other reason. */
static bool report(const char *what, int r) {
        const char *name = strerrorname_np(errno);

        if (r >= 0) {
                say("%s: ALLOWED\n", what);
                return false;
        }
        if (errno != EPERM && errno != EACCES) {
                say("%s: ALLOWED, then failed (%s)\n", what, name ? name : "?");
                return false;
        }
        say("%s: blocked (%s)\n", what, name);
        return true;
}

static int try_open(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC, 0600);
        if (fd >= 0)
                close(fd);
        return fd;
}

static int try_connect_unix(const struct sockaddr_un *sa, socklen_t len) {
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        return connect(fd, (const struct sockaddr *) sa, len);
}

static int try_socket_unix(void) {
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0)
                close(fd);
        return fd;
}

static int try_socketpair(void) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return -1;
        close(pair[0]);
        close(pair[1]);
        return 0;
}

int sandbox_probe(void) {
        _cleanup_close_ int listener = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t sa_len;
        const char *landlock = NULL;
        char *const argv[] = { (char *) "/bin/true", NULL };
        bool ok = true;
        int r;

        r = close_other_fds(-1);
        if (r < 0) {
                log_error_errno(r, "Cannot close descriptors: %m");
                return EXIT_FAILURE;
        }

        /* A local service to reach: if socket(AF_UNIX) got through, connecting would work. */
        snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "claudemesh-probe-%d", (int) getpid());
        sa_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener < 0 || bind(listener, (struct sockaddr *) &sa, sa_len) < 0 || listen(listener, 1) < 0) {
                log_error_errno(negative_errno(), "Cannot set up the probe's AF_UNIX listener: %m");
                return EXIT_FAILURE;
        }

        r = sandbox_apply(SANDBOX_WORKER, &landlock);
        if (r < 0)
                return EXIT_FAILURE;
        say("sandbox: applied (%s)\n", strna(landlock));

        ok = report("open", try_open("/etc/passwd", O_RDONLY)) && ok;
        ok = report("open-write", try_open("/tmp/claudemesh-probe-write", O_WRONLY | O_CREAT | O_TRUNC)) && ok;
        ok = report("connect-unix", try_connect_unix(&sa, sa_len)) && ok;
        ok = report("socket-unix", try_socket_unix()) && ok;
        ok = report("socketpair-unix", try_socketpair()) && ok;
        /* The sandbox must still let the worker do its job. */
        r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        say("socket-inet: %s\n", r >= 0 ? "allowed (expected)" : "BLOCKED (the worker cannot work)");
        if (r < 0)
                ok = false;
        else
                close(r);
        /* Last: if it went through, this process would become /bin/true and the line be missing. */
        ok = report("execve", execve(argv[0], argv, environ)) && ok;
        return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
