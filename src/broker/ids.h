/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define BROKER_ID_LEN 32      /* ids the broker mints: 32 chars of [0-9A-Za-z], as upstream */
#define UUID_STR_LEN  36
#define PUBKEY_HEX_LEN 64
#define SIGNATURE_HEX_LEN 128

#define BROKER_ID_TIME_LEN 8  /* 62^8 ms is over 6,000 years */

/* Fills ret with a fresh 32-char base62 id and a terminating NUL: 8 digits of the wall clock in
 * milliseconds, then 24 random ones (143 bits), so ids sort by creation time. */
void broker_id_generate(char ret[static BROKER_ID_LEN + 1]);

/* Fills ret with a random (version 4) UUID in its 36-char text form. */
void uuid_generate_string(char ret[static UUID_STR_LEN + 1]);

/* True if s is exactly n hex digits; lowercase_only rejects A-F. */
bool is_hex_string(const char *s, size_t n, bool lowercase_only);

/* Decodes exactly 2·size hex digits (either case) into ret. -EINVAL on anything else. */
int hex_decode(const char *s, uint8_t *ret, size_t size);

/* Writes 2·size lowercase hex digits and a NUL into ret. */
void hex_encode(const uint8_t *data, size_t size, char *ret);

/* Milliseconds since the epoch on the wall clock: the unit of the wire's timestamps. */
int64_t now_ms(void);

/* Milliseconds on the monotonic clock: for timeouts, leases and grace periods. */
int64_t mono_ms(void);
