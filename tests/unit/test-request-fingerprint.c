/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "jcs.h"
#include "macro.h"
#include "request-fingerprint.h"
#include "tests.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

#define ALICE "399fc12cc5df14179d5cb2b3c431ff836dd2ae772fd77f14f43f9b6ccbdc0d55"

static const char *get_string(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static void fingerprint_hex(const RequestFingerprintInput *in, char hex[static REQUEST_FINGERPRINT_HEX_MAX]) {
        _cleanup_free_ char *error = NULL;
        uint8_t fp[REQUEST_FINGERPRINT_SIZE];
        int r = request_fingerprint(in, fp, &error);

        if (r < 0)
                fprintf(stderr, "request_fingerprint: %s\n", strna(error));
        ASSERT_OK(r);
        request_fingerprint_hex(fp, hex);
}

static void check_vector(struct json_object *vector) {
        struct json_object *input, *meta = NULL, *body;
        const char *name = get_string(vector, "name"), *expected = get_string(vector, "expected_hex");
        char hex[REQUEST_FINGERPRINT_HEX_MAX], prefix[REQUEST_FINGERPRINT_PREFIX_MAX];
        uint8_t fp[REQUEST_FINGERPRINT_SIZE];
        bool has_meta;

        ASSERT_TRUE(name && expected && strlen(expected) == 64);
        ASSERT_TRUE(json_object_object_get_ex(vector, "input", &input));
        ASSERT_TRUE(json_object_object_get_ex(input, "body", &body));
        has_meta = json_object_object_get_ex(input, "meta", &meta);

        RequestFingerprintInput in = {
                .kind = get_string(input, "kind"),
                .ref = get_string(input, "ref"),
                .reply_to = get_string(input, "reply_to"),
                .priority = get_string(input, "priority"),
                .meta = meta,
                .body = json_object_get_string(body),
                .body_size = (size_t) json_object_get_string_len(body),
        };
        fprintf(stderr, "vector %s\n", name);
        fingerprint_hex(&in, hex);
        ASSERT_STREQ(hex, expected);

        ASSERT_OK(request_fingerprint(&in, fp, NULL));
        request_fingerprint_prefix(fp, prefix);
        ASSERT_EQ(strlen(prefix), 16);
        ASSERT_TRUE(strneq(prefix, expected, 16));

        /* The same meta as JSON text (json-c spells numbers its own way; JCS must not care). */
        if (has_meta) {
                _cleanup_free_ char *canonical = NULL;

                in.meta = NULL;
                in.meta_json = meta ? json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN) : "null";
                fingerprint_hex(&in, hex);
                ASSERT_STREQ(hex, expected);

                if (meta && json_object_object_length(meta) > 0) {
                        ASSERT_OK(jcs_canonicalize(meta, &canonical, NULL, NULL));
                        ASSERT_STREQ(canonical, get_string(vector, "expected_meta_jcs"));
                }
        }
}

static void test_vectors(void) {
        _cleanup_(json_object_putp) struct json_object *vectors = NULL;
        _cleanup_free_ char *text = NULL, *error = NULL;
        const char *dir = getenv("CLAUDEMESH_TESTS_SRCDIR");
        char path[4096];
        size_t size, n;

        ASSERT_TRUE(dir);
        snprintf(path, sizeof path, "%s/data/request-fingerprint-vectors.json", dir);
        ASSERT_OK(read_full_file(path, 1024 * 1024, &text, &size, NULL));
        if (jcs_parse(text, size, &vectors, &error) < 0)
                fprintf(stderr, "%s: %s\n", path, error);
        ASSERT_TRUE(json_object_is_type(vectors, json_type_array));

        n = json_object_array_length(vectors);
        ASSERT_TRUE(n >= 20);
        for (size_t i = 0; i < n; i++)
                check_vector(json_object_array_get_idx(vectors, i));
}

static void test_empty_meta_forms(void) {
        _cleanup_(json_object_putp) struct json_object *empty = json_object_new_object();
        char absent[REQUEST_FINGERPRINT_HEX_MAX], hex[REQUEST_FINGERPRINT_HEX_MAX];
        RequestFingerprintInput in = { .kind = "topic", .ref = "@backend", .body = "hi", .body_size = 2 };

        fingerprint_hex(&in, absent);
        in.meta_json = "null";
        fingerprint_hex(&in, hex);
        ASSERT_STREQ(hex, absent);
        in.meta_json = " { } ";
        fingerprint_hex(&in, hex);
        ASSERT_STREQ(hex, absent);
        in.meta_json = NULL;
        in.meta = empty;
        fingerprint_hex(&in, hex);
        ASSERT_STREQ(hex, absent);

        /* Explicit defaults hash like omitted ones; a real meta does not. */
        in.meta = NULL;
        in.reply_to = "";
        in.priority = "next";
        fingerprint_hex(&in, hex);
        ASSERT_STREQ(hex, absent);
        in.meta_json = "{\"a\":null}";
        fingerprint_hex(&in, hex);
        ASSERT_TRUE(!streq(hex, absent));
}

static void check_invalid(const RequestFingerprintInput *in, const char *message) {
        _cleanup_free_ char *error = NULL;
        uint8_t fp[REQUEST_FINGERPRINT_SIZE];

        ASSERT_EQ(request_fingerprint(in, fp, &error), -EINVAL);
        ASSERT_CONTAINS(error, message);
        ASSERT_EQ(request_fingerprint(in, fp, NULL), -EINVAL);
}

static void test_invalid(void) {
        _cleanup_(json_object_putp) struct json_object *array = json_object_new_array(),
                                                       *object = json_object_new_object();
        RequestFingerprintInput good = { .kind = "dm", .ref = ALICE, .body = "hello", .body_size = 5 }, in;

        in = good;
        in.kind = "queue";
        check_invalid(&in, "The destination kind must be \"dm\" or \"topic\".");
        in.kind = NULL;
        check_invalid(&in, "The destination kind must be");

        in = good;
        in.ref = "";
        check_invalid(&in, "The destination reference is empty.");
        in.ref = "399FC12CC5DF14179D5CB2B3C431FF836DD2AE772FD77F14F43F9B6CCBDC0D55";
        check_invalid(&in, "64 lowercase hex characters");
        in.ref = ALICE "00";
        check_invalid(&in, "64 lowercase hex characters");
        in.ref = "alice";
        check_invalid(&in, "64 lowercase hex characters");

        in = good;
        in.kind = "topic";
        in.ref = "backend";
        check_invalid(&in, "A topic destination must be the wire targetSpec");
        in.ref = "@";
        check_invalid(&in, "A topic destination must be the wire targetSpec");
        in.ref = "@\xff";
        check_invalid(&in, "The destination reference is not valid UTF-8.");

        in = good;
        in.priority = "urgent";
        check_invalid(&in, "The priority must be \"now\", \"next\" or \"low\".");
        in.priority = "";
        check_invalid(&in, "The priority must be");
        in.priority = "NOW";
        check_invalid(&in, "The priority must be");

        in = good;
        in.reply_to = "msg_\xc0\xaf";
        check_invalid(&in, "The reply_to id is not valid UTF-8.");

        in = good;
        in.body = "caf\xc3";
        in.body_size = 4;
        check_invalid(&in, "The message body is not valid UTF-8 (byte 3).");
        in.body = "\xed\xa0\x80";
        in.body_size = 3;
        check_invalid(&in, "The message body is not valid UTF-8 (byte 0).");

        in = good;
        in.meta_json = "[1,2]";
        check_invalid(&in, "Meta must be a JSON object or null, not array.");
        in.meta_json = "\"text\"";
        check_invalid(&in, "Meta must be a JSON object or null, not string.");
        in.meta_json = "42";
        check_invalid(&in, "Meta must be a JSON object or null, not int.");
        in.meta_json = "{\"a\":1,\"a\":2}";
        check_invalid(&in, "Invalid meta: Duplicate object member name \"a\" at byte 7");
        in.meta_json = "{\"a\":1e400}";
        check_invalid(&in, "Invalid meta: Number at byte 5 is too large");
        in.meta_json = "{\"a\":";
        check_invalid(&in, "Invalid meta: The JSON text ends at byte 5");
        in.meta_json = NULL;
        in.meta = array;
        check_invalid(&in, "Meta must be a JSON object or null, not array.");
        in.meta = object;
        ASSERT_OK(json_object_object_add(object, "x", json_object_new_double(NAN)));
        check_invalid(&in, "Invalid meta: NaN and Infinity cannot be represented");
        in.meta_json = "{}";
        check_invalid(&in, "Meta was given both as JSON text and as a parsed value");
}

static void test_body_bytes(void) {
        RequestFingerprintInput in = { .kind = "dm", .ref = ALICE, .body = "hello", .body_size = 5 };
        char hex[REQUEST_FINGERPRINT_HEX_MAX], other[REQUEST_FINGERPRINT_HEX_MAX];

        /* Exactly body_size bytes are hashed: U+0000 is a character like any other. */
        fingerprint_hex(&in, hex);
        in.body = "hello\0";
        in.body_size = 6;
        fingerprint_hex(&in, other);
        ASSERT_TRUE(!streq(other, hex));

        /* An empty body may come as NULL. */
        in.body = "";
        in.body_size = 0;
        fingerprint_hex(&in, hex);
        in.body = NULL;
        fingerprint_hex(&in, other);
        ASSERT_STREQ(other, hex);
}

int main(void) {
        test_vectors();
        test_empty_meta_forms();
        test_invalid();
        test_body_bytes();
        return 0;
}
