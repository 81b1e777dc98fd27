/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "time-util.h"

usec_t now_usec(clockid_t clock) {
        struct timespec ts;
        clock_gettime(clock, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

int format_iso8601(usec_t t, char buf[static ISO8601_MAX]) {
        time_t sec = (time_t) (t / USEC_PER_SEC);
        struct tm tm;

        if (!gmtime_r(&sec, &tm))
                return -EOVERFLOW;
        if (tm.tm_year + 1900 > 9999)
                return -EOVERFLOW;
        /* The modulos are no-ops after the range check; they let the compiler see the width. */
        snprintf(buf, ISO8601_MAX, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
                 (unsigned) (tm.tm_year + 1900) % 10000u, (unsigned) (tm.tm_mon + 1) % 100u,
                 (unsigned) tm.tm_mday % 100u, (unsigned) tm.tm_hour % 100u, (unsigned) tm.tm_min % 100u,
                 (unsigned) tm.tm_sec % 100u, (unsigned) ((t % USEC_PER_SEC) / USEC_PER_MSEC) % 1000u);
        return 0;
}

static int read_digits(const char **p, int n, int *ret) {
        int v = 0;
        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char) (*p)[i]))
                        return -EINVAL;
                v = v * 10 + ((*p)[i] - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int expect(const char **p, char c) {
        if (**p != c)
                return -EINVAL;
        (*p)++;
        return 0;
}

int parse_iso8601(const char *s, usec_t *ret) {
        static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
        int year, mon, day, hour, min, sec, offset = 0;
        usec_t frac = 0;
        const char *p = s;
        struct tm tm = { 0 };

        if (read_digits(&p, 4, &year) < 0 || expect(&p, '-') < 0 || read_digits(&p, 2, &mon) < 0 ||
            expect(&p, '-') < 0 || read_digits(&p, 2, &day) < 0 || expect(&p, 'T') < 0 ||
            read_digits(&p, 2, &hour) < 0 || expect(&p, ':') < 0 || read_digits(&p, 2, &min) < 0 ||
            expect(&p, ':') < 0 || read_digits(&p, 2, &sec) < 0)
                return -EINVAL;
        if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 ||
            min > 59 || sec > 60)
                return -EINVAL;

        if (*p == '.') {
                usec_t scale = USEC_PER_SEC;
                p++;
                if (!isdigit((unsigned char) *p))
                        return -EINVAL;
                for (; isdigit((unsigned char) *p); p++) {
                        scale /= 10;
                        frac += (usec_t) (*p - '0') * scale;
                }
        }

        if (*p == 'Z')
                p++;
        else if (*p == '+' || *p == '-') {
                int sign = *p == '-' ? -1 : 1, oh, om;
                p++;
                if (read_digits(&p, 2, &oh) < 0 || expect(&p, ':') < 0 || read_digits(&p, 2, &om) < 0 ||
                    oh > 23 || om > 59)
                        return -EINVAL;
                offset = sign * (oh * 3600 + om * 60);
        } else
                return -EINVAL;
        if (*p != '\0')
                return -EINVAL;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        time_t t = timegm(&tm);
        if (t == (time_t) -1 || t - offset < 0)
                return -EINVAL;
        /* timegm() normalizes 31 April to 1 May; a date it had to move was not a real date. */
        if (tm.tm_mday != day)
                return -EINVAL;

        *ret = (usec_t) (t - offset) * USEC_PER_SEC + frac;
        return 0;
}

int64_t now_ms(void) {
        return (int64_t) (now_usec(CLOCK_REALTIME) / USEC_PER_MSEC);
}

int64_t mono_ms(void) {
        return (int64_t) (now_usec(CLOCK_MONOTONIC) / USEC_PER_MSEC);
}
