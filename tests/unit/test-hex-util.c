/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include "hex-util.h"
#include "macro.h"
#include "tests.h"

static void test_checks(void) {
        ASSERT_TRUE(hex_string("00ff", 4, HEX_LOWER));
        ASSERT_TRUE(!hex_string("00FF", 4, HEX_LOWER));
        ASSERT_TRUE(hex_string("00FF", 4, HEX_ANY_CASE));
        ASSERT_TRUE(!hex_string("00ff0", 4, HEX_ANY_CASE));   /* longer */
        ASSERT_TRUE(!hex_string("00f", 4, HEX_ANY_CASE));     /* shorter */
        ASSERT_TRUE(!hex_string("00fg", 4, HEX_ANY_CASE));
        ASSERT_TRUE(!hex_string(NULL, 4, HEX_ANY_CASE));
        /* a NUL inside the span is not a digit */
        ASSERT_TRUE(!hex_digits("0\0ff", 4, HEX_ANY_CASE));
}

static void test_round_trip(void) {
        const uint8_t bytes[] = { 0x00, 0x7f, 0x80, 0xab, 0xff };
        uint8_t back[sizeof bytes];
        char text[2 * sizeof bytes + 1];

        hex_encode(bytes, sizeof bytes, text);
        ASSERT_TRUE(streq(text, "007f80abff"));
        ASSERT_OK(hex_decode(text, back, sizeof back));
        ASSERT_TRUE(memcmp(bytes, back, sizeof bytes) == 0);
        ASSERT_OK(hex_decode("007F80ABFF", back, sizeof back));
        ASSERT_TRUE(memcmp(bytes, back, sizeof bytes) == 0);
        ASSERT_EQ(hex_decode("007f80abf", back, sizeof back), -EINVAL);
        ASSERT_EQ(hex_decode("007f80abffff", back, sizeof back), -EINVAL);
        ASSERT_EQ(hex_decode("zz7f80abff", back, sizeof back), -EINVAL);
}

int main(void) {
        test_checks();
        test_round_trip();
        return 0;
}
