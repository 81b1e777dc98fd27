/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "backoff.h"
#include "config.h"
#include "hello.h"
#include "json-util.h"
#include "macro.h"
#include "tests.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check_url(const char *url, int tls, const char *host, int port, const char *path) {
        WorkerConfig c = { .pid = 0 };
        _cleanup_free_ char *error = NULL;

        ASSERT_OK(broker_url_parse(url, &c, &error));
        ASSERT_EQ(c.tls, tls);
        ASSERT_STREQ(c.host, host);
        ASSERT_EQ(c.port, port);
        ASSERT_STREQ(c.path, path);
        worker_config_done(&c);
}

static void bad_url(const char *url) {
        WorkerConfig c = { .pid = 0 };
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(broker_url_parse(url, &c, &error), -EINVAL);
        ASSERT_CONTAINS(error, "broker URL");
        worker_config_done(&c);
}

static void test_urls(void) {
        check_url("wss://ic.claudemesh.com/ws", 1, "ic.claudemesh.com", 443, "/ws");
        check_url("ws://127.0.0.1:7900/ws", 0, "127.0.0.1", 7900, "/ws");
        check_url("ws://[::1]:80/ws", 0, "::1", 80, "/ws");
        check_url("ws://localhost", 0, "localhost", 80, "/");
        check_url("wss://h:8443/a/b?x=1", 1, "h", 8443, "/a/b?x=1");
        bad_url("http://h/ws");
        bad_url("ws://");
        bad_url("ws://:80/ws");
        bad_url("ws://h:/ws");
        bad_url("ws://h:0/ws");
        bad_url("ws://h:65536/ws");
        bad_url("ws://h:80x/ws");
        bad_url("ws://[::1/ws");
        bad_url("ws://user@h/ws");
        bad_url("ws://h/ws#frag");
        bad_url("ws://h/w s");
}

static json_object *start_packet(void) {
        json_object *o = json_tokener_parse(
                "{\"type\":\"start\",\"broker_url\":\"ws://127.0.0.1:7900/ws\",\"mesh_id\":\"M\",\"member_id\":\"U\","
                "\"pubkey\":\"" HEX64 "\",\"session_pubkey\":\"" HEX64 "\",\"session_id\":\"s\",\"pid\":42,"
                "\"ping_interval_ms\":1000,\"liveness_timeout_ms\":3000,\"allow_self_signed\":false}");
        ASSERT_TRUE(o);
        return o;
}

static void test_start(void) {
        _cleanup_(json_object_putp) json_object *o = start_packet();
        _cleanup_free_ char *error = NULL;
        WorkerConfig c = { .pid = 0 };

        ASSERT_OK(worker_config_from_start(o, &c, &error));
        ASSERT_EQ(c.pid, 42);
        ASSERT_EQ(c.ping_interval_ms, 1000);
        ASSERT_EQ(c.liveness_timeout_ms, 3000);
        ASSERT_STREQ(c.cwd, "/");
        ASSERT_TRUE(c.display_name == NULL && c.hostname == NULL && !c.allow_self_signed);
        worker_config_done(&c);

        static const struct {
                const char *key, *value, *why;
        } bad[] = {
                { "pubkey", "\"" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef" "\"", "pubkey" },
                { "session_pubkey", "\"abc\"", "session_pubkey" },
                { "mesh_id", "null", "mesh_id" },
                { "mesh_id", "\"\"", "mesh_id" },
                { "mesh_slug", "\"ac me\"", "mesh_slug" },
                { "mesh_slug", "\"a\\u001b]0;x\\u0007\"", "mesh_slug" },
                { "mesh_slug", "\"\"", "mesh_slug" },
                { "broker_url", "\"tcp://x\"", "broker URL" },
                { "ping_interval_ms", "10", "ping_interval_ms" },
                { "liveness_timeout_ms", "\"75000\"", "liveness_timeout_ms" },
                { "allow_self_signed", "1", "allow_self_signed" },
                { "pid", "-1", "pid" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *p = start_packet();
                _cleanup_free_ char *e = NULL;
                WorkerConfig d = { .pid = 0 };

                json_object_object_add(p, bad[i].key, json_tokener_parse(bad[i].value));
                ASSERT_EQ(worker_config_from_start(p, &d, &e), -EINVAL);
                ASSERT_CONTAINS(e, bad[i].why);
                worker_config_done(&d);
        }
}

#define SIG_A "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define SIG_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SIG_A_LOWER "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SESSION_HEX "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

static void test_hello(void) {
        _cleanup_(json_object_putp) json_object *o = start_packet(), *h = NULL;
        _cleanup_free_ char *payload = NULL, *error = NULL;
        WorkerConfig c = { .pid = 0 };
        HelloRound round;

        ASSERT_OK(worker_config_from_start(o, &c, &error));
        hello_round_start(&round, 1714761600123);
        ASSERT_OK(hello_sign_payload(&c, NULL, &round, &payload));
        ASSERT_STREQ(payload, "M|U|" HEX64 "|1714761600123");

        ASSERT_EQ(hello_round_add_signature(&round, NULL, "abc"), -EINVAL);
        ASSERT_TRUE(!hello_round_complete(&round, NULL));
        ASSERT_OK(hello_round_add_signature(&round, NULL, SIG_A));
        ASSERT_TRUE(hello_round_complete(&round, NULL));
        ASSERT_OK(hello_frame_new(&c, NULL, &round, &h));
        ASSERT_STREQ(json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN),
                     "{\"type\":\"hello\",\"meshId\":\"M\",\"memberId\":\"U\",\"pubkey\":\"" HEX64 "\","
                     "\"sessionPubkey\":\"" HEX64 "\",\"sessionId\":\"s\",\"pid\":42,\"cwd\":\"\\/\","
                     "\"peerType\":\"ai\",\"channel\":\"claudemesh-daemon\",\"capabilities\":[\"client_ack\"],"
                     "\"timestamp\":1714761600123,\"signature\":\"" SIG_A_LOWER "\"}");
        worker_config_done(&c);
}

static json_object *open_packet(void) {
        return json_tokener_parse("{\"type\":\"session_open\",\"conn\":7,\"session_pubkey\":\"" SESSION_HEX "\","
                                  "\"session_id\":\"sid-1\",\"display_name\":\"agent\",\"pid\":4242,"
                                  "\"cwd\":\"/home/u/p\",\"groups\":[{\"name\":\"ops\",\"role\":\"lead\"}]}");
}

static void test_session_open(void) {
        static const struct {
                const char *key, *value, *why;
        } bad[] = {
                { "session_pubkey", "\"" HEX64 "0\"", "too long" },
                { "session_pubkey", "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"", "lowercase hex" },
                { "session_pubkey", "null", "\"session_pubkey\" is missing" },
                { "session_id", "\"\"", "\"session_id\" is empty" },
                { "session_id", "\"a\\u0001b\"", "control characters" },
                { "display_name", "\"line\\nbreak\"", "control characters" },
                { "display_name", "17", "must be a string" },
                { "cwd", "\"/a\\u0000b\"", "NUL" },
                { "pid", "-1", "\"pid\"" },
                { "pid", "\"1\"", "\"pid\"" },
                { "pid", "null", "\"pid\"" },
                { "groups", "[{\"role\":\"x\"}]", "\"groups\" entries" },
                { "groups", "{}", "\"groups\" must be an array" },
        };
        _cleanup_(json_object_putp) json_object *o = open_packet(), *minimal = NULL;
        _cleanup_(session_config_freep) SessionConfig *s = NULL, *m = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_OK(session_config_from_open(o, &s, &error));
        ASSERT_STREQ(s->session_pubkey, SESSION_HEX);
        ASSERT_STREQ(s->session_id, "sid-1");
        ASSERT_STREQ(s->display_name, "agent");
        ASSERT_STREQ(s->cwd, "/home/u/p");
        ASSERT_EQ(s->pid, 4242);
        ASSERT_EQ(json_object_array_length(s->groups), 1);

        /* cwd and groups are optional; the broker needs a cwd */
        minimal = json_tokener_parse("{\"type\":\"session_open\",\"conn\":1,\"session_pubkey\":\"" SESSION_HEX "\","
                                     "\"session_id\":\"x\",\"display_name\":\"d\",\"pid\":0}");
        ASSERT_OK(session_config_from_open(minimal, &m, &error));
        ASSERT_STREQ(m->cwd, "/");
        ASSERT_TRUE(!m->groups);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *p = open_packet();
                _cleanup_(session_config_freep) SessionConfig *d = NULL;
                _cleanup_free_ char *e = NULL;

                json_object_object_add(p, bad[i].key, json_tokener_parse(bad[i].value));
                ASSERT_EQ(session_config_from_open(p, &d, &e), -EINVAL);
                ASSERT_TRUE(!d);
                ASSERT_CONTAINS(e, bad[i].why);
        }
}

static void test_session_hello(void) {
        _cleanup_(json_object_putp) json_object *o = start_packet(), *open = open_packet(), *h = NULL;
        _cleanup_free_ char *attest = NULL, *hello = NULL, *error = NULL;
        _cleanup_(session_config_freep) SessionConfig *s = NULL;
        WorkerConfig c = { .pid = 0 };
        HelloRound round;

        ASSERT_OK(worker_config_from_start(o, &c, &error));
        ASSERT_OK(session_config_from_open(open, &s, &error));
        hello_round_start(&round, 1796227184218);
        ASSERT_EQ(round.expires_at_ms, 1796227184218 + 12LL * 3600 * 1000);

        /* the attestation first, with the member's key; then the hello, with the session's */
        ASSERT_STREQ(hello_round_next_name(&round, s), "session attestation");
        ASSERT_OK(hello_sign_payload(&c, s, &round, &attest));
        ASSERT_STREQ(attest, "claudemesh-session-attest|" HEX64 "|" SESSION_HEX "|1796270384218");
        ASSERT_OK(hello_round_add_signature(&round, s, SIG_A));
        ASSERT_TRUE(!hello_round_complete(&round, s));
        ASSERT_STREQ(hello_round_next_name(&round, s), "session hello");
        ASSERT_OK(hello_sign_payload(&c, s, &round, &hello));
        ASSERT_STREQ(hello, "claudemesh-session-hello|M|" HEX64 "|" SESSION_HEX "|1796227184218");
        ASSERT_EQ(hello_round_add_signature(&round, s, SIG_B "0"), -EINVAL);
        ASSERT_OK(hello_round_add_signature(&round, s, SIG_B));
        ASSERT_TRUE(hello_round_complete(&round, s));

        /* wire-protocol-head §2, field for field */
        ASSERT_OK(hello_frame_new(&c, s, &round, &h));
        ASSERT_STREQ(json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
                     "{\"type\":\"session_hello\",\"meshId\":\"M\",\"parentMemberId\":\"U\","
                     "\"parentMemberPubkey\":\"" HEX64 "\",\"sessionPubkey\":\"" SESSION_HEX "\","
                     "\"parentAttestation\":{\"sessionPubkey\":\"" SESSION_HEX "\",\"parentMemberPubkey\":\"" HEX64 "\","
                     "\"expiresAt\":1796270384218,\"signature\":\"" SIG_A_LOWER "\"},"
                     "\"displayName\":\"agent\",\"sessionId\":\"sid-1\",\"pid\":4242,\"cwd\":\"/home/u/p\","
                     "\"peerType\":\"ai\",\"channel\":\"claudemesh-session\","
                     "\"groups\":[{\"name\":\"ops\",\"role\":\"lead\"}],"
                     "\"timestamp\":1796227184218,\"signature\":\"" SIG_B "\"}");
        worker_config_done(&c);
}

static void test_backoff(void) {
        static const uint64_t caps[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000 };

        for (unsigned a = 0; a < ELEMENTSOF(caps); a++) {
                ASSERT_EQ(backoff_cap_ms(a), caps[a]);
                ASSERT_EQ(backoff_delay_ms(a, 0), 0);
                ASSERT_EQ(backoff_delay_ms(a, UINT32_MAX), (uint64_t) UINT32_MAX % caps[a]);
                ASSERT_TRUE(backoff_delay_ms(a, (uint32_t) caps[a] - 1) == caps[a] - 1);
                ASSERT_TRUE(backoff_delay_ms(a, (uint32_t) caps[a]) == 0);
        }
        ASSERT_EQ(backoff_cap_ms(1000), 30000);

        /* full jitter: spread over the whole [0, cap) */
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
                uint64_t d = backoff_delay_ms(2, backoff_random());
                ASSERT_TRUE(d < 4000);
                lo = d < lo ? d : lo;
                hi = d > hi ? d : hi;
        }
        ASSERT_TRUE(lo < 400 && hi > 3600);
}

int main(void) {
        test_urls();
        test_start();
        test_hello();
        test_session_open();
        test_session_hello();
        test_backoff();
        return 0;
}
