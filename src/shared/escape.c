/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "macro.h"

/* The longest unit: "&amp;", "\uNNNN" or four bytes of one code point. */
#define UNIT_MAX 8

bool unichar_is_unsafe(uint32_t c) {
        return (c >= 0x80 && c <= 0x9F) || c == 0x061C || c == 0x200E || c == 0x200F ||
               (c >= 0x2028 && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

bool string_has_cc(const char *s) {
        assert(s);

        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

size_t utf8_decode(const char *s, size_t n, uint32_t *ret) {
        const unsigned char *p = (const unsigned char *) s;
        unsigned char lo = 0x80, hi = 0xBF;
        size_t len;
        uint32_t c;

        assert(s && n > 0 && ret);

        if (p[0] < 0x80) {
                *ret = p[0];
                return 1;
        }
        if (p[0] >= 0xC2 && p[0] <= 0xDF) {
                len = 2;
                c = p[0] & 0x1F;
        } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
                len = 3;
                c = p[0] & 0x0F;
                if (p[0] == 0xE0)
                        lo = 0xA0;      /* overlong */
                else if (p[0] == 0xED)
                        hi = 0x9F;      /* surrogates */
        } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
                len = 4;
                c = p[0] & 0x07;
                if (p[0] == 0xF0)
                        lo = 0x90;      /* overlong */
                else if (p[0] == 0xF4)
                        hi = 0x8F;      /* above U+10FFFF */
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xBF))
                        return 0;
                c = c << 6 | (p[i] & 0x3F);
        }
        *ret = c;
        return len;
}

/* Writes the shown form of the character at s[*i] to out, moves *i past it; returns its length
 * in bytes, *ret_width its columns. */
static size_t escape_unit(const char *s, size_t n, size_t *i, EscapeFlags flags, char out[static UNIT_MAX],
                          size_t *ret_width) {
        unsigned char b = (unsigned char) s[*i];
        uint32_t c;
        size_t len;
        int k;

        if (flags & ESCAPE_MARKUP) {
                const char *entity = b == '&' ? "&amp;" : b == '<' ? "&lt;" : b == '>' ? "&gt;" : NULL;

                if (entity) {
                        (*i)++;
                        *ret_width = 1;
                        return (size_t) snprintf(out, UNIT_MAX, "%s", entity);
                }
        }
        if (b == '\n' || b == '\t' || b == '\r') {
                (*i)++;
                *ret_width = 2;
                return (size_t) snprintf(out, UNIT_MAX, "\\%c", b == '\n' ? 'n' : b == '\t' ? 't' : 'r');
        }
        if (b < 0x20 || b == 0x7F) {
                (*i)++;
                *ret_width = 4;
                return (size_t) snprintf(out, UNIT_MAX, "\\x%02x", b);
        }
        len = utf8_decode(s + *i, n - *i, &c);
        if (len == 0) {
                (*i)++;
                *ret_width = 4;
                return (size_t) snprintf(out, UNIT_MAX, "\\x%02x", b);
        }
        if (unichar_is_unsafe(c)) {
                *i += len;
                k = snprintf(out, UNIT_MAX, "\\u%04x", (unsigned) c);
                *ret_width = (size_t) k;
                return (size_t) k;
        }
        memcpy(out, s + *i, len);
        *i += len;
        *ret_width = 1;
        return len;
}

char *escape_text(const char *s, size_t n, size_t max_width, EscapeFlags flags) {
        size_t end = n, width = 0, w, len, o = 0;
        char unit[UNIT_MAX], *r;
        bool cut = false;

        assert(s || n == 0);
        assert(max_width > 0);

        if (flags & ESCAPE_FIRST_LINE) {
                const char *nl = memchr(s, '\n', n);

                if (nl) {
                        end = (size_t) (nl - s);
                        cut = true;
                }
        }
        /* Does all of it fit? Else keep one column for the "…". */
        for (size_t i = 0; !cut && i < end;) {
                escape_unit(s, end, &i, flags, unit, &w);
                width += w;
                cut = width > max_width;
        }
        if (end > (SIZE_MAX - sizeof("…")) / UNIT_MAX)
                return NULL;
        r = malloc(end * UNIT_MAX + sizeof("…"));
        if (!r)
                return NULL;
        width = 0;
        for (size_t i = 0; i < end;) {
                len = escape_unit(s, end, &i, flags, unit, &w);
                if (cut && max_width != SIZE_MAX && width + w + 1 > max_width)
                        break;
                memcpy(r + o, unit, len);
                o += len;
                width += w;
        }
        if (cut) {
                memcpy(r + o, "…", strlen("…"));
                o += strlen("…");
        }
        r[o] = '\0';
        return r;
}
