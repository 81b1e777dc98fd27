/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The worker holds no secret key, so it asks the daemon to sign its hello (wire-protocol §2.1).
 * A compromised worker must not be able to turn that into a general signing service for the
 * member key: the daemon signs only the exact hello string of its own mesh and member, with a
 * timestamp the broker would accept now.
 */

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "time-util.h"

/* Broker's HELLO_SKEW_MS. */
#define HELLO_ORACLE_MAX_SKEW_MSEC 60000
/* 16 digits of milliseconds reach the year 318857; more only serves to confuse parsers. */
#define HELLO_ORACLE_TIMESTAMP_MAX_DIGITS 16

/* payload must be exactly "<mesh_id>|<member_id>|<pubkey_hex>|<timestamp>", timestamp a decimal
 * integer of milliseconds since the epoch (digits only, no leading zeros, at most 16 digits)
 * within ±60 s of now (CLOCK_REALTIME). Then ret_signature_hex = lowercase hex of
 * crypto_sign_detached(payload, member_sk). Anything else: -EPERM and a sentence in *ret_error
 * (may be NULL); -EINVAL and a sentence when member_sk does not belong to pubkey_hex. The
 * payload ends at its first NUL: exactly the bytes checked are the bytes signed. */
int hello_oracle_sign(const char *payload, const char *mesh_id, const char *member_id, const char *pubkey_hex,
                      const uint8_t member_sk[64], usec_t now, char ret_signature_hex[static 129], char **ret_error);

/* Pieces both oracles (this one and session-oracle.h) check with. */

/* The text after "field|" at p, or NULL when p does not start with it. */
const char *oracle_skip_field(const char *p, const char *field);
/* pubkey_hex is the lowercase or uppercase hex of the public half of sk. */
bool oracle_key_belongs_to(const char *pubkey_hex, const uint8_t sk[static crypto_sign_SECRETKEYBYTES]);
/* Digits only, no leading zero, at most HELLO_ORACLE_TIMESTAMP_MAX_DIGITS. */
bool oracle_parse_msec(const char *s, int64_t *ret);
/* t - expected in *ret_skew; true when that is within ±HELLO_ORACLE_MAX_SKEW_MSEC. */
bool oracle_within_skew(int64_t t, int64_t expected, int64_t *ret_skew);
/* ret_signature_hex = lowercase hex of crypto_sign_detached(payload, sk). */
void oracle_sign_hex(const char *payload, const uint8_t sk[static crypto_sign_SECRETKEYBYTES],
                     char ret_signature_hex[static 129]);
