/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>

#include "log-limit.h"

LogLimitVerdict log_limit_failure(LogLimit *l, int64_t now_ms) {
        assert(l);

        l->failures++;
        if (l->failures == 1) {
                l->since_ms = now_ms;
                l->logged_ms = now_ms;
                return LOG_LIMIT_BEGINS;
        }
        if (now_ms - l->logged_ms < LOG_LIMIT_REPEAT_MS)
                return LOG_LIMIT_QUIET;
        l->logged_ms = now_ms;
        return LOG_LIMIT_LASTS;
}

bool log_limit_success(LogLimit *l, int64_t now_ms, int64_t *ret_span_ms, uint64_t *ret_failures) {
        assert(l);

        if (l->failures == 0)
                return false;
        if (ret_span_ms)
                *ret_span_ms = now_ms > l->since_ms ? now_ms - l->since_ms : 0;
        if (ret_failures)
                *ret_failures = l->failures;
        *l = (LogLimit) {};
        return true;
}

const char *log_limit_span(int64_t ms, char buf[static LOG_LIMIT_SPAN_MAX]) {
        int64_t s = ms > 0 ? ms / 1000 : 0;

        if (s < 60)
                snprintf(buf, LOG_LIMIT_SPAN_MAX, "%" PRId64 " s", s);
        else if (s < 3600)
                snprintf(buf, LOG_LIMIT_SPAN_MAX, "%" PRId64 " min", s / 60);
        else if (s < 86400)
                snprintf(buf, LOG_LIMIT_SPAN_MAX, "%" PRId64 " h %" PRId64 " min", s / 3600, s % 3600 / 60);
        else
                snprintf(buf, LOG_LIMIT_SPAN_MAX, "%" PRId64 " d %" PRId64 " h", s / 86400, s % 86400 / 3600);
        return buf;
}
