/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <poll.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "worker-channel.h"
#include "worker.h"

/* A daemon that does not read for this long is stuck; the packet is dropped then. */
#define CHANNEL_SEND_WAIT_MS 5000

int worker_send_packet(Worker *w, json_object *packet) {
        int r;

        for (;;) {
                struct pollfd p = { .fd = w->channel_fd, .events = POLLOUT };

                r = worker_channel_send(w->channel_fd, packet);
                if (r != -EAGAIN)
                        break;
                /* Seldom: the daemon is busy. Waiting briefly keeps a push from being lost. */
                if (poll(&p, 1, CHANNEL_SEND_WAIT_MS) <= 0) {
                        log_warning("The daemon is not reading the channel; dropped a \"%s\" packet.",
                                    worker_channel_type(packet));
                        return r;
                }
        }
        if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN) {
                log_info("The daemon closed the channel; exiting.");
                worker_exit(w);
        } else if (r < 0)
                log_warning_errno(r, "Cannot send a \"%s\" packet to the daemon: %m", worker_channel_type(packet));
        return r;
}

/* Tags a packet with its connection; the member's packets stay as they were before sessions. */
int worker_send_conn_packet(Worker *w, unsigned conn, json_object *packet) {
        if (conn > 0 && json_object_object_add(packet, "conn", json_object_new_int64(conn)) < 0) {
                log_error("Out of memory tagging a \"%s\" packet.", worker_channel_type(packet));
                return -ENOMEM;
        }
        return worker_send_packet(w, packet);
}

void worker_send_state(Worker *w, unsigned conn, const char *state, const char *detail, int64_t retry_in_ms,
                       int close_code) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_object_object_add(o, "type", json_object_new_string("state")) < 0 ||
            json_object_object_add(o, "state", json_object_new_string(state)) < 0 ||
            json_object_object_add(o, "detail", json_object_new_string(strempty(detail))) < 0 ||
            (retry_in_ms >= 0 && json_object_object_add(o, "retry_in_ms", json_object_new_int64(retry_in_ms)) < 0) ||
            (close_code > 0 && json_object_object_add(o, "close_code", json_object_new_int(close_code)) < 0)) {
                log_error("Out of memory sending a state packet.");
                return;
        }
        (void) worker_send_conn_packet(w, conn, o);
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* The open connection a packet is for: "conn" absent or 0 is the member's. */
static Conn *packet_conn(Worker *w, json_object *msg) {
        json_object *v;
        int64_t id = 0;

        if (json_object_object_get_ex(msg, "conn", &v)) {
                if (!json_object_is_type(v, json_type_int)) {
                        log_warning("Ignoring a \"%s\" packet whose conn is not an integer.", worker_channel_type(msg));
                        return NULL;
                }
                id = json_object_get_int64(v);
        }
        if (id < 0 || id > WORKER_SESSIONS_MAX || !w->conns[id]) {
                log_warning("Ignoring a \"%s\" packet for conn %lld: no such connection.", worker_channel_type(msg),
                            (long long) id);
                return NULL;
        }
        return w->conns[id];
}

static void handle_close(Conn *c, json_object *msg) {
        json_object *v;
        const char *reason = get_string(msg, "reason");
        int code;

        if (!json_object_object_get_ex(msg, "code", &v) || !json_object_is_type(v, json_type_int)) {
                log_warning("Ignoring a close packet without an integer code.");
                return;
        }
        code = json_object_get_int(v);
        /* What a client may put on the wire (RFC 6455 §7.4), and a reason that fits a close
         * frame's 123 bytes. */
        if (!(code == 1000 || (code >= 3000 && code <= 4999))) {
                log_warning("Ignoring a close packet with code %d.", code);
                return;
        }
        if (reason && strlen(reason) > 123) {
                log_warning("Ignoring a close packet with a reason over 123 bytes.");
                return;
        }
        connection_close(c, code, strempty(reason));
}

static void handle_signature(Worker *w, json_object *msg) {
        const char *id = get_string(msg, "request_id"), *sig = get_string(msg, "signature"),
                   *error = get_string(msg, "error");
        Conn *c;

        if (!id) {
                log_warning("Ignoring a signature packet without request_id.");
                return;
        }
        /* Request ids are unique across connections, so the id alone finds the connection. */
        c = worker_find_sign_request(w, id);
        if (!c) {
                log_debug("Ignoring the signature for %s: no longer waiting for it.", id);
                return;
        }
        if (!error && !sig)
                error = "neither signature nor error in the answer";
        handshake_signature(c, sig, error);
}

static void dispatch(Worker *w, json_object *msg) {
        const char *type = worker_channel_type(msg);
        Conn *c;

        if (streq(type, "signature")) {
                handle_signature(w, msg);
                return;
        }
        if (streq(type, "session_open")) {
                session_open(w, msg);
                return;
        }
        if (streq(type, "session_close")) {
                session_close(w, msg);
                return;
        }
        if (!streq(type, "send") && !streq(type, "close") && !streq(type, "reconnect")) {
                log_warning("Ignoring a \"%s\" packet from the daemon.", type);
                return;
        }
        c = packet_conn(w, msg);
        if (!c)
                return;
        if (streq(type, "send")) {
                json_object *frame;
                if (!json_object_object_get_ex(msg, "frame", &frame) || !json_object_is_type(frame, json_type_object)) {
                        log_warning("Ignoring a send packet without a frame object.");
                        return;
                }
                connection_queue(c, frame);
        } else if (streq(type, "close"))
                handle_close(c, msg);
        else
                connection_reconnect(c);
}
static void on_channel(uv_poll_t *p, int status, int events) {
        Worker *w = p->data;

        for (;;) {
                _cleanup_(json_object_putp) json_object *msg = NULL;
                int r = worker_channel_recv(w->channel_fd, &msg);

                if (r == -EAGAIN)
                        break;
                if (r == -EBADMSG) {
                        log_warning("Ignoring a malformed packet from the daemon.");
                        continue;
                }
                if (r < 0) {
                        if (r != -ECONNRESET)
                                log_error_errno(r, "Reading the channel failed: %m");
                        else
                                log_info("The daemon closed the channel; exiting.");
                        worker_exit(w);
                        return;
                }
                dispatch(w, msg);
                if (w->exiting)
                        return;
        }
}

int channel_watch_start(Worker *w) {
        int r = uv_poll_init(&w->loop, &w->channel_watch, w->channel_fd);
        if (r < 0)
                return log_error_errno(-EIO, "uv_poll_init failed: %s", uv_strerror(r));
        w->channel_watch.data = w;
        r = uv_poll_start(&w->channel_watch, UV_READABLE | UV_DISCONNECT, on_channel);
        if (r < 0)
                return log_error_errno(-EIO, "uv_poll_start failed: %s", uv_strerror(r));
        return 0;
}

void worker_exit(Worker *w) {
        /* Teardown happens in main, outside any lws or libuv callback. */
        w->exiting = true;
        uv_stop(&w->loop);
}
