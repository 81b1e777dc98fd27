/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Checks of hex text (keys, fingerprints, signatures) before it is decoded or compared. */

typedef enum HexCase {
        HEX_LOWER,    /* what we write, and what the broker compares as strings */
        HEX_ANY_CASE,
} HexCase;

/* The n bytes at s are all hex digits (a NUL among them is not). */
bool hex_digits(const char *s, size_t n, HexCase c);

/* s is exactly len hex digits; false for NULL. */
bool hex_string(const char *s, size_t len, HexCase c);

/* Decodes exactly 2·size hex digits (either case, then the NUL) into ret. -EINVAL on anything else. */
int hex_decode(const char *s, uint8_t *ret, size_t size);

/* Writes 2·size lowercase hex digits and a NUL into ret. */
void hex_encode(const uint8_t *data, size_t size, char *ret);
