/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "json-util.h"

/* Whether the JSON text (already parsed, so valid) has a member name with a "\u0000" escape: in
 * valid JSON a backslash only starts an escape inside a string, and a string is a name when ':'
 * follows it. */
static bool text_has_nul_name(const char *text, size_t size) {
        bool in_string = false, nul = false;

        for (size_t i = 0; i < size; i++) {
                if (!in_string) {
                        in_string = text[i] == '"';
                        nul = false;
                } else if (text[i] == '\\') {
                        if (text[i + 1] == 'u' && size - i >= 6 && strneq(text + i + 2, "0000", 4))
                                nul = true;
                        i += text[i + 1] == 'u' ? 5 : 1;
                } else if (text[i] == '"') {
                        in_string = false;
                        if (nul) {
                                size_t j = i + 1 + strspn(text + i + 1, " \t\r\n");
                                if (j < size && text[j] == ':')
                                        return true;
                        }
                }
        }
        return false;
}

int json_parse_strict(const char *text, size_t size, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        struct json_tokener *tok;
        size_t end;
        bool ok;

        if (size > INT_MAX || memchr(text, '\0', size))
                return -EBADMSG;
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS |
                                            JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, text, (int) size);
        end = json_tokener_get_parse_end(tok);
        /* A top-level literal or number ("null", "12") is complete only once the input ends. */
        if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
                o = json_tokener_parse_ex(tok, "", 1);
                end = size;
        }
        ok = json_tokener_get_error(tok) == json_tokener_success; /* o is NULL for "null" */
        for (size_t i = ok ? end : size; i < size; i++)
                if (!strchr(" \t\r\n", text[i]))
                        ok = false;
        json_tokener_free(tok);
        if (!ok)
                return -EBADMSG;
        if (text_has_nul_name(text, size))
                return -EILSEQ;
        *ret = TAKE_PTR(o);
        return 0;
}

int json_string_get_strict(json_object *v, const char **ret) {
        const char *s;

        assert(ret);
        if (!json_object_is_type(v, json_type_string))
                return -EINVAL;
        s = json_object_get_string(v);
        if (strlen(s) != (size_t) json_object_get_string_len(v))
                return -EILSEQ;
        *ret = s;
        return 0;
}

int json_member_string_strict(json_object *o, const char *key, const char **ret) {
        json_object *v;
        int r;

        assert(key);
        assert(ret);
        *ret = NULL;
        if (!json_object_object_get_ex(o, key, &v) || !v)
                return 0;
        r = json_string_get_strict(v, ret);
        return r < 0 ? r : 1;
}
