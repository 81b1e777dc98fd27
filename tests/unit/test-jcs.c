/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "jcs.h"
#include "macro.h"
#include "tests.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

static void check_canonical_bytes(const char *text, size_t size, const char *expected, size_t expected_size) {
        _cleanup_free_ char *out = NULL, *again = NULL, *error = NULL;
        size_t out_size, again_size;
        int r;

        r = jcs_canonicalize_text(text, size, &out, &out_size, &error);
        if (r < 0)
                fprintf(stderr, "%.*s: %s\n", (int) size, text, strna(error));
        ASSERT_OK(r);
        if (out_size != expected_size || memcmp(out, expected, out_size) != 0) {
                fprintf(stderr, "canonical form of %.*s\n   is %s\n want %.*s\n", (int) size, text, out,
                        (int) expected_size, expected);
                abort();
        }
        ASSERT_EQ(strlen(out), out_size);

        /* The canonical form is a fixed point. */
        ASSERT_OK(jcs_canonicalize_text(out, out_size, &again, &again_size, NULL));
        ASSERT_EQ(again_size, out_size);
        ASSERT_TRUE(memcmp(again, out, out_size) == 0);
}

static void check_canonical(const char *text, const char *expected) {
        check_canonical_bytes(text, strlen(text), expected, strlen(expected));
}

static void test_rfc8785_testdata(void) {
        const char *srcdir = getenv("CLAUDEMESH_TESTS_SRCDIR");
        char dir[4096];
        struct dirent **names;
        int n, checked = 0;

        ASSERT_TRUE(srcdir);
        snprintf(dir, sizeof dir, "%s/data/jcs/input", srcdir);
        n = scandir(dir, &names, NULL, alphasort);
        ASSERT_TRUE(n > 0);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *input = NULL, *output = NULL, *outhex = NULL;
                char path[4096 + 256], stem[256];
                size_t input_size, output_size, outhex_size, k = 0;
                const char *name = names[i]->d_name;
                size_t len = strlen(name);

                if (len > 5 && streq(name + len - 5, ".json")) {
                        snprintf(stem, sizeof stem, "%.*s", (int) (len - 5), name);
                        snprintf(path, sizeof path, "%s/data/jcs/input/%s.json", srcdir, stem);
                        ASSERT_OK(read_full_file(path, 1024 * 1024, &input, &input_size, NULL));
                        snprintf(path, sizeof path, "%s/data/jcs/output/%s.json", srcdir, stem);
                        ASSERT_OK(read_full_file(path, 1024 * 1024, &output, &output_size, NULL));
                        fprintf(stderr, "testdata %s\n", stem);
                        check_canonical_bytes(input, input_size, output, output_size);

                        /* outhex holds the same bytes as hex pairs, separated by whitespace. */
                        snprintf(path, sizeof path, "%s/data/jcs/outhex/%s.txt", srcdir, stem);
                        ASSERT_OK(read_full_file(path, 1024 * 1024, &outhex, &outhex_size, NULL));
                        for (const char *h = outhex; *h;) {
                                unsigned byte;
                                int used;

                                if (strchr(" \t\r\n", *h)) {
                                        h++;
                                        continue;
                                }
                                ASSERT_EQ(sscanf(h, "%2x%n", &byte, &used), 1);
                                ASSERT_TRUE(k < output_size);
                                ASSERT_EQ(byte, (unsigned char) output[k]);
                                k++;
                                h += used;
                        }
                        ASSERT_EQ(k, output_size);
                        checked++;
                }
                free(names[i]);
        }
        free(names);
        ASSERT_TRUE(checked >= 6);
}

static void check_number(double d, const char *expected) {
        char buf[JCS_NUMBER_MAX];
        int r = jcs_format_number(d, buf);

        if (r < 0 || !streq(buf, expected)) {
                fprintf(stderr, "%.17g formats as \"%s\" (%d), want \"%s\"\n", d, r < 0 ? "" : buf, r, expected);
                abort();
        }
        ASSERT_EQ(r, strlen(expected));
}

static void test_numbers(void) {
        char buf[JCS_NUMBER_MAX];

        check_number(0.0, "0");
        check_number(-0.0, "0");
        check_number(1.0, "1");
        check_number(-1.0, "-1");
        check_number(1e21, "1e+21");
        check_number(-1e21, "-1e+21");
        check_number(1e20, "100000000000000000000");
        check_number(999999999999999900000.0, "999999999999999900000");
        check_number(1e-7, "1e-7");
        check_number(1.5e-7, "1.5e-7");
        check_number(1e-6, "0.000001");
        check_number(1.2345e-6, "0.0000012345");
        check_number(123456789012345680000.0, "123456789012345680000");
        check_number(5e-324, "5e-324");
        check_number(-5e-324, "-5e-324");
        check_number(2.2250738585072014e-308, "2.2250738585072014e-308");
        check_number(1.7976931348623157e308, "1.7976931348623157e+308");
        check_number(0.1, "0.1");
        check_number(0.1 + 0.2, "0.30000000000000004");
        check_number(1.0 / 3.0, "0.3333333333333333");
        check_number(9007199254740992.0, "9007199254740992");
        check_number((double) 9007199254740993LL, "9007199254740992");
        check_number(333333333.33333329, "333333333.3333333");
        check_number(1e30, "1e+30");
        check_number(4.5, "4.5");
        check_number(0.002, "0.002");
        check_number(1e-27, "1e-27");
        check_number(123.456, "123.456");
        check_number(-1.5e300, "-1.5e+300");
        /* Powers of two whose shortest form lies above them, where the round-trip interval is
         * wider: 2^122 is 5.3169119831396635e36, and 5.316911983139664e36 already reads back. */
        check_number(0x1p122, "5.316911983139664e+36");
        check_number(0x1p-495, "9.775796363198735e-150");
        check_number(0x1p900, "8.452712498170644e+270");

        ASSERT_EQ(jcs_format_number(NAN, buf), -EINVAL);
        ASSERT_EQ(jcs_format_number(INFINITY, buf), -EINVAL);
        ASSERT_EQ(jcs_format_number(-INFINITY, buf), -EINVAL);

        /* From text: every number is a double. */
        check_canonical("[9007199254740993, -9007199254740993]", "[9007199254740992,-9007199254740992]");
        check_canonical("[-0, -0.0, 0e10, 0.0E-5]", "[0,0,0,0]");
        check_canonical("[1E21, 1e+21, 10e20, 1e-7, 0.0000001, 1.0e-6]", "[1e+21,1e+21,1e+21,1e-7,1e-7,0.000001]");
        check_canonical("[18446744073709551616, 9223372036854775807, -9223372036854775808]",
                        "[18446744073709552000,9223372036854776000,-9223372036854776000]");
        check_canonical("123456789012345678901234567890123456789", "1.2345678901234568e+38");
        check_canonical("[1e-400, -1e-400]", "[0,0]");
        check_canonical("0.30000000000000004441", "0.30000000000000004");
}

static void test_json_c_numbers(void) {
        _cleanup_(json_object_putp) struct json_object *a = json_object_new_array();
        _cleanup_free_ char *out = NULL;

        /* Values built by json-c rather than parsed: int64, uint64 beyond int64, doubles. */
        ASSERT_OK(json_object_array_add(a, json_object_new_int64(INT64_MAX)));
        ASSERT_OK(json_object_array_add(a, json_object_new_int64(INT64_MIN)));
        ASSERT_OK(json_object_array_add(a, json_object_new_uint64(UINT64_MAX)));
        ASSERT_OK(json_object_array_add(a, json_object_new_uint64((uint64_t) INT64_MAX + 2)));
        ASSERT_OK(json_object_array_add(a, json_object_new_int(42)));
        ASSERT_OK(json_object_array_add(a, json_object_new_double(-0.0)));
        ASSERT_OK(json_object_array_add(a, json_object_new_double(56.0)));
        ASSERT_OK(json_object_array_add(a, json_object_new_double_s(0.5, "5e-1")));
        ASSERT_OK(json_object_array_add(a, NULL));
        ASSERT_OK(jcs_canonicalize(a, &out, NULL, NULL));
        ASSERT_STREQ(out, "[9223372036854776000,-9223372036854776000,18446744073709552000,9223372036854776000,"
                          "42,0,56,0.5,null]");
}

static void test_parse_types(void) {
        struct json_object *v = NULL;

        ASSERT_OK(jcs_parse("123", 3, &v, NULL));
        ASSERT_TRUE(json_object_is_type(v, json_type_int));
        ASSERT_EQ(json_object_get_int64(v), 123);
        json_object_put(v);

        ASSERT_OK(jcs_parse("-9223372036854775808", 20, &v, NULL));
        ASSERT_TRUE(json_object_is_type(v, json_type_int));
        ASSERT_TRUE(json_object_get_int64(v) == INT64_MIN);
        json_object_put(v);

        ASSERT_OK(jcs_parse("9223372036854775808", 19, &v, NULL));
        ASSERT_TRUE(json_object_is_type(v, json_type_double));
        ASSERT_TRUE(json_object_get_double(v) == 9223372036854775808.0);
        json_object_put(v);

        ASSERT_OK(jcs_parse("1.0", 3, &v, NULL));
        ASSERT_TRUE(json_object_is_type(v, json_type_double));
        json_object_put(v);

        ASSERT_OK(jcs_parse(" null ", 6, &v, NULL));
        ASSERT_TRUE(v == NULL);

        /* Not NUL-terminated: only size bytes are read. */
        ASSERT_OK(jcs_parse("\"ab\"xyz", 4, &v, NULL));
        ASSERT_STREQ(json_object_get_string(v), "ab");
        json_object_put(v);

        ASSERT_OK(jcs_parse("\"a\\u0000b\"", 10, &v, NULL));
        ASSERT_EQ(json_object_get_string_len(v), 3);
        ASSERT_TRUE(memcmp(json_object_get_string(v), "a\0b", 3) == 0);
        json_object_put(v);
}

static void test_key_order(void) {
        _cleanup_(json_object_putp) struct json_object *o = json_object_new_object();
        _cleanup_free_ char *out = NULL;

        /* U+1F600 is D83D DE00 in UTF-16 and sorts before U+FB01, though its code point and
         * its UTF-8 bytes (F0 ...) are larger. */
        check_canonical("{\"\\ufb01\":1,\"\\ud83d\\ude00\":2}", "{\"\xf0\x9f\x98\x80\":2,\"\xef\xac\x81\":1}");
        check_canonical("{\"\\ue000\":1,\"\\ud800\\udc00\":2,\"\\uffff\":3,\"\\ud7ff\":4}",
                        "{\"\xed\x9f\xbf\":4,\"\xf0\x90\x80\x80\":2,\"\xee\x80\x80\":1,\"\xef\xbf\xbf\":3}");
        /* Same high surrogate: the low one decides. */
        check_canonical("{\"\\ud83d\\ude01\":1,\"\\ud83d\\ude00\":2}",
                        "{\"\xf0\x9f\x98\x80\":2,\"\xf0\x9f\x98\x81\":1}");
        /* Prefixes first; code units, not locale (uppercase before lowercase). */
        check_canonical("{\"ab\":1,\"a\":2,\"B\":3,\"\":4,\"b\":5}", "{\"\":4,\"B\":3,\"a\":2,\"ab\":1,\"b\":5}");
        check_canonical("{\"b\":{\"z\":[{\"y\":1,\"x\":2}],\"a\":0},\"a\":[]}",
                        "{\"a\":[],\"b\":{\"a\":0,\"z\":[{\"x\":2,\"y\":1}]}}");

        /* The same ordering for values built with json-c. */
        ASSERT_OK(json_object_object_add(o, "\xef\xac\x81", json_object_new_int(1)));
        ASSERT_OK(json_object_object_add(o, "\xf0\x9f\x98\x80", json_object_new_int(2)));
        ASSERT_OK(json_object_object_add(o, "z", json_object_new_boolean(0)));
        ASSERT_OK(jcs_canonicalize(o, &out, NULL, NULL));
        ASSERT_STREQ(out, "{\"z\":false,\"\xf0\x9f\x98\x80\":2,\"\xef\xac\x81\":1}");
}

static void test_escaping(void) {
        static const char in[] = "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\\\/\\u007f\\u0080\\u2028\\u00e9\"";
        static const char want[] = "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f \\\"\\\\/\x7f\xc2\x80\xe2\x80\xa8\xc3\xa9\"";
        _cleanup_(json_object_putp) struct json_object *s = json_object_new_string_len("a\0\x1f<>/", 6);
        _cleanup_free_ char *out = NULL;
        size_t size;

        check_canonical(in, want);
        check_canonical("[\"</script>\", \"&amp;\", \"'\"]", "[\"</script>\",\"&amp;\",\"'\"]");
        /* Object names are escaped the same way. */
        check_canonical("{\"\\n\":1,\"\\u001F\":2,\"\\\"\":3}", "{\"\\n\":1,\"\\u001f\":2,\"\\\"\":3}");

        ASSERT_OK(jcs_canonicalize(s, &out, &size, NULL));
        ASSERT_EQ(size, 18);
        ASSERT_STREQ(out, "\"a\\u0000\\u001f<>/\"");
}

static void test_whitespace_and_literals(void) {
        check_canonical(" \t\r\n[ true , false,null ,{ } , [ ] ] \n", "[true,false,null,{},[]]");
        check_canonical("\"\"", "\"\"");
        check_canonical("{\"a\":\"\"}", "{\"a\":\"\"}");
}

static void check_rejected_bytes(const char *text, size_t size, int code, const char *message) {
        _cleanup_free_ char *error = NULL, *out = NULL;
        struct json_object *v = NULL;

        ASSERT_EQ(jcs_canonicalize_text(text, size, &out, NULL, &error), code);
        ASSERT_CONTAINS(error, message);
        ASSERT_TRUE(out == NULL);
        ASSERT_EQ(jcs_parse(text, size, &v, NULL), code);
        ASSERT_TRUE(v == NULL);
}

static void check_rejected(const char *text, const char *message) {
        check_rejected_bytes(text, strlen(text), -EBADMSG, message);
}

static void test_rejections(void) {
        char deep[2 * JCS_MAX_DEPTH + 3];

        check_rejected("NaN", "NaN and Infinity (byte 0) are not JSON numbers; RFC 8785 cannot represent them.");
        check_rejected("[1, Infinity]", "NaN and Infinity (byte 4) are not JSON numbers");
        check_rejected("{\"a\": -Infinity}", "NaN and Infinity (byte 6) are not JSON numbers");
        check_rejected("1e400", "Number at byte 0 is too large for an IEEE 754 double; RFC 8785 cannot represent "
                                "Infinity.");
        check_rejected("[0, -1.5E+309]", "Number at byte 4 is too large for an IEEE 754 double");

        check_rejected("{\"a\":1,\"a\":2}", "Duplicate object member name \"a\" at byte 7; RFC 8785 needs unique names.");
        check_rejected("{\"x\":{\"b\":1,\"c\":[],\"b\":2}}", "Duplicate object member name \"b\" at byte 19");
        check_rejected("[{}, {\"\\u0061\":1, \"a\":2}]", "Duplicate object member name \"a\" at byte 18");
        check_rejected("{\"\\n\":1,\"\\n\":2}", "Duplicate object member name \"\\n\" at byte 8");
        check_rejected("{\"" "0123456789012345678901234567890123456789012345678901234567890123456789" "\":1,"
                       "\"" "0123456789012345678901234567890123456789012345678901234567890123456789" "\":2}",
                       "Duplicate object member name \"012345678901234567890123456789012345678901234567…\" at byte 76");

        check_rejected("\"\xff\"", "Invalid UTF-8 at byte 1 of the JSON text; JSON must be UTF-8.");
        check_rejected("[\"ok\", \"\xc0\xaf\"]", "Invalid UTF-8 at byte 8");
        check_rejected("\"\xed\xa0\x80\"", "Invalid UTF-8 at byte 1");
        check_rejected("\"\xe2\x82\"", "Invalid UTF-8 at byte 1");
        check_rejected("\"\xf4\x90\x80\x80\"", "Invalid UTF-8 at byte 1");
        check_rejected("{\"k\xfe\":1}", "Invalid UTF-8 at byte 3");
        check_rejected("\xef\xbb\xbf{}", "Unexpected byte 0xef at byte 0 of the JSON text; expected a JSON value.");

        check_rejected("\"\\ud800\"", "Lone UTF-16 surrogate \\ud800 at byte 1 of the JSON text; RFC 8785 needs "
                                       "well-formed Unicode.");
        check_rejected("\"x\\uDC00\"", "Lone UTF-16 surrogate \\udc00 at byte 2");
        check_rejected("\"\\ud83d\\u0041\"", "Lone UTF-16 surrogate \\ud83d at byte 1");
        check_rejected("\"\\ud83d\\ud83d\\ude00\"", "Lone UTF-16 surrogate \\ud83d at byte 1");
        check_rejected("{\"\\ud83d\":1}", "Lone UTF-16 surrogate \\ud83d at byte 2");
        check_rejected("\"\\ud83d", "Lone UTF-16 surrogate \\ud83d at byte 1");

        check_rejected("{} x", "Unexpected 'x' at byte 3 of the JSON text; expected the end of the text after "
                               "the JSON value.");
        check_rejected("1 2", "Unexpected '2' at byte 2");
        check_rejected("[1]]", "Unexpected ']' at byte 3");
        check_rejected("truex", "Unexpected 'x' at byte 4");
        check_rejected_bytes("1\0", 2, -EBADMSG, "Unexpected byte 0x00 at byte 1");

        check_rejected("", "The JSON text ends at byte 0 where a JSON value was expected.");
        check_rejected("  ", "The JSON text ends at byte 2 where a JSON value was expected.");
        check_rejected("[1,", "The JSON text ends at byte 3 where a JSON value was expected.");
        check_rejected("{\"a\"", "The JSON text ends at byte 4 where ':' was expected.");
        check_rejected("\"abc", "The JSON text ends inside the string that starts at byte 0.");
        check_rejected("[1,]", "Unexpected ']' at byte 3 of the JSON text; expected a JSON value.");
        check_rejected("{\"a\":1,}", "Unexpected '}' at byte 7 of the JSON text; expected a string naming an object "
                                     "member.");
        check_rejected("{'a':1}", "Unexpected ''' at byte 1");
        check_rejected("[1 2]", "Unexpected '2' at byte 3 of the JSON text; expected ',' or ']'.");
        check_rejected("{\"a\":1 \"b\":2}", "expected ',' or '}'.");
        check_rejected("\"a\tb\"", "Control character 0x09 at byte 2 must be escaped in a JSON string.");
        check_rejected("\"\\x41\"", "Invalid escape sequence at byte 1 of the JSON text.");
        check_rejected("\"\\u12G4\"", "Invalid \\u escape at byte 1 of the JSON text; it needs four hex digits.");
        check_rejected("\"\\", "The JSON text ends inside the escape sequence at byte 1.");
        check_rejected("01", "Number at byte 0 has a leading zero, which JSON does not allow.");
        check_rejected("-", "The JSON text ends at byte 1 where a digit was expected.");
        check_rejected("+1", "Unexpected '+' at byte 0");
        check_rejected("1.", "where a digit after the decimal point was expected.");
        check_rejected(".5", "Unexpected '.' at byte 0");
        check_rejected("1e+", "where a digit in the exponent was expected.");
        check_rejected("\f1", "Unexpected byte 0x0c at byte 0");
        check_rejected("{\"a\\u0000b\":1}", "Object member name at byte 1 contains U+0000, which is not supported.");

        memset(deep, '[', JCS_MAX_DEPTH + 1);
        deep[JCS_MAX_DEPTH + 1] = '\0';
        check_rejected(deep, "JSON nesting at byte 128 is deeper than 128 levels.");
        memset(deep, '[', JCS_MAX_DEPTH);
        memset(deep + JCS_MAX_DEPTH, ']', JCS_MAX_DEPTH);
        deep[2 * JCS_MAX_DEPTH] = '\0';
        check_canonical(deep, deep);
}

static void check_value_rejected(struct json_object *v, const char *message) {
        _cleanup_free_ char *error = NULL, *out = NULL;

        ASSERT_EQ(jcs_canonicalize(v, &out, NULL, &error), -EINVAL);
        ASSERT_CONTAINS(error, message);
        ASSERT_TRUE(out == NULL);
        ASSERT_EQ(jcs_canonicalize(v, &out, NULL, NULL), -EINVAL);
}

static void test_value_rejections(void) {
        _cleanup_(json_object_putp) struct json_object *nan = json_object_new_double(NAN),
                                                       *inf = json_object_new_double(-INFINITY),
                                                       *bad = json_object_new_string("a\xffz"),
                                                       *bad_name = json_object_new_object(),
                                                       *nested = json_object_new_array(),
                                                       *deep = json_object_new_array();
        struct json_object *inner = deep;

        check_value_rejected(nan, "NaN and Infinity cannot be represented in RFC 8785 canonical JSON.");
        check_value_rejected(inf, "NaN and Infinity cannot be represented");
        check_value_rejected(bad, "String value is not valid UTF-8 (byte 1); RFC 8785 needs well-formed Unicode.");
        ASSERT_OK(json_object_object_add(bad_name, "ok\xc3", NULL));
        check_value_rejected(bad_name, "Object member name is not valid UTF-8 (byte 2)");
        ASSERT_OK(json_object_array_add(nested, json_object_get(nan)));
        check_value_rejected(nested, "NaN and Infinity cannot be represented");

        for (int i = 0; i < JCS_MAX_DEPTH; i++) {
                struct json_object *a = json_object_new_array();
                ASSERT_OK(json_object_array_add(inner, a));
                inner = a;
        }
        check_value_rejected(deep, "JSON nesting is deeper than 128 levels.");
}

int main(void) {
        test_rfc8785_testdata();
        test_numbers();
        test_json_c_numbers();
        test_parse_types();
        test_key_order();
        test_escaping();
        test_whitespace_and_literals();
        test_rejections();
        test_value_rejections();
        return 0;
}
