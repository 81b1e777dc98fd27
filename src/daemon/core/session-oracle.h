/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A session's connection asks for two signatures on every connect (wire-protocol-head §2): the
 * parent attestation with the member key and the session_hello with the session's key. As with
 * the member's hello (hello-oracle.h), a compromised worker must not turn this into a signing
 * service: only exactly these two forms, for this mesh, member and session, with times the
 * broker would accept now.
 */

#include <stdint.h>

#include "time-util.h"

#define SESSION_ATTESTATION_TTL_MSEC (12LL * 3600 * 1000)

/* payload is one of
 *   "claudemesh-session-attest|<member_pubkey_hex>|<session_pubkey_hex>|<expiresAt>"
 *        expiresAt within now + 12 h ± 60 s; signed with member_sk
 *   "claudemesh-session-hello|<mesh_id>|<member_pubkey_hex>|<session_pubkey_hex>|<timestamp>"
 *        timestamp within now ± 60 s; signed with session_sk
 * times in decimal ms as hello_oracle_sign() takes them. Then ret_signature_hex = lowercase hex
 * of the detached signature. Anything else: -EPERM and a sentence in *ret_error (may be NULL);
 * -EINVAL when a secret key does not belong to its public key. */
int session_oracle_sign(const char *payload, const char *mesh_id, const char *member_pubkey_hex,
                        const uint8_t member_sk[64], const char *session_pubkey_hex, const uint8_t session_sk[64],
                        usec_t now, char ret_signature_hex[static 129], char **ret_error);
