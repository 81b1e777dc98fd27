/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "ca-store.h"
#include "frame-validate.h"
#include "hello.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"
#include "worker.h"

/* Wire-protocol §1: the client gives the broker this long to answer hello. */
#define HELLO_ACK_TIMEOUT_MS 5000
/* TCP, TLS and the HTTP upgrade together: a stopped broker still completes the TCP handshake. */
#define CONNECT_TIMEOUT_SECS 5
#define RESOLVE_TIMEOUT_MS 15000
/* Session connects in TCP, TLS, upgrade or hello at once. A broker takes a bounded number of
 * not yet authenticated connections per address (ours 32) and leaves the rest unanswered; after
 * a broker restart hundreds of sessions knocking together would mostly time out and back off.
 * The member's connection never waits. */
#define SESSION_HANDSHAKES_MAX 16

bool connection_is_live(const Conn *c) {
        return c->phase == PHASE_CONNECTING || c->phase == PHASE_HELLO || c->phase == PHASE_CONNECTED;
}

/* Drops the connection from outside an lws callback; CLIENT_CLOSED (or CONNECTION_ERROR)
 * follows from the loop. An upgraded connection is closed from its next WRITEABLE callback,
 * with c->close_code if set; one still in TCP/TLS/upgrade through an lws timeout.
 * lws_cancel_service() wakes the loop, or lws on libuv would sit on a timeout set from outside
 * its callbacks until something else happens. */
void connection_kill(Conn *c, const char *why) {
        snprintf(c->end_reason, sizeof c->end_reason, "%s", why);
        if (!c->wsi)
                return;
        c->kill = true;
        if (c->phase == PHASE_CONNECTING)
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        else {
                /* The timeout is the backstop for a socket that never turns writable (a
                 * stopped broker, a full send buffer). */
                lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 2);
                lws_callback_on_writable(c->wsi);
        }
        lws_cancel_service(c->worker->lws);
}

void connection_start_timer(uv_timer_t *t, uint64_t timeout, uint64_t repeat, uv_timer_cb cb) {
        int r = uv_timer_start(t, cb, timeout, repeat);
        /* Only fails for a closing handle or a NULL callback: a bug, not a runtime state. */
        if (r < 0)
                log_error("uv_timer_start failed: %s", uv_strerror(r));
}

static void on_retry_timer(uv_timer_t *t) {
        connection_start(t->data);
}

static void schedule_backoff(Conn *c, const char *detail, int close_code) {
        uint64_t delay = backoff_delay_ms(c->attempt, backoff_random());

        log_info("%s%s; reconnecting in %llu ms (attempt %u).", conn_label(c), detail, (unsigned long long) delay,
                 c->attempt + 1);
        c->attempt++;
        c->phase = PHASE_BACKOFF;
        conn_state(c, "backoff", detail, (int64_t) delay, close_code);
        connection_start_timer(&c->retry_timer, delay, 0, on_retry_timer);
}

static void fail(Conn *c, const char *detail, int close_code) {
        log_warning("%s%s; not reconnecting until the daemon asks.", conn_label(c), detail);
        c->phase = PHASE_FAILED;
        uv_timer_stop(&c->retry_timer);
        conn_state(c, "failed", detail, -1, close_code);
}

/* The connection is gone (or never came up): decide what comes next. */
static void connection_ended(Conn *c, const char *why) {
        Worker *w = c->worker;
        bool established = c->phase == PHASE_HELLO || c->phase == PHASE_CONNECTED;
        char detail[512];
        size_t dropped;

        if (!connection_is_live(c))
                return;
        c->wsi = NULL;
        c->phase = PHASE_IDLE;
        /* Its handshake slot, if it held one, is free: the next waiting session goes. */
        connection_next_turn(w);
        uv_timer_stop(&c->ping_timer);
        uv_timer_stop(&c->liveness_timer);
        uv_timer_stop(&c->hello_timer);
        c->sign_request_id[0] = '\0';
        c->want_ping = false;
        c->rx_size = 0;
        c->rx = mfree(c->rx);
        dropped = outbound_drop(c);
        if (dropped > 0)
                log_info("%sDropped %zu unsent frame(s) with the connection; the daemon resends from its outbox.",
                         conn_label(c), dropped);
        if (c->forget) {
                /* session_close: the daemon is no longer interested in it. */
                session_socket_gone(c);
                return;
        }
        if (w->exiting)
                return;

        if (c->end_reason[0])
                snprintf(detail, sizeof detail, "%s", c->end_reason);
        else if (c->peer_close_code)
                snprintf(detail, sizeof detail, "the broker closed the connection with %d%s%s%s%s%s",
                         c->peer_close_code, c->peer_close_reason[0] ? " \"" : "", c->peer_close_reason,
                         c->peer_close_reason[0] ? "\"" : "", c->last_error_code[0] ? " after error " : "",
                         c->last_error_code);
        else
                snprintf(detail, sizeof detail, "%s %s: %s", established ? "lost the connection to" : "cannot connect to",
                         w->config.broker_url, why);

        if (c->close_is_final) {
                /* The daemon's close (DECISIONS §11): terminal until it says "reconnect". */
                fail(c, detail, c->close_code);
                return;
        }
        /* 4001 kicked, 4002 banned/revoked, and session_replaced (another holder of our session
         * took over; reconnecting would evict it in turn, field lessons §5.1) are final. */
        if (c->peer_close_code == 4001 || c->peer_close_code == 4002 ||
            (c->peer_close_code == 1000 && streq(c->peer_close_reason, "session_replaced"))) {
                fail(c, detail, c->peer_close_code);
                return;
        }
        if (c->reconnect_now) {
                c->reconnect_now = false;
                c->attempt = 0;
                connection_start_timer(&c->retry_timer, 0, 0, on_retry_timer);
                return;
        }
        /* Another address of the same name first, without waiting. */
        if (!established && c->addrs && c->addrs[c->next_addr]) {
                log_debug("%s%s; trying the next address.", conn_label(c), detail);
                connection_start_timer(&c->retry_timer, 0, 0, on_retry_timer);
                return;
        }
        schedule_backoff(c, detail, c->peer_close_code);
}

static bool is_numeric_host(const char *host) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Fresh addresses at the start of every round, so a broker that moved is found again. */
static int resolve(Conn *c, char **ret_error) {
        Worker *w = c->worker;

        strv_free(c->addrs);
        c->addrs = NULL;
        c->next_addr = 0;

        if (is_numeric_host(w->config.host)) {
                c->addrs = calloc(2, sizeof *c->addrs);
                if (!c->addrs || !(c->addrs[0] = strdup(w->config.host)))
                        return -ENOMEM;
                return 0;
        }
        return resolver_lookup(&w->resolver, w->config.host, RESOLVE_TIMEOUT_MS, &c->addrs, ret_error);
}

static unsigned session_handshakes(const Worker *w) {
        unsigned n = 0;

        for (size_t i = 1; i < ELEMENTSOF(w->conns); i++)
                n += w->conns[i] && (w->conns[i]->phase == PHASE_CONNECTING || w->conns[i]->phase == PHASE_HELLO);
        return n;
}

void connection_next_turn(Worker *w) {
        unsigned busy;

        assert(w);

        busy = session_handshakes(w);
        for (size_t i = 1; i < ELEMENTSOF(w->conns) && busy < SESSION_HANDSHAKES_MAX && !w->exiting; i++) {
                Conn *c = w->conns[i];

                if (!c || !c->awaiting_turn)
                        continue;
                c->awaiting_turn = false;
                connection_start(c);
                /* Counted again: a start can end at once, and its end start others. */
                busy = session_handshakes(w);
        }
}

void connection_start(Conn *c) {
        Worker *w = c->worker;
        struct lws_client_connect_info ci;
        char detail[512];
        const char *addr;
        int r;

        if (w->exiting || c->forget || connection_is_live(c) || c->phase == PHASE_FAILED)
                return;
        uv_timer_stop(&c->retry_timer);
        if (c->id != 0 && session_handshakes(w) >= SESSION_HANDSHAKES_MAX) {
                if (!c->awaiting_turn)
                        log_debug("%s%u session handshakes under way; waiting for a turn.", conn_label(c),
                                  SESSION_HANDSHAKES_MAX);
                c->awaiting_turn = true;
                return;
        }

        if (!c->addrs || !c->addrs[c->next_addr]) {
                _cleanup_free_ char *error = NULL;

                r = resolve(c, &error);
                if (r == -EPIPE) {
                        /* The helper cannot be recreated inside the sandbox: let the daemon
                         * restart the whole worker. */
                        log_error("The resolver helper is gone; exiting.");
                        worker_send_state(w, 0, "failed", "the resolver helper died", -1, 0);
                        w->exit_error = r;
                        worker_exit(w);
                        return;
                }
                if (r < 0) {
                        snprintf(detail, sizeof detail, "cannot resolve %s: %s", w->config.host,
                                 error ? error : STRERROR(r));
                        schedule_backoff(c, detail, 0);
                        return;
                }
        }
        addr = c->addrs[c->next_addr++];

        c->phase = PHASE_CONNECTING;
        c->peer_close_code = 0;
        c->peer_close_reason[0] = '\0';
        c->last_error_code[0] = '\0';
        c->end_reason[0] = '\0';
        c->close_code = 0;
        c->close_sent = false;
        c->kill = false;
        c->rx_size = 0;
        c->rx_skip = false;

        snprintf(detail, sizeof detail, "connecting to %s (%s)%s%s", w->config.broker_url, addr,
                 w->landlock ? "; " : "", strempty(w->landlock));
        log_debug("%s%s", conn_label(c), detail);
        conn_state(c, "connecting", detail, -1, 0);
        /* Said once: later connecting states need not repeat it. */
        w->landlock = NULL;

        ci = (struct lws_client_connect_info) {
                .context = w->lws,
                .address = addr,
                .port = w->config.port,
                .path = w->config.path,
                /* Host header, SNI and the certificate's name: the name, not the address. */
                .host = w->config.host,
                .origin = w->config.host,
                /* No Sec-WebSocket-Protocol, like the upstream client; ours accepts both. */
                .protocol = NULL,
                .local_protocol_name = "claudemesh-worker",
                .pwsi = &c->wsi,
                /* Every callback of this socket finds its connection from here. */
                .opaque_user_data = c,
        };
        if (w->config.tls) {
                ci.ssl_connection = LCCSCF_USE_SSL;
                if (w->config.allow_self_signed)
                        ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED;
        }
        /* On failure lws may already have called CONNECTION_ERROR, which ended this attempt. */
        if (!lws_client_connect_via_info(&ci) && connection_is_live(c)) {
                connection_ended(c, "the connection could not be started");
                return;
        }
        /* Started from outside lws's callbacks: wake its loop, or the connect (and its
         * timeout) waits for some other socket's activity. */
        lws_cancel_service(w->lws);
}

static void on_ping_timer(uv_timer_t *t) {
        Conn *c = t->data;

        if (!c->wsi)
                return;
        c->want_ping = true;
        lws_callback_on_writable(c->wsi);
}

static void on_liveness_timer(uv_timer_t *t) {
        Conn *c = t->data;
        uint64_t now = mono_ms(), idle = now - c->last_rx_ms, timeout = c->worker->config.liveness_timeout_ms;

        if (!connection_is_live(c))
                return;
        if (idle >= timeout) {
                char why[128];
                snprintf(why, sizeof why, "no traffic from the broker for %llu ms", (unsigned long long) idle);
                log_warning("%s%s; dropping the connection.", conn_label(c), why);
                connection_kill(c, why);
                return;
        }
        /* Re-armed lazily: receiving only updates last_rx_ms, it never touches a timer. */
        connection_start_timer(&c->liveness_timer, timeout - idle, 0, on_liveness_timer);
}

static void on_hello_timer(uv_timer_t *t) {
        Conn *c = t->data;

        if (c->phase == PHASE_HELLO)
                connection_kill(c, "no hello_ack within 5 s");
}

static void on_established(Conn *c) {
        const WorkerConfig *config = &c->worker->config;

        c->phase = PHASE_HELLO;
        c->last_rx_ms = mono_ms();
        /* This round's address worked; the next connect resolves afresh. */
        c->next_addr = 0;
        strv_free(c->addrs);
        c->addrs = NULL;

        connection_start_timer(&c->ping_timer, config->ping_interval_ms, config->ping_interval_ms, on_ping_timer);
        connection_start_timer(&c->liveness_timer, config->liveness_timeout_ms, 0, on_liveness_timer);
        connection_start_timer(&c->hello_timer, HELLO_ACK_TIMEOUT_MS, 0, on_hello_timer);
        handshake_begin(c);
}

void connection_close(Conn *c, int code, const char *reason) {
        char detail[256];

        c->close_is_final = true;
        c->close_code = code;
        snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
        uv_timer_stop(&c->retry_timer);
        snprintf(detail, sizeof detail, "closed at the daemon's request with %d %s", code, reason);
        if (!connection_is_live(c) || !c->wsi) {
                fail(c, detail, code);
                return;
        }
        connection_kill(c, detail);
}

void connection_reconnect(Conn *c) {
        c->close_is_final = false;
        c->attempt = 0;
        uv_timer_stop(&c->retry_timer);
        if (connection_is_live(c) && c->wsi) {
                c->reconnect_now = true;
                c->close_code = 1000;
                snprintf(c->close_reason, sizeof c->close_reason, "reconnect");
                connection_kill(c, "reconnecting at the daemon's request");
                return;
        }
        c->phase = PHASE_IDLE;
        connection_start(c);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        /* NULL for the context's and vhost's own callbacks, which need nothing from us. */
        Conn *c = lws_get_opaque_user_data(wsi);

        if (reason == LWS_CALLBACK_OPENSSL_LOAD_EXTRA_CLIENT_VERIFY_CERTS) {
                /* From lws_create_context, with a placeholder wsi: before the sandbox. */
                Worker *w = lws_context_user(lws_get_context(wsi));
                w->ca_store_installed = ca_store_install(user) >= 0;
                return 0;
        }
        if (!c)
                return 0;
        switch (reason) {
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                /* libwebsockets says "closed before established" for a refused TCP connection too */
                connection_ended(c, !in ? "connection failed"
                                    : streq((const char *) in, "closed before established")
                                    ? "connection refused, or closed before the WebSocket handshake"
                                    : (const char *) in);
                break;
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
                c->wsi = wsi;
                on_established(c);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE:
                receive_data(c, wsi, in, len);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
                c->last_rx_ms = mono_ms();
                break;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
                /* The close payload: a 2-byte code (network order), then the reason. */
                if (len >= 2) {
                        const unsigned char *p = in;
                        c->peer_close_code = p[0] << 8 | p[1];
                        snprintf(c->peer_close_reason, sizeof c->peer_close_reason, "%.*s",
                                 (int) (len - 2 < sizeof c->peer_close_reason ? len - 2 : sizeof c->peer_close_reason - 1),
                                 (const char *) p + 2);
                }
                break;
        case LWS_CALLBACK_CLIENT_WRITEABLE:
                return outbound_writable(c, wsi);
        case LWS_CALLBACK_CLIENT_CLOSED:
                connection_ended(c, "closed");
                break;
        default:
                break;
        }
        return 0;
}

static const struct lws_protocols protocols[] = {
        { "claudemesh-worker", callback, 0, FRAME_MAX_BYTES, 0, NULL, 0 },
        { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void lws_log(int level, const char *line) {
        size_t n = strlen(line);
        /* lws lines end in a newline; ours add one. */
        log_full_errno(level == LLL_ERR ? LOG_ERR : level == LLL_WARN ? LOG_WARNING : LOG_DEBUG, 0, "lws: %.*s",
                       (int) (n > 0 && line[n - 1] == '\n' ? n - 1 : n), line);
}

int connection_setup(Worker *w) {
        struct lws_context_creation_info info;
        void *foreign[] = { &w->loop };

        lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
        memset(&info, 0, sizeof info);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protocols;
        /* The evlib plugin, OpenSSL and the system CA store are all loaded here, before the
         * sandbox closes the filesystem. OpenSSL and a client context with the CA store cost
         * 1.2 MiB of heap: only a wss:// broker needs them (every connection of the worker
         * goes to its one broker URL). */
        info.options = LWS_SERVER_OPTION_LIBUV;
        if (w->config.tls)
                /* The CA bundle comes from ca_store_install(), indexed, not parsed whole. */
                info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_DISABLE_OS_CA_CERTS;
        info.foreign_loops = foreign;
        info.user = w;
        info.timeout_secs = CONNECT_TIMEOUT_SECS;
        info.connect_timeout_secs = CONNECT_TIMEOUT_SECS;
        /* lws sizes its descriptor table from this, indexed by descriptor: the sandbox's limit. */
        info.fd_limit_per_thread = WORKER_FD_MAX;
        /* A client holds a header block from its connect through the upgrade; with lws's
         * default pool of 32, a 33rd concurrent connect (every session after a broker
         * restart) would wait for another's upgrade. */
        info.max_http_header_pool = 1 + WORKER_SESSIONS_MAX + CLOSING_MAX;
        w->lws = lws_create_context(&info);
        if (!w->lws)
                return log_error_errno(-EIO, "lws_create_context failed (is libwebsockets-evlib-uv installed?)");
        /* lws ignores what its CA callback returns: without our store no certificate is
         * trusted, and the worker would only ever fail to connect. */
        if (w->config.tls && !w->ca_store_installed)
                return log_error_errno(-EIO, "No CA store for the TLS connections.");
        return 0;
}

void connection_teardown(Worker *w) {
        /* Closes every socket; their CLIENT_CLOSED callbacks see w->exiting. */
        if (w->lws)
                lws_context_destroy(w->lws);
        for (size_t i = 0; i < ELEMENTSOF(w->conns); i++)
                if (w->conns[i])
                        w->conns[i]->wsi = NULL;
}

void connection_teardown_finish(Worker *w) {
        /* On a foreign libuv loop, lws 4.1 finishes destroying the context (the vhosts and
         * the client SSL_CTX with the CA store) only when called again after the loop has run
         * its close callbacks; once is a leak of all of that. */
        if (w->lws)
                lws_context_destroy(w->lws);
        w->lws = NULL;
}
