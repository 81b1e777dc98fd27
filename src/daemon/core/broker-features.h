/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

/* The broker features a mesh requires (DECISIONS §10, §11), checked against hello_ack. */

#define FEATURE_CLOSE_UNAVAILABLE 4010  /* not offered */
#define FEATURE_CLOSE_INVALID     4011  /* offered with a missing, mistyped or unknown parameter */
#define FEATURE_CLOSE_BELOW_FLOOR 4012  /* a parameter below what we accept */
#define FEATURE_CLOSE_REASON_MAX  123   /* a WebSocket close reason's limit, in bytes */

typedef struct FeatureVerdict {
        int close_code;                          /* 0 when everything required is there */
        char reason[FEATURE_CLOSE_REASON_MAX + 1]; /* {"kind","feature","detail"} */
} FeatureVerdict;

/* required: MESH_FEATURE_* bits (mesh-config.h). features: hello_ack's object, or NULL. */
void features_check(json_object *features, unsigned required, FeatureVerdict *ret);
