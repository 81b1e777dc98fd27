/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "hex-util.h"
#include "jcs.h"
#include "json-util.h"
#include "macro.h"
#include "request-fingerprint.h"


static int invalid(char **ret_error, const char *format, ...) _printf_(2, 3);
static int invalid(char **ret_error, const char *format, ...) {
        va_list ap;
        int k;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, format);
        k = vasprintf(ret_error, format, ap);
        va_end(ap);
        if (k < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

static int validate_destination(const char *kind, const char *ref, char **ret_error) {
        if (!kind || !(streq(kind, "dm") || streq(kind, "topic")))
                return invalid(ret_error, "The destination kind must be \"dm\" or \"topic\".");
        if (!ref || ref[0] == '\0')
                return invalid(ret_error, "The destination reference is empty.");
        if (streq(kind, "dm")) {
                if (!hex_string(ref, 64, HEX_LOWER))
                        return invalid(ret_error, "A dm destination must be the peer's public key as 64 lowercase "
                                       "hex characters.");
                return 0;
        }
        /* Display names are resolved to dm pubkeys before this point (DECISIONS §1/§2). */
        if (!(streq(ref, "*") || ((ref[0] == '@' || ref[0] == '#') && ref[1] != '\0')))
                return invalid(ret_error, "A topic destination must be the wire targetSpec: \"*\", \"@group\" or "
                               "\"#id\".");
        if (!jcs_utf8_is_valid(ref, strlen(ref), NULL))
                return invalid(ret_error, "The destination reference is not valid UTF-8.");
        return 0;
}

/* meta_jcs: the canonical meta, or NULL for absent, null and {} (all three hash alike). */
static int canonical_meta(const RequestFingerprintInput *in, char **ret, size_t *ret_size, char **ret_error) {
        _cleanup_(json_object_putp) struct json_object *parsed = NULL;
        _cleanup_free_ char *error = NULL;
        struct json_object *meta = in->meta;
        int r;

        *ret = NULL;
        *ret_size = 0;
        if (in->meta_json && in->meta)
                return invalid(ret_error, "Meta was given both as JSON text and as a parsed value; give one.");
        if (in->meta_json) {
                r = jcs_parse(in->meta_json, strlen(in->meta_json), &parsed, &error);
                if (r == -EBADMSG)
                        return invalid(ret_error, "Invalid meta: %s", strempty(error));
                if (r < 0)
                        return r;
                meta = parsed;
        }
        if (!meta)
                return 0;
        if (!json_object_is_type(meta, json_type_object))
                return invalid(ret_error, "Meta must be a JSON object or null, not %s.",
                               json_type_to_name(json_object_get_type(meta)));
        if (json_object_object_length(meta) == 0)
                return 0;

        r = jcs_canonicalize(meta, ret, ret_size, &error);
        if (r == -EINVAL)
                return invalid(ret_error, "Invalid meta: %s", strempty(error));
        return r;
}

static void hash_field(crypto_hash_sha256_state *state, const char *s, size_t n, bool last) {
        crypto_hash_sha256_update(state, (const unsigned char *) s, n);
        if (!last)
                crypto_hash_sha256_update(state, (const unsigned char *) "", 1);
}

int request_fingerprint(const RequestFingerprintInput *in, uint8_t ret[static REQUEST_FINGERPRINT_SIZE],
                        char **ret_error) {
        _cleanup_free_ char *meta = NULL;
        const char *reply_to = strempty(in->reply_to), *priority = in->priority ? in->priority : "next";
        unsigned char body_hash[crypto_hash_sha256_BYTES];
        char body_hex[crypto_hash_sha256_BYTES * 2 + 1];
        crypto_hash_sha256_state state;
        size_t meta_size, bad;
        int r;

        assert(in);

        r = validate_destination(in->kind, in->ref, ret_error);
        if (r < 0)
                return r;
        if (!jcs_utf8_is_valid(reply_to, strlen(reply_to), NULL))
                return invalid(ret_error, "The reply_to id is not valid UTF-8.");
        if (!(streq(priority, "now") || streq(priority, "next") || streq(priority, "low")))
                return invalid(ret_error, "The priority must be \"now\", \"next\" or \"low\".");
        if (!jcs_utf8_is_valid(in->body, in->body_size, &bad))
                return invalid(ret_error, "The message body is not valid UTF-8 (byte %zu).", bad);
        r = canonical_meta(in, &meta, &meta_size, ret_error);
        if (r < 0)
                return r;

        crypto_hash_sha256(body_hash, (const unsigned char *) (in->body ? in->body : ""), in->body_size);
        sodium_bin2hex(body_hex, sizeof body_hex, body_hash, sizeof body_hash);

        crypto_hash_sha256_init(&state);
        hash_field(&state, "1", 1, false);
        hash_field(&state, in->kind, strlen(in->kind), false);
        hash_field(&state, in->ref, strlen(in->ref), false);
        hash_field(&state, reply_to, strlen(reply_to), false);
        hash_field(&state, priority, strlen(priority), false);
        hash_field(&state, strempty(meta), meta_size, false);
        hash_field(&state, body_hex, strlen(body_hex), true);
        crypto_hash_sha256_final(&state, ret);
        return 0;
}

void request_fingerprint_hex(const uint8_t fp[static REQUEST_FINGERPRINT_SIZE],
                             char ret[static REQUEST_FINGERPRINT_HEX_MAX]) {
        sodium_bin2hex(ret, REQUEST_FINGERPRINT_HEX_MAX, fp, REQUEST_FINGERPRINT_SIZE);
}

void request_fingerprint_prefix(const uint8_t fp[static REQUEST_FINGERPRINT_SIZE],
                                char ret[static REQUEST_FINGERPRINT_PREFIX_MAX]) {
        sodium_bin2hex(ret, REQUEST_FINGERPRINT_PREFIX_MAX, fp, 8);
}
