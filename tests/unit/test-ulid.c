/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "macro.h"
#include "tests.h"
#include "ulid.h"

/* 2027-01-15T08:00:00Z */
#define NOW ((usec_t) 1800000000 * USEC_PER_SEC)

static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The 48-bit millisecond timestamp in the first 10 characters. */
static uint64_t decode_time(const char *id) {
        uint64_t v = 0;

        for (size_t i = 0; i < 10; i++)
                v = v << 5 | (uint64_t) (strchr(alphabet, id[i]) - alphabet);
        return v;
}

static void test_format(void) {
        char id[ULID_MAX];

        ASSERT_OK(ulid_new(NOW, id));
        ASSERT_EQ(strlen(id), ULID_LENGTH);
        ASSERT_TRUE(ulid_is_valid(id));
        for (size_t i = 0; i < ULID_LENGTH; i++)
                ASSERT_TRUE(strchr(alphabet, id[i]) != NULL);
        ASSERT_EQ(decode_time(id), NOW / USEC_PER_MSEC);

        /* Known time prefixes: 0 and the largest 48-bit value. */
        ASSERT_OK(ulid_new(0, id));
        ASSERT_TRUE(strneq(id, "0000000000", 10));
        ASSERT_OK(ulid_new(((usec_t) 1 << 48) * USEC_PER_MSEC - 1, id));
        ASSERT_TRUE(strneq(id, "7ZZZZZZZZZ", 10));
        ASSERT_EQ(ulid_new(((usec_t) 1 << 48) * USEC_PER_MSEC, id), -ERANGE);
}

static void test_is_valid(void) {
        ASSERT_TRUE(ulid_is_valid("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
        ASSERT_TRUE(ulid_is_valid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        ASSERT_TRUE(!ulid_is_valid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"));  /* beyond 128 bits */
        ASSERT_TRUE(!ulid_is_valid("01ARZ3NDEKTSV4RRFFQ69G5FA"));   /* 25 */
        ASSERT_TRUE(!ulid_is_valid("01ARZ3NDEKTSV4RRFFQ69G5FAVV")); /* 27 */
        ASSERT_TRUE(!ulid_is_valid("01ARZ3NDEKTSV4RRFFQ69G5FAI"));  /* I is not Crockford */
        ASSERT_TRUE(!ulid_is_valid("01ARZ3NDEKTSV4RRFFQ69G5FAu"));  /* lower case */
        ASSERT_TRUE(!ulid_is_valid(""));
        ASSERT_TRUE(!ulid_is_valid(NULL));
}

static void test_ordering(void) {
        char prev[ULID_MAX], id[ULID_MAX];

        /* Later milliseconds sort later. */
        ASSERT_OK(ulid_new(NOW, prev));
        ASSERT_OK(ulid_new(NOW + USEC_PER_MSEC, id));
        ASSERT_TRUE(strcmp(prev, id) < 0);
        ASSERT_OK(ulid_new(NOW + 1000 * USEC_PER_SEC, prev));
        ASSERT_TRUE(strcmp(id, prev) < 0);

        /* Within one millisecond, ids still increase and share the time prefix. */
        ASSERT_OK(ulid_new(NOW, prev));
        for (unsigned i = 0; i < 10000; i++) {
                ASSERT_OK(ulid_new(NOW + 999, id));
                ASSERT_TRUE(strcmp(prev, id) < 0);
                ASSERT_TRUE(strneq(prev, id, 10));
                memcpy(prev, id, sizeof id);
        }
}

static void test_random_part(void) {
        char a[ULID_MAX], b[ULID_MAX];

        /* Different milliseconds draw fresh randomness. */
        ASSERT_OK(ulid_new(NOW, a));
        ASSERT_OK(ulid_new(NOW + 5 * USEC_PER_MSEC, b));
        ASSERT_TRUE(memcmp(a + 10, b + 10, 16) != 0);
}

int main(void) {
        test_format();
        test_is_valid();
        test_ordering();
        test_random_part();
        return 0;
}
