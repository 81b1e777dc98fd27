/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *out = NULL, *again = NULL, *error = NULL;
        size_t out_size, again_size;
        char number[JCS_NUMBER_MAX];
        double d;
        int r;

        /* The first 8 bytes are also a double, whose ES form must read back as itself. */
        if (size >= sizeof d) {
                memcpy(&d, data, sizeof d);
                r = jcs_format_number(d, number);
                if (isfinite(d) ? (r <= 0 || strtod(number, NULL) != d) : r != -EINVAL)
                        abort();
        }

        r = jcs_canonicalize_text((const char *) data, size, &out, &out_size, &error);
        if (r < 0) {
                /* Rejections explain themselves, in text fit for D-Bus and the journal. */
                if (r != -EBADMSG || !error || !jcs_utf8_is_valid(error, strlen(error), NULL))
                        abort();
                return 0;
        }

        /* Canonical output is strict JSON and its own canonical form. */
        if (jcs_canonicalize_text(out, out_size, &again, &again_size, NULL) < 0 || again_size != out_size ||
            memcmp(again, out, out_size) != 0)
                abort();
        return 0;
}
