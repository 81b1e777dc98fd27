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

static void on_hello_ack(Worker *w, json_object *frame) {
        _cleanup_(json_object_putp) json_object *packet = json_object_new_object();
        json_object *features = NULL, *presence = NULL;
        char detail[512];

        if (w->phase != PHASE_HELLO) {
                log_warning("Ignoring a hello_ack outside the handshake.");
                return;
        }
        w->phase = PHASE_CONNECTED;
        w->attempt = 0;
        uv_timer_stop(&w->hello_timer);

        (void) json_object_object_get_ex(frame, "features", &features);
        (void) json_object_object_get_ex(frame, "presenceId", &presence);
        if (!packet || json_object_object_add(packet, "type", json_object_new_string("hello_ack")) < 0 ||
            json_object_object_add(packet, "features", json_object_get(features)) < 0 ||
            (presence && json_object_object_add(packet, "presence_id", json_object_get(presence)) < 0)) {
                log_error("Out of memory forwarding hello_ack.");
                return;
        }
        (void) worker_send_packet(w, packet);

        snprintf(detail, sizeof detail, "connected to %s", w->config.broker_url);
        log_info("Connected to %s.", w->config.broker_url);
        worker_send_state(w, "connected", detail, -1, 0);
}

static void on_frame(Worker *w, const char *data, size_t size) {
        _cleanup_(json_object_putp) json_object *frame = NULL, *packet = NULL;
        _cleanup_free_ char *error = NULL;
        int kind;

        kind = frame_validate(data, size, &frame, &error);
        if (kind == -EOPNOTSUPP) {
                log_info("Dropped a broker frame: %s.", strna(error));
                return;
        }
        if (kind < 0) {
                if (error)
                        log_warning("Dropped an invalid broker frame: %s.", error);
                else
                        log_warning_errno(kind, "Dropped an invalid broker frame: %m.");
                return;
        }
        if (kind == FRAME_HELLO_ACK) {
                on_hello_ack(w, frame);
                return;
        }
        if (kind == FRAME_ERROR && w->phase == PHASE_HELLO)
                /* Hello rejections come as error + close: keep the code for the state detail. */
                snprintf(w->last_error_code, sizeof w->last_error_code, "%s",
                         json_object_get_string(json_object_object_get(frame, "code")));

        /* Pushes may come before hello_ack (wire-protocol §2.1): passed on all the same. */
        packet = json_object_new_object();
        if (!packet || json_object_object_add(packet, "type", json_object_new_string("frame")) < 0 ||
            json_object_object_add(packet, "frame", TAKE_PTR(frame)) < 0) {
                log_error("Out of memory forwarding a frame.");
                return;
        }
        (void) worker_send_packet(w, packet);
}

void receive_data(Worker *w, struct lws *wsi, const void *in, size_t len) {
        w->last_rx_ms = mono_ms();

        if (!w->rx_skip && lws_frame_is_binary(wsi)) {
                log_warning("Dropping a binary message from the broker: the protocol uses text.");
                w->rx_skip = true;
        }
        if (!w->rx_skip && w->rx_size + len > FRAME_MAX_BYTES) {
                log_warning("Dropping a broker message over %d bytes.", FRAME_MAX_BYTES);
                w->rx_skip = true;
        }
        if (!w->rx_skip) {
                memcpy(w->rx + w->rx_size, in, len);
                w->rx_size += len;
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
                return;
        if (!w->rx_skip)
                on_frame(w, w->rx, w->rx_size);
        w->rx_size = 0;
        w->rx_skip = false;
}
