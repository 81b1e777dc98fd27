/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "ulid.h"

#define ULID_TIME_CHARS 10
#define ULID_RANDOM_BYTES 10

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The last id minted by this process, so that ids minted within one millisecond still sort in
 * the order they were made: the random part is incremented instead of redrawn. */
static uint64_t last_ms;
static uint8_t last_random[ULID_RANDOM_BYTES];

static bool increment(uint8_t r[static ULID_RANDOM_BYTES]) {
        for (size_t i = ULID_RANDOM_BYTES; i > 0; i--)
                if (++r[i - 1] != 0)
                        return true;
        return false;
}

int ulid_new(usec_t now, char ret[static ULID_MAX]) {
        uint64_t ms = now / USEC_PER_MSEC;
        uint8_t r[ULID_RANDOM_BYTES];

        if (ms >> 48)
                return -ERANGE;
        if (sodium_init() < 0)
                return -EIO;

        memcpy(r, last_random, sizeof r);
        /* On the (2^80-to-one) overflow of the random part, start afresh rather than fail. */
        if (ms != last_ms || !increment(r))
                randombytes_buf(r, sizeof r);
        last_ms = ms;
        memcpy(last_random, r, sizeof r);

        for (size_t i = ULID_TIME_CHARS; i > 0; i--) {
                ret[i - 1] = crockford[ms & 31];
                ms >>= 5;
        }
        /* 80 bits are exactly 16 characters of 5 bits: take them 40 bits (5 bytes) at a time. */
        for (size_t half = 0; half < 2; half++) {
                uint64_t v = 0;

                for (size_t i = 0; i < 5; i++)
                        v = v << 8 | r[half * 5 + i];
                for (size_t i = 8; i > 0; i--) {
                        ret[ULID_TIME_CHARS + half * 8 + i - 1] = crockford[v & 31];
                        v >>= 5;
                }
        }
        ret[ULID_LENGTH] = 0;
        return 0;
}

bool ulid_is_valid(const char *s) {
        if (!s || strlen(s) != ULID_LENGTH)
                return false;
        /* 26 characters carry 130 bits: the first one may only use the low 3. */
        if (s[0] > '7')
                return false;
        for (size_t i = 0; i < ULID_LENGTH; i++)
                if (!strchr(crockford, s[i]))
                        return false;
        return true;
}
