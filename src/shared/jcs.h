/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

/*
 * RFC 8785 JSON Canonicalization Scheme (JCS) over json-c values: object members sorted by the
 * UTF-16 code units of their names, numbers in the ECMAScript Number.prototype.toString form
 * (every number is an IEEE 754 double, so integers beyond 2^53 round), strings escaped only
 * where JSON requires it, no whitespace. The output is what the reference implementation
 * (JavaScript `canonicalize`) writes, byte for byte.
 *
 * All functions return 0 on success, -ENOMEM, or -EBADMSG (text that is not strict JSON or that
 * JCS cannot represent) / -EINVAL (a json-c value that JCS cannot represent) together with a
 * sentence in *ret_error (see macro.h).
 */

/* Deeper nesting is refused: it keeps the recursion bounded for hostile input. */
#define JCS_MAX_DEPTH 128

/* Large enough for every finite double in ECMAScript form, plus the NUL. */
#define JCS_NUMBER_MAX 32

/* Parses one strict RFC 8259 JSON text of `size` bytes (need not be NUL-terminated): only
 * whitespace around the value; no duplicate object member names; valid UTF-8 and no lone
 * surrogate escapes; no number that overflows a double (1e400). Integer literals that fit
 * int64 become json_type_int, other numbers json_type_double. JSON null is returned as NULL.
 * Object member names containing U+0000 are refused (json-c keys are C strings). */
int jcs_parse(const char *text, size_t size, struct json_object **ret, char **ret_error);

/* The canonical form of v (NULL = JSON null) as a NUL-terminated malloc'd string of
 * *ret_size bytes (ret_size may be NULL). Refuses NaN/Infinity, strings or names that are not
 * valid UTF-8, and nesting beyond JCS_MAX_DEPTH. */
int jcs_canonicalize(struct json_object *v, char **ret, size_t *ret_size, char **ret_error);

/* jcs_parse() followed by jcs_canonicalize(). */
int jcs_canonicalize_text(const char *text, size_t size, char **ret, size_t *ret_size, char **ret_error);

/* Writes the ECMAScript Number.prototype.toString form of d (shortest digits that read back
 * as d; plain notation for 1e-6 <= |d| < 1e21, else "1.5e+21" / "1e-7" style; -0 is "0").
 * Returns the length, -EINVAL for NaN or ±Infinity, -ENOMEM if no C locale can be had. */
int jcs_format_number(double d, char buf[static JCS_NUMBER_MAX]);

/* True when s[0..size) is well-formed UTF-8 (no overlong forms, surrogates or code points above
 * U+10FFFF). Otherwise, if ret_offset is given, stores the offset of the first bad byte. */
bool jcs_utf8_is_valid(const char *s, size_t size, size_t *ret_offset);
