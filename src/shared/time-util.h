/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <time.h>

typedef uint64_t usec_t;

#define USEC_PER_SEC  ((usec_t) 1000000ULL)
#define USEC_PER_MSEC ((usec_t) 1000ULL)
#define ISO8601_MAX   sizeof("2026-05-03T19:24:32.123Z")

usec_t now_usec(clockid_t clock);

/* Milliseconds since the epoch on the wall clock: the unit of the wire's timestamps. */
int64_t now_ms(void);

/* Milliseconds on the monotonic clock: for timeouts, leases and grace periods. */
int64_t mono_ms(void);

/* "2026-05-03T19:24:32.123Z": UTC, millisecond precision, the form JavaScript's
 * Date.prototype.toISOString() writes (and so the upstream CLI's files hold). */
int format_iso8601(usec_t t, char buf[static ISO8601_MAX]);

/* Accepts "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)". -EINVAL on anything else. */
int parse_iso8601(const char *s, usec_t *ret);
