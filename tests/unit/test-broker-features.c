/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Required broker features (DECISIONS §10, §11): what passes, and the close code and reason of
 * each way a feature can be missing. */
#include <string.h>

#include "broker-features.h"
#include "json-util.h"
#include "mesh-config.h"
#include "tests.h"

#define ALL ((1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE) | (1u << MESH_FEATURE_CLIENT_ACK) | \
             (1u << MESH_FEATURE_MAX_PAYLOAD))
#define GOOD "{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"retention_scoped\"," \
             "\"dedupe_retention_days\":7,\"request_fingerprint\":true}," \
             "\"client_ack\":{\"version\":1,\"lease_seconds\":30}," \
             "\"max_payload\":{\"version\":1,\"inline_bytes\":65536}}"

static void check(const char *json, unsigned required, int code, const char *reason) {
        _cleanup_(json_object_putp) json_object *f = json ? json_tokener_parse(json) : NULL;
        FeatureVerdict v;

        ASSERT_TRUE(!json || f);
        features_check(f, required, &v);
        ASSERT_EQ(v.close_code, code);
        if (reason)
                ASSERT_STREQ(v.reason, reason);
        ASSERT_TRUE(strlen(v.reason) <= FEATURE_CLOSE_REASON_MAX);
        if (code) {
                _cleanup_(json_object_putp) json_object *parsed = json_tokener_parse(v.reason);
                ASSERT_TRUE(parsed != NULL);
        }
}

int main(void) {
        check(GOOD, ALL, 0, "");
        check(GOOD, 0, 0, "");
        check(NULL, 0, 0, "");        /* a legacy broker is fine when nothing is required */
        check("{}", 0, 0, "");
        check("{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"permanent\",\"request_fingerprint\":true}}",
              1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE, 0, "");

        check(NULL, ALL, 4010,
              "{\"kind\":\"feature_unavailable\",\"feature\":\"client_message_id_dedupe\","
              "\"detail\":\"not offered by the broker\"}");
        check("{}", 1u << MESH_FEATURE_CLIENT_ACK, 4010, NULL);
        check("{\"client_ack\":{\"version\":2,\"lease_seconds\":30}}", 1u << MESH_FEATURE_CLIENT_ACK, 4011,
              "{\"kind\":\"feature_param_invalid\",\"feature\":\"client_ack\",\"detail\":\"version must be 1\"}");
        check("{\"client_ack\":{\"version\":1}}", 1u << MESH_FEATURE_CLIENT_ACK, 4011, NULL);
        check("{\"client_ack\":\"yes\"}", 1u << MESH_FEATURE_CLIENT_ACK, 4011, NULL);
        check("{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"retention_scoped\","
              "\"dedupe_retention_days\":2,\"request_fingerprint\":true}}",
              1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE, 4012,
              "{\"kind\":\"feature_param_below_floor\",\"feature\":\"client_message_id_dedupe\","
              "\"detail\":\"dedupe_retention_days below 3\"}");
        check("{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"retention_scoped\","
              "\"request_fingerprint\":true}}", 1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE, 4011, NULL);
        check("{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"forever\",\"request_fingerprint\":true}}",
              1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE, 4011, NULL);
        check("{\"client_message_id_dedupe\":{\"version\":1,\"mode\":\"permanent\",\"request_fingerprint\":false}}",
              1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE, 4011, NULL);
        check("{\"max_payload\":{\"version\":1,\"inline_bytes\":512}}", 1u << MESH_FEATURE_MAX_PAYLOAD, 4012, NULL);
        check("{\"max_payload\":{\"version\":1,\"inline_bytes\":\"big\"}}", 1u << MESH_FEATURE_MAX_PAYLOAD, 4011, NULL);
        return 0;
}
