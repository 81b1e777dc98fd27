/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log-limit.h"
#include "tests.h"

/* A failure every 300 ms for 5 min: one line when it begins, one a minute after the last
 * while it lasts, one when it ends, which says how long and how many. */
static void test_outage(void) {
        LogLimit l = {};
        int64_t t = 1000, span;
        uint64_t failures;
        unsigned begins = 0, lasts = 0;

        ASSERT_TRUE(!log_limit_success(&l, t, &span, &failures));
        for (int i = 0; i < 1000; i++, t += 300)
                switch (log_limit_failure(&l, t)) {
                case LOG_LIMIT_BEGINS:
                        ASSERT_EQ(i, 0);
                        begins++;
                        break;
                case LOG_LIMIT_LASTS:
                        /* 60 s after the last line, at the first attempt that many 300 ms in. */
                        ASSERT_EQ(i % 200, 0);
                        ASSERT_EQ(l.failures, (uint64_t) i + 1);
                        lasts++;
                        break;
                case LOG_LIMIT_QUIET:
                        break;
                }
        ASSERT_EQ(begins, 1);
        ASSERT_EQ(lasts, 4);     /* at 60, 120, 180 and 240 s; the last attempt is at 299.7 s */
        ASSERT_TRUE(log_limit_success(&l, t, &span, &failures));
        ASSERT_EQ(span, 300000);
        ASSERT_EQ(failures, 1000);
        /* Ended: a success says nothing more, and the next failure begins a new run. */
        ASSERT_TRUE(!log_limit_success(&l, t + 1, NULL, NULL));
        ASSERT_EQ(log_limit_failure(&l, t + 2), LOG_LIMIT_BEGINS);
        ASSERT_EQ(log_limit_failure(&l, t + 3), LOG_LIMIT_QUIET);
        ASSERT_TRUE(log_limit_success(&l, t + 5, NULL, NULL));
}

/* Attempts further apart than the repeat: each one after the first is logged as lasting. */
static void test_sparse_failures(void) {
        LogLimit l = {};
        int64_t t = 7;

        ASSERT_EQ(log_limit_failure(&l, t), LOG_LIMIT_BEGINS);
        ASSERT_EQ(log_limit_failure(&l, t + LOG_LIMIT_REPEAT_MS - 1), LOG_LIMIT_QUIET);
        ASSERT_EQ(log_limit_failure(&l, t + LOG_LIMIT_REPEAT_MS), LOG_LIMIT_LASTS);
        ASSERT_EQ(log_limit_failure(&l, t + 2 * LOG_LIMIT_REPEAT_MS + 5), LOG_LIMIT_LASTS);
        ASSERT_EQ(log_limit_failure(&l, t + 3 * LOG_LIMIT_REPEAT_MS), LOG_LIMIT_QUIET);
        ASSERT_EQ(l.failures, 5);
        ASSERT_EQ(l.since_ms, t);
}

static void test_span(void) {
        char buf[LOG_LIMIT_SPAN_MAX];

        ASSERT_STREQ(log_limit_span(-5, buf), "0 s");
        ASSERT_STREQ(log_limit_span(999, buf), "0 s");
        ASSERT_STREQ(log_limit_span(59999, buf), "59 s");
        ASSERT_STREQ(log_limit_span(60000, buf), "1 min");
        ASSERT_STREQ(log_limit_span(5 * 60000 + 59000, buf), "5 min");
        ASSERT_STREQ(log_limit_span(3600000 + 5 * 60000, buf), "1 h 5 min");
        ASSERT_STREQ(log_limit_span(3 * 86400000LL + 2 * 3600000 + 59 * 60000, buf), "3 d 2 h");
        ASSERT_STREQ(log_limit_span(INT64_MAX, buf), "106751991167 d 7 h");
}

int main(void) {
        test_outage();
        test_sparse_failures();
        test_span();
        return 0;
}
