/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
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
        return s && strlen(s) == len && hex_digits(s, len, c);
}

static uint8_t hex_value(char c) {
        if (c >= '0' && c <= '9')
                return (uint8_t) (c - '0');
        if (c >= 'a' && c <= 'f')
                return (uint8_t) (c - 'a' + 10);
        return (uint8_t) (c - 'A' + 10);
}

int hex_decode(const char *s, uint8_t *ret, size_t size) {
        if (!hex_string(s, 2 * size, HEX_ANY_CASE))
                return -EINVAL;
        for (size_t i = 0; i < size; i++)
                ret[i] = (uint8_t) (hex_value(s[2 * i]) << 4 | hex_value(s[2 * i + 1]));
        return 0;
}

void hex_encode(const uint8_t *data, size_t size, char *ret) {
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < size; i++) {
                ret[2 * i] = digits[data[i] >> 4];
                ret[2 * i + 1] = digits[data[i] & 0x0f];
        }
        ret[2 * size] = '\0';
}
