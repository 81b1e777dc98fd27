/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Text from peers (bodies, names, summaries, topics, error details) shown to a person: nothing in
 * it may act on the terminal or the desktop, or make the text read differently from what it is.
 */

typedef enum EscapeFlags {
        /* Stop at the first newline and mark the rest with "…": one-line views of a body. */
        ESCAPE_FIRST_LINE = 1 << 0,
        /* Also & < > as entities: notification bodies, which servers read as markup. */
        ESCAPE_MARKUP = 1 << 1,
} EscapeFlags;

/* Code points shown escaped although valid: C1 controls, and the invisible bidirectional marks,
 * overrides and isolates (U+061C, U+200E/F, U+202A–E, U+2066–9) that reorder what follows, and
 * U+2028/9, which some programs treat as line breaks. */
bool unichar_is_unsafe(uint32_t c);

/* Whether s holds an ASCII control character (below 0x20, or DEL). */
bool string_has_cc(const char *s);

/* Decodes the code point at s (n > 0 bytes available): its length, or 0 if s does not start with
 * well-formed UTF-8 (overlong forms, surrogates and code points above U+10FFFF are not). */
size_t utf8_decode(const char *s, size_t n, uint32_t *ret);

/*
 * The n bytes at s (NULs included) as valid UTF-8 a terminal only prints, like systemd's
 * utf8_escape_non_printable(): \n, \t and \r as such, other C0 controls, DEL and bytes that are
 * not UTF-8 as \xNN, unichar_is_unsafe() code points as \uNNNN. Backslashes stay as they are, so
 * escaping twice changes nothing. At most max_width columns (SIZE_MAX: no limit; each code point
 * and each character of an escape counts one), a cut marked "…". malloc'd, NULL on OOM.
 */
char *escape_text(const char *s, size_t n, size_t max_width, EscapeFlags flags);
