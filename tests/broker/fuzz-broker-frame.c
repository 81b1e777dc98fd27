/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Feeds arbitrary bytes to the broker's frame parser and every validator reachable from it:
 * nothing may crash, leak or read out of bounds, whatever a client sends. */
#include <stdint.h>
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

        frame_done(&f);
        return 0;
}
