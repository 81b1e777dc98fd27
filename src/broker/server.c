/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "accept.h"
#include "config-build.h"
#include "delivery.h"
#include "hello.h"
#include "log.h"
#include "moderation.h"
#include "nodes.h"
#include "pool.h"
#include "presence.h"
#include "ratelimit.h"
#include "retention.h"
#include "server.h"
#include "state.h"
#include "time-util.h"
#include "topic.h"

#define OUT_QUEUE_MAX ((size_t) 32 << 20)   /* a peer this far behind is cut, not buffered */
#define SHUTDOWN_GRACE_MS 1000
#define WRITE_COALESCE_MAX ((size_t) 256 << 10)
#define HELD_MAX 1024                       /* frames waiting behind sends in flight */
#define HELD_BYTES_MAX ((size_t) 4 << 20)
/* Sends of one connection in flight; beyond, its socket is not read (TCP pushes back). */
#define INFLIGHT_MAX 256

struct OutFrame {
        OutFrame *next;
        size_t len;
        char data[];            /* the JSON text; write_queued() frames it */
};

struct HeldFrame {
        HeldFrame *next;
        bool async;             /* a frame that need not wait for the sends before it */
        size_t len;
        char data[];
};

static volatile sig_atomic_t stop_requested;
static struct lws_context *signal_ctx;

void broker_options_init(BrokerOptions *o) {
        *o = (BrokerOptions) {
                .listen_host = "127.0.0.1",
                .listen_port = 7900,
                .ping_interval_sec = 30,
                .liveness_timeout_sec = 75,
                .lease_seconds = 30,
                .max_connections_per_mesh = 100,
                .rate_limit = 60,
                .rate_window_sec = 60,
                .dedupe_retention_days = 7,
                .message_retention_days = 7,
                .purge_interval_sec = 3600,
                .presence_grace_sec = 90,
                .hello_timeout_sec = 10,
                .max_unauthenticated = 256,
                .max_unauthenticated_per_address = 32,
                .catch_up_interval_ms = 1000,
                .lane0_high = 4096,
                .db_pool = 2,
        };
}

const char *conn_routing_key(const Conn *c) {
        return c->session_pubkey[0] ? c->session_pubkey : c->member_pubkey;
}

const char *conn_sender_scope(const Conn *c) {
        /* A session_hello connection's scope is its own key (DECISIONS rule 17). */
        return c->is_session ? c->session_pubkey : c->member_id;
}

bool conn_is_live(const Conn *c) {
        return c->is_ws && c->hello_done && !c->closing;
}

int conn_send(Conn *c, json_object *o) {
        size_t len;
        const char *text;
        OutFrame *f;

        if (c->close_code)
                return -ESHUTDOWN;
        text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
        if (!text)
                return -ENOMEM;
        if (c->out_bytes + len > OUT_QUEUE_MAX) {
                log_warning("Connection %llu does not read its frames; dropping it.", (unsigned long long) c->serial);
                conn_kill(c);
                return -ENOBUFS;
        }
        f = malloc(sizeof *f + len);
        if (!f)
                return -ENOMEM;
        f->next = NULL;
        f->len = len;
        memcpy(f->data, text, len);
        if (c->out_tail)
                c->out_tail->next = f;
        else
                c->out_head = f;
        c->out_tail = f;
        c->out_bytes += len;
        lws_callback_on_writable(c->wsi);
        return 0;
}

int conn_send_error(Conn *c, const char *code, const char *message, const char *req_id) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "type", json_object_new_string("error"));
        json_object_object_add(o, "code", json_object_new_string(code));
        json_object_object_add(o, "message", json_object_new_string(message));
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        return conn_send(c, o);
}

void conn_close(Conn *c, int code, const char *reason) {
        if (c->close_code)
                return;
        c->closing = true;
        c->close_code = code;
        snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
        lws_callback_on_writable(c->wsi);
}

void conn_kill(Conn *c) {
        c->closing = true;
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void conn_free_state(Conn *c) {
        while (c->out_head) {
                OutFrame *f = c->out_head;
                c->out_head = f->next;
                free(f);
        }
        c->out_tail = NULL;
        while (c->held_head) {
                HeldFrame *h = c->held_head;
                c->held_head = h->next;
                free(h);
        }
        c->held_tail = NULL;
        c->n_held = 0;
        c->held_bytes = 0;
        free(c->rx);
        free(c->mesh_id);
        free(c->member_id);
        free(c->display_name);
        free(c->session_id);
        free(c->cwd);
        free(c->hostname);
        free(c->peer_type);
        free(c->channel);
        free(c->model);
        free(c->summary);
        json_object_put(c->groups);
        json_object_put(c->profile);
}

/* A batch that cannot commit leaves queued acks claiming writes that did not happen. Nothing
 * has been sent yet, so the only safe course is to stop before sending: clients retry their
 * unacknowledged sends against the restarted broker. */
void server_commit_batch(Server *s) {
        int r = store_batch_commit(s->store);

        if (r < 0) {
                log_error_errno(r, "Cannot commit to the database (%m); exiting before any reply is sent.");
                _exit(EXIT_FAILURE);
        }
}

/* Upstream types this broker will not serve: an error the CLI shows ("<code>: <message>")
 * instead of a silent drop that leaves it waiting for its timeout. */
static void send_not_supported(Conn *c, const Frame *f) {
        char message[200];
        const char *why = streq(f->type_name, "apikey_create")
                ? "it has no API keys; add members with claudemesh-broker member add"
                : "it has no vector store for mesh memory";

        snprintf(message, sizeof message, "%s is not supported by this broker (%s)", f->type_name, why);
        (void) conn_send_error(c, "not_supported", message, f->req_id);
}

/* Sends and client_acks go to the pool's lanes without waiting (pool.h), not into the
 * batch. */
static bool frame_async(const Server *s, FrameType type) {
        return pool_on(s) && (type == FRAME_SEND || type == FRAME_CLIENT_ACK);
}

static int hold_frame(Conn *c, const char *data, size_t size, bool async) {
        HeldFrame *h;

        if (c->n_held >= HELD_MAX || c->held_bytes + size > HELD_BYTES_MAX)
                return -ENOBUFS;
        h = malloc(sizeof *h + size);
        if (!h)
                return -ENOMEM;
        *h = (HeldFrame) { .async = async, .len = size };
        memcpy(h->data, data, size);
        if (c->held_tail)
                c->held_tail->next = h;
        else
                c->held_head = h;
        c->held_tail = h;
        c->n_held++;
        c->held_bytes += size;
        return 0;
}

static void dispatch(Conn *c, const char *data, size_t size, bool was_held) {
        ProtocolError e = { .code = "internal", .message = "out of memory" };
        Frame f;
        int r;

        if (frame_parse(data, size, &f, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, NULL);
                return;
        }
        if (!c->hello_done && f.type != FRAME_HELLO && f.type != FRAME_SESSION_HELLO) {
                (void) conn_send_error(c, "no_hello", "must send hello first", f.req_id);
                frame_done(&f);
                return;
        }
        bool async = frame_async(c->server, f.type);
        if (!was_held && (c->held_head || c->barrier > 0 || (c->inflight > 0 && !async))) {
                r = hold_frame(c, data, size, async);
                if (r < 0) {
                        log_warning_errno(r, "Connection %llu sends faster than its sends are stored (%m); dropping it.",
                                          (unsigned long long) c->serial);
                        conn_kill(c);
                }
                frame_done(&f);
                return;
        }

        /* Joins (or opens) this loop iteration's batch; without one, statements autocommit.
         * On PostgreSQL every handler sends its statements to the pool (pool.h) instead. */
        if (!pool_on(c->server)) {
                r = store_batch_begin(c->server->store);
                if (r < 0)
                        log_warning_errno(r, "Cannot open a database transaction: %m");
        }

        switch (f.type) {
        case FRAME_HELLO:
                (void) hello_handle(c, &f);
                break;
        case FRAME_SEND:
                accept_handle_send(c, &f);
                break;
        case FRAME_CLIENT_ACK:
                delivery_handle_client_ack(c, &f);
                break;
        case FRAME_LIST_PEERS:
                presence_handle_list_peers(c, &f);
                break;
        case FRAME_SET_STATUS:
                presence_handle_set_status(c, &f);
                break;
        case FRAME_SET_SUMMARY:
                presence_handle_set_summary(c, &f);
                break;
        case FRAME_SET_VISIBLE:
                presence_handle_set_visible(c, &f);
                break;
        case FRAME_SET_PROFILE:
                presence_handle_set_profile(c, &f);
                break;
        case FRAME_TOPIC_LIST:
                topic_handle_list(c, &f);
                break;
        case FRAME_SESSION_HELLO:
                (void) session_hello_handle(c, &f);
                break;
        case FRAME_MESSAGE_STATUS:
                delivery_handle_message_status(c, &f);
                break;
        case FRAME_TOPIC_CREATE:
                topic_handle_create(c, &f);
                break;
        case FRAME_SET_STATE:
                state_handle_set(c, &f);
                break;
        case FRAME_GET_STATE:
                state_handle_get(c, &f);
                break;
        case FRAME_LIST_STATE:
                state_handle_list(c, &f);
                break;
        case FRAME_DISCONNECT:
        case FRAME_KICK:
                moderation_handle_kick(c, &f, f.type == FRAME_KICK);
                break;
        case FRAME_BAN:
                moderation_handle_ban(c, &f);
                break;
        case FRAME_UNBAN:
                moderation_handle_unban(c, &f);
                break;
        case FRAME_LIST_BANS:
                moderation_handle_list_bans(c, &f);
                break;
        case FRAME_NOT_SUPPORTED:
                send_not_supported(c, &f);
                break;
        case FRAME_UNKNOWN:
                /* Upstream ignores unknown types silently; a client then waits for a timeout. */
                (void) conn_send_error(c, "unknown_type", "unknown message type", f.req_id);
                break;
        }
        frame_done(&f);
}

Conn *conn_ref_get(const ConnRef *r) {
        assert(r);
        assert(r->server);

        for (Conn *c = r->server->conns; c; c = c->next)
                if (c->serial == r->serial)
                        return c;
        return NULL;
}

void conn_async_started(Conn *c) {
        if (++c->inflight == INFLIGHT_MAX && !c->rx_paused) {
                c->rx_paused = true;
                lws_rx_flow_control(c->wsi, 0);
        }
}

void conn_async_done(Conn *c) {
        assert(c->inflight > 0);
        c->inflight--;
        while (c->held_head && !c->closing) {
                HeldFrame *h = c->held_head;
                if (c->barrier > 0 || (c->inflight > 0 && !h->async))
                        break;
                c->held_head = h->next;
                if (!c->held_head)
                        c->held_tail = NULL;
                c->n_held--;
                c->held_bytes -= h->len;
                dispatch(c, h->data, h->len, true);
                free(h);
        }
        if (c->rx_paused && c->inflight < INFLIGHT_MAX / 2 && !c->closing && !c->server->throttled) {
                c->rx_paused = false;
                lws_rx_flow_control(c->wsi, 1);
        }
}

void server_throttle(Server *s, bool on) {
        s->throttled = on;
        if (on)
                log_debug("The database's main connection is behind; not reading the clients meanwhile.");
        else
                log_debug("The database's main connection caught up; reading the clients again.");
        for (Conn *c = s->conns; c; c = c->next) {
                if (!c->wsi || c->closing)
                        continue;
                if (!on && c->rx_paused && c->inflight >= INFLIGHT_MAX / 2)
                        continue;
                if (!on)
                        c->rx_paused = false;
                lws_rx_flow_control(c->wsi, on ? 0 : 1);
        }
}

void conn_barrier_begin(Conn *c) {
        c->barrier++;
        conn_async_started(c);
}

void conn_barrier_end(Conn *c) {
        assert(c->barrier > 0);
        c->barrier--;
        conn_async_done(c);
}

static int conn_receive(Conn *c, const void *in, size_t len) {
        c->last_rx_ms = mono_ms();
        if (c->closing)
                return 0;
        if (c->rx_len + len > FRAME_MAX_BYTES) {
                static const char reason[] = "message too big";
                log_info("Connection %llu sent a message over %d bytes; closing it.",
                         (unsigned long long) c->serial, FRAME_MAX_BYTES);
                lws_close_reason(c->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *) reason, strlen(reason));
                return -1;
        }
        if (c->rx_len + len > c->rx_alloc) {
                size_t n = c->rx_alloc ? c->rx_alloc : 4096;
                while (n < c->rx_len + len)
                        n *= 2;
                char *p = realloc(c->rx, n);
                if (!p)
                        return -1;
                c->rx = p;
                c->rx_alloc = n;
        }
        memcpy(c->rx + c->rx_len, in, len);
        c->rx_len += len;
        if (lws_is_final_fragment(c->wsi) && lws_remaining_packet_payload(c->wsi) == 0) {
                size_t n = c->rx_len;
                c->rx_len = 0;
                dispatch(c, c->rx, n, false);
        }
        return 0;
}

/* Writes as many queued frames as fit in WRITE_COALESCE_MAX with one lws_write(): lws
 * allows one write per writeable callback, and one frame per poll round trip would make the
 * event loop the bottleneck under load. The frames are framed here (server frames are not
 * masked) and handed over as LWS_WRITE_RAW. */
static int write_queued(Conn *c) {
        size_t total = 0, n = 0;
        unsigned char *buf, *p;

        for (OutFrame *f = c->out_head; f; f = f->next) {
                size_t need = f->len + 10;
                if (n > 0 && total + need > WRITE_COALESCE_MAX)
                        break;
                total += need;
                n++;
        }
        buf = malloc(LWS_PRE + total);
        if (!buf)
                return -1;
        p = buf + LWS_PRE;
        for (size_t i = 0; i < n; i++) {
                OutFrame *f = c->out_head;
                *p++ = 0x81;    /* FIN, text */
                if (f->len < 126)
                        *p++ = (unsigned char) f->len;
                else if (f->len <= 0xffff) {
                        *p++ = 126;
                        *p++ = (unsigned char) (f->len >> 8);
                        *p++ = (unsigned char) f->len;
                } else {
                        *p++ = 127;
                        for (int shift = 56; shift >= 0; shift -= 8)
                                *p++ = (unsigned char) ((uint64_t) f->len >> shift);
                }
                memcpy(p, f->data, f->len);
                p += f->len;
                c->out_head = f->next;
                c->out_bytes -= f->len;
                free(f);
        }
        if (!c->out_head)
                c->out_tail = NULL;

        size_t len = (size_t) (p - (buf + LWS_PRE));
        int r = lws_write(c->wsi, buf + LWS_PRE, len, LWS_WRITE_RAW);
        free(buf);
        return r < 0 ? -1 : 0;
}

static int conn_writeable(Conn *c) {
        server_commit_batch(c->server);
        if (c->ping_pending) {
                /* lws 4.1 does not report an empty pong to the callback, so the ping
                 * carries a payload for the peer to echo. */
                unsigned char buf[LWS_PRE + 4];
                memcpy(buf + LWS_PRE, "cmpg", 4);
                c->ping_pending = false;
                if (lws_write(c->wsi, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0)
                        return -1;
                if (c->out_head || c->close_code)
                        lws_callback_on_writable(c->wsi);
                return 0;
        }
        if (c->out_head) {
                if (write_queued(c) < 0)
                        return -1;
                if (c->out_head || c->close_code)
                        lws_callback_on_writable(c->wsi);
                return 0;
        }
        if (c->close_code) {
                lws_close_reason(c->wsi, (enum lws_close_status) c->close_code, (unsigned char *) c->close_reason,
                                 strlen(c->close_reason));
                return -1;
        }
        return 0;
}

static void conn_established(Server *s, Conn *c, struct lws *wsi) {
        c->wsi = wsi;
        c->server = s;
        c->serial = ++s->next_serial;
        c->is_ws = true;
        c->last_rx_ms = mono_ms();
        c->next = s->conns;
        if (s->conns)
                s->conns->prev = c;
        s->conns = c;
}

static void conn_closed(Server *s, Conn *c) {
        if (!c->is_ws)
                return;
        if (c->prev)
                c->prev->next = c->next;
        else
                s->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;

        if (c->hello_done)
                log_info("Peer %s (%s) disconnected from mesh %s.", c->display_name, conn_routing_key(c),
                         c->mesh_id);
        if (!s->shutting_down) {
                presence_conn_closed(c);
                nodes_presence_down(c);
                delivery_conn_closed(c);
        }
        conn_free_state(c);
        c->is_ws = false;
}

/* Exactly "/ws", no query string: anything else is refused before the upgrade, as upstream
 * destroys such sockets. */
static bool ws_path_ok(struct lws *wsi) {
        char uri[8];

        if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) != 3 ||
            lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) != 3 || !streq(uri, "/ws"))
                return false;
        return lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) == 0;
}

/* On PostgreSQL from the heartbeats' answers: a query here would wait on the loop. */
static bool db_up(Server *s) {
        if (s->nodes_on)
                return nodes_db_up(s);
        StoreStmt *st = store_stmt(s->store, "SELECT 1");
        bool up = st && store_step(st) == STORE_ROW;
        if (st)
                store_reset(st);
        return up;
}

static int http_serve(Server *s, struct lws *wsi, const char *uri) {
        unsigned char buf[LWS_PRE + 1024], *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
        unsigned char body[LWS_PRE + 256];
        size_t live = 0;
        int n;

        server_commit_batch(s);
        if (!streq(uri, "/health") && !streq(uri, "/health/ready")) {
                if (lws_return_http_status(wsi, HTTP_STATUS_NOT_FOUND, NULL))
                        return -1;
                return lws_http_transaction_completed(wsi) ? -1 : 0;
        }

        for (Conn *c = s->conns; c; c = c->next)
                live += conn_is_live(c);
        bool up = db_up(s);
        n = snprintf((char *) body + LWS_PRE, sizeof body - LWS_PRE,
                     "{\"status\":\"ok\",\"db\":\"%s\",\"version\":\"%s\",\"connections\":%zu}",
                     up ? "up" : "down", PACKAGE_VERSION, live);
        if (n < 0 || (size_t) n >= sizeof body - LWS_PRE)
                return -1;
        unsigned status = streq(uri, "/health/ready") && !up ? HTTP_STATUS_SERVICE_UNAVAILABLE : HTTP_STATUS_OK;
        if (lws_add_http_common_headers(wsi, status, "application/json", (lws_filepos_t) n, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end))
                return -1;
        if (lws_write(wsi, body + LWS_PRE, (size_t) n, LWS_WRITE_HTTP_FINAL) != n)
                return -1;
        return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
        struct lws_context *ctx = lws_get_context(wsi);
        Server *s = ctx ? lws_context_user(ctx) : NULL;
        Conn *c = user;

        switch (reason) {
        case LWS_CALLBACK_HTTP:
                return http_serve(s, wsi, in);
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
                return ws_path_ok(wsi) ? 0 : -1;
        case LWS_CALLBACK_ESTABLISHED:
                conn_established(s, c, wsi);
                return 0;
        case LWS_CALLBACK_RECEIVE:
                return conn_receive(c, in, len);
        case LWS_CALLBACK_RECEIVE_PONG:
                c->last_rx_ms = mono_ms();
                return 0;
        case LWS_CALLBACK_SERVER_WRITEABLE:
                return conn_writeable(c);
        case LWS_CALLBACK_CLOSED:
                conn_closed(s, c);
                return 0;
        case LWS_CALLBACK_RAW_RX_FILE:
                /* The raw files: the listening socket, the LISTEN connection, the pool's. */
                if (nodes_owns(s, wsi))
                        return nodes_readable(s);
                if (pool_owns(s, wsi))
                        return pool_readable(s, wsi);
                gate_accept(&s->gate);
                return 0;
        case LWS_CALLBACK_RAW_WRITEABLE_FILE:
                return pool_owns(s, wsi) ? pool_writeable(s, wsi) : 0;
        case LWS_CALLBACK_WSI_DESTROY:
                nodes_wsi_destroyed(s, wsi);
                pool_wsi_destroyed(s, wsi);
                gate_wsi_destroyed(&s->gate, wsi);
                return 0;
        default:
                return lws_callback_http_dummy(wsi, reason, user, in, len);
        }
}

static const struct lws_protocols protocols[] = {
        /* Clients send no subprotocol (upstream) or "claudemesh" (our daemon): both land here. */
        { "claudemesh", callback, sizeof(Conn), 16384, 0, NULL, 0 },
        { NULL, NULL, 0, 0, 0, NULL, 0 },
};

/* `member revoke` runs in another process; the broker notices on its next ping round and
 * closes the member's connections as upstream's ban does. */
static bool member_revoked(Server *s, const Conn *c) {
        StoreStmt *st = store_stmt(s->store, "SELECT revoked_at IS NOT NULL FROM member WHERE id = ?1");
        bool revoked = false;

        if (!st)
                return false;
        store_bind_text(st, 1, c->member_id);
        if (store_step(st) == STORE_ROW)
                revoked = store_col_int(st, 0) != 0;
        store_reset(st);
        return revoked;
}

static void close_revoked(Conn *c) {
        log_info("Member %s was revoked; closing its connection.", c->member_id);
        (void) conn_send_error(c, "revoked", "You've been removed from this mesh.", NULL);
        conn_close(c, 4002, "banned");
}

static void revoked_checked(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ ConnRef *ref = userdata;
        Conn *c = conn_ref_get(ref);

        if (c && !c->closing && r >= 0 && store_result_rows(res) == 1 && store_result_int64(res, 0, 0) != 0)
                close_revoked(c);
}

/* PostgreSQL: asked without waiting; the answer closes the connection if it still lives. */
static void check_revoked_async(Server *s, const Conn *c) {
        ConnRef *ref = malloc(sizeof *ref);
        const char *values[] = { c->member_id };

        if (!ref)
                return;
        *ref = conn_ref(c);
        if (pool_submit(s, 0, "SELECT (revoked_at IS NOT NULL)::int FROM member WHERE id = ?1", ELEMENTSOF(values),
                        values, revoked_checked, ref) < 0)
                free(ref);
}

static void ping_tick(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, ping_sul);
        int64_t now = mono_ms(), limit = (int64_t) s->opts.liveness_timeout_sec * 1000;

        for (Conn *c = s->conns; c; c = c->next) {
                if (c->closing)
                        continue;
                if (c->hello_done && pool_on(s))
                        check_revoked_async(s, c);
                else if (c->hello_done && member_revoked(s, c)) {
                        close_revoked(c);
                        continue;
                }
                if (now - c->last_rx_ms > limit) {
                        log_info("Connection %llu (%s) silent for over %u s; dropping it.",
                                 (unsigned long long) c->serial, c->hello_done ? c->display_name : "before hello",
                                 s->opts.liveness_timeout_sec);
                        conn_kill(c);
                        continue;
                }
                c->ping_pending = true;
                lws_callback_on_writable(c->wsi);
        }
        lws_sul_schedule(s->ctx, 0, &s->ping_sul, ping_tick, (lws_usec_t) s->opts.ping_interval_sec * LWS_US_PER_SEC);
}

static void purge_tick(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, purge_sul);

        if (pool_on(s)) {
                if (retention_purge_async(s, now_ms()) < 0)
                        log_warning("Cannot send the retention purge to the database.");
        } else
                (void) retention_purge(s->store, now_ms(), s->opts.message_retention_days, NULL);
        lws_sul_schedule(s->ctx, 0, &s->purge_sul, purge_tick, (lws_usec_t) s->opts.purge_interval_sec * LWS_US_PER_SEC);
}

/* Wakes lws_service() so the shutdown loop sees its deadline. */
static void wake_tick(lws_sorted_usec_list_t *sul) {
}

static void on_signal(int sig) {
        stop_requested = 1;
        if (signal_ctx)
                lws_cancel_service(signal_ctx);
}

static void lws_log(int level, const char *line) {
        size_t n = strlen(line);

        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                n--;
        if (level & LLL_ERR)
                log_warning("libwebsockets: %.*s", (int) n, line);
        else
                log_debug("libwebsockets: %.*s", (int) n, line);
}

static size_t ws_connections(Server *s) {
        size_t n = 0;
        for (Conn *c = s->conns; c; c = c->next)
                n++;
        return n;
}

int server_run(const BrokerOptions *opts) {
        _cleanup_(store_freep) Store *store = NULL;
        struct lws_context_creation_info info;
        Server s = { .opts = *opts };
        int r;

        r = store_open(opts->db_path, &store);
        if (r < 0)
                return r;
        s.store = store;
        r = delivery_init(&s);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the in-memory tables: %m");
        r = ratelimit_init(store);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the in-memory tables: %m");
        r = hello_init(store);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the in-memory tables: %m");
        (void) retention_purge(store, now_ms(), opts->message_retention_days, NULL);

        /* Before the context: lws sizes its descriptor table by the soft limit. */
        unsigned nofile = gate_raise_nofile();
        r = gate_open(&s.gate, &s, nofile);
        if (r < 0)
                return r;

        memset(&info, 0, sizeof info);
        /* The gate owns the listening socket; lws still sets up the server side (TLS). */
        info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
        info.protocols = protocols;
        info.vhost_name = "default";
        info.user = &s;
        if (opts->tls_cert) {
                info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
                info.ssl_cert_filepath = opts->tls_cert;
                info.ssl_private_key_filepath = opts->tls_key;
        }
        lws_set_log_level(LLL_ERR | LLL_WARN, lws_log);

        s.ctx = lws_create_context(&info);
        struct lws_vhost *vh = s.ctx ? lws_get_vhost_by_name(s.ctx, "default") : NULL;
        if (!vh) {
                if (s.ctx)
                        lws_context_destroy(s.ctx);
                gate_done(&s.gate);
                return log_error_errno(-ENOMEM, "Cannot set up the WebSocket server%s.",
                                       opts->tls_cert ? " (TLS certificate or key?)" : "");
        }
        r = gate_start(&s.gate, vh);
        if (r < 0) {
                lws_context_destroy(s.ctx);
                return r;
        }

        log_info("claudemesh-broker %s listening on %s%s:%d (%s), database %s, %u descriptors.", PACKAGE_VERSION,
                 opts->tls_cert ? "wss://" : "ws://", opts->listen_host, s.gate.port, "/ws", store_name(store),
                 nofile);

        signal_ctx = s.ctx;
        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        r = pool_start(&s);
        if (r < 0) {
                s.shutting_down = true;
                lws_context_destroy(s.ctx);
                gate_done(&s.gate);
                return log_error_errno(r, "Cannot set up the PostgreSQL pool: %m");
        }
        lws_sul_schedule(s.ctx, 0, &s.ping_sul, ping_tick, (lws_usec_t) opts->ping_interval_sec * LWS_US_PER_SEC);
        lws_sul_schedule(s.ctx, 0, &s.purge_sul, purge_tick, (lws_usec_t) opts->purge_interval_sec * LWS_US_PER_SEC);
        r = nodes_start(&s);
        if (r < 0) {
                s.shutting_down = true;
                pool_stop(&s);
                lws_context_destroy(s.ctx);
                gate_done(&s.gate);
                return log_error_errno(r, "Cannot start the node's work with the other nodes: %m");
        }
        (void) sd_notify(false, "READY=1\nSTATUS=Serving");

        while (!stop_requested) {
                r = lws_service(s.ctx, 0);
                server_commit_batch(&s);
                pool_flush(&s);
                if (r < 0)
                        break;
        }

        log_info("Shutting down.");
        (void) sd_notify(false, "STOPPING=1");
        s.shutting_down = true;
        gate_stop(&s.gate);
        for (Conn *c = s.conns; c; c = c->next)
                conn_close(c, 1001, "shutting down");
        int64_t deadline = mono_ms() + SHUTDOWN_GRACE_MS;
        lws_sul_schedule(s.ctx, 0, &s.ping_sul, wake_tick, (lws_usec_t) SHUTDOWN_GRACE_MS * LWS_US_PER_MS);
        while (ws_connections(&s) > 0 && mono_ms() < deadline) {
                r = lws_service(s.ctx, 0);
                server_commit_batch(&s);
                pool_flush(&s);
                if (r < 0)
                        break;
        }

        pool_stop(&s);
        free(s.handed);         /* empty: every statement completed */
        server_commit_batch(&s);
        nodes_stop(&s);
        lws_sul_cancel(&s.ping_sul);
        lws_sul_cancel(&s.purge_sul);
        lws_sul_cancel(&s.lease_sul);
        presence_ghosts_free(&s);
        signal_ctx = NULL;
        lws_context_destroy(s.ctx);
        gate_done(&s.gate);
        return 0;
}
