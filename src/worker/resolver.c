/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "log.h"
#include "macro.h"
#include "resolver.h"
#include "sandbox.h"
#include "time-util.h"

#define RESOLVER_PACKET_MAX 2048

void strv_free(char **l) {
        for (char **p = l; p && *p; p++)
                free(*p);
        free(l);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct addrinfo *, freeaddrinfo);

/* "<serial>\n<addr>\n<addr>…" or "<serial>\n!<reason>" */
static void helper_answer(int fd, const char *request) {
        _cleanup_(freeaddrinfop) struct addrinfo *ai = NULL;
        struct addrinfo hints = {
                .ai_family = AF_UNSPEC,
                .ai_socktype = SOCK_STREAM,
                .ai_flags = AI_ADDRCONFIG,
        };
        char out[RESOLVER_PACKET_MAX];
        const char *nl = strchr(request, '\n');
        size_t n;
        int r;

        if (!nl)
                return;
        n = (size_t) snprintf(out, sizeof out, "%.*s\n", (int) (nl - request), request);
        r = getaddrinfo(nl + 1, NULL, &hints, &ai);
        if (r != 0)
                n += (size_t) snprintf(out + n, sizeof out - n, "!%s",
                                       r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        else {
                unsigned count = 0;
                for (struct addrinfo *a = ai; a && count < RESOLVER_MAX_ADDRESSES; a = a->ai_next) {
                        char buf[INET6_ADDRSTRLEN];
                        const void *addr = a->ai_family == AF_INET6
                                ? (const void *) &((const struct sockaddr_in6 *) a->ai_addr)->sin6_addr
                                : (const void *) &((const struct sockaddr_in *) a->ai_addr)->sin_addr;
                        if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                            !inet_ntop(a->ai_family, addr, buf, sizeof buf) || n + strlen(buf) + 2 > sizeof out)
                                continue;
                        n += (size_t) snprintf(out + n, sizeof out - n, "%s\n", buf);
                        count++;
                }
        }
        (void) send(fd, out, n, MSG_NOSIGNAL);
}

static _Noreturn void helper_main(int fd, const char *warmup_host, pid_t parent) {
        _cleanup_(freeaddrinfop) struct addrinfo *ai = NULL;
        const char *landlock = NULL;
        char buf[RESOLVER_PACKET_MAX + 1];

        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        if (close_other_fds(fd) < 0)
                _exit(EXIT_FAILURE);
        /* Loads the NSS modules nsswitch.conf names while dlopen() can still map them. */
        (void) getaddrinfo(warmup_host, NULL, NULL, &ai);
        if (sandbox_apply(SANDBOX_RESOLVER, &landlock) < 0)
                _exit(EXIT_FAILURE);
        log_debug("Resolver helper sandboxed (%s).", strna(landlock));

        for (;;) {
                ssize_t k = recv(fd, buf, RESOLVER_PACKET_MAX, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        _exit(EXIT_SUCCESS);
                buf[k] = '\0';
                helper_answer(fd, buf);
        }
}

int resolver_start(Resolver *r, const char *warmup_host) {
        int pair[2];
        pid_t parent = getpid(), pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                int e = negative_errno();
                close(pair[0]);
                close(pair[1]);
                return e;
        }
        if (pid == 0) {
                close(pair[0]);
                helper_main(pair[1], warmup_host, parent);
        }
        close(pair[1]);
        r->pid = pid;
        r->fd = pair[0];
        return 0;
}

static int parse_answer(char *buf, unsigned serial, char ***ret_addrs, char **ret_error) {
        _cleanup_(strv_freep) char **addrs = NULL;
        char *line, *save = NULL;
        size_t n = 0;

        line = strtok_r(buf, "\n", &save);
        if (!line || strtoul(line, NULL, 10) != serial)
                return -EAGAIN;

        addrs = calloc(RESOLVER_MAX_ADDRESSES + 1, sizeof *addrs);
        if (!addrs)
                return -ENOMEM;
        while ((line = strtok_r(NULL, "\n", &save))) {
                if (line[0] == '!') {
                        if (ret_error)
                                *ret_error = strdup(line + 1);
                        return -EHOSTUNREACH;
                }
                if (n >= RESOLVER_MAX_ADDRESSES)
                        break;
                addrs[n] = strdup(line);
                if (!addrs[n++])
                        return -ENOMEM;
        }
        if (n == 0) {
                if (ret_error)
                        *ret_error = strdup("no IPv4 or IPv6 address");
                return -EHOSTUNREACH;
        }
        *ret_addrs = TAKE_PTR(addrs);
        return 0;
}

int resolver_lookup(Resolver *r, const char *host, int timeout_ms, char ***ret_addrs, char **ret_error) {
        char buf[RESOLVER_PACKET_MAX + 1];
        usec_t deadline = now_usec(CLOCK_MONOTONIC) + (usec_t) timeout_ms * USEC_PER_MSEC;
        int n;

        if (r->fd < 0)
                return -EPIPE;
        n = snprintf(buf, sizeof buf, "%u\n%s", ++r->serial, host);
        if (n < 0 || (size_t) n >= sizeof buf)
                return -ENAMETOOLONG;
        if (send(r->fd, buf, (size_t) n, MSG_NOSIGNAL) < 0)
                return errno == ECONNREFUSED || errno == ECONNRESET ? -EPIPE : negative_errno();

        /* Answers to earlier, timed-out lookups carry older serials and are skipped. */
        for (;;) {
                usec_t now = now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = r->fd, .events = POLLIN };
                ssize_t k;
                int q;

                if (now >= deadline)
                        return -ETIMEDOUT;
                q = poll(&p, 1, (int) ((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                if (q < 0 && errno == EINTR)
                        continue;
                if (q < 0)
                        return negative_errno();
                if (q == 0)
                        return -ETIMEDOUT;
                k = recv(r->fd, buf, sizeof buf - 1, MSG_DONTWAIT);
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k < 0)
                        return negative_errno();
                if (k == 0)
                        return -EPIPE;
                buf[k] = '\0';
                q = parse_answer(buf, r->serial, ret_addrs, ret_error);
                if (q != -EAGAIN)
                        return q;
        }
}

void resolver_done(Resolver *r) {
        /* EOF ends the helper; it is reaped by whoever inherits it when the worker exits. */
        if (r->fd >= 0)
                close(r->fd);
        *r = RESOLVER_NULL;
}
