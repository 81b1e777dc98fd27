/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/*
 * A failure that recurs for as long as its cause lasts (a database that does not answer,
 * retried every catch-up) is logged when it begins, then at most once per
 * LOG_LIMIT_REPEAT_MS while it lasts, saying for how long and how many attempts, and once
 * when it ends: an outage of an hour costs a few dozen lines, not one per attempt. Times are
 * the caller's, in milliseconds on the monotonic clock (mono_ms()).
 */
#define LOG_LIMIT_REPEAT_MS 60000

typedef struct LogLimit {
        uint64_t failures;      /* in the run, the first included; 0: no run */
        int64_t since_ms;       /* the run's first failure */
        int64_t logged_ms;      /* when the run was last logged */
} LogLimit;

typedef enum LogLimitVerdict {
        LOG_LIMIT_QUIET,        /* log nothing */
        LOG_LIMIT_BEGINS,       /* the run's first failure: what fails and what to do */
        LOG_LIMIT_LASTS,        /* LOG_LIMIT_REPEAT_MS since the last line: how long, how many */
} LogLimitVerdict;

/* A failure at now_ms: whether and what to log. */
LogLimitVerdict log_limit_failure(LogLimit *l, int64_t now_ms);

/* A success at now_ms. True when it ends a run of failures, to be logged once; then
 * *ret_span_ms is how long the run lasted and *ret_failures its failures (either may be NULL). */
bool log_limit_success(LogLimit *l, int64_t now_ms, int64_t *ret_span_ms, uint64_t *ret_failures);

/* The span for a log line, rounded down: "45 s", "5 min", "2 h 5 min", "3 d 2 h". */
#define LOG_LIMIT_SPAN_MAX 32
const char *log_limit_span(int64_t ms, char buf[static LOG_LIMIT_SPAN_MAX]);
