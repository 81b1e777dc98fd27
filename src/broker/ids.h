/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hex-util.h"
#include "macro.h"
#include "time-util.h"

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
