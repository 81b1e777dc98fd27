/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

/* Freeing memory that held secret key material without leaving it in the heap: json-c keeps
 * parsed strings inside its tree and the tokener's scratch buffer, and frees both unwiped. */

/* A heap buffer that held secret text (a file read into memory, say). */
typedef struct SecretBuffer {
        char *data;
        size_t size;
} SecretBuffer;

/* sodium_memzero, then free; for _cleanup_(secret_buffer_done). */
void secret_buffer_done(SecretBuffer *b);

/* Zeroes every string in the tree, recursively. */
void json_wipe_strings(json_object *o);

/* For _cleanup_: json_wipe_strings, then json_object_put. */
void json_object_put_wipedp(json_object **o);

/* For _cleanup_: zeroes the tokener's scratch buffer, which still holds the last string it
 * unescaped (json-c has no call for that), then frees it. */
void json_tokener_free_wipedp(struct json_tokener **tok);
