/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "json-util.h"
#include "keypair-archive.h"
#include "macro.h"
#include "seal-internal.h"
#include "seal.h"
#include "tests.h"

typedef struct Keys {
        uint8_t pk[32], sk[64];
        char hex[65];
} Keys;

static void make_keys(Keys *k) {
        ASSERT_OK(crypto_sign_keypair(k->pk, k->sk));
        sodium_bin2hex(k->hex, sizeof k->hex, k->pk, sizeof k->pk);
}

static char *b64(const void *data, size_t size) {
        size_t len = sodium_base64_ENCODED_LEN(size, sodium_base64_VARIANT_ORIGINAL);
        char *s = malloc(len);

        ASSERT_TRUE(s);
        sodium_bin2base64(s, len, data, size, sodium_base64_VARIANT_ORIGINAL);
        return s;
}

static void hex_to_bin(const char *hex, uint8_t *ret, size_t size) {
        size_t n;

        ASSERT_EQ(strlen(hex), 2 * size);
        ASSERT_OK(sodium_hex2bin(ret, size, hex, 2 * size, NULL, &n, NULL));
        ASSERT_EQ(n, size);
}

/* Opens and checks the body and the key that opened it. */
static void check_open(const char *sender, const char *nonce, const char *ciphertext, const uint8_t *session_sk,
                       const uint8_t *member_sk, const KeypairArchive *archive, const char *expected_body,
                       size_t expected_size, OpenedWith expected_how) {
        _cleanup_free_ char *body = NULL;
        OpenedWith how;
        size_t size;

        ASSERT_OK(open_push(sender, nonce, ciphertext, session_sk, member_sk, archive, &body, &size, &how));
        ASSERT_EQ(how, expected_how);
        ASSERT_EQ(size, expected_size);
        ASSERT_TRUE(memcmp(body, expected_body, size) == 0);
        ASSERT_EQ(body[size], 0);
}

static void check_unopenable(const char *sender, const char *nonce, const char *ciphertext, const uint8_t *session_sk,
                             const uint8_t *member_sk, const KeypairArchive *archive) {
        char *body = NULL;

        ASSERT_EQ(open_push(sender, nonce, ciphertext, session_sk, member_sk, archive, &body, NULL, NULL), -EBADMSG);
        ASSERT_TRUE(!body);
}

static const char *get_string(json_object *o, const char *key) {
        json_object *v;

        ASSERT_TRUE(json_object_object_get_ex(o, key, &v));
        ASSERT_TRUE(json_object_is_type(v, json_type_string));
        return json_object_get_string(v);
}

/* tests/data/seal-vectors.json, made by PyNaCl the upstream way: C must open them and, given the
 * same nonce, seal to the very same bytes. */
static void check_vector(json_object *v) {
        _cleanup_free_ char *nonce_b64 = NULL, *ciphertext_b64 = NULL;
        _cleanup_(keypair_archive_freep) KeypairArchive *archive = NULL;
        uint8_t sender_sk[64], recipient_sk[64], nonce[24], x25519_sk[32];
        const char *message = get_string(v, "message"), *nonce_text = get_string(v, "nonce"),
                   *ciphertext = get_string(v, "ciphertext"), *sender = get_string(v, "sender_pubkey");
        ArchivedKey key = { .key_id = "k_vector" };
        size_t n;

        hex_to_bin(get_string(v, "sender_secret_key"), sender_sk, sizeof sender_sk);
        hex_to_bin(get_string(v, "recipient_secret_key"), recipient_sk, sizeof recipient_sk);
        hex_to_bin(get_string(v, "recipient_x25519_secret_key"), x25519_sk, sizeof x25519_sk);
        ASSERT_OK(sodium_base642bin(nonce, sizeof nonce, nonce_text, strlen(nonce_text), NULL, &n, NULL,
                                    sodium_base64_VARIANT_ORIGINAL));
        ASSERT_EQ(n, sizeof nonce);

        check_open(sender, nonce_text, ciphertext, recipient_sk, NULL, NULL, message, strlen(message),
                   OPENED_SESSION_KEY);
        check_open(sender, nonce_text, ciphertext, NULL, recipient_sk, NULL, message, strlen(message),
                   OPENED_MEMBER_KEY);

        memcpy(key.x25519_privkey, x25519_sk, sizeof x25519_sk);
        ASSERT_OK(crypto_scalarmult_base(key.x25519_pubkey, key.x25519_privkey));
        ASSERT_OK(keypair_archive_new(&archive));
        ASSERT_OK(keypair_archive_add(archive, &key));
        check_open(sender, nonce_text, ciphertext, NULL, NULL, archive, message, strlen(message), OPENED_ARCHIVED_KEY);

        ASSERT_OK(seal_direct_with_nonce(message, strlen(message), get_string(v, "recipient_pubkey"), sender_sk, nonce,
                                         &nonce_b64, &ciphertext_b64));
        ASSERT_STREQ(nonce_b64, nonce_text);
        ASSERT_STREQ(ciphertext_b64, ciphertext);
}

static void test_vectors(void) {
        _cleanup_(json_object_putp) json_object *vectors = NULL;
        _cleanup_free_ char *text = NULL;
        const char *dir = getenv("CLAUDEMESH_TESTS_SRCDIR");
        char path[4096];
        size_t n;

        ASSERT_TRUE(dir);
        snprintf(path, sizeof path, "%s/data/seal-vectors.json", dir);
        ASSERT_OK(read_full_file(path, 1024 * 1024, &text, NULL, NULL));
        vectors = json_tokener_parse(text);
        ASSERT_TRUE(json_object_is_type(vectors, json_type_array));
        n = json_object_array_length(vectors);
        ASSERT_TRUE(n >= 10);
        for (size_t i = 0; i < n; i++)
                check_vector(json_object_array_get_idx(vectors, i));
}

/* A seals to B's session key, then to B's member key; B tries its session key first. */
static void test_direct_round_trip(void) {
        Keys a_session, b_session, b_member;
        const char *msg = "Hallo, B! – ünïcødé ✓";
        _cleanup_free_ char *nonce = NULL, *ct = NULL, *nonce2 = NULL, *ct2 = NULL;
        uint8_t raw[24];
        size_t n;

        make_keys(&a_session);
        make_keys(&b_session);
        make_keys(&b_member);

        ASSERT_OK(seal_direct(msg, strlen(msg), b_session.hex, a_session.sk, &nonce, &ct));
        ASSERT_EQ(strlen(nonce), 32);
        ASSERT_OK(sodium_base642bin(raw, sizeof raw, nonce, strlen(nonce), NULL, &n, NULL,
                                    sodium_base64_VARIANT_ORIGINAL));
        ASSERT_EQ(n, 24);
        ASSERT_EQ(strlen(ct), sodium_base64_ENCODED_LEN(strlen(msg) + crypto_box_MACBYTES,
                                                        sodium_base64_VARIANT_ORIGINAL) - 1);
        check_open(a_session.hex, nonce, ct, b_session.sk, b_member.sk, NULL, msg, strlen(msg), OPENED_SESSION_KEY);

        ASSERT_OK(seal_direct(msg, strlen(msg), b_member.hex, a_session.sk, &nonce2, &ct2));
        ASSERT_TRUE(!streq(nonce, nonce2));
        check_open(a_session.hex, nonce2, ct2, b_session.sk, b_member.sk, NULL, msg, strlen(msg), OPENED_MEMBER_KEY);

        /* The sender key the broker reports must be the one that sealed: another one cannot open it. */
        check_unopenable(b_member.hex, nonce2, ct2, b_session.sk, b_member.sk, NULL);
}

static void test_direct_invalid_recipient(void) {
        Keys a;
        char *nonce = NULL, *ct = NULL;
        char zero[65];

        make_keys(&a);
        ASSERT_EQ(seal_direct("x", 1, "system", a.sk, &nonce, &ct), -EINVAL);
        ASSERT_EQ(seal_direct("x", 1, "abcd", a.sk, &nonce, &ct), -EINVAL);
        a.hex[63] = 'g';
        ASSERT_EQ(seal_direct("x", 1, a.hex, a.sk, &nonce, &ct), -EINVAL);
        /* The identity point has no usable x25519 counterpart. */
        memset(zero, '0', 64);
        zero[64] = 0;
        ASSERT_EQ(seal_direct("x", 1, zero, a.sk, &nonce, &ct), -EINVAL);
        ASSERT_TRUE(!nonce && !ct);
}

/* B's member key was rotated out; what A sealed to the old key opens with the archived x25519 key. */
static void test_archived_key(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *archive = NULL;
        _cleanup_free_ char *nonce = NULL, *ct = NULL;
        Keys a, b_old, b_session, b_member, decoy;
        ArchivedKey k = { .key_id = "k_decoy" };

        make_keys(&a);
        make_keys(&b_old);
        make_keys(&b_session);
        make_keys(&b_member);
        make_keys(&decoy);

        ASSERT_OK(keypair_archive_new(&archive));
        ASSERT_OK(crypto_sign_ed25519_sk_to_curve25519(k.x25519_privkey, decoy.sk));
        ASSERT_OK(crypto_scalarmult_base(k.x25519_pubkey, k.x25519_privkey));
        ASSERT_OK(keypair_archive_add(archive, &k));

        ASSERT_OK(seal_direct("old key", 7, b_old.hex, a.sk, &nonce, &ct));
        check_unopenable(a.hex, nonce, ct, b_session.sk, b_member.sk, archive);

        snprintf(k.key_id, sizeof k.key_id, "k_old");
        ASSERT_OK(crypto_sign_ed25519_sk_to_curve25519(k.x25519_privkey, b_old.sk));
        ASSERT_OK(crypto_scalarmult_base(k.x25519_pubkey, k.x25519_privkey));
        ASSERT_OK(keypair_archive_add(archive, &k));
        check_open(a.hex, nonce, ct, b_session.sk, b_member.sk, archive, "old key", 7, OPENED_ARCHIVED_KEY);
        sodium_memzero(&k, sizeof k);
}

static void test_plaintext(void) {
        _cleanup_free_ char *nonce = NULL, *ct = NULL, *expected = NULL, *zero_nonce = NULL, *with_nul = NULL;
        const char *msg = "hi everyone 👋";
        uint8_t raw[24], zeros[24] = { 0 };
        Keys a, b;
        size_t n;

        make_keys(&a);
        make_keys(&b);
        ASSERT_OK(seal_plain(msg, strlen(msg), &nonce, &ct));
        expected = b64(msg, strlen(msg));
        ASSERT_STREQ(ct, expected);
        ASSERT_EQ(strlen(nonce), 32);
        ASSERT_OK(sodium_base642bin(raw, sizeof raw, nonce, strlen(nonce), NULL, &n, NULL,
                                    sodium_base64_VARIANT_ORIGINAL));
        ASSERT_EQ(n, 24);

        /* A multicast from a peer: the box fails with every key, the plaintext is taken. */
        check_open(a.hex, nonce, ct, b.sk, b.sk, NULL, msg, strlen(msg), OPENED_PLAINTEXT);
        /* `topic post --plaintext` uses a zero nonce. */
        zero_nonce = b64(zeros, sizeof zeros);
        check_open(a.hex, zero_nonce, ct, b.sk, NULL, NULL, msg, strlen(msg), OPENED_PLAINTEXT);
        /* A nonce that is not base64 cannot make a box, but the post is still readable. */
        check_open(a.hex, "***", ct, b.sk, NULL, NULL, msg, strlen(msg), OPENED_PLAINTEXT);

        /* U+0000 is valid UTF-8: the size says where the body ends. */
        with_nul = b64("a\0b", 3);
        check_open(a.hex, nonce, with_nul, b.sk, NULL, NULL, "a\0b", 3, OPENED_PLAINTEXT);

        free(ct);
        free(nonce);
        ASSERT_OK(seal_plain("", 0, &nonce, &ct));
        ASSERT_STREQ(ct, "");
        check_open(a.hex, nonce, ct, b.sk, NULL, NULL, "", 0, OPENED_PLAINTEXT);
}

/* Scheduled deliveries and system pushes carry an empty nonce: plaintext only. */
static void test_empty_nonce(void) {
        _cleanup_free_ char *ct = NULL, *nonce = NULL, *box = NULL;
        const char *msg = "scheduled: stand-up in 5 minutes";
        char long_msg[400];
        Keys a, b;

        make_keys(&a);
        make_keys(&b);
        ct = b64(msg, strlen(msg));
        check_open(a.hex, "", ct, b.sk, b.sk, NULL, msg, strlen(msg), OPENED_PLAINTEXT);

        /* Without its nonce a real DM is only its sealed bytes, and those are not UTF-8. */
        memset(long_msg, 'x', sizeof long_msg - 1);
        long_msg[sizeof long_msg - 1] = 0;
        ASSERT_OK(seal_direct(long_msg, strlen(long_msg), b.hex, a.sk, &nonce, &box));
        check_unopenable(a.hex, "", box, b.sk, b.sk, NULL);
}

static void test_system_sender(void) {
        _cleanup_free_ char *ct = NULL, *nonce = NULL, *box = NULL;
        char long_msg[400];
        Keys a, b;

        make_keys(&a);
        make_keys(&b);
        check_open("system", "", "", b.sk, b.sk, NULL, "", 0, OPENED_PLAINTEXT);
        ct = b64("tick", 4);
        check_open("system", "", ct, b.sk, b.sk, NULL, "tick", 4, OPENED_PLAINTEXT);

        /* Even a well-formed box is not tried for a sender that is no peer key. */
        memset(long_msg, 'y', sizeof long_msg - 1);
        long_msg[sizeof long_msg - 1] = 0;
        ASSERT_OK(seal_direct(long_msg, strlen(long_msg), b.hex, a.sk, &nonce, &box));
        check_open(a.hex, nonce, box, b.sk, NULL, NULL, long_msg, strlen(long_msg), OPENED_SESSION_KEY);
        check_unopenable("webhook:deploy", nonce, box, b.sk, b.sk, NULL);
        check_unopenable("system", nonce, box, b.sk, b.sk, NULL);
}

static void test_unopenable(void) {
        _cleanup_free_ char *nonce = NULL, *ct = NULL, *nonce2 = NULL, *box = NULL;
        const char *msg = "for C only, and long enough that its sealed bytes are no UTF-8 by chance";
        uint8_t garbage[64], raw_nonce[24];
        Keys a, b, c;

        make_keys(&a);
        make_keys(&b);
        make_keys(&c);

        randombytes_buf(garbage, sizeof garbage);
        /* 0xff never occurs in UTF-8: random bytes that happen to be UTF-8 would be a plaintext post. */
        garbage[sizeof garbage - 1] = 0xff;
        randombytes_buf(raw_nonce, sizeof raw_nonce);
        ct = b64(garbage, sizeof garbage);
        nonce = b64(raw_nonce, sizeof raw_nonce);
        check_unopenable(a.hex, nonce, ct, b.sk, b.sk, NULL);

        /* A DM sealed to somebody else. */
        ASSERT_OK(seal_direct(msg, strlen(msg), c.hex, a.sk, &nonce2, &box));
        check_unopenable(a.hex, nonce2, box, b.sk, b.sk, NULL);
        check_open(a.hex, nonce2, box, NULL, c.sk, NULL, msg, strlen(msg), OPENED_MEMBER_KEY);
}

static void test_invalid_base64(void) {
        Keys a, b;
        char *body = NULL;

        make_keys(&a);
        make_keys(&b);
        check_unopenable(a.hex, "", "not base64!", b.sk, NULL, NULL);
        /* Padding is required (standard base64). */
        check_unopenable(a.hex, "", "aGk", b.sk, NULL, NULL);
        check_unopenable("system", "", "aGk=\n", b.sk, NULL, NULL);
        check_unopenable(a.hex, "", "aGl=", b.sk, NULL, NULL);
        check_open(a.hex, "", "aGk=", b.sk, NULL, NULL, "hi", 2, OPENED_PLAINTEXT);

        ASSERT_EQ(open_push(NULL, "", "", b.sk, NULL, NULL, &body, NULL, NULL), -EINVAL);
        ASSERT_EQ(open_push(a.hex, NULL, "", b.sk, NULL, NULL, &body, NULL, NULL), -EINVAL);
        ASSERT_EQ(open_push(a.hex, "", NULL, b.sk, NULL, NULL, &body, NULL, NULL), -EINVAL);
        ASSERT_TRUE(!body);
}

static void test_not_utf8(void) {
        _cleanup_free_ char *ct = NULL, *overlong = NULL, *surrogate = NULL, *nonce = NULL, *box = NULL;
        Keys a, b;

        make_keys(&a);
        make_keys(&b);
        ct = b64("ok \xff\xfe", 5);
        check_unopenable(a.hex, "", ct, b.sk, NULL, NULL);
        overlong = b64("\xc0\xaf", 2);
        check_unopenable("system", "", overlong, NULL, NULL, NULL);
        surrogate = b64("\xed\xa0\x80", 3);
        check_unopenable("system", "", surrogate, NULL, NULL, NULL);

        /* A box that opens but holds no UTF-8 is refused as well. */
        ASSERT_OK(seal_direct("\xc3\x28", 2, b.hex, a.sk, &nonce, &box));
        check_unopenable(a.hex, nonce, box, b.sk, NULL, NULL);
}

int main(void) {
        ASSERT_OK(sodium_init());
        test_vectors();
        test_direct_round_trip();
        test_direct_invalid_recipient();
        test_archived_key();
        test_plaintext();
        test_empty_nonce();
        test_system_sender();
        test_unopenable();
        test_invalid_base64();
        test_not_utf8();
        return 0;
}
