/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "error-message.h"
#include "hello-oracle.h"
#include "macro.h"
#include "session-oracle.h"

#define ATTEST_PREFIX "claudemesh-session-attest|"
#define HELLO_PREFIX "claudemesh-session-hello|"

/* The text after "field|" at p, or NULL when p does not start with it. */
static const char *skip_field(const char *p, const char *field) {
        size_t len = strlen(field);

        return strneq(p, field, len) && p[len] == '|' ? p + len + 1 : NULL;
}

static bool key_belongs_to(const char *pubkey_hex, const uint8_t sk[static crypto_sign_SECRETKEYBYTES]) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        size_t n;

        return strlen(pubkey_hex) == 2 * sizeof pk &&
               sodium_hex2bin(pk, sizeof pk, pubkey_hex, 2 * sizeof pk, NULL, &n, NULL) == 0 && n == sizeof pk &&
               sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof pk) == 0;
}

/* Digits only, no leading zero, at most HELLO_ORACLE_TIMESTAMP_MAX_DIGITS. */
static bool parse_msec(const char *s, int64_t *ret) {
        size_t n = strlen(s);
        int64_t v = 0;

        if (n == 0 || n > HELLO_ORACLE_TIMESTAMP_MAX_DIGITS || strspn(s, "0123456789") != n || (s[0] == '0' && n > 1))
                return false;
        for (; *s; s++)
                v = v * 10 + (*s - '0');
        *ret = v;
        return true;
}

static void sign_hex(const char *payload, const uint8_t sk[64], char ret[static 129]) {
        uint8_t signature[crypto_sign_BYTES];

        crypto_sign_detached(signature, NULL, (const unsigned char *) payload, strlen(payload), sk);
        sodium_bin2hex(ret, 129, signature, sizeof signature);
}

int session_oracle_sign(const char *payload, const char *mesh_id, const char *member_pubkey_hex,
                        const uint8_t member_sk[64], const char *session_pubkey_hex, const uint8_t session_sk[64],
                        usec_t now, char ret_signature_hex[static 129], char **ret_error) {
        int64_t now_ms = (int64_t) (now / USEC_PER_MSEC), t, skew;
        const char *p;

        if (sodium_init() < 0)
                return -EIO;
        if (!key_belongs_to(member_pubkey_hex, member_sk) || !key_belongs_to(session_pubkey_hex, session_sk))
                return error_setf(ret_error, -EINVAL, "A secret key does not belong to its public key; not signing.");
        if (!payload)
                return error_setf(ret_error, -EPERM, "Refusing to sign an empty payload for a session connection.");

        if ((p = skip_field(payload, "claudemesh-session-attest"))) {
                p = skip_field(p, member_pubkey_hex);
                p = p ? skip_field(p, session_pubkey_hex) : NULL;
                if (!p || !parse_msec(p, &t))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: not an attestation \"" ATTEST_PREFIX
                                          "<memberPubkey>|<sessionPubkey>|<expiresAt>\" for this member and session.");
                skew = t - (now_ms + SESSION_ATTESTATION_TTL_MSEC);
                if (skew > HELLO_ORACLE_MAX_SKEW_MSEC || skew < -HELLO_ORACLE_MAX_SKEW_MSEC)
                        return error_setf(ret_error, -EPERM, "Refusing to sign: the attestation expires %lld ms off "
                                          "12 h from now; at most %d is taken.", (long long) (skew < 0 ? -skew : skew),
                                          HELLO_ORACLE_MAX_SKEW_MSEC);
                sign_hex(payload, member_sk, ret_signature_hex);
                return 0;
        }
        if ((p = skip_field(payload, "claudemesh-session-hello"))) {
                p = skip_field(p, mesh_id);
                p = p ? skip_field(p, member_pubkey_hex) : NULL;
                p = p ? skip_field(p, session_pubkey_hex) : NULL;
                if (!p || !parse_msec(p, &t))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: not a session hello \"" HELLO_PREFIX
                                          "<meshId>|<memberPubkey>|<sessionPubkey>|<timestamp>\" for this mesh, "
                                          "member and session.");
                skew = t - now_ms;
                if (skew > HELLO_ORACLE_MAX_SKEW_MSEC || skew < -HELLO_ORACLE_MAX_SKEW_MSEC)
                        return error_setf(ret_error, -EPERM, "Refusing to sign: the session hello timestamp is %lld ms "
                                          "off the daemon's clock; the broker accepts at most %d.",
                                          (long long) (skew < 0 ? -skew : skew), HELLO_ORACLE_MAX_SKEW_MSEC);
                sign_hex(payload, session_sk, ret_signature_hex);
                return 0;
        }
        return error_setf(ret_error, -EPERM, "Refusing to sign for a session connection: only an attestation \""
                          ATTEST_PREFIX "…\" or a session hello \"" HELLO_PREFIX "…\" is signed.");
}
