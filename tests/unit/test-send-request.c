/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Send validation (DECISIONS §1, §2, §5, §15): destination grammar and name resolution, option
 * rules, id minting, the frame-size limit, and that the fingerprint covers what it should. */
#include <string.h>

#include "destination.h"
#include "macro.h"
#include "send-request.h"
#include "tests.h"
#include "wire-send.h"

/* Real ed25519 public keys: a DM to a key without a curve25519 form is refused. */
#define PK_A "d9af14ca7846e211c243a5eded064f0d34d4ad9095608291f05d3df1b65d8e0e"
#define PK_B "06ee551fcb0f5c94a7d114f1737fc4cb75eec3c66380acb25f6acec8348cd179"
#define PK_C "cc7c81f5c9bb458d1cad744b9db363efb0f99297eaeef045ee33c48687e35c0e"

static const PeerName peers[] = {
        { PK_A, "alice", NULL, NULL },
        { PK_B, "bob", NULL, NULL },
        { PK_C, "Bob", NULL, NULL },
};

/* As the broker's topic_list_response lists them. */
static const TopicName topics[] = {
        { "Tq9xK2", "general" },
        { "general", "not-general" }, /* an id equal to another topic's name: ids win */
        { "Zz81", "team chat" },
};

static void check_destination(const char *to, const char *kind, const char *ref) {
        _cleanup_free_ char *why = NULL;
        Destination d = { 0 };

        ASSERT_OK(destination_parse(to, "acme", peers, ELEMENTSOF(peers), topics, ELEMENTSOF(topics), &d, &why));
        ASSERT_STREQ(d.kind, kind);
        ASSERT_STREQ(d.ref, ref);
        ASSERT_STREQ(d.target_spec, ref);
        destination_done(&d);
}

static void check_destination_error(const char *to, const PeerName *p, size_t n, int error, const char *needle) {
        _cleanup_free_ char *why = NULL;
        Destination d = { 0 };

        ASSERT_EQ(destination_parse(to, "acme", p, n, topics, ELEMENTSOF(topics), &d, &why), error);
        ASSERT_CONTAINS(why, needle);
        ASSERT_TRUE(d.ref == NULL);
}

static void test_destinations(void) {
        check_destination(PK_A, "dm", PK_A);
        check_destination("D9AF14CA7846E211C243A5EDED064F0D34D4AD9095608291F05D3DF1B65D8E0E", "dm", PK_A);
        check_destination("*", "topic", "*");
        check_destination("@all", "topic", "*");
        check_destination("@backend", "topic", "@backend");
        check_destination("#t-123", "topic", "#t-123");      /* unknown: as given, the broker decides */
        check_destination("#Tq9xK2", "topic", "#Tq9xK2");    /* a known id */
        check_destination("#not-general", "topic", "#general"); /* a name: its id */
        check_destination("#general", "topic", "#general");  /* an id before a name */
        check_destination("#team chat", "topic", "#Zz81");   /* a name may have spaces; the id goes out */
        check_destination("alice", "dm", PK_A);
        check_destination("ALICE", "dm", PK_A);   /* case-insensitive when not exact */
        check_destination("bob", "dm", PK_B);     /* exact beats folded */

        check_destination_error("", peers, 3, -EINVAL, "empty");
        check_destination_error("@", peers, 3, -EINVAL, "not a group");
        check_destination_error("@a b", peers, 3, -EINVAL, "not a group");
        check_destination_error("#", peers, 3, -EINVAL, "not a topic");
        check_destination_error("#no such topic", peers, 3, -EINVAL, "not a topic");
        check_destination_error("carol", peers, 3, -ENOENT, "Known peers: alice (d9af14ca), bob (06ee551f)");
        check_destination_error("carol", NULL, 0, -ENOENT, "knows no peers yet");
        check_destination_error("BOB", peers, 3, -ENOTUNIQ, "bob (06ee551f), Bob (cc7c81f5)");
        /* 64 hex digits that are no ed25519 point, or a point of small order (all zero): refused,
         * naming the key, whatever the peer list says */
        check_destination_error("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", peers, 3, -EINVAL, "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is not a valid ed25519");
        check_destination_error("0000000000000000000000000000000000000000000000000000000000000000", NULL, 0, -EINVAL, "not a valid ed25519 public key");
        /* 63 hex digits are a name, not a key */
        check_destination_error(PK_A + 1, peers, 3, -ENOENT, "No peer of mesh \"acme\"");
}

/* A member's daemon row gives way to its own sessions of that name (upstream's send skips
 * control-plane rows); not to another member's session, and not when it is alone. */
static void test_destination_roles(void) {
        static const PeerName roles[] = {
                { PK_A, "alice", PK_A, "control-plane" },
                { PK_B, "alice", PK_A, "session" },
                { PK_C, "carol", PK_C, "control-plane" },
        };
        static const PeerName two_sessions[] = {
                { PK_A, "alice", PK_A, "control-plane" },
                { PK_B, "alice", PK_A, "session" },
                { PK_C, "Alice", PK_A, "session" },
        };
        static const PeerName other_member[] = {
                { PK_A, "alice", PK_A, "control-plane" },
                { PK_B, "alice", PK_C, "session" },
        };
        _cleanup_free_ char *why = NULL;
        Destination d = { 0 };

        ASSERT_OK(destination_parse("alice", "acme", roles, ELEMENTSOF(roles), NULL, 0, &d, &why));
        ASSERT_STREQ(d.ref, PK_B);
        destination_done(&d);
        ASSERT_OK(destination_parse("ALICE", "acme", roles, ELEMENTSOF(roles), NULL, 0, &d, &why));
        ASSERT_STREQ(d.ref, PK_B);
        destination_done(&d);
        ASSERT_OK(destination_parse("carol", "acme", roles, ELEMENTSOF(roles), NULL, 0, &d, &why));
        ASSERT_STREQ(d.ref, PK_C);
        destination_done(&d);
        /* two sessions: ambiguous between the sessions, the daemon row not offered */
        check_destination_error("ALICE", two_sessions, 3, -ENOTUNIQ, "alice (06ee551f), Alice (cc7c81f5);");
        check_destination_error("alice", other_member, 2, -ENOTUNIQ, "alice (d9af14ca), alice (06ee551f)");
}

static void check_resolves(const char *to, const PeerName *p, size_t n, const char *pubkey) {
        _cleanup_free_ char *why = NULL;
        Destination d = { 0 };

        ASSERT_OK(destination_parse(to, "acme", p, n, NULL, 0, &d, &why));
        ASSERT_STREQ(d.ref, pubkey);
        destination_done(&d);
}

/* Shadowing ignores case in both passes: the daemon "Alice" beside its own session "alice" is
 * hidden even from the exact pass, so "Alice" reaches the session, not the daemon's inbox. */
static void test_destination_roles_case(void) {
        static const PeerName own_session[] = {
                { PK_A, "Alice", PK_A, "control-plane" },
                { PK_B, "alice", PK_A, "session" },
        };
        static const PeerName other_member[] = {
                { PK_A, "Alice", PK_A, "control-plane" },
                { PK_B, "alice", PK_C, "session" },
        };
        static const PeerName alone[] = {
                { PK_A, "Alice", PK_A, "control-plane" },
                { PK_C, "carol", PK_C, "control-plane" },
        };
        static const PeerName exact_twice[] = {
                { PK_A, "alice", PK_A, "session" },
                { PK_B, "alice", PK_B, "session" },
                { PK_C, "Alice", PK_C, "session" },
        };

        check_resolves("Alice", own_session, 2, PK_B);
        check_resolves("alice", own_session, 2, PK_B);
        check_resolves("ALICE", own_session, 2, PK_B);

        /* another member's session hides nothing: a name both match only by case is refused,
         * naming both; each exact name is its own peer's */
        check_destination_error("ALICE", other_member, 2, -ENOTUNIQ, "\"ALICE\": Alice (d9af14ca), alice (06ee551f);");
        check_resolves("Alice", other_member, 2, PK_A);
        check_resolves("alice", other_member, 2, PK_B);

        /* a daemon alone keeps its name, in either case */
        check_resolves("Alice", alone, 2, PK_A);
        check_resolves("alice", alone, 2, PK_A);

        /* the candidates are the peers counted: two exact matches, the folded one not offered */
        check_destination_error("alice", exact_twice, 3, -ENOTUNIQ, "\"alice\": alice (d9af14ca), alice (06ee551f);");
}

static int prepare(const char *to, const char *message, const SendOptions *o, SendRequest *req, char **why) {
        return send_request_prepare("acme", to, message, o, peers, ELEMENTSOF(peers), topics, ELEMENTSOF(topics),
                                    1777836272123000ULL, req, why);
}

static void check_refused(const SendOptions *o, const char *message, const char *needle) {
        _cleanup_free_ char *why = NULL;
        SendRequest req = { 0 };

        ASSERT_EQ(prepare("*", message, o, &req, &why), -EINVAL);
        ASSERT_CONTAINS(why, needle);
        ASSERT_TRUE(req.client_message_id == NULL);
}

static void test_validation(void) {
        char long_id[OUTBOX_CLIENT_MESSAGE_ID_MAX + 2];

        memset(long_id, 'x', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = '\0';
        check_refused(&(SendOptions) { 0 }, "", "empty");
        check_refused(&(SendOptions) { .priority = "urgent" }, "m", "\"priority\"");
        check_refused(&(SendOptions) { .meta = "[1,2]" }, "m", "must be a JSON object");
        check_refused(&(SendOptions) { .meta = "\"x\"" }, "m", "must be a JSON object");
        check_refused(&(SendOptions) { .meta = "{\"a\":1,\"a\":1}" }, "m", "not valid JSON");
        check_refused(&(SendOptions) { .meta = "{\"n\":NaN}" }, "m", "not valid JSON");
        check_refused(&(SendOptions) { .client_message_id = long_id }, "m", "client_message_id");
        check_refused(&(SendOptions) { .client_message_id = "tab\there" }, "m", "client_message_id");
        check_refused(&(SendOptions) { .client_message_id = "" }, "m", "client_message_id");
        check_refused(&(SendOptions) { .reply_to_id = "" }, "m", "reply_to_id");

        /* meta: at most SEND_META_MAX bytes of canonical JSON, measured after canonicalization */
        {
                _cleanup_free_ char *meta = malloc(SEND_META_MAX + 32), *why = NULL;
                _cleanup_(send_request_done) SendRequest req = { 0 };
                size_t fill = SEND_META_MAX - strlen("{\"k\":\"\"}");

                ASSERT_TRUE(meta != NULL);
                /* spaces the canonical form drops: the limit is on what is stored */
                snprintf(meta, SEND_META_MAX + 32, "{ \"k\" :  \"%0*d\" }", (int) fill, 0);
                ASSERT_OK(prepare("*", "m", &(SendOptions) { .meta = meta }, &req, &why));
                ASSERT_EQ(strlen(req.meta_json), SEND_META_MAX);
                snprintf(meta, SEND_META_MAX + 32, "{\"k\":\"%0*d\"}", (int) fill + 1, 0);
                ASSERT_EQ(prepare("*", "m", &(SendOptions) { .meta = meta }, &req, &why), -EMSGSIZE);
                ASSERT_CONTAINS(why, "16385 bytes as canonical JSON, at most 16384");
        }

        long_id[OUTBOX_CLIENT_MESSAGE_ID_MAX] = '\0';
        ASSERT_TRUE(outbox_client_message_id_is_valid(long_id));
        ASSERT_TRUE(outbox_client_message_id_is_valid("a b~!"));
        ASSERT_TRUE(!outbox_client_message_id_is_valid("caf\xc3\xa9"));
}

static void test_normalized(void) {
        _cleanup_(send_request_done) SendRequest a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
        _cleanup_free_ char *why = NULL;

        ASSERT_OK(prepare("alice", "hi", &(SendOptions) { .meta = "{\"z\":1,\"a\":[1.0,2e0]}" }, &a, &why));
        ASSERT_STREQ(a.priority, "next");
        ASSERT_STREQ(a.meta_json, "{\"a\":[1,2],\"z\":1}");
        ASSERT_EQ(strlen(a.client_message_id), 26);            /* minted ULID */
        ASSERT_TRUE(strncmp(a.client_message_id, "01K", 3) == 0); /* its time prefix: 2026 */

        /* same request, other spelling of the same meta and an explicit default priority */
        ASSERT_OK(prepare(PK_A, "hi", &(SendOptions) { .meta = "{\"a\":[1,2],\"z\":1}", .priority = "next",
                                                      .client_message_id = "id-1" }, &b, &why));
        ASSERT_TRUE(memcmp(a.fingerprint, b.fingerprint, sizeof a.fingerprint) == 0);
        ASSERT_STREQ(b.client_message_id, "id-1");

        /* {} and null meta are no meta */
        ASSERT_OK(prepare("*", "hi", &(SendOptions) { .meta = "{}" }, &c, &why));
        ASSERT_TRUE(c.meta_json == NULL);
        ASSERT_OK(prepare("*", "hi", &(SendOptions) { .meta = "null", .reply_to_id = "m-1" }, &d, &why));
        ASSERT_TRUE(d.meta_json == NULL);
        ASSERT_STREQ(d.reply_to, "m-1");
        ASSERT_TRUE(memcmp(c.fingerprint, d.fingerprint, sizeof c.fingerprint) != 0); /* reply_to counts */
}

static void test_frame_limit(void) {
        _cleanup_free_ char *big = NULL, *why = NULL;
        size_t fit = 0;
        SendRequest req = { 0 };

        /* the largest body whose sealed DM frame fits */
        while (wire_send_frame_size("id-1", PK_B, "next", NULL, fit + 1, true) <= WIRE_FRAME_MAX)
                fit++;
        ASSERT_TRUE(fit > 48000 && fit < 49000);
        big = malloc(fit + 2);
        ASSERT_TRUE(big);
        memset(big, 'y', fit + 1);
        big[fit] = '\0';
        ASSERT_OK(prepare(PK_B, big, &(SendOptions) { .client_message_id = "id-1" }, &req, &why));
        send_request_done(&req);
        big[fit] = 'y';
        big[fit + 1] = '\0';
        ASSERT_EQ(prepare(PK_B, big, &(SendOptions) { .client_message_id = "id-1" }, &req, &why), -EMSGSIZE);
        ASSERT_CONTAINS(why, "at most 65536");
        /* unsealed, the same body still fits: the MAC and the 64-hex target make the difference */
        ASSERT_OK(prepare("*", big, &(SendOptions) { .client_message_id = "id-1" }, &req, &why));
        send_request_done(&req);

        /* the bound is exact for a frame without escapes: count it by hand */
        ASSERT_EQ(wire_send_frame_size("id", "*", "next", NULL, 3, false),
                  strlen("{\"type\":\"send\",\"id\":\"id\",\"targetSpec\":\"*\",\"priority\":\"next\","
                         "\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"ciphertext\":\"eXl5\","
                         "\"client_message_id\":\"id\",\"request_fingerprint\":\"") + 64 + 2);
        ASSERT_EQ(wire_send_frame_size("a/b", "*", "next", "r", 0, false) -
                          wire_send_frame_size("abc", "*", "next", NULL, 0, false),
                  2 + strlen(",\"replyToId\":\"r\""));
}

int main(void) {
        test_destinations();
        test_destination_roles();
        test_destination_roles_case();
        test_validation();
        test_normalized();
        test_frame_limit();
        return 0;
}
