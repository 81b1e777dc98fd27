/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
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

static bool is_live(const Worker *w) {
        return w->phase == PHASE_CONNECTING || w->phase == PHASE_HELLO || w->phase == PHASE_CONNECTED;
}

/* Drops the connection from outside an lws callback; CLIENT_CLOSED (or CONNECTION_ERROR)
 * follows from the loop. An upgraded connection is closed from its next WRITEABLE callback,
 * with w->close_code if set; one still in TCP/TLS/upgrade through an lws timeout.
 * lws_cancel_service() wakes the loop, or lws on libuv would sit on a timeout set from outside
 * its callbacks until something else happens. */
void connection_kill(Worker *w, const char *why) {
        snprintf(w->end_reason, sizeof w->end_reason, "%s", why);
        if (!w->wsi)
                return;
        w->kill = true;
        if (w->phase == PHASE_CONNECTING)
                lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        else {
                /* The timeout is the backstop for a socket that never turns writable (a
                 * stopped broker, a full send buffer). */
                lws_set_timeout(w->wsi, PENDING_TIMEOUT_USER_OK, 2);
                lws_callback_on_writable(w->wsi);
        }
        lws_cancel_service(w->lws);
}

static void start_timer(Worker *w, uv_timer_t *t, uint64_t timeout, uint64_t repeat, uv_timer_cb cb) {
        int r = uv_timer_start(t, cb, timeout, repeat);
        /* Only fails for a closing handle or a NULL callback: a bug, not a runtime state. */
        if (r < 0)
                log_error("uv_timer_start failed: %s", uv_strerror(r));
}

static void on_retry_timer(uv_timer_t *t) {
        connection_start(t->data);
}

static void schedule_backoff(Worker *w, const char *detail, int close_code) {
        uint64_t delay = backoff_delay_ms(w->attempt, backoff_random());

        log_info("%s; reconnecting in %llu ms (attempt %u).", detail, (unsigned long long) delay, w->attempt + 1);
        w->attempt++;
        w->phase = PHASE_BACKOFF;
        worker_send_state(w, "backoff", detail, (int64_t) delay, close_code);
        start_timer(w, &w->retry_timer, delay, 0, on_retry_timer);
}

static void fail(Worker *w, const char *detail, int close_code) {
        log_warning("%s; not reconnecting until the daemon asks.", detail);
        w->phase = PHASE_FAILED;
        uv_timer_stop(&w->retry_timer);
        worker_send_state(w, "failed", detail, -1, close_code);
}

/* The connection is gone (or never came up): decide what comes next. */
static void connection_ended(Worker *w, const char *why) {
        bool established = w->phase == PHASE_HELLO || w->phase == PHASE_CONNECTED;
        char detail[512];
        size_t dropped;

        if (!is_live(w))
                return;
        w->wsi = NULL;
        w->phase = PHASE_IDLE;
        uv_timer_stop(&w->ping_timer);
        uv_timer_stop(&w->liveness_timer);
        uv_timer_stop(&w->hello_timer);
        w->sign_request_id[0] = '\0';
        w->want_ping = false;
        w->rx_size = 0;
        dropped = outbound_drop(w);
        if (dropped > 0)
                log_info("Dropped %zu unsent frame(s) with the connection; the daemon resends from its outbox.",
                         dropped);
        if (w->exiting)
                return;

        if (w->end_reason[0])
                snprintf(detail, sizeof detail, "%s", w->end_reason);
        else if (w->peer_close_code)
                snprintf(detail, sizeof detail, "the broker closed the connection with %d%s%s%s%s%s",
                         w->peer_close_code, w->peer_close_reason[0] ? " \"" : "", w->peer_close_reason,
                         w->peer_close_reason[0] ? "\"" : "", w->last_error_code[0] ? " after error " : "",
                         w->last_error_code);
        else
                snprintf(detail, sizeof detail, "%s %s: %s", established ? "lost the connection to" : "cannot connect to",
                         w->config.broker_url, why);

        if (w->close_is_final) {
                /* The daemon's close (DECISIONS §11): terminal until it says "reconnect". */
                fail(w, detail, w->close_code);
                return;
        }
        /* 4001 kicked, 4002 banned/revoked, and session_replaced (another holder of our session
         * took over; reconnecting would evict it in turn, field lessons §5.1) are final. */
        if (w->peer_close_code == 4001 || w->peer_close_code == 4002 ||
            (w->peer_close_code == 1000 && streq(w->peer_close_reason, "session_replaced"))) {
                fail(w, detail, w->peer_close_code);
                return;
        }
        if (w->reconnect_now) {
                w->reconnect_now = false;
                w->attempt = 0;
                start_timer(w, &w->retry_timer, 0, 0, on_retry_timer);
                return;
        }
        /* Another address of the same name first, without waiting. */
        if (!established && w->addrs && w->addrs[w->next_addr]) {
                log_debug("%s; trying the next address.", detail);
                start_timer(w, &w->retry_timer, 0, 0, on_retry_timer);
                return;
        }
        schedule_backoff(w, detail, w->peer_close_code);
}

static bool is_numeric_host(const char *host) {
        unsigned char buf[sizeof(struct in6_addr)];
        return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* Fresh addresses at the start of every round, so a broker that moved is found again. */
static int resolve(Worker *w, char **ret_error) {
        strv_free(w->addrs);
        w->addrs = NULL;
        w->next_addr = 0;

        if (is_numeric_host(w->config.host)) {
                w->addrs = calloc(2, sizeof *w->addrs);
                if (!w->addrs || !(w->addrs[0] = strdup(w->config.host)))
                        return -ENOMEM;
                return 0;
        }
        return resolver_lookup(&w->resolver, w->config.host, RESOLVE_TIMEOUT_MS, &w->addrs, ret_error);
}

void connection_start(Worker *w) {
        struct lws_client_connect_info ci;
        char detail[512];
        const char *addr;
        int r;

        if (w->exiting || is_live(w) || w->phase == PHASE_FAILED)
                return;
        uv_timer_stop(&w->retry_timer);

        if (!w->addrs || !w->addrs[w->next_addr]) {
                _cleanup_free_ char *error = NULL;

                r = resolve(w, &error);
                if (r == -EPIPE) {
                        /* The helper cannot be recreated inside the sandbox: let the daemon
                         * restart the whole worker. */
                        log_error("The resolver helper is gone; exiting.");
                        worker_send_state(w, "failed", "the resolver helper died", -1, 0);
                        w->exit_error = r;
                        worker_exit(w);
                        return;
                }
                if (r < 0) {
                        snprintf(detail, sizeof detail, "cannot resolve %s: %s", w->config.host,
                                 error ? error : STRERROR(r));
                        schedule_backoff(w, detail, 0);
                        return;
                }
        }
        addr = w->addrs[w->next_addr++];

        w->phase = PHASE_CONNECTING;
        w->peer_close_code = 0;
        w->peer_close_reason[0] = '\0';
        w->last_error_code[0] = '\0';
        w->end_reason[0] = '\0';
        w->close_code = 0;
        w->close_sent = false;
        w->kill = false;
        w->rx_size = 0;
        w->rx_skip = false;

        snprintf(detail, sizeof detail, "connecting to %s (%s)%s%s", w->config.broker_url, addr,
                 w->landlock ? "; " : "", strempty(w->landlock));
        log_debug("%s", detail);
        worker_send_state(w, "connecting", detail, -1, 0);
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
                .pwsi = &w->wsi,
        };
        if (w->config.tls) {
                ci.ssl_connection = LCCSCF_USE_SSL;
                if (w->config.allow_self_signed)
                        ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED;
        }
        /* On failure lws may already have called CONNECTION_ERROR, which ended this attempt. */
        if (!lws_client_connect_via_info(&ci) && is_live(w))
                connection_ended(w, "the connection could not be started");
}

static void on_ping_timer(uv_timer_t *t) {
        Worker *w = t->data;

        if (!w->wsi)
                return;
        w->want_ping = true;
        lws_callback_on_writable(w->wsi);
}

static void on_liveness_timer(uv_timer_t *t) {
        Worker *w = t->data;
        uint64_t now = mono_ms(), idle = now - w->last_rx_ms;

        if (!is_live(w))
                return;
        if (idle >= w->config.liveness_timeout_ms) {
                char why[128];
                snprintf(why, sizeof why, "no traffic from the broker for %llu ms", (unsigned long long) idle);
                log_warning("%s; dropping the connection.", why);
                connection_kill(w, why);
                return;
        }
        /* Re-armed lazily: receiving only updates last_rx_ms, it never touches a timer. */
        start_timer(w, &w->liveness_timer, w->config.liveness_timeout_ms - idle, 0, on_liveness_timer);
}

static void on_hello_timer(uv_timer_t *t) {
        Worker *w = t->data;

        if (w->phase == PHASE_HELLO)
                connection_kill(w, "no hello_ack within 5 s");
}

static void on_established(Worker *w) {
        _cleanup_(json_object_putp) json_object *sign = NULL;
        _cleanup_free_ char *payload = NULL;

        w->phase = PHASE_HELLO;
        w->last_rx_ms = mono_ms();
        /* This round's address worked; the next connect resolves afresh. */
        w->next_addr = 0;
        strv_free(w->addrs);
        w->addrs = NULL;

        start_timer(w, &w->ping_timer, w->config.ping_interval_ms, w->config.ping_interval_ms, on_ping_timer);
        start_timer(w, &w->liveness_timer, w->config.liveness_timeout_ms, 0, on_liveness_timer);
        start_timer(w, &w->hello_timer, HELLO_ACK_TIMEOUT_MS, 0, on_hello_timer);

        /* A fresh timestamp and signature per connect (field lessons §5.2). */
        w->hello_timestamp = (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_MSEC);
        snprintf(w->sign_request_id, sizeof w->sign_request_id, "hello-%u", ++w->sign_serial);
        sign = json_object_new_object();
        if (!sign || hello_sign_payload(&w->config, w->hello_timestamp, &payload) < 0 ||
            json_object_object_add(sign, "type", json_object_new_string("sign")) < 0 ||
            json_object_object_add(sign, "request_id", json_object_new_string(w->sign_request_id)) < 0 ||
            json_object_object_add(sign, "payload", json_object_new_string(payload)) < 0) {
                connection_kill(w, "out of memory");
                return;
        }
        log_debug("Connected to %s, asking the daemon to sign the hello.", w->config.broker_url);
        (void) worker_send_packet(w, sign);
}

void connection_signature(Worker *w, const char *request_id, const char *signature, const char *error) {
        _cleanup_(json_object_putp) json_object *hello = NULL;
        const char *text;
        size_t size;
        int r;

        if (w->phase != PHASE_HELLO || !streq(request_id, w->sign_request_id)) {
                log_debug("Ignoring the signature for %s: no longer waiting for it.", request_id);
                return;
        }
        w->sign_request_id[0] = '\0';
        if (error) {
                char why[160];
                snprintf(why, sizeof why, "the daemon refused to sign the hello: %.100s", error);
                connection_kill(w, why);
                return;
        }
        r = hello_frame_new(&w->config, w->hello_timestamp, signature, &hello);
        if (r < 0) {
                connection_kill(w, r == -EINVAL ? "the daemon's signature is not 128 hex characters" : "out of memory");
                return;
        }
        text = json_object_to_json_string_length(hello, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size);
        w->hello = text ? outgoing_new(text, size) : NULL;
        if (!w->hello) {
                connection_kill(w, "out of memory");
                return;
        }
        lws_callback_on_writable(w->wsi);
}

void connection_close(Worker *w, int code, const char *reason) {
        char detail[256];

        w->close_is_final = true;
        w->close_code = code;
        snprintf(w->close_reason, sizeof w->close_reason, "%s", reason);
        uv_timer_stop(&w->retry_timer);
        snprintf(detail, sizeof detail, "closed at the daemon's request with %d %s", code, reason);
        if (!is_live(w) || !w->wsi) {
                fail(w, detail, code);
                return;
        }
        connection_kill(w, detail);
}

void connection_reconnect(Worker *w) {
        w->close_is_final = false;
        w->attempt = 0;
        uv_timer_stop(&w->retry_timer);
        if (is_live(w) && w->wsi) {
                w->reconnect_now = true;
                w->close_code = 1000;
                snprintf(w->close_reason, sizeof w->close_reason, "reconnect");
                connection_kill(w, "reconnecting at the daemon's request");
                return;
        }
        w->phase = PHASE_IDLE;
        connection_start(w);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        Worker *w = lws_context_user(lws_get_context(wsi));

        switch (reason) {
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
                /* libwebsockets says "closed before established" for a refused TCP connection too */
                connection_ended(w, !in ? "connection failed"
                                    : streq((const char *) in, "closed before established")
                                    ? "connection refused, or closed before the WebSocket handshake"
                                    : (const char *) in);
                break;
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
                w->wsi = wsi;
                on_established(w);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE:
                receive_data(w, wsi, in, len);
                break;
        case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
                w->last_rx_ms = mono_ms();
                break;
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
                /* The close payload: a 2-byte code (network order), then the reason. */
                if (len >= 2) {
                        const unsigned char *p = in;
                        w->peer_close_code = p[0] << 8 | p[1];
                        snprintf(w->peer_close_reason, sizeof w->peer_close_reason, "%.*s",
                                 (int) (len - 2 < sizeof w->peer_close_reason ? len - 2 : sizeof w->peer_close_reason - 1),
                                 (const char *) p + 2);
                }
                break;
        case LWS_CALLBACK_CLIENT_WRITEABLE:
                return outbound_writable(w, wsi);
        case LWS_CALLBACK_CLIENT_CLOSED:
                connection_ended(w, "closed");
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
        uv_timer_t *timers[] = { &w->retry_timer, &w->ping_timer, &w->liveness_timer, &w->hello_timer };

        for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
                int r = uv_timer_init(&w->loop, timers[i]);
                if (r < 0)
                        return log_error_errno(-ENOMEM, "uv_timer_init failed: %s", uv_strerror(r));
                timers[i]->data = w;
        }

        w->rx = malloc(FRAME_MAX_BYTES);
        if (!w->rx)
                return -ENOMEM;

        lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);
        memset(&info, 0, sizeof info);
        info.port = CONTEXT_PORT_NO_LISTEN;
        info.protocols = protocols;
        /* The evlib plugin, OpenSSL and the system CA store are all loaded here, before the
         * sandbox closes the filesystem. */
        info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.foreign_loops = foreign;
        info.user = w;
        info.timeout_secs = CONNECT_TIMEOUT_SECS;
        info.connect_timeout_secs = CONNECT_TIMEOUT_SECS;
        /* lws sizes its descriptor table from this; the sandbox allows 64. */
        info.fd_limit_per_thread = 32;
        w->lws = lws_create_context(&info);
        if (!w->lws)
                return log_error_errno(-EIO, "lws_create_context failed (is libwebsockets-evlib-uv installed?)");
        return 0;
}

void connection_teardown(Worker *w) {
        (void) outbound_drop(w);
        strv_free(w->addrs);
        w->addrs = NULL;
        w->wsi = NULL;
        w->rx = mfree(w->rx);
        if (w->lws)
                lws_context_destroy(w->lws);
}

void connection_teardown_finish(Worker *w) {
        /* On a foreign libuv loop, lws 4.1 finishes destroying the context (the vhosts and
         * the client SSL_CTX with the CA store) only when called again after the loop has run
         * its close callbacks; once is a leak of all of that. */
        if (w->lws)
                lws_context_destroy(w->lws);
        w->lws = NULL;
}
