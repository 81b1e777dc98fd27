/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

#include "macro.h"

/* _cleanup_(json_object_putp) json_object *o = NULL; */
DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* Parses text as JavaScript's JSON.parse() does: strict JSON, valid UTF-8, one value with nothing
 * but whitespace after it. -EBADMSG when it is anything else. */
int json_parse_strict(const char *text, size_t size, json_object **ret);
