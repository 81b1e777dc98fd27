/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>

#include "escape.h"
#include "macro.h"
#include "tests.h"

static char *esc(const char *s, size_t max_width, EscapeFlags flags) {
        return escape_text(s, strlen(s), max_width, flags);
}

#define ASSERT_ESCAPES(in, flags, want)                                   \
        do {                                                              \
                _cleanup_free_ char *_e = esc(in, SIZE_MAX, flags);       \
                ASSERT_STREQ(_e, want);                                   \
        } while (0)

static void test_terminal_controls(void) {
        /* a title change, a clear screen, an OSC 52 clipboard write, a C1 CSI, DEL */
        ASSERT_ESCAPES("\033]0;owned\007", 0, "\\x1b]0;owned\\x07");
        ASSERT_ESCAPES("\033[2J\033[H", 0, "\\x1b[2J\\x1b[H");
        ASSERT_ESCAPES("\033]52;c;cm0gLXJmIH4=\033\\", 0, "\\x1b]52;c;cm0gLXJmIH4=\\x1b\\");
        ASSERT_ESCAPES("a\xc2\x9b" "31mred", 0, "a\\u009b31mred");
        ASSERT_ESCAPES("\xc2\x80\xc2\x9f\xc2\xa0", 0, "\\u0080\\u009f\xc2\xa0");
        ASSERT_ESCAPES("del\x7f", 0, "del\\x7f");
        ASSERT_ESCAPES("a\tb\r\nc\x01", 0, "a\\tb\\r\\nc\\x01");
}

static void test_bidi(void) {
        /* "txt.exe" shown as "exe.txt" by an override: escaped, so it reads as it is */
        ASSERT_ESCAPES("photo\xe2\x80\xaegnp.exe", 0, "photo\\u202egnp.exe");
        ASSERT_ESCAPES("\xe2\x80\xaa\xe2\x80\xab\xe2\x80\xac\xe2\x80\xad", 0, "\\u202a\\u202b\\u202c\\u202d");
        ASSERT_ESCAPES("\xe2\x81\xa6x\xe2\x81\xa9", 0, "\\u2066x\\u2069");
        ASSERT_ESCAPES("\xe2\x80\x8e\xe2\x80\x8f\xd8\x9c\xe2\x80\xa8", 0, "\\u200e\\u200f\\u061c\\u2028");
        /* neighbours of those ranges are ordinary text */
        ASSERT_ESCAPES("\xe2\x80\x8d\xe2\x81\xaa\xe2\x80\xaf", 0, "\xe2\x80\x8d\xe2\x81\xaa\xe2\x80\xaf");
}

static void test_invalid_utf8(void) {
        ASSERT_ESCAPES("a\xff" "b", 0, "a\\xffb");
        ASSERT_ESCAPES("\xc0\xaf", 0, "\\xc0\\xaf");                    /* overlong "/" */
        ASSERT_ESCAPES("\xe0\x80\xaf", 0, "\\xe0\\x80\\xaf");           /* overlong, 3 bytes */
        ASSERT_ESCAPES("\xed\xa0\x80", 0, "\\xed\\xa0\\x80");           /* a surrogate */
        ASSERT_ESCAPES("\xf4\x90\x80\x80", 0, "\\xf4\\x90\\x80\\x80");  /* above U+10FFFF */
        ASSERT_ESCAPES("\xe2\x80", 0, "\\xe2\\x80");                    /* cut short */
        ASSERT_ESCAPES("\xc2", 0, "\\xc2");
        ASSERT_ESCAPES("\xf0\x9f\x98\x80 ok", 0, "\xf0\x9f\x98\x80 ok");
}

static void test_nul_and_length(void) {
        _cleanup_free_ char *e = escape_text("a\0b\033", 4, SIZE_MAX, 0);

        ASSERT_STREQ(e, "a\\x00b\\x1b");
}

static void test_plain_and_idempotent(void) {
        static const char *const inputs[] = {
                "plain text, ünïcödé, 日本語, C:\\path\\x1b",
                "\033]0;t\007\xc2\x9b\xe2\x80\xae\x7f\xff\n",
        };

        ASSERT_ESCAPES("", 0, "");
        ASSERT_ESCAPES("plain text, ünïcödé, 日本語", 0, "plain text, ünïcödé, 日本語");
        /* backslashes stay: the output escaped again is the same */
        for (size_t i = 0; i < ELEMENTSOF(inputs); i++) {
                _cleanup_free_ char *once = esc(inputs[i], SIZE_MAX, 0), *twice = NULL;

                ASSERT_TRUE(once);
                twice = esc(once, SIZE_MAX, 0);
                ASSERT_STREQ(twice, once);
        }
}

static void test_markup(void) {
        ASSERT_ESCAPES("<b>a & b</b>", ESCAPE_MARKUP, "&lt;b&gt;a &amp; b&lt;/b&gt;");
        ASSERT_ESCAPES("<b>", 0, "<b>");
        ASSERT_ESCAPES("<img src=\"x\">\033", ESCAPE_MARKUP, "&lt;img src=\"x\"&gt;\\x1b");
}

static void test_width_and_first_line(void) {
        _cleanup_free_ char *a = esc("abcdef", 6, 0), *b = esc("abcdefg", 6, 0), *c = esc("ab\033cd", 5, 0),
                            *d = esc("one\ntwo", 20, ESCAPE_FIRST_LINE), *e = esc("one\ntwo", SIZE_MAX, ESCAPE_FIRST_LINE),
                            *f = esc("one\ntwo", 20, 0), *g = esc("äöüß", 3, 0), *h = esc("abcdef", 1, 0);

        ASSERT_STREQ(a, "abcdef");
        ASSERT_STREQ(b, "abcde…");
        /* an escape is never cut in the middle */
        ASSERT_STREQ(c, "ab…");
        ASSERT_STREQ(d, "one…");
        ASSERT_STREQ(e, "one…");
        ASSERT_STREQ(f, "one\\ntwo");
        ASSERT_STREQ(g, "äö…");
        ASSERT_STREQ(h, "…");
}

static void test_decode(void) {
        uint32_t c;

        ASSERT_EQ(utf8_decode("\xe2\x80\xae", 3, &c), 3);
        ASSERT_EQ(c, 0x202E);
        ASSERT_EQ(utf8_decode("\xf4\x8f\xbf\xbf", 4, &c), 4);
        ASSERT_EQ(c, 0x10FFFF);
        ASSERT_EQ(utf8_decode("\xe2\x80\xae", 2, &c), 0);
        ASSERT_EQ(utf8_decode("\x80", 1, &c), 0);
        ASSERT_EQ(utf8_decode("\xf5\x80\x80\x80", 4, &c), 0);
        ASSERT_TRUE(unichar_is_unsafe(0x9B));
        ASSERT_TRUE(!unichar_is_unsafe(0xA0));
}

static void test_has_cc(void) {
        ASSERT_TRUE(!string_has_cc(""));
        ASSERT_TRUE(!string_has_cc("plain text, é and \xe2\x80\xae"));
        ASSERT_TRUE(string_has_cc("line\nbreak"));
        ASSERT_TRUE(string_has_cc("\x1f"));
        ASSERT_TRUE(string_has_cc("del\x7f"));
        ASSERT_TRUE(!string_has_cc(" ~"));
}

int main(void) {
        test_terminal_controls();
        test_bidi();
        test_invalid_utf8();
        test_nul_and_length();
        test_plain_and_idempotent();
        test_markup();
        test_width_and_first_line();
        test_decode();
        test_has_cc();
        return 0;
}
