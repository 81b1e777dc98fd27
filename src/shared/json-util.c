/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "json-util.h"

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
        *ret = TAKE_PTR(o);
        return 0;
}
