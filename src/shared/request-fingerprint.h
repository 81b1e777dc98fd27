/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/*
 * The idempotency fingerprint of a send (DECISIONS.md §4, reference §3.2):
 *
 *   SHA-256("1" 0x00 kind 0x00 ref 0x00 reply_to 0x00 priority 0x00 meta_jcs 0x00 body_hash)
 *
 * kind is "dm" (ref = the peer's 64 lowercase hex pubkey) or "topic" (ref = the wire targetSpec
 * as sent: "*", "@group", "#id"); reply_to defaults to ""; priority (now|next|low) to "next";
 * meta_jcs is the RFC 8785 form of the meta object, "" when meta is absent, null or {};
 * body_hash is the lowercase hex SHA-256 of the UTF-8 message. tests/data/
 * request-fingerprint-vectors.json holds published vectors, made by an independent
 * implementation.
 */

#define REQUEST_FINGERPRINT_SIZE 32
#define REQUEST_FINGERPRINT_HEX_MAX (REQUEST_FINGERPRINT_SIZE * 2 + 1)
#define REQUEST_FINGERPRINT_PREFIX_MAX 17

typedef struct RequestFingerprintInput {
        const char *kind;             /* "dm" | "topic" */
        const char *ref;
        const char *reply_to;         /* NULL = "" */
        const char *priority;         /* NULL = "next" */
        const char *meta_json;        /* JSON text of an object or null, or NULL for none */
        struct json_object *meta;     /* alternatively, the parsed meta (an object; NULL = none) */
        const char *body;             /* UTF-8, body_size bytes (may hold U+0000) */
        size_t body_size;
} RequestFingerprintInput;

/* Returns 0, -ENOMEM, or -EINVAL with a sentence in *ret_error when an input is invalid: unknown
 * kind or priority, a dm ref that is not 64 lowercase hex, an empty ref, text that is not
 * valid UTF-8, meta that is not strict JSON (duplicate names, ...), not an object or null, or
 * not representable in RFC 8785, or both meta_json and meta given. */
int request_fingerprint(const RequestFingerprintInput *in, uint8_t ret[static REQUEST_FINGERPRINT_SIZE],
                        char **ret_error);

/* The 64 lowercase hex characters used on the wire. */
void request_fingerprint_hex(const uint8_t fp[static REQUEST_FINGERPRINT_SIZE],
                             char ret[static REQUEST_FINGERPRINT_HEX_MAX]);

/* The first 8 bytes as 16 lowercase hex characters, as conflicts report them. */
void request_fingerprint_prefix(const uint8_t fp[static REQUEST_FINGERPRINT_SIZE],
                                char ret[static REQUEST_FINGERPRINT_PREFIX_MAX]);
