/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Checks of hex text (keys, fingerprints, signatures) before it is decoded or compared. */

typedef enum HexCase {
        HEX_LOWER,    /* what we write, and what the broker compares as strings */
        HEX_ANY_CASE,
} HexCase;

/* The n bytes at s are all hex digits (a NUL among them is not). */
bool hex_digits(const char *s, size_t n, HexCase c);

/* s is exactly len hex digits. */
bool hex_string(const char *s, size_t len, HexCase c);
