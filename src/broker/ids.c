/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"
#include "time-util.h"

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Randomness for ids comes from a pool refilled 4 KiB at a time: one getrandom() per
 * hundred-odd ids instead of one per id (ids are minted per message). */
static uint8_t pool[4096];
static size_t pool_used = sizeof pool;

static uint8_t random_byte(void) {
        if (pool_used == sizeof pool) {
                randombytes_buf(pool, sizeof pool);
                pool_used = 0;
        }
        return pool[pool_used++];
}

void broker_id_generate(char ret[static BROKER_ID_LEN + 1]) {
        uint64_t ms = (uint64_t) now_ms();
        size_t n = BROKER_ID_TIME_LEN;

        /* The time prefix, most significant digit first: base62 in this alphabet sorts like
         * the number, so ids sort by creation and the indexes they key grow at one end. */
        for (size_t i = BROKER_ID_TIME_LEN; i > 0; i--) {
                ret[i - 1] = base62[ms % 62];
                ms /= 62;
        }
        /* Unbiased: bytes at or above 248 = 4·62 are rejected. */
        while (n < BROKER_ID_LEN) {
                uint8_t b = random_byte();
                if (b < 248)
                        ret[n++] = base62[b % 62];
        }
        ret[BROKER_ID_LEN] = '\0';
}

void uuid_generate_string(char ret[static UUID_STR_LEN + 1]) {
        uint8_t b[16];

        for (size_t i = 0; i < sizeof b; i++)
                b[i] = random_byte();
        b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
        b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
        snprintf(ret, UUID_STR_LEN + 1,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
