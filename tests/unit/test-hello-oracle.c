/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "hello-oracle.h"
#include "macro.h"
#include "tests.h"

#define MESH   "Q3nV0cX1mesh0000000000000000000a"
#define MEMBER "aZ9member000000000000000000000b"
/* 2027-01-15T08:00:00Z, plus some milliseconds. */
#define NOW_MS 1800000000123LL
#define NOW    ((usec_t) NOW_MS * USEC_PER_MSEC + 456)

static uint8_t pk[32], sk[64];
static char pk_hex[65];

static char *payload_at(long long ms) {
        char *s;

        ASSERT_TRUE(asprintf(&s, MESH "|" MEMBER "|%s|%lld", pk_hex, ms) > 0);
        return s;
}

static void check_signs(const char *payload) {
        _cleanup_free_ char *error = NULL;
        char sig_hex[129];
        uint8_t sig[64];
        size_t n;

        memset(sig_hex, 'x', sizeof sig_hex);
        ASSERT_OK(hello_oracle_sign(payload, MESH, MEMBER, pk_hex, sk, NOW, sig_hex, &error));
        ASSERT_TRUE(!error);
        ASSERT_EQ(strlen(sig_hex), 128);
        ASSERT_EQ(strspn(sig_hex, "0123456789abcdef"), 128);
        ASSERT_OK(sodium_hex2bin(sig, sizeof sig, sig_hex, 128, NULL, &n, NULL));
        ASSERT_EQ(n, sizeof sig);
        /* What the broker does: verify the UTF-8 of the canonical string with the member pk. */
        ASSERT_OK(crypto_sign_verify_detached(sig, (const unsigned char *) payload, strlen(payload), pk));
}

static void check_refused(const char *payload, const char *why) {
        _cleanup_free_ char *error = NULL;
        char sig_hex[129] = "untouched";

        ASSERT_EQ(hello_oracle_sign(payload, MESH, MEMBER, pk_hex, sk, NOW, sig_hex, &error), -EPERM);
        ASSERT_CONTAINS(error, "Refusing to sign");
        ASSERT_CONTAINS(error, why);
        ASSERT_STREQ(sig_hex, "untouched");
}

static void test_signs_hello(void) {
        _cleanup_free_ char *now = payload_at(NOW_MS), *early = payload_at(NOW_MS - 60000),
                            *late = payload_at(NOW_MS + 60000);

        check_signs(now);
        /* ±60 s is still accepted, as by the broker (|now − ts| ≤ 60000). */
        check_signs(early);
        check_signs(late);
}

static void test_refuses_other_identity(void) {
        _cleanup_free_ char *other_mesh = NULL, *other_member = NULL, *other_pk = NULL, *upper_pk = NULL,
                            *mesh_prefix = NULL;
        char upper[65];

        ASSERT_TRUE(asprintf(&other_mesh, "otherMesh|" MEMBER "|%s|%lld", pk_hex, NOW_MS) > 0);
        check_refused(other_mesh, "for mesh " MESH);
        /* A prefix of our mesh id is another mesh. */
        ASSERT_TRUE(asprintf(&mesh_prefix, "Q3nV0cX1|" MEMBER "|%s|%lld", pk_hex, NOW_MS) > 0);
        check_refused(mesh_prefix, "for mesh");
        ASSERT_TRUE(asprintf(&other_member, MESH "|someoneElse|%s|%lld", pk_hex, NOW_MS) > 0);
        check_refused(other_member, "for member " MEMBER);
        ASSERT_TRUE(asprintf(&other_pk, MESH "|" MEMBER "|%064d|%lld", 0, NOW_MS) > 0);
        check_refused(other_pk, "for pubkey");
        /* The broker compares the pubkey as a string: the same key in upper case is another one. */
        for (size_t i = 0; i < 64; i++)
                upper[i] = (char) (pk_hex[i] >= 'a' ? pk_hex[i] - 'a' + 'A' : pk_hex[i]);
        upper[64] = 0;
        ASSERT_TRUE(asprintf(&upper_pk, MESH "|" MEMBER "|%s|%lld", upper, NOW_MS) > 0);
        check_refused(upper_pk, "for pubkey");
}

static void test_refuses_other_shapes(void) {
        _cleanup_free_ char *extra = NULL, *missing = NULL, *newline = NULL, *nul = NULL, *space = NULL,
                            *empty_ts = NULL;
        char buf[256];

        check_refused("a|b|c|d|e", "for mesh");
        ASSERT_TRUE(asprintf(&extra, MESH "|" MEMBER "|%s|%lld|extra", pk_hex, NOW_MS) > 0);
        check_refused(extra, "not a decimal number");
        ASSERT_TRUE(asprintf(&missing, MESH "|" MEMBER "|%lld", NOW_MS) > 0);
        check_refused(missing, "for pubkey");
        ASSERT_TRUE(asprintf(&empty_ts, MESH "|" MEMBER "|%s|", pk_hex) > 0);
        check_refused(empty_ts, "not a decimal number");
        ASSERT_TRUE(asprintf(&newline, MESH "|" MEMBER "|%s|%lld\n", pk_hex, NOW_MS) > 0);
        check_refused(newline, "not a decimal number");
        ASSERT_TRUE(asprintf(&space, MESH "|" MEMBER "|%s| %lld", pk_hex, NOW_MS) > 0);
        check_refused(space, "not a decimal number");
        check_refused("", "empty payload");
        check_refused(NULL, "empty payload");
        check_refused("any text at all", "for mesh");

        /* A NUL inside a field ends the string early: what is left is no complete hello. */
        ASSERT_TRUE(asprintf(&nul, MESH "|" MEMBER "|%s|%lld", pk_hex, NOW_MS) > 0);
        memcpy(buf, nul, strlen(nul) + 1);
        buf[strlen(MESH) + 3] = 0;
        check_refused(buf, "for member");
        memcpy(buf, nul, strlen(nul) + 1);
        buf[strlen(nul) - 3] = 0;
        check_refused(buf, "ms behind");
}

static void test_refuses_bad_timestamps(void) {
        _cleanup_free_ char *past = payload_at(NOW_MS - 61000), *future = payload_at(NOW_MS + 61000),
                            *zero = payload_at(0), *max = NULL, *huge = NULL, *leading = NULL, *negative = NULL,
                            *alpha = NULL, *decimal = NULL, *exponent = NULL, *plus = NULL;

        check_refused(past, "61000 ms behind");
        check_refused(future, "61000 ms ahead of");
        check_refused(zero, "ms behind");
        /* 16 digits pass the syntax check and fail the clock; 17 do not get that far. */
        max = payload_at(9999999999999999LL);
        check_refused(max, "ms ahead of");
        ASSERT_TRUE(asprintf(&huge, MESH "|" MEMBER "|%s|%s", pk_hex, "18000000001230000") > 0);
        check_refused(huge, "at most 16 digits");
        ASSERT_TRUE(asprintf(&leading, MESH "|" MEMBER "|%s|0%lld", pk_hex, NOW_MS) > 0);
        check_refused(leading, "no leading zeros");
        ASSERT_TRUE(asprintf(&negative, MESH "|" MEMBER "|%s|-%lld", pk_hex, NOW_MS) > 0);
        check_refused(negative, "not a decimal number");
        ASSERT_TRUE(asprintf(&plus, MESH "|" MEMBER "|%s|+%lld", pk_hex, NOW_MS) > 0);
        check_refused(plus, "not a decimal number");
        ASSERT_TRUE(asprintf(&alpha, MESH "|" MEMBER "|%s|soon", pk_hex) > 0);
        check_refused(alpha, "not a decimal number");
        ASSERT_TRUE(asprintf(&decimal, MESH "|" MEMBER "|%s|%lld.5", pk_hex, NOW_MS) > 0);
        check_refused(decimal, "not a decimal number");
        ASSERT_TRUE(asprintf(&exponent, MESH "|" MEMBER "|%s|1.8e12", pk_hex) > 0);
        check_refused(exponent, "not a decimal number");
}

/* Signing with a key that is not the one named would only produce hellos the broker rejects. */
static void test_key_mismatch(void) {
        _cleanup_free_ char *payload = payload_at(NOW_MS), *error = NULL;
        uint8_t other_pk[32], other_sk[64];
        char sig_hex[129];

        ASSERT_OK(crypto_sign_keypair(other_pk, other_sk));
        ASSERT_EQ(hello_oracle_sign(payload, MESH, MEMBER, pk_hex, other_sk, NOW, sig_hex, &error), -EINVAL);
        ASSERT_CONTAINS(error, "does not belong to pubkey");
        ASSERT_EQ(hello_oracle_sign(payload, MESH, MEMBER, pk_hex, other_sk, NOW, sig_hex, NULL), -EINVAL);
        sodium_memzero(other_sk, sizeof other_sk);
}

int main(void) {
        ASSERT_OK(sodium_init());
        ASSERT_OK(crypto_sign_keypair(pk, sk));
        sodium_bin2hex(pk_hex, sizeof pk_hex, pk, sizeof pk);

        test_signs_hello();
        test_refuses_other_identity();
        test_refuses_other_shapes();
        test_refuses_bad_timestamps();
        test_key_mismatch();
        return 0;
}
