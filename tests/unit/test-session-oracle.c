/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "session-oracle.h"
#include "tests.h"

#define MESH "Q3nV0cX1mesh0000000000000000000a"
/* 2027-01-15T08:00:00Z, plus some milliseconds. */
#define NOW_MS 1800000000123LL
#define NOW    ((usec_t) NOW_MS * USEC_PER_MSEC + 456)
#define TTL    SESSION_ATTESTATION_TTL_MSEC

static uint8_t member_pk[32], member_sk[64], session_pk[32], session_sk[64];
static char member_hex[65], session_hex[65];

static char *attest(const char *member, const char *session, long long expires) {
        char *s;

        ASSERT_TRUE(asprintf(&s, "claudemesh-session-attest|%s|%s|%lld", member, session, expires) > 0);
        return s;
}

static char *hello(const char *mesh, const char *member, const char *session, long long ts) {
        char *s;

        ASSERT_TRUE(asprintf(&s, "claudemesh-session-hello|%s|%s|%s|%lld", mesh, member, session, ts) > 0);
        return s;
}

static int sign(const char *payload, char sig_hex[static 129], char **error) {
        return session_oracle_sign(payload, MESH, member_hex, member_sk, session_hex, session_sk, NOW, sig_hex, error);
}

/* Signed, and the signature verifies with pk exactly as the broker checks it. */
static void check_signs(const char *payload, const uint8_t pk[static 32]) {
        _cleanup_free_ char *error = NULL;
        char sig_hex[129];
        uint8_t sig[64];
        size_t n;

        ASSERT_OK(sign(payload, sig_hex, &error));
        ASSERT_TRUE(!error);
        ASSERT_OK(sodium_hex2bin(sig, sizeof sig, sig_hex, 128, NULL, &n, NULL));
        ASSERT_EQ(n, sizeof sig);
        ASSERT_OK(crypto_sign_verify_detached(sig, (const unsigned char *) payload, strlen(payload), pk));
}

static void check_refused(const char *payload, const char *why) {
        _cleanup_free_ char *error = NULL;
        char sig_hex[129] = "untouched";

        ASSERT_EQ(sign(payload, sig_hex, &error), -EPERM);
        ASSERT_CONTAINS(error, "Refusing to sign");
        ASSERT_CONTAINS(error, why);
        ASSERT_STREQ(sig_hex, "untouched");
}

static void test_signs(void) {
        _cleanup_free_ char *a = attest(member_hex, session_hex, NOW_MS + TTL),
                            *a_early = attest(member_hex, session_hex, NOW_MS + TTL - 60000),
                            *a_late = attest(member_hex, session_hex, NOW_MS + TTL + 60000),
                            *h = hello(MESH, member_hex, session_hex, NOW_MS),
                            *h_behind = hello(MESH, member_hex, session_hex, NOW_MS - 60000),
                            *h_ahead = hello(MESH, member_hex, session_hex, NOW_MS + 60000);

        /* The attestation with the member key, the hello with the session key. */
        check_signs(a, member_pk);
        check_signs(a_early, member_pk);
        check_signs(a_late, member_pk);
        check_signs(h, session_pk);
        check_signs(h_behind, session_pk);
        check_signs(h_ahead, session_pk);
}

static void test_refuses(void) {
        _cleanup_free_ char *a_short = attest(member_hex, session_hex, NOW_MS + TTL - 60001),
                            *a_long = attest(member_hex, session_hex, NOW_MS + 24 * 3600 * 1000LL),
                            *a_swapped = attest(session_hex, member_hex, NOW_MS + TTL),
                            *a_other = attest(member_hex, "00" MESH MESH, NOW_MS + TTL),
                            *a_trailing = NULL,
                            *h_old = hello(MESH, member_hex, session_hex, NOW_MS - 60001),
                            *h_mesh = hello("other-mesh", member_hex, session_hex, NOW_MS),
                            *h_member = hello(MESH, session_hex, session_hex, NOW_MS),
                            *member_hello = NULL;

        check_refused(a_short, "12 h from now");
        check_refused(a_long, "12 h from now");
        check_refused(a_swapped, "not an attestation");
        check_refused(a_other, "not an attestation");
        ASSERT_TRUE(asprintf(&a_trailing, "claudemesh-session-attest|%s|%s|%lld|x", member_hex, session_hex,
                             NOW_MS + TTL) > 0);
        check_refused(a_trailing, "not an attestation");
        check_refused(h_old, "off the daemon's clock");
        check_refused(h_mesh, "not a session hello");
        check_refused(h_member, "not a session hello");
        /* The member's own hello form is not signed here: that is the member connection's oracle. */
        ASSERT_TRUE(asprintf(&member_hello, MESH "|member|%s|%lld", member_hex, NOW_MS) > 0);
        check_refused(member_hello, "only an attestation");
        check_refused("", "only an attestation");
        check_refused("claudemesh-session-hello", "only an attestation");
}

static void test_key_mismatch(void) {
        _cleanup_free_ char *a = attest(member_hex, session_hex, NOW_MS + TTL), *error = NULL;
        char sig_hex[129];

        ASSERT_EQ(session_oracle_sign(a, MESH, member_hex, session_sk, session_hex, session_sk, NOW, sig_hex, &error),
                  -EINVAL);
        ASSERT_CONTAINS(error, "does not belong");
}

int main(void) {
        ASSERT_OK(sodium_init());
        ASSERT_OK(crypto_sign_keypair(member_pk, member_sk));
        ASSERT_OK(crypto_sign_keypair(session_pk, session_sk));
        sodium_bin2hex(member_hex, sizeof member_hex, member_pk, sizeof member_pk);
        sodium_bin2hex(session_hex, sizeof session_hex, session_pk, sizeof session_pk);

        test_signs();
        test_refuses();
        test_key_mismatch();
        return 0;
}
