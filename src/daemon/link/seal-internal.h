/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "seal.h"

/* seal_direct() with a given nonce instead of a random one: for the interop vectors only. A
 * nonce must never be used twice with the same pair of keys. */
int seal_direct_with_nonce(const void *body, size_t size, const char *recipient_pubkey_hex,
                           const uint8_t sender_ed25519_sk[64], const uint8_t nonce[static 24],
                           char **ret_nonce_b64, char **ret_ciphertext_b64);
