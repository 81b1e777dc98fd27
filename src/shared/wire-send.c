/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "wire-send.h"

static size_t json_string_size(const char *s) {
        size_t n = 2;
        for (; *s; s++)
                n += (*s == '"' || *s == '\\' || *s == '/') ? 2 : ((unsigned char) *s < 0x20 ? 6 : 1);
        return n;
}

static size_t base64_size(size_t n) {
        return (n + 2) / 3 * 4;
}

size_t wire_send_frame_size(const char *client_message_id, const char *target_spec, const char *priority,
                            const char *reply_to, size_t body_size, bool sealed) {
        static const char skeleton[] =
                "{\"type\":\"send\",\"id\":,\"targetSpec\":,\"priority\":,\"nonce\":,\"ciphertext\":,"
                "\"client_message_id\":,\"request_fingerprint\":}";
        size_t n = sizeof skeleton - 1;

        n += 2 * json_string_size(client_message_id);
        n += json_string_size(target_spec) + json_string_size(priority);
        n += 2 + base64_size(WIRE_NONCE_BYTES);
        n += 2 + base64_size(body_size + (sealed ? WIRE_BOX_MAC_BYTES : 0));
        n += 2 + 64;
        if (reply_to)
                n += strlen(",\"replyToId\":") + json_string_size(reply_to);
        return n;
}
