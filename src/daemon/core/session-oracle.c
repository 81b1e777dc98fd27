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

int session_oracle_sign(const char *payload, const char *mesh_id, const char *member_pubkey_hex,
                        const uint8_t member_sk[64], const char *session_pubkey_hex, const uint8_t session_sk[64],
                        usec_t now, char ret_signature_hex[static 129], char **ret_error) {
        int64_t now_ms = (int64_t) (now / USEC_PER_MSEC), t, skew;
        const char *p;

        if (sodium_init() < 0)
                return -EIO;
        if (!oracle_key_belongs_to(member_pubkey_hex, member_sk) || !oracle_key_belongs_to(session_pubkey_hex, session_sk))
                return error_setf(ret_error, -EINVAL, "A secret key does not belong to its public key; not signing.");
        if (!payload)
                return error_setf(ret_error, -EPERM, "Refusing to sign an empty payload for a session connection.");

        if ((p = oracle_skip_field(payload, "claudemesh-session-attest"))) {
                p = oracle_skip_field(p, member_pubkey_hex);
                p = p ? oracle_skip_field(p, session_pubkey_hex) : NULL;
                if (!p || !oracle_parse_msec(p, &t))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: not an attestation \"" ATTEST_PREFIX
                                          "<memberPubkey>|<sessionPubkey>|<expiresAt>\" for this member and session.");
                if (!oracle_within_skew(t, now_ms + SESSION_ATTESTATION_TTL_MSEC, &skew))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: the attestation expires %lld ms off "
                                          "12 h from now; at most %d is taken.", (long long) (skew < 0 ? -skew : skew),
                                          HELLO_ORACLE_MAX_SKEW_MSEC);
                oracle_sign_hex(payload, member_sk, ret_signature_hex);
                return 0;
        }
        if ((p = oracle_skip_field(payload, "claudemesh-session-hello"))) {
                p = oracle_skip_field(p, mesh_id);
                p = p ? oracle_skip_field(p, member_pubkey_hex) : NULL;
                p = p ? oracle_skip_field(p, session_pubkey_hex) : NULL;
                if (!p || !oracle_parse_msec(p, &t))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: not a session hello \"" HELLO_PREFIX
                                          "<meshId>|<memberPubkey>|<sessionPubkey>|<timestamp>\" for this mesh, "
                                          "member and session.");
                if (!oracle_within_skew(t, now_ms, &skew))
                        return error_setf(ret_error, -EPERM, "Refusing to sign: the session hello timestamp is %lld ms "
                                          "off the daemon's clock; the broker accepts at most %d.",
                                          (long long) (skew < 0 ? -skew : skew), HELLO_ORACLE_MAX_SKEW_MSEC);
                oracle_sign_hex(payload, session_sk, ret_signature_hex);
                return 0;
        }
        return error_setf(ret_error, -EPERM, "Refusing to sign for a session connection: only an attestation \""
                          ATTEST_PREFIX "…\" or a session hello \"" HELLO_PREFIX "…\" is signed.");
}
