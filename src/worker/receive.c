/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What comes from the broker: messages reassembled from fragments, validated, and passed to
 * the daemon; hello_ack completes the handshake. */
#include <string.h>

#include "frame-validate.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"
#include "worker.h"

static void on_hello_ack(Conn *c, json_object *frame) {
        _cleanup_(json_object_putp) json_object *packet = json_object_new_object();
        json_object *features = NULL, *presence = NULL;
        char detail[512];

        if (c->phase != PHASE_HELLO) {
                log_warning("%sIgnoring a hello_ack outside the handshake.", conn_label(c));
                return;
        }
        c->phase = PHASE_CONNECTED;
        c->attempt = 0;
        uv_timer_stop(&c->hello_timer);

        (void) json_object_object_get_ex(frame, "features", &features);
        (void) json_object_object_get_ex(frame, "presenceId", &presence);
        if (!packet || json_object_object_add(packet, "type", json_object_new_string("hello_ack")) < 0 ||
            json_object_object_add(packet, "features", json_object_get(features)) < 0 ||
            (presence && json_object_object_add(packet, "presence_id", json_object_get(presence)) < 0)) {
                log_error("Out of memory forwarding hello_ack.");
                return;
        }
        (void) worker_send_conn_packet(c->worker, c->id, packet);

        snprintf(detail, sizeof detail, "connected to %s", c->worker->config.broker_url);
        log_info("%sConnected to %s.", conn_label(c), c->worker->config.broker_url);
        conn_state(c, "connected", detail, -1, 0);
        /* Its handshake slot is free: the next waiting session goes. */
        connection_next_turn(c->worker);
}

static void on_frame(Conn *c, const char *data, size_t size) {
        _cleanup_(json_object_putp) json_object *frame = NULL, *packet = NULL;
        _cleanup_free_ char *error = NULL;
        int kind;

        kind = frame_validate(data, size, &frame, &error);
        if (kind == -EOPNOTSUPP) {
                log_info("%sDropped a broker frame: %s.", conn_label(c), strna(error));
                return;
        }
        if (kind < 0) {
                if (error)
                        log_warning("%sDropped an invalid broker frame: %s.", conn_label(c), error);
                else
                        log_warning_errno(kind, "%sDropped an invalid broker frame: %m.", conn_label(c));
                return;
        }
        if (kind == FRAME_HELLO_ACK) {
                on_hello_ack(c, frame);
                return;
        }
        if (kind == FRAME_ERROR && c->phase == PHASE_HELLO)
                /* Hello rejections come as error + close: keep the code for the state detail. */
                snprintf(c->last_error_code, sizeof c->last_error_code, "%s",
                         json_object_get_string(json_object_object_get(frame, "code")));

        /* Pushes may come before hello_ack (wire-protocol §2.1): passed on all the same. */
        packet = json_object_new_object();
        if (!packet || json_object_object_add(packet, "type", json_object_new_string("frame")) < 0 ||
            json_object_object_add(packet, "frame", TAKE_PTR(frame)) < 0) {
                log_error("Out of memory forwarding a frame.");
                return;
        }
        (void) worker_send_conn_packet(c->worker, c->id, packet);
}

void receive_data(Conn *c, struct lws *wsi, const void *in, size_t len) {
        bool last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;

        c->last_rx_ms = mono_ms();

        if (!c->rx_skip && lws_frame_is_binary(wsi)) {
                log_warning("%sDropping a binary message from the broker: the protocol uses text.", conn_label(c));
                c->rx_skip = true;
        }
        if (!c->rx_skip && c->rx_size + len > FRAME_MAX_BYTES) {
                log_warning("%sDropping a broker message over %d bytes.", conn_label(c), FRAME_MAX_BYTES);
                c->rx_skip = true;
        }
        if (!c->rx_skip && c->rx_size == 0 && last) {
                /* Whole in one piece, the usual case: no copy, and no buffer held per connection. */
                on_frame(c, in, len);
                return;
        }
        if (!c->rx_skip) {
                char *p = realloc(c->rx, c->rx_size + len);
                if (!p) {
                        log_error("%sOut of memory reassembling a broker message; dropping it.", conn_label(c));
                        c->rx_skip = true;
                } else {
                        c->rx = p;
                        memcpy(c->rx + c->rx_size, in, len);
                        c->rx_size += len;
                }
        }
        if (!last)
                return;
        if (!c->rx_skip)
                on_frame(c, c->rx, c->rx_size);
        c->rx = mfree(c->rx);
        c->rx_size = 0;
        c->rx_skip = false;
}
