/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The channel notifications' content and meta from inbox rows and peer dicts as bus_message_read_json()
 * gives them, with the value types of older daemons (groups as JSON text, connected_at as a string)
 * and of newer ones (as, t). */
#include <string.h>

#include "json-util.h"
#include "mcp.h"
#include "tests.h"

static json_object *parse(const char *text) {
        json_object *o = NULL;

        ASSERT_OK(json_parse_strict(text, strlen(text), &o));
        return o;
}

static const char *meta(json_object *params, const char *key) {
        json_object *m = json_object_object_get(params, "meta"), *v;

        if (!json_object_object_get_ex(m, key, &v))
                return NULL;
        ASSERT_TRUE(json_object_is_type(v, json_type_string));
        return json_object_get_string(v);
}

static const char *content(json_object *params) {
        return json_object_get_string(json_object_object_get(params, "content"));
}

/* Claude Code drops a notification whose meta holds anything but strings. */
static void assert_meta_strings(json_object *params) {
        json_object_object_foreach(json_object_object_get(params, "meta"), k, v) {
                (void) k;
                ASSERT_TRUE(json_object_is_type(v, json_type_string));
        }
}

static void test_direct_message(void) {
        _cleanup_(json_object_putp) json_object *row = parse(
                "{\"id\":\"01ROW\",\"client_message_id\":\"c1\",\"broker_message_id\":\"b1\",\"mesh\":\"demo\","
                "\"topic\":\"\",\"sender_pubkey\":\"aa\",\"sender_name\":\"alice\",\"body\":\"hi\\nthere\","
                "\"meta\":\"{\\\"priority\\\":\\\"next\\\",\\\"encrypted\\\":true}\",\"received_at\":5,"
                "\"reply_to_id\":\"\"}"),
                *params = NULL;

        ASSERT_OK(mcp_format_message(row, "demo", &params));
        ASSERT_STREQ(content(params), "alice: hi\nthere");
        ASSERT_STREQ(meta(params, "from_id"), "aa");
        ASSERT_STREQ(meta(params, "from_pubkey"), "aa");
        ASSERT_STREQ(meta(params, "from_session_pubkey"), "aa");
        ASSERT_STREQ(meta(params, "from_name"), "alice");
        ASSERT_STREQ(meta(params, "mesh_slug"), "demo");
        ASSERT_STREQ(meta(params, "priority"), "next");
        ASSERT_STREQ(meta(params, "message_id"), "b1");
        ASSERT_STREQ(meta(params, "client_message_id"), "c1");
        /* only what the message has */
        ASSERT_TRUE(!meta(params, "topic") && !meta(params, "reply_to_id") && !meta(params, "subtype"));
        ASSERT_TRUE(!meta(params, "kind"));
        assert_meta_strings(params);
}

static void test_priorities_topic_reply(void) {
        /* priority from meta (today's daemon), then as its own key (a newer one) winning */
        _cleanup_(json_object_putp) json_object *now = parse(
                "{\"id\":\"01A\",\"sender_pubkey\":\"aa\",\"sender_member_pubkey\":\"mm\",\"sender_name\":\"alice\","
                "\"topic\":\"general\",\"body\":\"go\",\"meta\":\"{\\\"priority\\\":\\\"now\\\"}\","
                "\"reply_to_id\":\"b0\",\"subtype\":\"reminder\",\"broker_message_id\":\"\"}"),
                *low = parse("{\"sender_name\":\"bob\",\"body\":\"later\",\"priority\":\"low\","
                             "\"meta\":\"{\\\"priority\\\":\\\"now\\\"}\"}"),
                *odd = parse("{\"sender_name\":\"\",\"body\":\"x\",\"meta\":\"not json\"}"), *params = NULL;
        _cleanup_free_ char *line = NULL;

        ASSERT_OK(mcp_format_message(now, "demo", &params));
        ASSERT_STREQ(content(params), "[URGENT] alice (#general): go");
        ASSERT_STREQ(meta(params, "priority"), "now");
        ASSERT_STREQ(meta(params, "topic"), "general");
        ASSERT_STREQ(meta(params, "reply_to_id"), "b0");
        ASSERT_STREQ(meta(params, "subtype"), "reminder");
        /* the member key names the sender, the session key stays beside it; the row id without a broker id */
        ASSERT_STREQ(meta(params, "from_id"), "mm");
        ASSERT_STREQ(meta(params, "from_pubkey"), "mm");
        ASSERT_STREQ(meta(params, "from_session_pubkey"), "aa");
        ASSERT_STREQ(meta(params, "message_id"), "01A");
        json_object_put(TAKE_PTR(params));

        ASSERT_OK(mcp_format_message(low, "demo", &params));
        ASSERT_STREQ(content(params), "[low] bob: later");
        json_object_put(TAKE_PTR(params));
        ASSERT_OK(mcp_format_content(low, &line));
        ASSERT_STREQ(line, "[low] bob: later");

        ASSERT_OK(mcp_format_message(odd, "demo", &params));
        ASSERT_STREQ(content(params), "unknown: x");
        ASSERT_STREQ(meta(params, "priority"), "next");
        json_object_put(TAKE_PTR(params));
}

static void test_peer_lines(void) {
        /* groups as JSON text of upstream's objects (s), and as names (as) */
        _cleanup_(json_object_putp) json_object *text = parse(
                "{\"pubkey\":\"0123456789abcdef\",\"display_name\":\"bob\","
                "\"groups\":\"[{\\\"name\\\":\\\"backend\\\",\\\"role\\\":\\\"lead\\\"},{\\\"name\\\":\\\"ops\\\"}]\","
                "\"connected_at\":\"2026-12-03T08:00:00Z\",\"summary\":\"on PR 42\"}"),
                *typed = parse("{\"pubkey\":\"fedcba9876543210\",\"display_name\":\"carol\",\"groups\":[\"a\",\"b\"],"
                               "\"connected_at\":1764748800000000}"),
                *bare = parse("{\"display_name\":\"dave\",\"groups\":\"not json\"}"), *params = NULL;
        _cleanup_free_ char *at = NULL, *at2 = NULL, *none = NULL;

        ASSERT_OK(mcp_format_peer(text, "demo", true, &params));
        ASSERT_STREQ(content(params), "[system] Peer \"bob\" (01234567) [backend, ops] joined the mesh");
        ASSERT_STREQ(meta(params, "kind"), "system");
        ASSERT_STREQ(meta(params, "event"), "peer_joined");
        ASSERT_STREQ(meta(params, "peer_name"), "bob");
        ASSERT_STREQ(meta(params, "peer_pubkey"), "0123456789abcdef");
        ASSERT_STREQ(meta(params, "peer_groups"), "[{\"name\":\"backend\",\"role\":\"lead\"},{\"name\":\"ops\"}]");
        ASSERT_STREQ(meta(params, "peer_summary"), "on PR 42");
        assert_meta_strings(params);
        json_object_put(TAKE_PTR(params));

        ASSERT_OK(mcp_format_peer(typed, "demo", false, &params));
        ASSERT_STREQ(content(params), "[system] Peer \"carol\" (fedcba98) [a, b] left the mesh");
        ASSERT_STREQ(meta(params, "event"), "peer_left");
        ASSERT_STREQ(meta(params, "peer_groups"), "[\"a\",\"b\"]");
        json_object_put(TAKE_PTR(params));

        ASSERT_OK(mcp_format_peer(bare, "demo", true, &params));
        ASSERT_STREQ(content(params), "[system] Peer \"dave\" joined the mesh");
        ASSERT_TRUE(!meta(params, "peer_groups") && !meta(params, "peer_pubkey"));
        json_object_put(TAKE_PTR(params));

        ASSERT_OK(mcp_format_scalar(text, "connected_at", &at));
        ASSERT_STREQ(at, "2026-12-03T08:00:00Z");
        ASSERT_OK(mcp_format_scalar(typed, "connected_at", &at2));
        ASSERT_STREQ(at2, "1764748800000000");
        ASSERT_OK(mcp_format_scalar(bare, "connected_at", &none));
        ASSERT_STREQ(none, "");
}

static void test_system(void) {
        _cleanup_(json_object_putp) json_object *params = NULL;

        ASSERT_OK(mcp_format_system("[system] 37 messages arrived while you were away; use read_inbox", "backlog",
                                    "demo", &params));
        ASSERT_STREQ(content(params), "[system] 37 messages arrived while you were away; use read_inbox");
        ASSERT_STREQ(meta(params, "kind"), "system");
        ASSERT_STREQ(meta(params, "event"), "backlog");
        ASSERT_STREQ(meta(params, "mesh_slug"), "demo");
}

int main(void) {
        test_direct_message();
        test_priorities_topic_reply();
        test_peer_lines();
        test_system();
        return 0;
}
