/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "json-util.h"
#include "tests.h"

static int parse(const char *text, json_object **ret) {
        return json_parse_strict(text, strlen(text), ret);
}

static void test_parse_nul_names(void) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        /* json-c would keep "a" for these names: refused, wherever the object is. */
        ASSERT_EQ(parse("{\"a\\u0000b\":1}", &o), -EILSEQ);
        ASSERT_EQ(parse("{\"x\":{\"k\\u0000\" :1}}", &o), -EILSEQ);
        ASSERT_EQ(parse("[{\"\\u0000\"\n:true}]", &o), -EILSEQ);
        ASSERT_EQ(parse("{\"a\\u0000b\":1} x", &o), -EBADMSG);

        /* An escaped backslash before it does not hide a NUL name. */
        ASSERT_EQ(parse("{\"k\":\"\\\\\",\"\\u00001\":0}", &o), -EILSEQ);
        /* In values the NUL is kept with the length; escapes that only look alike are not NUL. */
        ASSERT_OK(parse("{\"k\":\"a\\u0000b\",\"\\\\u0000\":\"\\\\\",\"u0000\":[\"\\u0000\"]}", &o));
        ASSERT_EQ(json_object_get_string_len(json_object_object_get(o, "k")), 3);
        ASSERT_TRUE(json_object_object_get_ex(o, "\\u0000", NULL));
}

static void test_strict_strings(void) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s = "unset";

        ASSERT_OK(parse("{\"ok\":\"text\",\"nul\":\"x\\u0000y\",\"tail\":\"x\\u0000\",\"n\":5,\"null\":null}", &o));
        ASSERT_EQ(json_member_string_strict(o, "ok", &s), 1);
        ASSERT_STREQ(s, "text");
        ASSERT_EQ(json_member_string_strict(o, "nul", &s), -EILSEQ);
        ASSERT_EQ(json_member_string_strict(o, "tail", &s), -EILSEQ);
        ASSERT_EQ(json_member_string_strict(o, "n", &s), -EINVAL);
        ASSERT_EQ(json_member_string_strict(o, "null", &s), 0);
        ASSERT_TRUE(s == NULL);
        ASSERT_EQ(json_member_string_strict(o, "absent", &s), 0);
        ASSERT_EQ(json_string_get_strict(json_object_object_get(o, "ok"), &s), 0);
        ASSERT_EQ(json_string_get_strict(json_object_object_get(o, "n"), &s), -EINVAL);
        ASSERT_EQ(json_string_get_strict(NULL, &s), -EINVAL);
}

int main(void) {
        test_parse_nul_names();
        test_strict_strings();
        return 0;
}
