/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "broker-features.h"
#include "macro.h"
#include "mesh-config.h"

#define DEDUPE_RETENTION_FLOOR_DAYS 3
#define INLINE_BYTES_FLOOR 1024

static json_object *member(json_object *o, const char *key) {
        json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static bool int_member(json_object *o, const char *key, int64_t *ret) {
        json_object *v = member(o, key);
        if (!v || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_int64(v);
        return true;
}

/* The close reason, cut so the JSON stays within the limit: the detail gives way first. */
static void verdict(FeatureVerdict *v, int code, const char *kind, const char *feature, const char *detail) {
        char buf[512];
        int overhead = snprintf(NULL, 0, "{\"kind\":\"%s\",\"feature\":\"%s\",\"detail\":\"\"}", kind, feature);
        int room = FEATURE_CLOSE_REASON_MAX - overhead, n;

        n = snprintf(buf, sizeof buf, "{\"kind\":\"%s\",\"feature\":\"%s\",\"detail\":\"%.*s\"}", kind, feature,
                     room > 0 ? room : 0, detail);
        v->close_code = code;
        /* n <= FEATURE_CLOSE_REASON_MAX by construction; the bound keeps the copy safe regardless */
        memcpy(v->reason, buf, (size_t) (n < FEATURE_CLOSE_REASON_MAX ? n : FEATURE_CLOSE_REASON_MAX));
        v->reason[n < FEATURE_CLOSE_REASON_MAX ? n : FEATURE_CLOSE_REASON_MAX] = '\0';
}

/* 0 when fine; else fills the verdict */
static int check_one(json_object *features, MeshFeature f, FeatureVerdict *v) {
        const char *name = mesh_feature_to_string(f);
        json_object *o = member(features, name), *x;
        int64_t version, n;

        if (!o) {
                verdict(v, FEATURE_CLOSE_UNAVAILABLE, "feature_unavailable", name, "not offered by the broker");
                return -1;
        }
        if (!json_object_is_type(o, json_type_object) || !int_member(o, "version", &version) || version != 1) {
                verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name, "version must be 1");
                return -1;
        }
        switch (f) {
        case MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE: {
                const char *mode = json_object_get_string(member(o, "mode"));
                x = member(o, "request_fingerprint");
                if (!x || !json_object_is_type(x, json_type_boolean) || !json_object_get_boolean(x)) {
                        verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name, "request_fingerprint must be true");
                        return -1;
                }
                if (!json_object_is_type(member(o, "mode"), json_type_string) ||
                    (!streq(mode, "retention_scoped") && !streq(mode, "permanent"))) {
                        verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name,
                                "mode must be retention_scoped or permanent");
                        return -1;
                }
                if (streq(mode, "retention_scoped")) {
                        if (!int_member(o, "dedupe_retention_days", &n)) {
                                verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name,
                                        "dedupe_retention_days missing");
                                return -1;
                        }
                        if (n < DEDUPE_RETENTION_FLOOR_DAYS) {
                                verdict(v, FEATURE_CLOSE_BELOW_FLOOR, "feature_param_below_floor", name,
                                        "dedupe_retention_days below 3");
                                return -1;
                        }
                }
                return 0;
        }
        case MESH_FEATURE_CLIENT_ACK:
                if (!int_member(o, "lease_seconds", &n) || n < 1) {
                        verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name, "lease_seconds must be >= 1");
                        return -1;
                }
                return 0;
        case MESH_FEATURE_MAX_PAYLOAD:
                if (!int_member(o, "inline_bytes", &n)) {
                        verdict(v, FEATURE_CLOSE_INVALID, "feature_param_invalid", name, "inline_bytes missing");
                        return -1;
                }
                if (n < INLINE_BYTES_FLOOR) {
                        verdict(v, FEATURE_CLOSE_BELOW_FLOOR, "feature_param_below_floor", name,
                                "inline_bytes below 1024");
                        return -1;
                }
                return 0;
        default:
                return 0;
        }
}

void features_check(json_object *features, unsigned required, FeatureVerdict *ret) {
        *ret = (FeatureVerdict) { 0 };
        if (features && !json_object_is_type(features, json_type_object))
                features = NULL;
        for (MeshFeature f = 0; f < _MESH_FEATURE_MAX; f++)
                if ((required & (1u << f)) && check_one(features, f, ret) < 0)
                        return;
}
