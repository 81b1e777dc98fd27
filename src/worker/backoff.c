/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sys/random.h>
#include <time.h>

#include "backoff.h"
#include "macro.h"

static const uint64_t caps_ms[] = { 1000, 2000, 4000, 8000, 16000, 30000 };

uint64_t backoff_cap_ms(unsigned attempt) {
        return caps_ms[attempt < ELEMENTSOF(caps_ms) ? attempt : ELEMENTSOF(caps_ms) - 1];
}

uint64_t backoff_delay_ms(unsigned attempt, uint32_t random) {
        return (uint64_t) random % backoff_cap_ms(attempt);
}

uint32_t backoff_random(void) {
        uint32_t r;
        struct timespec ts;

        /* GRND_NONBLOCK: never stall the loop on an unseeded pool. The clock is a poor but
         * harmless fallback: it only has to spread reconnects, not be secret. */
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t) sizeof r)
                return r;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint32_t) ts.tv_nsec ^ (uint32_t) ts.tv_sec;
}
