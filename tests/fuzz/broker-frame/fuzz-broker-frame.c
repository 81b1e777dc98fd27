/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds arbitrary bytes to the broker's frame parser and every validator reachable from it:
 * nothing may crash, leak or read out of bounds, whatever a client sends. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Frame f;
        ProtocolError e;

        if (frame_parse(data, size, &f, &e) < 0)
                return 0;

        HelloRequest h;
        hello_request_parse(&f, &h);
        (void) hello_verify(&h, 1714761600123);

        SessionHelloRequest sh;
        const char *why;
        session_hello_request_parse(&f, &sh);
        if (!session_hello_check_shape(&sh, &why)) {
                /* Past the shape checks both keys are 64 lowercase hex and bound by the attestation. */
                if (!sh.session_pubkey || !sh.parent_member_pubkey || !sh.att_session_pubkey)
                        __builtin_trap();
                (void) session_attestation_verify(&sh, 1714761600123);
                (void) session_hello_verify(&sh, 1714761600123);
        } else if (!why)
                __builtin_trap();

        SendRequest s;
        if (send_request_parse(&f, &s, &e) >= 0) {
                /* A valid send always has a destination the router understands. */
                if (!s.target_ref || !s.priority || !s.nonce || !s.ciphertext || s.n_mentions > MENTIONS_MAX)
                        __builtin_trap();
                (void) target_kind_destination(s.target_kind);
        }

        ClientAckRequest a;
        (void) client_ack_request_parse(&f, &a, &e);
        const char *text;
        (void) set_status_request_parse(&f, &text, &e);
        (void) set_summary_request_parse(&f, &text, &e);
        bool visible;
        (void) set_visible_request_parse(&f, &visible, &e);
        json_object *profile = NULL;
        if (set_profile_request_parse(&f, &profile, &e) >= 0)
                json_object_put(profile);

        const char *id;
        if (message_status_request_parse(&f, &id, &e) >= 0 && (strlen(id) < 8 || strlen(id) > BROKER_ID_LEN))
                __builtin_trap();
        TopicCreateRequest tc;
        if (topic_create_request_parse(&f, &tc, &e) >= 0 && (!tc.name || !tc.visibility))
                __builtin_trap();
        char *value = NULL;
        if (set_state_request_parse(&f, &text, &value, &e) >= 0 && strlen(value) > STATE_VALUE_MAX)
                __builtin_trap();
        free(value);
        (void) get_state_request_parse(&f, &text, &e);
        KickRequest k;
        if (kick_request_parse(&f, &k, &e) >= 0 && !k.all && !k.target && !(k.has_stale && k.stale_ms > 0))
                __builtin_trap();
        (void) ban_request_parse(&f, &text, &e);

        frame_done(&f);
        return 0;
}
