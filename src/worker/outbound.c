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

size_t outbound_drop(Conn *c) {
        size_t n = 0;

        while (c->out_head) {
                Outgoing *o = c->out_head;
                c->out_head = o->next;
                free(o);
                n++;
        }
        c->out_tail = NULL;
        c->hello = mfree(c->hello);
        return n;
}

/* lws 4.1 has no public opcode for it (lws_close_reason() is meant for that), but its
 * client never sends the frame lws_close_reason() prepares: a WRITEABLE callback returning -1
 * and an lws timeout both mark the socket dead first. So the close frame is written like any
 * other, with lws's own opcode value for it. */
#define WRITE_CLOSE ((enum lws_write_protocol) 4)

void connection_queue(Conn *c, json_object *frame) {
        const char *text;
        Outgoing *o;
        size_t size;

        if (c->phase != PHASE_CONNECTED || !c->wsi) {
                log_info("%sDropping a \"%s\" frame from the daemon: not connected.", conn_label(c), worker_channel_type(frame));
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
        if (c->out_tail)
                c->out_tail->next = o;
        else
                c->out_head = o;
        c->out_tail = o;
        lws_callback_on_writable(c->wsi);
}

int outbound_writable(Conn *c, struct lws *wsi) {
        Outgoing *o;

        if (c->kill && c->close_code && !c->close_sent) {
                unsigned char buf[LWS_PRE + 2 + sizeof c->close_reason];
                size_t n = strlen(c->close_reason);

                buf[LWS_PRE] = (unsigned char) (c->close_code >> 8);
                buf[LWS_PRE + 1] = (unsigned char) (c->close_code & 0xff);
                memcpy(buf + LWS_PRE + 2, c->close_reason, n);
                c->close_sent = true;
                if (lws_write(wsi, buf + LWS_PRE, 2 + n, WRITE_CLOSE) < 0)
                        return -1;
                /* The broker answers with its close; lws ends the connection then, or here. */
                lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 1);
                return 0;
        }
        if (c->kill)
                return c->close_sent ? 0 : -1;

        if (c->want_ping) {
                unsigned char buf[LWS_PRE + 1];
                c->want_ping = false;
                if (lws_write(wsi, buf + LWS_PRE, 0, LWS_WRITE_PING) < 0)
                        return -1;
        } else if (c->hello) {
                o = TAKE_PTR(c->hello);
                int k = lws_write(wsi, o->data + LWS_PRE, o->size, LWS_WRITE_TEXT);
                free(o);
                if (k < 0)
                        return -1;
        } else if (c->phase == PHASE_CONNECTED && c->out_head) {
                o = c->out_head;
                c->out_head = o->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                int k = lws_write(wsi, o->data + LWS_PRE, o->size, LWS_WRITE_TEXT);
                free(o);
                if (k < 0)
                        return -1;
        }
        if (c->want_ping || c->hello || (c->phase == PHASE_CONNECTED && c->out_head))
                lws_callback_on_writable(wsi);
        return 0;
}
