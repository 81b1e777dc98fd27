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

static void test_hello(void) {
        _cleanup_(json_object_putp) json_object *o = start_packet(), *h = NULL;
        _cleanup_free_ char *payload = NULL, *error = NULL;
        WorkerConfig c = { .pid = 0 };
        char sig[129];

        ASSERT_OK(worker_config_from_start(o, &c, &error));
        ASSERT_OK(hello_sign_payload(&c, 1714761600123, &payload));
        ASSERT_STREQ(payload, "M|U|" HEX64 "|1714761600123");

        memset(sig, 'A', 128);
        sig[128] = '\0';
        ASSERT_EQ(hello_frame_new(&c, 1714761600123, "abc", &h), -EINVAL);
        ASSERT_OK(hello_frame_new(&c, 1714761600123, sig, &h));
        ASSERT_STREQ(json_object_to_json_string_ext(h, JSON_C_TO_STRING_PLAIN),
                     "{\"type\":\"hello\",\"meshId\":\"M\",\"memberId\":\"U\",\"pubkey\":\"" HEX64 "\","
                     "\"sessionPubkey\":\"" HEX64 "\",\"sessionId\":\"s\",\"pid\":42,\"cwd\":\"\\/\","
                     "\"peerType\":\"ai\",\"channel\":\"claudemesh-daemon\",\"capabilities\":[\"client_ack\",\"peer_updated\"],"
                     "\"timestamp\":1714761600123,\"signature\":\""
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
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
        test_backoff();
        return 0;
}
