/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What goes to the broker: the signed hello, the daemon's frames, pings and our close frame,
 * each written from a WRITEABLE callback. */
#include <string.h>

#include "frame-validate.h"
#include "log.h"
#include "macro.h"
#include "worker-channel.h"
#include "worker.h"

Outgoing *outgoing_new(const char *text, size_t size) {
        Outgoing *o = malloc(sizeof *o + LWS_PRE + size);

        if (!o)
                return NULL;
        o->next = NULL;
        o->size = size;
        memcpy(o->data + LWS_PRE, text, size);
        return o;
}

size_t outbound_drop(Worker *w) {
        size_t n = 0;

        while (w->out_head) {
                Outgoing *o = w->out_head;
                w->out_head = o->next;
                free(o);
                n++;
        }
        w->out_tail = NULL;
        w->hello = mfree(w->hello);
        return n;
}

/* lws 4.1 has no public opcode for it (lws_close_reason() is meant for that), but its
 * client never sends the frame lws_close_reason() prepares: a WRITEABLE callback returning -1
 * and an lws timeout both mark the socket dead first. So the close frame is written like any
 * other, with lws's own opcode value for it. */
#define WRITE_CLOSE ((enum lws_write_protocol) 4)

void connection_queue(Worker *w, json_object *frame) {
        const char *text;
        Outgoing *o;
        size_t size;

        if (w->phase != PHASE_CONNECTED || !w->wsi) {
                log_info("Dropping a \"%s\" frame from the daemon: not connected.", worker_channel_type(frame));
                return;
        }
        text = json_object_to_json_string_length(frame, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size);
        if (!text) {
                log_error("Out of memory serializing a frame.");
                return;
        }
        if (size > FRAME_MAX_BYTES) {
                log_warning("Dropping a \"%s\" frame of %zu bytes: the broker takes at most %d.",
                            worker_channel_type(frame), size, FRAME_MAX_BYTES);
                return;
        }
        o = outgoing_new(text, size);
        if (!o) {
                log_error("Out of memory queueing a frame.");
                return;
        }
        if (w->out_tail)
                w->out_tail->next = o;
        else
                w->out_head = o;
        w->out_tail = o;
        lws_callback_on_writable(w->wsi);
}

int outbound_writable(Worker *w, struct lws *wsi) {
        Outgoing *o;

        if (w->kill && w->close_code && !w->close_sent) {
                unsigned char buf[LWS_PRE + 2 + sizeof w->close_reason];
                size_t n = strlen(w->close_reason);

                buf[LWS_PRE] = (unsigned char) (w->close_code >> 8);
                buf[LWS_PRE + 1] = (unsigned char) (w->close_code & 0xff);
                memcpy(buf + LWS_PRE + 2, w->close_reason, n);
                w->close_sent = true;
                if (lws_write(wsi, buf + LWS_PRE, 2 + n, WRITE_CLOSE) < 0)
                        return -1;
                /* The broker answers with its close; lws ends the connection then, or here. */
                lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 1);
                return 0;
        }
        if (w->kill)
                return w->close_sent ? 0 : -1;


        if (w->want_ping) {
                unsigned char buf[LWS_PRE + 1];
                w->want_ping = false;
                if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0)
                        return -1;
        } else if (w->hello) {
                o = TAKE_PTR(w->hello);
                int k = lws_write(wsi, o->data + LWS_PRE, o->size, LWS_WRITE_TEXT);
                free(o);
                if (k < 0)
                        return -1;
        } else if (w->phase == PHASE_CONNECTED && w->out_head) {
                o = w->out_head;
                w->out_head = o->next;
                if (!w->out_head)
                        w->out_tail = NULL;
                int k = lws_write(wsi, o->data + LWS_PRE, o->size, LWS_WRITE_TEXT);
                free(o);
                if (k < 0)
                        return -1;
        }
        if (w->want_ping || w->hello || (w->phase == PHASE_CONNECTED && w->out_head))
                lws_callback_on_writable(wsi);
        return 0;
}
