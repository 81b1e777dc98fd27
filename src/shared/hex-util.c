/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "hex-util.h"

bool hex_digits(const char *s, size_t n, HexCase c) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                      (c == HEX_ANY_CASE && s[i] >= 'A' && s[i] <= 'F')))
                        return false;
        return true;
}

bool hex_string(const char *s, size_t len, HexCase c) {
        return strlen(s) == len && hex_digits(s, len, c);
}
