/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "macro.h"

/* _cleanup_(json_object_putp) json_object *o = NULL; */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* Parses text as JavaScript's JSON.parse() does: strict JSON, valid UTF-8, one value with nothing
 * but whitespace after it. -EBADMSG when it is anything else; -EILSEQ when a member name holds
 * U+0000 ("\u0000"): json-c keeps names as C strings and would silently cut them there. */
int json_parse_strict(const char *text, size_t size, json_object **ret);

/* v as a C string: 0 with *ret set. -EINVAL when v is not a string; -EILSEQ when it holds U+0000,
 * which json-c keeps (with the length) but a C string, and so D-Bus and the stores, would cut. */
int json_string_get_strict(json_object *v, const char **ret);

/* The member key of o, read as json_string_get_strict() reads it: 1 with *ret set; 0 with *ret
 * NULL when o has no such member or it is null; -EINVAL or -EILSEQ as above. */
int json_member_string_strict(json_object *o, const char *key, const char **ret);
