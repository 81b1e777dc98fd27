/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Message bodies on the wire (wire-protocol §4.1, §4.2), the way the upstream CLI and daemon
 * do it with libsodium, so that we interoperate with them:
 *
 *   DM          crypto_box_easy(body, nonce, pk_to_curve25519(recipient ed25519 pk),
 *               sk_to_curve25519(sender ed25519 sk)); a random 24-byte nonce.
 *   multicast   (broadcast, group, v1 topic) ciphertext = base64(body), a random nonce that
 *               receivers ignore.
 *
 * Nonce and ciphertext are standard base64 with padding. The push does not say which of the two
 * a message is, so the receiver tries to open it and falls back to plaintext.
 */

#include <stddef.h>
#include <stdint.h>

#include "keypair-archive.h"

/* Seals body (size bytes of UTF-8) to recipient_pubkey_hex (64 hex digits, an ed25519 session or
 * member key) with the sender's ed25519 secret key, which must be the one whose public key the
 * broker reports as senderPubkey. -EINVAL when the recipient is not 64 hex digits or not a
 * usable curve point, -ENOMEM. */
int seal_direct(const void *body, size_t size, const char *recipient_pubkey_hex, const uint8_t sender_ed25519_sk[64],
                char **ret_nonce_b64, char **ret_ciphertext_b64);

/* The multicast form: ciphertext = base64(body), nonce = 24 random bytes. -ENOMEM. */
int seal_plain(const void *body, size_t size, char **ret_nonce_b64, char **ret_ciphertext_b64);

typedef enum OpenedWith {
        OPENED_SESSION_KEY,
        OPENED_MEMBER_KEY,
        OPENED_ARCHIVED_KEY,
        OPENED_PLAINTEXT,
} OpenedWith;

/* Opens the nonce and ciphertext of a push from sender_pubkey_hex. The box is tried with
 * session_sk, then member_sk (ed25519, either may be NULL), then each x25519 key of archive (may
 * be NULL); when none opens it, the base64-decoded ciphertext is taken as a plaintext post if it
 * is valid UTF-8. A sender that is not 64 hex digits ("system", "webhook:…"), an empty nonce or
 * one that is not base64 of 24 bytes goes straight to the plaintext path.
 * On success *ret_body is malloc'd, ret_size (may be NULL) bytes of valid UTF-8 plus a NUL.
 * -EBADMSG: the ciphertext is not base64, or the result is not UTF-8 (an unopenable DM: count
 * and log it, never store it). -EINVAL for a NULL string, -ENOMEM. */
int open_push(const char *sender_pubkey_hex, const char *nonce_b64, const char *ciphertext_b64,
              const uint8_t session_sk[64], const uint8_t member_sk[64], const KeypairArchive *archive,
              char **ret_body, size_t *ret_size, OpenedWith *ret_how);
