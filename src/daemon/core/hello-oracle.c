/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "error-message.h"
#include "hello-oracle.h"
#include "macro.h"

#define HELLO_FORM "\"<meshId>|<memberId>|<pubkey>|<timestamp>\""

const char *oracle_skip_field(const char *p, const char *field) {
        size_t len;

        assert(p);
        assert(field);

        len = strlen(field);
        return strneq(p, field, len) && p[len] == '|' ? p + len + 1 : NULL;
}

bool oracle_key_belongs_to(const char *pubkey_hex, const uint8_t sk[static crypto_sign_SECRETKEYBYTES]) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        size_t n;

        assert(pubkey_hex);
        assert(sk);

        return strlen(pubkey_hex) == 2 * sizeof pk &&
               sodium_hex2bin(pk, sizeof pk, pubkey_hex, 2 * sizeof pk, NULL, &n, NULL) == 0 && n == sizeof pk &&
               sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof pk) == 0;
}

/* Exactly the decimal form a JSON integer has, so the signed text matches the JSON value. */
bool oracle_parse_msec(const char *s, int64_t *ret) {
        size_t n;
        int64_t v = 0;

        assert(s);
        assert(ret);

        n = strlen(s);
        if (n == 0 || n > HELLO_ORACLE_TIMESTAMP_MAX_DIGITS || strspn(s, "0123456789") != n || (s[0] == '0' && n > 1))
                return false;
        for (; *s; s++)
                v = v * 10 + (*s - '0');
        *ret = v;
        return true;
}

bool oracle_within_skew(int64_t t, int64_t expected, int64_t *ret_skew) {
        int64_t skew = t - expected;

        assert(ret_skew);

        *ret_skew = skew;
        return skew <= HELLO_ORACLE_MAX_SKEW_MSEC && skew >= -HELLO_ORACLE_MAX_SKEW_MSEC;
}

void oracle_sign_hex(const char *payload, const uint8_t sk[static crypto_sign_SECRETKEYBYTES],
                     char ret_signature_hex[static 129]) {
        uint8_t signature[crypto_sign_BYTES];

        assert(payload);
        assert(sk);

        crypto_sign_detached(signature, NULL, (const unsigned char *) payload, strlen(payload), sk);
        sodium_bin2hex(ret_signature_hex, 129, signature, sizeof signature);
}

int hello_oracle_sign(const char *payload, const char *mesh_id, const char *member_id, const char *pubkey_hex,
                      const uint8_t member_sk[64], usec_t now, char ret_signature_hex[static 129], char **ret_error) {
        const char *p;
        int64_t timestamp, skew;

        if (sodium_init() < 0)
                return -EIO;
        if (!oracle_key_belongs_to(pubkey_hex, member_sk))
                return error_setf(ret_error, -EINVAL,
                                  "The member secret key does not belong to pubkey %s; not signing anything with it.",
                                  pubkey_hex);

        if (!payload || !*payload)
                return error_setf(ret_error, -EPERM, "Refusing to sign an empty payload; only a hello " HELLO_FORM
                                  " is signed.");
        p = oracle_skip_field(payload, mesh_id);
        if (!p)
                return error_setf(ret_error, -EPERM, "Refusing to sign: the payload is not a hello " HELLO_FORM
                                  " for mesh %s.", mesh_id);
        p = oracle_skip_field(p, member_id);
        if (!p)
                return error_setf(ret_error, -EPERM, "Refusing to sign: the payload is not a hello " HELLO_FORM
                                  " for member %s of mesh %s.", member_id, mesh_id);
        p = oracle_skip_field(p, pubkey_hex);
        if (!p)
                return error_setf(ret_error, -EPERM, "Refusing to sign: the payload is not a hello " HELLO_FORM
                                  " for pubkey %s.", pubkey_hex);
        if (!oracle_parse_msec(p, &timestamp))
                return error_setf(ret_error, -EPERM, "Refusing to sign: the hello timestamp is not a decimal "
                                  "number of milliseconds (digits only, no leading zeros, at most %d digits).",
                                  HELLO_ORACLE_TIMESTAMP_MAX_DIGITS);

        if (!oracle_within_skew(timestamp, (int64_t) (now / USEC_PER_MSEC), &skew))
                return error_setf(ret_error, -EPERM, "Refusing to sign: the hello timestamp is %lld ms %s the "
                                  "daemon's clock; the broker accepts at most %d.",
                                  (long long) (skew < 0 ? -skew : skew), skew < 0 ? "behind" : "ahead of",
                                  HELLO_ORACLE_MAX_SKEW_MSEC);

        oracle_sign_hex(payload, member_sk, ret_signature_hex);
        return 0;
}
