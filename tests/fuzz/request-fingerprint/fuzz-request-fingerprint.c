/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jcs.h"
#include "macro.h"
#include "request-fingerprint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

DEFINE_TRIVIAL_CLEANUP_FUNC(struct json_object *, json_object_put);

/*
 * Input: kind 0x00 ref 0x00 reply_to 0x00 priority 0x00 meta_json 0x00 body, where the body is
 * the rest (it may hold 0x00). Fields missing from the end are NULL (defaults); present but
 * empty ones are "".
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(json_object_putp) struct json_object *meta = NULL;
        _cleanup_free_ char *buf = NULL, *error = NULL;
        const char *fields[5] = { 0 };
        uint8_t fp[REQUEST_FINGERPRINT_SIZE], again[REQUEST_FINGERPRINT_SIZE];
        char hex[REQUEST_FINGERPRINT_HEX_MAX], prefix[REQUEST_FINGERPRINT_PREFIX_MAX];
        RequestFingerprintInput in = { 0 };
        char *p, *end;
        int r;

        buf = malloc(size + 1);
        if (!buf)
                return 0;
        memcpy(buf, data, size);
        buf[size] = '\0';
        p = buf;
        end = buf + size;

        for (size_t i = 0; i < ELEMENTSOF(fields) && p <= end; i++) {
                fields[i] = p;
                p += strlen(p) + 1;
        }
        in.kind = fields[0];
        in.ref = fields[1];
        in.reply_to = fields[2];
        in.priority = fields[3];
        in.meta_json = fields[4];
        if (p <= end) {
                in.body = p;
                in.body_size = (size_t) (end - p);
        }

        r = request_fingerprint(&in, fp, &error);
        if (r < 0) {
                if (r != -EINVAL || !error || !jcs_utf8_is_valid(error, strlen(error), NULL))
                        abort();
                return 0;
        }

        request_fingerprint_hex(fp, hex);
        request_fingerprint_prefix(fp, prefix);
        if (strlen(hex) != 64 || strlen(prefix) != 16 || memcmp(hex, prefix, 16) != 0)
                abort();

        /* Deterministic, and the parsed meta hashes like its text. */
        if (in.meta_json) {
                if (jcs_parse(in.meta_json, strlen(in.meta_json), &meta, NULL) < 0)
                        abort();
                in.meta_json = NULL;
                in.meta = meta;
        }
        if (request_fingerprint(&in, again, NULL) < 0 || memcmp(fp, again, sizeof fp) != 0)
                abort();
        return 0;
}
