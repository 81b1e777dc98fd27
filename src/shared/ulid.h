/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "time-util.h"

/* ULIDs (https://github.com/ulid/spec): 26 Crockford base32 characters, a 48-bit millisecond
 * timestamp followed by 80 random bits, so ids sort by creation time as plain strings. */

#define ULID_LENGTH 26
#define ULID_MAX (ULID_LENGTH + 1)

/* Writes a new ULID for the wall-clock time now (µs). Within one millisecond the ids of this
 * process increase strictly (the state for that is per process and not locked: one thread). -ERANGE when now does not fit 48 bits of milliseconds, -EIO when
 * libsodium cannot be initialized. */
int ulid_new(usec_t now, char ret[static ULID_MAX]);

/* True for exactly 26 characters of the upper-case Crockford alphabet whose value fits 128 bits. */
bool ulid_is_valid(const char *s);
