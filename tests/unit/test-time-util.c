/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "tests.h"
#include "time-util.h"

static void test_format_roundtrip(void) {
        char buf[ISO8601_MAX];
        usec_t t = 1777836272123000ULL, back;

        ASSERT_OK(format_iso8601(t, buf));
        ASSERT_STREQ(buf, "2026-05-03T19:24:32.123Z");
        ASSERT_OK(parse_iso8601(buf, &back));
        ASSERT_EQ(back, t);
}

static void test_parse_forms(void) {
        usec_t t;

        ASSERT_OK(parse_iso8601("1970-01-01T00:00:00Z", &t));
        ASSERT_EQ(t, 0);
        ASSERT_OK(parse_iso8601("2026-05-03T21:24:32.5+02:00", &t));
        ASSERT_EQ(t, 1777836272500000ULL);
        ASSERT_OK(parse_iso8601("2026-05-03T19:24:32.123456Z", &t));
        ASSERT_EQ(t % 1000000, 123456);
        ASSERT_OK(parse_iso8601("2024-02-29T00:00:00Z", &t));
}

static void test_parse_rejects(void) {
        static const char *const bad[] = {
                "", "2026-05-03", "2026-05-03T19:24:32", "2026-13-01T00:00:00Z",
                "2026-04-31T00:00:00Z", "2025-02-29T00:00:00Z", "2026-05-03T24:00:00Z",
                "2026-05-03T19:24:32.Z", "2026-05-03T19:24:32Zjunk", "2026-05-03 19:24:32Z",
                "1969-12-31T23:59:59Z", "2026-05-03T19:24:32+0200", "+2026-05-03T19:24:32Z",
        };
        usec_t t;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                if (parse_iso8601(bad[i], &t) != -EINVAL) {
                        fprintf(stderr, "accepted bad timestamp \"%s\"\n", bad[i]);
                        abort();
                }
}

int main(void) {
        test_format_roundtrip();
        test_parse_forms();
        test_parse_rejects();
        return 0;
}
