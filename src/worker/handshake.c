/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The hello of one connect: the member's "hello" or a session's "session_hello", each signed by
 * the daemon (the worker holds no key), one "sign" request at a time, then written before
 * anything else. Both kinds differ only in hello.c's payloads and frames. */
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "time-util.h"
#include "worker.h"

static void request_signature(Conn *c) {
        Worker *w = c->worker;
        _cleanup_(json_object_putp) json_object *sign = NULL;
        _cleanup_free_ char *payload = NULL;

        snprintf(c->sign_request_id, sizeof c->sign_request_id, "hello-%u", ++w->sign_serial);
        sign = json_object_new_object();
        if (!sign || hello_sign_payload(&w->config, c->session, &c->hello_round, &payload) < 0 ||
            json_object_object_add(sign, "type", json_object_new_string("sign")) < 0 ||
            json_object_object_add(sign, "request_id", json_object_new_string(c->sign_request_id)) < 0 ||
            json_object_object_add(sign, "payload", json_object_new_string(payload)) < 0) {
                connection_kill(c, "out of memory");
                return;
        }
        log_debug("%sAsking the daemon to sign the %s.", conn_label(c), hello_round_next_name(&c->hello_round, c->session));
        (void) worker_send_conn_packet(w, c->id, sign);
}

void handshake_begin(Conn *c) {
        /* Fresh times and signatures per connect (field lessons §5.2): a session's attestation
         * is minted anew every time, so a session never outlives its 12 h. */
        hello_round_start(&c->hello_round, (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_MSEC));
        log_debug("%sConnected to %s.", conn_label(c), c->worker->config.broker_url);
        request_signature(c);
}

void handshake_signature(Conn *c, const char *signature, const char *error) {
        _cleanup_(json_object_putp) json_object *hello = NULL;
        const char *text, *what = hello_round_next_name(&c->hello_round, c->session);
        size_t size;
        int r;

        c->sign_request_id[0] = '\0';
        if (c->phase != PHASE_HELLO) {
                log_debug("%sIgnoring a signature: no longer waiting for it.", conn_label(c));
                return;
        }
        if (error) {
                char why[160];
                snprintf(why, sizeof why, "the daemon refused to sign the %s: %.100s", what, error);
                connection_kill(c, why);
                return;
        }
        r = hello_round_add_signature(&c->hello_round, c->session, signature);
        if (r < 0) {
                connection_kill(c, "the daemon's signature is not 128 hex characters");
                return;
        }
        if (!hello_round_complete(&c->hello_round, c->session)) {
                request_signature(c);
                return;
        }
        r = hello_frame_new(&c->worker->config, c->session, &c->hello_round, &hello);
        if (r < 0) {
                connection_kill(c, "out of memory");
                return;
        }
        text = json_object_to_json_string_length(hello, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size);
        c->hello = text ? outgoing_new(text, size) : NULL;
        if (!c->hello) {
                connection_kill(c, "out of memory");
                return;
        }
        lws_callback_on_writable(c->wsi);
}
