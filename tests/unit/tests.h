/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Tiny test harness: assertions that stay on in every build type and say where they failed. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT_TRUE(expr)                                                                   \
        do {                                                                                \
                if (!(expr)) {                                                              \
                        fprintf(stderr, "%s:%d: %s: assertion failed: %s\n", __FILE__,      \
                                __LINE__, __func__, #expr);                                 \
                        abort();                                                            \
                }                                                                           \
        } while (0)

#define ASSERT_OK(expr)                                                                     \
        do {                                                                                \
                long _r = (long) (expr);                                                    \
                if (_r < 0) {                                                               \
                        fprintf(stderr, "%s:%d: %s: %s failed: %s\n", __FILE__, __LINE__,   \
                                __func__, #expr, strerror((int) -_r));                      \
                        abort();                                                            \
                }                                                                           \
        } while (0)

#define ASSERT_EQ(a, b)                                                                     \
        do {                                                                                \
                long long _a = (long long) (a), _b = (long long) (b);                       \
                if (_a != _b) {                                                             \
                        fprintf(stderr, "%s:%d: %s: %s == %s failed: %lld != %lld\n",       \
                                __FILE__, __LINE__, __func__, #a, #b, _a, _b);              \
                        abort();                                                            \
                }                                                                           \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                  \
        do {                                                                                \
                const char *_a = (a), *_b = (b);                                            \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                    \
                        fprintf(stderr, "%s:%d: %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__,\
                                __func__, _a ? _a : "(null)", _b ? _b : "(null)");          \
                        abort();                                                            \
                }                                                                           \
        } while (0)

/* True when haystack contains needle: for checking that an error message names something. */
#define ASSERT_CONTAINS(haystack, needle)                                                   \
        do {                                                                                \
                const char *_h = (haystack), *_n = (needle);                                \
                if (!_h || !strstr(_h, _n)) {                                               \
                        fprintf(stderr, "%s:%d: %s: \"%s\" does not contain \"%s\"\n",      \
                                __FILE__, __LINE__, __func__, _h ? _h : "(null)", _n);      \
                        abort();                                                            \
                }                                                                           \
        } while (0)

/* A private scratch directory, removed (recursively) at exit. */
char *test_tmpdir(void);
