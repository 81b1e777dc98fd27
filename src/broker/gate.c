/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gate.h"
#include "log.h"
#include "server.h"

#define LISTEN_BACKLOG 511
#define ACCEPT_BATCH 64                  /* per wakeup, so a flood does not starve the loop */
/* After running out of descriptors: short at first (a dropped connection frees one at the
 * next loop iteration), doubling while it lasts, reset by an accept that succeeds. */
#define ACCEPT_PAUSE_MIN_MS 10
#define ACCEPT_PAUSE_MAX_MS 1000
#define ACCEPT_LOG_INTERVAL_MS 10000
#define CLOSE_GRACE_MS 2000              /* for a timed-out WebSocket to take its close frame */
#define SWEEP_INTERVAL_US (250 * LWS_US_PER_MS)
/* Descriptors kept for the database, logging and lws itself; of the rest, at most half may
 * be unauthenticated, so members always find room. */
#define FD_RESERVE 32

struct Pending {
        Pending *prev, *next;
        struct lws *wsi;
        uint8_t addr[16];                /* IPv4 as mapped IPv6; IPv6 cut to its /64 */
        int64_t deadline_ms;             /* monotonic */
        bool doomed;                     /* being dropped: no longer counted */
};

unsigned gate_raise_nofile(void) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 1024;
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t want = rl.rlim_max;
                rl.rlim_cur = want;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                        int r = -errno;
                        log_warning_errno(r, "Cannot raise the descriptor limit to %llu: %m",
                                          (unsigned long long) want);
                }
                (void) getrlimit(RLIMIT_NOFILE, &rl);
        }
        return rl.rlim_cur > 1u << 24 ? 1u << 24 : (unsigned) rl.rlim_cur;
}

int gate_open(Gate *g, Server *s, unsigned nofile) {
        struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM }, *res = NULL;
        char port[8];
        int fd = -1, r;
        static const int one = 1;

        *g = (Gate) { .server = s, .fd = -1 };
        unsigned room = nofile > 2 * FD_RESERVE ? (nofile - FD_RESERVE) / 2 : FD_RESERVE / 2;
        g->max_unauthenticated = s->opts.max_unauthenticated < room ? s->opts.max_unauthenticated : room;
        if (g->max_unauthenticated < s->opts.max_unauthenticated)
                log_notice("Only %u descriptors: at most %u connections may wait for their hello.", nofile,
                           g->max_unauthenticated);

        snprintf(port, sizeof port, "%d", s->opts.listen_port);
        r = getaddrinfo(s->opts.listen_host, port, &hints, &res);
        if (r != 0)
                return log_error_errno(-EADDRNOTAVAIL, "Cannot resolve %s: %s", s->opts.listen_host,
                                       gai_strerror(r));
        r = -EADDRNOTAVAIL;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
                if (fd < 0) {
                        r = -errno;
                        continue;
                }
                if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
                    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                        r = -errno;
                        close(fd);
                        fd = -1;
                        continue;
                }
                break;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return log_error_errno(r, "Cannot listen on %s:%d: %m", s->opts.listen_host, s->opts.listen_port);

        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        g->port = s->opts.listen_port;
        if (getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
                g->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &sa)->sin6_port
                                                         : ((struct sockaddr_in *) &sa)->sin_port);
        g->fd = fd;
        return 0;
}

static void sweep(lws_sorted_usec_list_t *sul);

int gate_start(Gate *g, struct lws_vhost *vh) {
        lws_sock_file_fd_type desc = { .filefd = g->fd };

        g->wsi = lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, NULL, NULL);
        if (!g->wsi) {
                /* lws closes what it fails to adopt. */
                g->fd = -1;
                return log_error_errno(-ENOMEM, "Cannot add the listening socket to the event loop.");
        }
        lws_sul_schedule(g->server->ctx, 0, &g->sweep_sul, sweep, SWEEP_INTERVAL_US);
        return 0;
}

void gate_stop(Gate *g) {
        lws_sul_cancel(&g->resume_sul);
        lws_sul_cancel(&g->sweep_sul);
        if (g->wsi && !g->paused)
                lws_rx_flow_control(g->wsi, 0);
        g->paused = true;
}

void gate_done(Gate *g) {
        /* The context has destroyed every wsi, and with them the pending entries. */
        if (!g->wsi && g->fd >= 0)
                close(g->fd);
        g->fd = -1;
        g->wsi = NULL;
}

static void pending_unlink(Gate *g, Pending *p) {
        if (p->prev)
                p->prev->next = p->next;
        else
                g->head = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                g->tail = p->prev;
        if (!p->doomed)
                g->n_active--;
        lws_set_opaque_user_data(p->wsi, NULL);
        free(p);
}

static void doom(Gate *g, Pending *p) {
        p->doomed = true;
        g->n_active--;
        lws_set_timeout(p->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Drops the oldest unauthenticated connection, of addr when given. */
static void evict_oldest(Gate *g, const uint8_t *addr) {
        for (Pending *p = g->head; p; p = p->next)
                if (!p->doomed && (!addr || memcmp(p->addr, addr, sizeof p->addr) == 0)) {
                        doom(g, p);
                        g->evicted++;
                        return;
                }
}

static void address_key(const struct sockaddr_storage *sa, uint8_t ret[static 16]) {
        memset(ret, 0, 16);
        if (sa->ss_family == AF_INET) {
                ret[10] = ret[11] = 0xff;
                memcpy(ret + 12, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        } else if (sa->ss_family == AF_INET6) {
                const uint8_t *a = ((const struct sockaddr_in6 *) sa)->sin6_addr.s6_addr;
                /* A v4-mapped peer is one address; a native IPv6 peer owns at least its /64. */
                memcpy(ret, a, IN6_IS_ADDR_V4MAPPED((const struct in6_addr *) a) ? 16 : 8);
        }
}

static size_t active_from(Gate *g, const uint8_t *addr) {
        size_t n = 0;

        for (Pending *p = g->head; p; p = p->next)
                n += !p->doomed && memcmp(p->addr, addr, sizeof p->addr) == 0;
        return n;
}

static void resume(lws_sorted_usec_list_t *sul) {
        Gate *g = container_of(sul, Gate, resume_sul);

        g->paused = false;
        lws_rx_flow_control(g->wsi, 1);
}

static void note_failure(Gate *g, int error) {
        int64_t now = mono_ms();

        g->failures++;
        g->last_errno = error;
        if (g->logged_ms != 0 && now - g->logged_ms < ACCEPT_LOG_INTERVAL_MS)
                return;
        log_warning_errno(-error, "Cannot accept connections: %m (%" PRIu64 " times since the last report).",
                          g->failures);
        g->failures = 0;
        g->logged_ms = now;
}

/* Out of descriptors or memory: stop polling the socket for a while rather than spin on it,
 * and free a descriptor for the next member by dropping the oldest unauthenticated peer. */
static void pause_accepting(Gate *g, int error) {
        note_failure(g, error);
        evict_oldest(g, NULL);
        g->pause_ms = g->pause_ms ? g->pause_ms * 2 : ACCEPT_PAUSE_MIN_MS;
        if (g->pause_ms > ACCEPT_PAUSE_MAX_MS)
                g->pause_ms = ACCEPT_PAUSE_MAX_MS;
        g->paused = true;
        lws_rx_flow_control(g->wsi, 0);
        lws_sul_schedule(g->server->ctx, 0, &g->resume_sul, resume,
                         (lws_usec_t) g->pause_ms * LWS_US_PER_MS);
}

static void admit(Gate *g, int fd, const struct sockaddr_storage *sa) {
        Server *s = g->server;
        lws_sock_file_fd_type desc = { .sockfd = fd };
        uint8_t addr[16];
        Pending *p;

        address_key(sa, addr);
        if (active_from(g, addr) >= s->opts.max_unauthenticated_per_address)
                evict_oldest(g, addr);
        if (g->n_active >= g->max_unauthenticated)
                evict_oldest(g, NULL);

        p = calloc(1, sizeof *p);
        if (!p) {
                close(fd);
                return;
        }
        struct lws_vhost *vh = lws_get_vhost(g->wsi);
        struct lws *wsi = lws_adopt_descriptor_vhost(vh, LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL,
                                                     desc, NULL, NULL);
        if (!wsi) {
                /* Closed by lws (out of memory, TLS setup, or its descriptor table is full). */
                free(p);
                return;
        }
        memcpy(p->addr, addr, sizeof addr);
        p->wsi = wsi;
        p->deadline_ms = mono_ms() + (int64_t) s->opts.hello_timeout_sec * 1000;
        p->prev = g->tail;
        if (g->tail)
                g->tail->next = p;
        else
                g->head = p;
        g->tail = p;
        g->n_active++;
        lws_set_opaque_user_data(wsi, p);
}

void gate_accept(Gate *g) {
        for (unsigned i = 0; i < ACCEPT_BATCH && !g->paused; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof sa;
                int fd = accept4(g->fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd >= 0) {
                        g->pause_ms = 0;
                        admit(g, fd, &sa);
                        continue;
                }
                switch (errno) {
                case EAGAIN:
                        return;
                case EINTR:
                case ECONNABORTED:
                case EPROTO:
                case EPERM:             /* refused by a firewall rule */
                        continue;
                case EMFILE:
                case ENFILE:
                case ENOBUFS:
                case ENOMEM:
                        pause_accepting(g, errno);
                        return;
                default:
                        note_failure(g, errno);
                        return;
                }
        }
}

void gate_authenticated(Gate *g, struct lws *wsi) {
        Pending *p = lws_get_opaque_user_data(wsi);

        if (p)
                pending_unlink(g, p);
}

void gate_wsi_destroyed(Gate *g, struct lws *wsi) {
        Pending *p;

        if (wsi == g->wsi) {
                g->wsi = NULL;
                g->fd = -1;
                return;
        }
        p = lws_get_opaque_user_data(wsi);
        if (p)
                pending_unlink(g, p);
}

/* Closes the connections past their hello deadline: a WebSocket gets an error frame and a
 * close (and is dropped if still there after a grace), anything else (still in its HTTP
 * upgrade, or silent) is dropped. The list is at most the caps long. */
static void sweep(lws_sorted_usec_list_t *sul) {
        Gate *g = container_of(sul, Gate, sweep_sul);
        Server *s = g->server;
        int64_t now = mono_ms();

        for (Pending *p = g->head; p; p = p->next) {
                if (p->doomed || p->deadline_ms > now)
                        continue;
                Conn *c = lws_wsi_user(p->wsi);
                if (c && c->is_ws && !c->closing) {
                        char message[64];
                        log_debug("Connection %llu sent no hello within %u s; closing it.",
                                  (unsigned long long) c->serial, s->opts.hello_timeout_sec);
                        snprintf(message, sizeof message, "no hello within %u s", s->opts.hello_timeout_sec);
                        (void) conn_send_error(c, "hello_timeout", message, NULL);
                        conn_close(c, 1008, "hello_timeout");
                        p->deadline_ms = now + CLOSE_GRACE_MS;
                        continue;
                }
                doom(g, p);
        }
        lws_sul_schedule(g->server->ctx, 0, &g->sweep_sul, sweep, SWEEP_INTERVAL_US);
}
