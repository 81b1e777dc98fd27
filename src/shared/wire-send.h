/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The broker refuses (closes on) any WebSocket message larger than this (wire-protocol §1). */
#define WIRE_FRAME_MAX 65536
/* crypto_box_easy: 24-byte nonce, 16-byte MAC. */
#define WIRE_NONCE_BYTES 24
#define WIRE_BOX_MAC_BYTES 16

/* An upper bound of the size of the `send` frame for this message, as the worker writes it:
 * {"type":"send","id":…,"targetSpec":…,"priority":…,"nonce":…,"ciphertext":…,
 *  "client_message_id":…,"request_fingerprint":…[,"replyToId":…]}
 * with the body sealed (crypto_box, base64) for direct messages and plain base64 otherwise.
 * Strings are counted as if every '"', '\\' and '/' were escaped. */
size_t wire_send_frame_size(const char *client_message_id, const char *target_spec, const char *priority,
                            const char *reply_to, size_t body_size, bool sealed);
