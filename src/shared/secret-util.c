/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdlib.h>

#include "secret-util.h"

void secret_buffer_done(SecretBuffer *b) {
        if (b->data) {
                sodium_memzero(b->data, b->size);
                free(b->data);
        }
        b->data = NULL;
        b->size = 0;
}

void json_wipe_strings(json_object *o) {
        switch (json_object_get_type(o)) {
        case json_type_string:
                sodium_memzero((char *) json_object_get_string(o), (size_t) json_object_get_string_len(o));
                break;
        case json_type_object: {
                struct json_object_iterator it = json_object_iter_begin(o), end = json_object_iter_end(o);
                for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
                        json_wipe_strings(json_object_iter_peek_value(&it));
                break;
        }
        case json_type_array:
                for (size_t i = 0; i < json_object_array_length(o); i++)
                        json_wipe_strings(json_object_array_get_idx(o, i));
                break;
        default:
                break;
        }
}

void json_object_put_wipedp(json_object **o) {
        if (*o) {
                json_wipe_strings(*o);
                json_object_put(*o);
        }
}

void json_tokener_free_wipedp(struct json_tokener **tok) {
        if (!*tok)
                return;
        if ((*tok)->pb && (*tok)->pb->buf)
                sodium_memzero((*tok)->pb->buf, (size_t) (*tok)->pb->size);
        json_tokener_free(*tok);
}
