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

void worker_send_state(Worker *w, const char *state, const char *detail, int64_t retry_in_ms, int close_code) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || json_object_object_add(o, "type", json_object_new_string("state")) < 0 ||
            json_object_object_add(o, "state", json_object_new_string(state)) < 0 ||
            json_object_object_add(o, "detail", json_object_new_string(strempty(detail))) < 0 ||
            (retry_in_ms >= 0 && json_object_object_add(o, "retry_in_ms", json_object_new_int64(retry_in_ms)) < 0) ||
            (close_code > 0 && json_object_object_add(o, "close_code", json_object_new_int(close_code)) < 0)) {
                        log_error("Out of memory sending a state packet.");
                        return;
                }
        (void) worker_send_packet(w, o);
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;
        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void handle_close(Worker *w, json_object *msg) {
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
        connection_close(w, code, strempty(reason));
}

static void dispatch(Worker *w, json_object *msg) {
        const char *type = worker_channel_type(msg);

        if (streq(type, "send")) {
                json_object *frame;
                if (!json_object_object_get_ex(msg, "frame", &frame) || !json_object_is_type(frame, json_type_object)) {
                log_warning("Ignoring a send packet without a frame object.");
                return;
        }
                connection_queue(w, frame);
        } else if (streq(type, "signature")) {
                const char *id = get_string(msg, "request_id"), *sig = get_string(msg, "signature"),
                           *error = get_string(msg, "error");
                if (!id) {
                        log_warning("Ignoring a signature packet without request_id.");
                        return;
                }
                if (!error && !sig)
                        error = "neither signature nor error in the answer";
                connection_signature(w, id, sig, error);
        } else if (streq(type, "close"))
                handle_close(w, msg);
        else if (streq(type, "reconnect"))
                connection_reconnect(w);
        else
                log_warning("Ignoring a \"%s\" packet from the daemon.", type);
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
