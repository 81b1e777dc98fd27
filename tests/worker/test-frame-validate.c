/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "frame-validate.h"
#include "json-util.h"
#include "macro.h"
#include "tests.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PUSH_HEAD "{\"type\":\"push\",\"messageId\":\"m1\",\"senderPubkey\":\"" HEX64 "\","

static int validate(const char *s, json_object **ret, char **ret_error) {
        return frame_validate(s, strlen(s), ret, ret_error);
}

/* Valid: returns the kind and checks the object came back. */
static int ok(const char *s) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *error = NULL;
        int r = validate(s, &o, &error);

        if (r < 0)
                fprintf(stderr, "rejected %s: %s\n", s, strna(error));
        ASSERT_OK(r);
        ASSERT_TRUE(o && json_object_is_type(o, json_type_object));
        ASSERT_TRUE(error == NULL);
        return r;
}

/* Invalid: -EBADMSG, a reason mentioning `why`, and nothing handed out. */
static void bad(const char *s, const char *why) {
        json_object *o = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(validate(s, &o, &error), -EBADMSG);
        ASSERT_TRUE(o == NULL);
        ASSERT_CONTAINS(error, why);
}

static void test_kinds(void) {
        ASSERT_EQ(ok("{\"type\":\"hello_ack\",\"presenceId\":\"abc\",\"memberDisplayName\":\"alice\","
                     "\"memberProfile\":{\"roleTag\":null,\"groups\":[],\"messageMode\":\"push\"},\"services\":[],"
                     "\"features\":{\"client_ack\":{\"version\":1,\"lease_seconds\":30}}}"),
                  FRAME_HELLO_ACK);
        /* upstream: no features, plus the restore fields */
        ASSERT_EQ(ok("{\"type\":\"hello_ack\",\"presenceId\":\"abc\",\"restored\":true,\"lastSummary\":\"x\","
                     "\"lastSeenAt\":\"2026-05-03T19:00:00.000Z\",\"restoredGroups\":[],\"restoredStats\":{}}"),
                  FRAME_HELLO_ACK);
        ASSERT_EQ(ok("{\"type\":\"hello_ack\",\"features\":null}"), FRAME_HELLO_ACK);
        ASSERT_EQ(ok("{\"type\":\"ack\",\"id\":\"s1\",\"messageId\":\"abc\",\"queued\":true}"), FRAME_ACK);
        ASSERT_EQ(ok("{\"type\":\"ack\",\"id\":\"\",\"messageId\":\"\",\"queued\":false,"
                     "\"error\":\"rate_limit: max 60 msg/min (burst 10) \\u2014 slow down\",\"error_code\":\"rate_limited\","
                     "\"retry_after_ms\":1000,\"client_message_id\":\"c1\",\"_reqId\":\"r\"}"),
                  FRAME_ACK);
        ASSERT_EQ(ok(PUSH_HEAD "\"nonce\":\"AAAA\",\"ciphertext\":\"aGk=\",\"priority\":\"now\"}"), FRAME_PUSH);
        ASSERT_EQ(ok(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"client_message_id\":\"c\","
                     "\"request_fingerprint\":\"" "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789" "\"}"),
                  FRAME_PUSH);
        ASSERT_EQ(ok("{\"type\":\"push\",\"messageId\":\"1b4e-uuid\",\"senderPubkey\":\"system\",\"nonce\":\"\","
                     "\"ciphertext\":\"\",\"subtype\":\"system\",\"event\":\"peer_joined\",\"eventData\":{\"a\":[1,2]}}"),
                  FRAME_PUSH);
        ASSERT_EQ(ok("{\"type\":\"push\",\"messageId\":\"w\",\"senderPubkey\":\"webhook:ci\",\"nonce\":\"\","
                     "\"ciphertext\":\"\"}"),
                  FRAME_PUSH);
        ASSERT_EQ(ok("{\"type\":\"peers_list\",\"_reqId\":\"pl\",\"peers\":[]}"), FRAME_PEERS_LIST);
        ASSERT_EQ(ok("{\"type\":\"peers_list\",\"peers\":[{\"pubkey\":\"" HEX64 "\",\"memberPubkey\":\"" HEX64 "\","
                     "\"displayName\":\"a\",\"summary\":null,\"groups\":[],\"visible\":true,\"profile\":{},"
                     "\"hostname\":null,\"stats\":{}}]}"),
                  FRAME_PEERS_LIST);
        ASSERT_EQ(ok("{\"type\":\"error\",\"code\":\"no_hello\",\"message\":\"must send hello first\"}"), FRAME_ERROR);
        ASSERT_EQ(ok(" {\"type\":\"error\",\"code\":\"x\",\"unknown\":[1]} \n"), FRAME_ERROR);
        ASSERT_STREQ(frame_kind_to_string(FRAME_PEERS_LIST), "peers_list");
        /* topic_list_response, as upstream's broker answers topic_list */
        ASSERT_EQ(ok("{\"type\":\"topic_list_response\",\"topics\":[]}"), FRAME_TOPIC_LIST_RESPONSE);
        ASSERT_EQ(ok("{\"type\":\"topic_list_response\",\"_reqId\":\"t\",\"topics\":[{\"id\":\"Tq9x\",\"name\":\"general\","
                     "\"description\":null,\"visibility\":\"public\",\"memberCount\":3,"
                     "\"createdAt\":\"2026-05-01T10:00:00.000Z\"}]}"),
                  FRAME_TOPIC_LIST_RESPONSE);
        ASSERT_STREQ(frame_kind_to_string(FRAME_TOPIC_LIST_RESPONSE), "topic_list_response");
        /* the shared state, as the broker answers get_state (a key not set too) and list_state */
        ASSERT_EQ(ok("{\"type\":\"state_result\",\"key\":\"k\",\"value\":{\"a\":[1]},\"updatedBy\":\"alice\","
                     "\"updatedAt\":\"2026-05-01T10:00:00.000Z\",\"_reqId\":\"cm-state-1\"}"),
                  FRAME_STATE_RESULT);
        ASSERT_EQ(ok("{\"type\":\"state_result\",\"key\":\"k\",\"value\":null,\"updatedBy\":\"\",\"updatedAt\":\"\"}"),
                  FRAME_STATE_RESULT);
        ASSERT_EQ(ok("{\"type\":\"state_list\",\"entries\":[{\"key\":\"k\",\"value\":7,\"updatedBy\":\"a\","
                     "\"updatedAt\":\"2026-05-01T10:00:00.000Z\"}],\"_reqId\":\"x\"}"),
                  FRAME_STATE_LIST);
        ASSERT_STREQ(frame_kind_to_string(FRAME_STATE_LIST), "state_list");
        ASSERT_TRUE(frame_kind_to_string(_FRAME_KIND_MAX) == NULL);
}

static void test_not_json(void) {
        bad("", "empty");
        bad("not json", "not JSON");
        bad("{\"type\":\"error\",\"code\":\"x\"", "not JSON");
        bad("{\"type\":\"error\",\"code\":\"x\"} x", "trailing");
        bad("{\"type\":\"error\",\"code\":\"x\"}{}", "trailing");
        bad("[1]", "not a JSON object");
        bad("\"push\"", "not a JSON object");
        bad("{}", "type");
        bad("{\"type\":5}", "type");
        bad("{\"type\":\"error\",\"code\":\"\xff\"}", "not JSON");          /* invalid UTF-8 */
        bad("{'type':'error'}", "not JSON");                               /* strict mode */
        ASSERT_EQ(frame_validate("{\"type\":\"error\",\"code\":\"x\"}\0", 28, NULL, NULL), -EBADMSG);
}

static void test_size(void) {
        const char *head = "{\"type\":\"error\",\"code\":\"x\",\"message\":\"";
        size_t n = strlen(head);
        char *big = malloc(FRAME_MAX_BYTES + 2);

        ASSERT_TRUE(big);
        /* exactly FRAME_MAX_BYTES: the message field may then be too long for its own cap */
        memset(big, 'a', FRAME_MAX_BYTES + 1);
        memcpy(big, head, n);
        memcpy(big + FRAME_MAX_BYTES - 2, "\"}", 2);
        ASSERT_EQ(frame_validate(big, FRAME_MAX_BYTES, NULL, NULL), -EBADMSG);
        memcpy(big + FRAME_MAX_BYTES - 1, "\"}", 2);
        _cleanup_free_ char *error = NULL;
        ASSERT_EQ(frame_validate(big, FRAME_MAX_BYTES + 1, NULL, &error), -EBADMSG);
        ASSERT_CONTAINS(error, "exceeds");
        free(big);

        /* ciphertext up to the frame limit is fine */
        size_t len = 60000;
        _cleanup_free_ char *push = malloc(len + 512);
        ASSERT_TRUE(push);
        int k = snprintf(push, 512, PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"");
        memset(push + k, 'A', len);
        strcpy(push + k + len, "\"}");
        ASSERT_EQ(ok(push), FRAME_PUSH);
}

static void test_fields(void) {
        /* push */
        bad(PUSH_HEAD "\"nonce\":\"\"}", "\"ciphertext\" is missing");
        bad(PUSH_HEAD "\"ciphertext\":\"\"}", "\"nonce\" is missing");
        bad(PUSH_HEAD "\"nonce\":\"a b\",\"ciphertext\":\"\"}", "\"nonce\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"a=b\"}", "\"ciphertext\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"a===\"}", "\"ciphertext\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":5}", "wrong type");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"priority\":\"high\"}", "\"priority\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"senderMemberPubkey\":\"ABCDEF\"}", "\"senderMemberPubkey\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"request_fingerprint\":\"abc\"}", "\"request_fingerprint\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"client_message_id\":\"\"}", "\"client_message_id\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"client_message_id\":\"a\\nb\"}", "\"client_message_id\"");
        bad(PUSH_HEAD "\"nonce\":\"\",\"ciphertext\":\"\",\"senderName\":\"a\\u0000b\"}", "NUL");
        bad("{\"type\":\"push\",\"messageId\":\"m\",\"senderPubkey\":\"" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
            "\",\"nonce\":\"\",\"ciphertext\":\"\"}", "\"senderPubkey\"");
        bad("{\"type\":\"push\",\"messageId\":\"m\",\"senderPubkey\":\"webhook:\",\"nonce\":\"\",\"ciphertext\":\"\"}",
            "\"senderPubkey\"");
        bad("{\"type\":\"push\",\"messageId\":\"\",\"senderPubkey\":\"system\",\"nonce\":\"\",\"ciphertext\":\"\"}",
            "\"messageId\"");

        /* ack */
        bad("{\"type\":\"ack\",\"id\":\"s\",\"messageId\":\"m\"}", "\"queued\" is missing");
        bad("{\"type\":\"ack\",\"id\":\"s\",\"messageId\":\"m\",\"queued\":\"yes\"}", "wrong type");
        bad("{\"type\":\"ack\",\"messageId\":\"m\",\"queued\":true}", "\"id\" is missing");
        bad("{\"type\":\"ack\",\"id\":\"s\",\"messageId\":\"m\",\"queued\":true,\"error\":7}", "\"error\"");

        /* hello_ack */
        bad("{\"type\":\"hello_ack\",\"features\":[]}", "\"features\"");
        bad("{\"type\":\"hello_ack\",\"presenceId\":\"\"}", "\"presenceId\"");
        bad("{\"type\":\"hello_ack\",\"services\":{}}", "\"services\"");

        /* peers_list */
        bad("{\"type\":\"peers_list\"}", "\"peers\" is missing");
        bad("{\"type\":\"peers_list\",\"peers\":{}}", "\"peers\"");
        bad("{\"type\":\"peers_list\",\"peers\":[5]}", "peer 0 is not an object");
        bad("{\"type\":\"peers_list\",\"peers\":[{\"pubkey\":\"" HEX64 "\"},{\"pubkey\":\"x\"}]}", "peer 1");
        /* topic_list_response: an id goes on the wire as "#<id>", so no spaces or controls */
        bad("{\"type\":\"topic_list_response\"}", "\"topics\" is missing");
        bad("{\"type\":\"topic_list_response\",\"topics\":[7]}", "topic 0 is not an object");
        bad("{\"type\":\"topic_list_response\",\"topics\":[{\"name\":\"g\"}]}", "\"id\" is missing");
        bad("{\"type\":\"topic_list_response\",\"topics\":[{\"id\":\"a b\",\"name\":\"g\"}]}", "\"id\"");
        bad("{\"type\":\"topic_list_response\",\"topics\":[{\"id\":\"a\\n\",\"name\":\"g\"}]}", "\"id\"");
        bad("{\"type\":\"topic_list_response\",\"topics\":[{\"id\":\"t\",\"name\":\"\"}]}", "\"name\"");
        bad("{\"type\":\"peers_list\",\"peers\":[{\"pubkey\":\"" HEX64 "\",\"visible\":1}]}", "\"visible\"");

        /* state_result, state_list */
        bad("{\"type\":\"state_result\",\"value\":1}", "\"key\" is missing");
        bad("{\"type\":\"state_result\",\"key\":\"k\",\"updatedAt\":\"a\\nb\"}", "\"updatedAt\"");
        bad("{\"type\":\"state_result\",\"key\":\"k\",\"_reqId\":7}", "\"_reqId\"");
        bad("{\"type\":\"state_list\"}", "\"entries\" is missing");
        bad("{\"type\":\"state_list\",\"entries\":[1]}", "entry 0 is not an object");
        bad("{\"type\":\"state_list\",\"entries\":[{\"key\":\"k\"},{\"value\":1}]}", "entry 1");

        /* error */
        bad("{\"type\":\"error\"}", "\"code\" is missing");
        bad("{\"type\":\"error\",\"code\":\"\"}", "\"code\"");
        bad("{\"type\":\"error\",\"code\":\"x\",\"_reqId\":1}", "\"_reqId\"");
}

static void test_unknown_types(void) {
        _cleanup_free_ char *error = NULL;
        json_object *o = NULL;

        /* well-formed, but not for the daemon: a distinct code, so it is logged quietly */
        ASSERT_EQ(validate("{\"type\":\"state_change\",\"key\":\"k\"}", &o, &error), -EOPNOTSUPP);
        ASSERT_TRUE(o == NULL);
        ASSERT_CONTAINS(error, "state_change");
        ASSERT_EQ(validate("{\"type\":\"hello\"}", NULL, NULL), -EOPNOTSUPP);
        ASSERT_EQ(validate("{\"type\":\"\"}", NULL, NULL), -EOPNOTSUPP);
}

static void test_deep_nesting(void) {
        char deep[256];
        int n = snprintf(deep, sizeof deep, "{\"type\":\"push\",\"eventData\":");
        for (int i = 0; i < 60; i++)
                deep[n++] = '[';
        deep[n] = '\0';
        bad(deep, "not JSON");
}

int main(void) {
        test_kinds();
        test_not_json();
        test_size();
        test_fields();
        test_unknown_types();
        test_deep_nesting();
        return 0;
}
