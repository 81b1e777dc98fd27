/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target: the worker's validator of broker frames (frame-validate.c). */
#include <stdint.h>
#include <string.h>

#include "frame-validate.h"
#include "json-util.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        r = frame_validate(data, size, &o, &error);
        if (r >= 0) {
                /* What passes must be what the daemon expects: an object of that type. */
                if (!o || !json_object_is_type(o, json_type_object) ||
                    strcmp(json_object_get_string(json_object_object_get(o, "type")), frame_kind_to_string(r)) != 0 ||
                    error)
                        abort();
        } else if (o || (r != -ENOMEM && !error))
                abort();
        return 0;
}
