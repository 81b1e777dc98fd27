/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "mesh-config.h"
#include "tests.h"

#define PATH "/home/u/.claudemesh/config.json"
#define BROKER "wss://ic.claudemesh.com/ws"
#define X16 "xxxxxxxxxxxxxxxx"
#define ROOT_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" /* bytes 0..31 */

typedef struct Key {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        uint8_t sk[crypto_sign_SECRETKEYBYTES];
        char pk_hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
        char sk_hex[2 * crypto_sign_SECRETKEYBYTES + 1];
} Key;

static Key keys[3];

static void keys_generate(void) {
        ASSERT_TRUE(sodium_init() >= 0);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                ASSERT_OK(crypto_sign_keypair(keys[i].pk, keys[i].sk));
                sodium_bin2hex(keys[i].pk_hex, sizeof keys[i].pk_hex, keys[i].pk, sizeof keys[i].pk);
                sodium_bin2hex(keys[i].sk_hex, sizeof keys[i].sk_hex, keys[i].sk, sizeof keys[i].sk);
        }
}

static void json_object_putp(json_object **o) {
        json_object_put(*o);
}

static json_object *entry_new(const char *slug, const char *mesh_id, const Key *k) {
        json_object *e = json_object_new_object();
        char member_id[64];

        snprintf(member_id, sizeof member_id, "member-%s", mesh_id);
        json_object_object_add(e, "meshId", json_object_new_string(mesh_id));
        json_object_object_add(e, "memberId", json_object_new_string(member_id));
        json_object_object_add(e, "slug", json_object_new_string(slug));
        json_object_object_add(e, "name", json_object_new_string(slug));
        json_object_object_add(e, "pubkey", json_object_new_string(k->pk_hex));
        json_object_object_add(e, "secretKey", json_object_new_string(k->sk_hex));
        json_object_object_add(e, "brokerUrl", json_object_new_string(BROKER));
        json_object_object_add(e, "joinedAt", json_object_new_string("2026-05-03T19:24:32.123Z"));
        return e;
}

/* {"version":1,"meshes":[e0, e1, ...]} as text; takes the entries. */
static char *config_text(size_t n, json_object *entries[]) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *meshes = json_object_new_array();
        char *text;

        for (size_t i = 0; i < n; i++)
                json_object_array_add(meshes, entries[i]);
        json_object_object_add(root, "version", json_object_new_int(1));
        json_object_object_add(root, "meshes", meshes);
        text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
        ASSERT_TRUE(text);
        return text;
}

static MeshConfig *parse_ok(const char *text) {
        MeshConfig *c = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(mesh_config_parse(text, strlen(text), PATH, &c, &error), 0);
        ASSERT_TRUE(c && !error);
        return c;
}

static bool all_zero(const uint8_t *p, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

/* A valid "alpha" entry followed by second; the second must be the only invalid one, and its
 * error must name the file, the mesh (by slug, or by index when the slug is unusable) and want. */
static void check_second_invalid(json_object *second, bool slug_usable, const char *want) {
        json_object *entries[] = { entry_new("alpha", "mesh-alpha", &keys[0]), second };
        _cleanup_free_ char *text = config_text(ELEMENTSOF(entries), entries);
        _cleanup_(mesh_config_freep) MeshConfig *c = parse_ok(text);
        const MeshEntry *e;

        ASSERT_EQ(c->n_meshes, 2);
        ASSERT_EQ(c->n_invalid, 1);
        ASSERT_TRUE(c->meshes[0].error == NULL);
        e = &c->meshes[1];
        ASSERT_EQ(e->index, 1);
        ASSERT_CONTAINS(e->error, PATH ": ");
        if (slug_usable)
                ASSERT_CONTAINS(e->error, ": mesh \"acme\" (meshes[1]): ");
        else {
                ASSERT_CONTAINS(e->error, PATH ": meshes[1]: ");
                ASSERT_TRUE(e->slug == NULL);
        }
        ASSERT_CONTAINS(e->error, want);
        ASSERT_TRUE(all_zero(e->secret_key, sizeof e->secret_key));
}

static void test_bad_fields(void) {
        /* value is JSON text; NULL removes the field. */
        static const struct {
                const char *field, *value, *want;
        } cases[] = {
                { "meshId", NULL, "meshId is missing" },
                { "meshId", "42", "meshId must be a string" },
                { "meshId", "null", "meshId must be a string" },
                { "meshId", "\"\"", "meshId must be 1-128 printable ASCII characters without '|'" },
                { "meshId", "\"a|b\"", "meshId must be 1-128 printable ASCII characters without '|'" },
                { "meshId", "\"a\\u0001b\"", "meshId must be 1-128 printable ASCII" },
                { "meshId", "\"a\\u0000b\"", "meshId must be 1-128 printable ASCII" },
                { "meshId", "\"m\\u00e9sh\"", "meshId must be 1-128 printable ASCII" },
                { "meshId", "\"" X16 X16 X16 X16 X16 X16 X16 X16 "x\"", "meshId must be 1-128" },
                { "memberId", NULL, "memberId is missing" },
                { "memberId", "[]", "memberId must be a string" },
                { "memberId", "\"x|y\"", "memberId must be 1-128 printable ASCII characters without '|'" },
                { "memberId", "\"" X16 X16 X16 X16 X16 X16 X16 X16 "x\"", "memberId must be 1-128" },
                { "name", NULL, "name is missing" },
                { "name", "true", "name must be a string" },
                { "name", "\"\"", "name must be non-empty UTF-8 text of at most 256 bytes" },
                { "name", "\"a\\u0000b\"", "name must be non-empty UTF-8" },
                { "name", "\"" X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 "x\"",
                  "name must be non-empty UTF-8 text of at most 256 bytes" },
                { "pubkey", NULL, "pubkey is missing" },
                { "pubkey", "7", "pubkey must be a string" },
                { "pubkey", "\"abc\"", "pubkey must be 64 lowercase hex characters" },
                { "pubkey", "\"" X16 X16 X16 X16 "\"", "pubkey must be 64 lowercase hex characters" },
                { "secretKey", NULL, "secretKey is missing" },
                { "secretKey", "{}", "secretKey must be a string" },
                { "secretKey", "\"00\"", "secretKey must be 128 hex characters" },
                { "brokerUrl", NULL, "brokerUrl is missing" },
                { "brokerUrl", "1", "brokerUrl must be a string" },
                { "brokerUrl", "\"https://ic.claudemesh.com/ws\"", "brokerUrl must be a ws:// or wss:// URL" },
                { "brokerUrl", "\"wss://\"", "brokerUrl must be a ws:// or wss:// URL with a host" },
                { "brokerUrl", "\"wss:///ws\"", "brokerUrl must be a ws:// or wss:// URL" },
                { "brokerUrl", "\"wss://:443/ws\"", "brokerUrl must be a ws:// or wss:// URL" },
                { "brokerUrl", "\"wss://host/ws#x\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://ho st/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://host/ws\\n\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://user:pw@host/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://host:0/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://host:65536/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://host:/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"wss://[]/ws\"", "brokerUrl must be" },
                { "brokerUrl", "\"WSS://host/ws\"", "brokerUrl must be" },
                { "joinedAt", "1714761600", "joinedAt must be a string" },
                { "joinedAt", "\"yesterday\"", "joinedAt must be an ISO 8601 time" },
                { "joinedAt", "\"2026-02-30T00:00:00Z\"", "joinedAt must be an ISO 8601 time" },
                { "rootKey", "32", "rootKey must be a string" },
                { "rootKey", "\"" ROOT_KEY "=\"", "rootKey must be 32 bytes in unpadded base64url" },
                { "rootKey", "\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\"", "rootKey must be 32 bytes" },
                { "rootKey", "\"+AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\"", "rootKey must be 32 bytes" },
                { "rootKey", "\"" ROOT_KEY "AAAA\"", "rootKey must be 32 bytes" },
                { "inviteVersion", "\"2\"", "inviteVersion must be an integer" },
                { "inviteVersion", "2.0", "inviteVersion must be an integer" },
                { "inviteVersion", "3", "inviteVersion must be 1 or 2" },
                { "inviteVersion", "0", "inviteVersion must be 1 or 2" },
                { "requiredFeatures", "\"client_ack\"", "requiredFeatures must be an array" },
                { "requiredFeatures", "[\"client_ack\", \"teleport\"]", "requiredFeatures[1] must be one of" },
                { "requiredFeatures", "[7]", "requiredFeatures[0] must be one of" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                json_object *e = entry_new("acme", "mesh-acme", &keys[1]);

                if (cases[i].value)
                        json_object_object_add(e, cases[i].field, json_tokener_parse(cases[i].value));
                else
                        json_object_object_del(e, cases[i].field);
                check_second_invalid(e, true, cases[i].want);
        }
}

static void test_required_features(void) {
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        _cleanup_free_ char *text = NULL, *why = NULL;
        json_object *e = entry_new("acme", "mesh-acme", &keys[0]), *root = json_object_new_object(),
                    *meshes = json_object_new_array();

        json_object_object_add(e, "requiredFeatures",
                               json_tokener_parse("[\"client_message_id_dedupe\", \"max_payload\"]"));
        json_object_array_add(meshes, e);
        json_object_array_add(meshes, entry_new("beta", "mesh-beta", &keys[1]));
        json_object_object_add(root, "meshes", meshes);
        text = strdup(json_object_to_json_string(root));
        json_object_put(root);
        ASSERT_OK(mesh_config_parse(text, strlen(text), "/x/config.json", &c, &why));
        ASSERT_TRUE(c->meshes[0].error == NULL);
        ASSERT_EQ(c->meshes[0].required_features,
                  (1u << MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE) | (1u << MESH_FEATURE_MAX_PAYLOAD));
        ASSERT_EQ(c->meshes[1].required_features, 0);
        ASSERT_STREQ(mesh_feature_to_string(MESH_FEATURE_CLIENT_ACK), "client_ack");
}

static void test_bad_slug(void) {
        static const char *const values[] = {
                NULL, "7", "\"\"", "\"a b\"", "\"a/b\"", "\"caf\\u00e9\"", "\"" X16 X16 X16 X16 "x\"",
        };

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                json_object *e = entry_new("acme", "mesh-acme", &keys[1]);

                if (values[i])
                        json_object_object_add(e, "slug", json_tokener_parse(values[i]));
                else
                        json_object_object_del(e, "slug");
                check_second_invalid(e, false, values[i] ? "slug must be" : "slug is missing");
        }
}

static void test_bad_secret_key(void) {
        json_object *e;
        char hex[2 * crypto_sign_SECRETKEYBYTES + 1];
        uint8_t sk[crypto_sign_SECRETKEYBYTES];

        /* Hex digits fine, but a 'g' in the middle. */
        e = entry_new("acme", "mesh-acme", &keys[1]);
        memcpy(hex, keys[1].sk_hex, sizeof hex);
        hex[70] = 'g';
        json_object_object_add(e, "secretKey", json_object_new_string(hex));
        check_second_invalid(e, true, "secretKey must be 128 hex characters");

        /* Another key altogether: its public half is not our pubkey. */
        e = entry_new("acme", "mesh-acme", &keys[1]);
        json_object_object_add(e, "secretKey", json_object_new_string(keys[2].sk_hex));
        check_second_invalid(e, true, "secretKey does not match pubkey (its last 32 bytes differ)");

        /* Another seed spliced onto our public half: only deriving the key catches it. */
        e = entry_new("acme", "mesh-acme", &keys[1]);
        memcpy(sk, keys[2].sk, 32);
        memcpy(sk + 32, keys[1].pk, 32);
        sodium_bin2hex(hex, sizeof hex, sk, sizeof sk);
        json_object_object_add(e, "secretKey", json_object_new_string(hex));
        check_second_invalid(e, true, "secretKey does not match pubkey (its seed derives another public key)");

        /* A bad pubkey and a good secretKey: only the pubkey is blamed. */
        e = entry_new("acme", "mesh-acme", &keys[1]);
        json_object_object_add(e, "pubkey", json_object_new_string("00"));
        check_second_invalid(e, true, "pubkey must be 64 lowercase hex characters");
}

static void test_uppercase_pubkey_refused(void) {
        char upper[sizeof keys[1].pk_hex];
        json_object *e = entry_new("acme", "mesh-acme", &keys[1]);

        for (size_t i = 0; i < sizeof upper; i++)
                upper[i] = (char) toupper((unsigned char) keys[1].pk_hex[i]);
        json_object_object_add(e, "pubkey", json_object_new_string(upper));
        check_second_invalid(e, true, "pubkey must be 64 lowercase hex characters");
}

static void test_all_problems_collected(void) {
        json_object *e = entry_new("acme", "mesh-acme", &keys[1]);

        json_object_object_del(e, "meshId");
        json_object_object_add(e, "brokerUrl", json_object_new_string("http://x"));
        json_object_object_add(e, "inviteVersion", json_object_new_int(9));
        check_second_invalid(e, true,
                             "meshId is missing; brokerUrl must be a ws:// or wss:// URL with a host and no "
                             "whitespace, credentials or fragment; inviteVersion must be 1 or 2");
}

static void test_entry_not_object(void) {
        _cleanup_(mesh_config_freep) MeshConfig *c = parse_ok("{\"meshes\":[1,\"x\",null]}");

        ASSERT_EQ(c->n_meshes, 3);
        ASSERT_EQ(c->n_invalid, 3);
        ASSERT_STREQ(c->meshes[0].error, PATH ": meshes[0]: must be an object");
        ASSERT_STREQ(c->meshes[2].error, PATH ": meshes[2]: must be an object");
        ASSERT_TRUE(c->meshes[1].mesh_id == NULL && c->meshes[1].slug == NULL);
}

static void test_valid(void) {
        json_object *entries[] = {
                entry_new("acme", "Q3nV0cX1", &keys[0]),
                entry_new("beta.team_2-x", "mesh-beta", &keys[1]),
                entry_new("gamma", "mesh-gamma", &keys[2]),
        };
        _cleanup_free_ char *text = NULL;
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        const uint8_t msg[] = "Q3nV0cX1|member-Q3nV0cX1|pk|1714761600123";
        uint8_t sig[crypto_sign_BYTES];
        char upper[sizeof keys[2].sk_hex];
        usec_t joined;

        json_object_object_add(entries[0], "rootKey", json_object_new_string(ROOT_KEY));
        json_object_object_add(entries[0], "inviteVersion", json_object_new_int(2));
        json_object_object_add(entries[0], "futureField", json_object_new_string("ignored"));
        json_object_object_add(entries[1], "brokerUrl", json_object_new_string("ws://[::1]:8080/ws?x=1"));
        json_object_object_add(entries[1], "inviteVersion", json_object_new_int(1));
        json_object_object_del(entries[1], "joinedAt");
        /* Uppercase secret hex is accepted. */
        for (size_t i = 0; i < sizeof upper; i++)
                upper[i] = (char) toupper((unsigned char) keys[2].sk_hex[i]);
        json_object_object_add(entries[2], "secretKey", json_object_new_string(upper));
        json_object_object_add(entries[2], "brokerUrl", json_object_new_string("ws://localhost:8080"));
        json_object_object_add(entries[2], "name", json_object_new_string("Gämma team"));

        text = config_text(ELEMENTSOF(entries), entries);
        c = parse_ok(text);
        ASSERT_STREQ(c->path, PATH);
        ASSERT_EQ(c->n_meshes, 3);
        ASSERT_EQ(c->n_invalid, 0);
        ASSERT_TRUE(c->display_name == NULL && c->message_mode == NULL && c->n_groups == 0);

        for (size_t i = 0; i < c->n_meshes; i++) {
                const MeshEntry *e = &c->meshes[i];

                ASSERT_TRUE(e->error == NULL);
                ASSERT_EQ(e->index, i);
                ASSERT_STREQ(e->pubkey_hex, keys[i].pk_hex);
                ASSERT_EQ(memcmp(e->pubkey, keys[i].pk, sizeof e->pubkey), 0);
                ASSERT_EQ(memcmp(e->secret_key, keys[i].sk, sizeof e->secret_key), 0);
                /* The parsed secret key signs what the pubkey verifies. */
                ASSERT_OK(crypto_sign_detached(sig, NULL, msg, sizeof msg - 1, e->secret_key));
                ASSERT_EQ(crypto_sign_verify_detached(sig, msg, sizeof msg - 1, e->pubkey), 0);
        }

        ASSERT_STREQ(c->meshes[0].mesh_id, "Q3nV0cX1");
        ASSERT_STREQ(c->meshes[0].member_id, "member-Q3nV0cX1");
        ASSERT_STREQ(c->meshes[0].slug, "acme");
        ASSERT_STREQ(c->meshes[0].name, "acme");
        ASSERT_STREQ(c->meshes[0].broker_url, BROKER);
        ASSERT_OK(parse_iso8601("2026-05-03T19:24:32.123Z", &joined));
        ASSERT_EQ(c->meshes[0].joined_at, joined);
        ASSERT_STREQ(c->meshes[0].root_key, ROOT_KEY);
        for (size_t i = 0; i < 32; i++)
                ASSERT_EQ(c->meshes[0].root_key_bytes[i], i);
        ASSERT_EQ(c->meshes[0].invite_version, 2);

        ASSERT_STREQ(c->meshes[1].broker_url, "ws://[::1]:8080/ws?x=1");
        ASSERT_EQ(c->meshes[1].joined_at, 0);
        ASSERT_TRUE(c->meshes[1].root_key == NULL);
        ASSERT_EQ(c->meshes[1].invite_version, 1);
        ASSERT_EQ(c->meshes[2].invite_version, 0);
        ASSERT_STREQ(c->meshes[2].name, "Gämma team");

        ASSERT_TRUE(mesh_config_find_slug(c, "beta.team_2-x") == &c->meshes[1]);
        ASSERT_TRUE(mesh_config_find_slug(c, "nope") == NULL);
        ASSERT_TRUE(mesh_config_find_slug(NULL, "acme") == NULL);
        ASSERT_TRUE(mesh_config_find_mesh_id(c, "mesh-gamma") == &c->meshes[2]);
        ASSERT_TRUE(mesh_config_find_mesh_id(c, "gamma") == NULL);
}

static void test_duplicates(void) {
        json_object *entries[] = {
                entry_new("acme", "mesh-1", &keys[0]),
                entry_new("acme", "mesh-2", &keys[1]),
                entry_new("other", "mesh-1", &keys[2]),
                entry_new("acme", "mesh-1", &keys[2]),
        };
        _cleanup_free_ char *text = config_text(ELEMENTSOF(entries), entries);
        _cleanup_(mesh_config_freep) MeshConfig *c = parse_ok(text);

        ASSERT_EQ(c->n_meshes, 4);
        ASSERT_EQ(c->n_invalid, 3);
        ASSERT_TRUE(c->meshes[0].error == NULL);
        ASSERT_STREQ(c->meshes[1].error, PATH ": mesh \"acme\" (meshes[1]): slug duplicates meshes[0]");
        ASSERT_TRUE(c->meshes[1].slug == NULL);
        ASSERT_STREQ(c->meshes[2].error, PATH ": mesh \"other\" (meshes[2]): meshId duplicates meshes[0]");
        ASSERT_STREQ(c->meshes[2].slug, "other");
        ASSERT_STREQ(c->meshes[3].error,
                     PATH ": mesh \"acme\" (meshes[3]): meshId duplicates meshes[0]; slug duplicates meshes[0]");
        ASSERT_TRUE(c->meshes[3].slug == NULL);
        ASSERT_TRUE(mesh_config_find_slug(c, "acme") == &c->meshes[0]);
        ASSERT_TRUE(mesh_config_find_mesh_id(c, "mesh-1") == &c->meshes[0]);
        for (size_t i = 1; i < c->n_meshes; i++)
                ASSERT_TRUE(all_zero(c->meshes[i].secret_key, sizeof c->meshes[i].secret_key));
}

/* Many entries, repeating slugs in a cycle: every repeat names the first holder of its slug. */
static void test_many_duplicates(void) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *meshes = json_object_new_array();
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        char buf[64];

        json_object_object_add(root, "meshes", meshes);
        for (size_t i = 0; i < 3000; i++) {
                json_object *e = json_object_new_object();

                snprintf(buf, sizeof buf, "s%zu", (i * 7) % 1000);
                json_object_object_add(e, "slug", json_object_new_string(buf));
                snprintf(buf, sizeof buf, "m%zu", i);
                json_object_object_add(e, "meshId", json_object_new_string(buf));
                json_object_array_add(meshes, e);
        }
        /* One more without a slug, in the middle of nothing: it must not be taken for a duplicate. */
        json_object_array_add(meshes, json_object_new_object());

        c = parse_ok(json_object_to_json_string(root));
        ASSERT_EQ(c->n_meshes, 3001);
        ASSERT_EQ(c->n_invalid, 3001); /* the other required fields are missing */
        for (size_t i = 0; i < 3000; i++) {
                const MeshEntry *e = &c->meshes[i];

                snprintf(buf, sizeof buf, "slug duplicates meshes[%zu]", i % 1000);
                if (i < 1000) {
                        ASSERT_TRUE(strstr(e->error, "duplicates") == NULL);
                        ASSERT_TRUE(e->slug != NULL);
                        ASSERT_TRUE(mesh_config_find_slug(c, e->slug) == e);
                } else {
                        ASSERT_CONTAINS(e->error, buf);
                        ASSERT_TRUE(e->slug == NULL);
                }
        }
        ASSERT_TRUE(strstr(c->meshes[3000].error, "duplicates") == NULL);
}

static void test_top_level(void) {
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;

        c = parse_ok("{}");
        ASSERT_EQ(c->n_meshes, 0);
        ASSERT_TRUE(c->meshes == NULL);
        c = mesh_config_free(c);

        c = parse_ok("  {\"version\": 1, \"meshes\": []}\n\n");
        ASSERT_EQ(c->n_meshes, 0);
        c = mesh_config_free(c);

        c = parse_ok("{\"version\":1,\"meshes\":[],\"displayName\":\"box-c\",\"role\":\"dev\",\"accountId\":\"acc1\","
                     "\"messageMode\":\"inbox\",\"defaultMesh\":\"acme\","
                     "\"groups\":[{\"name\":\"backend\",\"role\":\"lead\"},{\"name\":\"ops\"}],"
                     "\"somethingNew\":{\"x\":[1,2]}}");
        ASSERT_STREQ(c->display_name, "box-c");
        ASSERT_STREQ(c->role, "dev");
        ASSERT_STREQ(c->account_id, "acc1");
        ASSERT_STREQ(c->message_mode, "inbox");
        ASSERT_STREQ(c->default_mesh, "acme");
        ASSERT_EQ(c->n_groups, 2);
        ASSERT_STREQ(c->groups[0].name, "backend");
        ASSERT_STREQ(c->groups[0].role, "lead");
        ASSERT_STREQ(c->groups[1].name, "ops");
        ASSERT_TRUE(c->groups[1].role == NULL);
}

static void test_file_level_errors(void) {
        static const struct {
                const char *text;
                int r;
                const char *want;
        } cases[] = {
                { "", -EBADMSG, "not valid JSON" },
                { "{", -EBADMSG, "not valid JSON" },
                { "{\"meshes\":[}", -EBADMSG, "not valid JSON" },
                { "{\"meshes\":[],}", -EBADMSG, "not valid JSON" },
                { "{} x", -EBADMSG, "not valid JSON" },
                { "{}{}", -EBADMSG, "not valid JSON" },
                { "{a:1}", -EBADMSG, "not valid JSON" },
                { "{\"a\":1} // comment", -EBADMSG, "not valid JSON" },
                { "{\"a\":\"\xff\"}", -EBADMSG, "not valid JSON" },
                { "null", -EBADMSG, "not valid JSON" },
                { "[]", -EINVAL, "the top level must be a JSON object" },
                { "\"x\"", -EINVAL, "the top level must be a JSON object" },
                { "{\"meshes\":{}}", -EINVAL, "meshes must be an array" },
                { "{\"meshes\":null}", -EINVAL, "meshes must be an array" },
                { "{\"version\":2}", -EINVAL, "version must be 1" },
                { "{\"version\":\"1\"}", -EINVAL, "version must be an integer" },
                { "{\"version\":1.0}", -EINVAL, "version must be an integer" },
                { "{\"displayName\":5}", -EINVAL, "displayName must be a string" },
                { "{\"displayName\":\"a\\u0000b\"}", -EINVAL, "displayName must be a string of UTF-8 text" },
                { "{\"messageMode\":\"loud\"}", -EINVAL, "messageMode must be one of push, inbox, off" },
                { "{\"messageMode\":true}", -EINVAL, "messageMode must be a string" },
                { "{\"role\":5}", -EINVAL, "role must be a string" },
                { "{\"defaultMesh\":[]}", -EINVAL, "defaultMesh must be a string" },
                { "{\"accountId\":[]}", -EINVAL, "accountId must be a string" },
                { "{\"groups\":\"x\"}", -EINVAL, "groups must be an array" },
                { "{\"groups\":[1]}", -EINVAL, "groups[0] must be an object" },
                { "{\"groups\":[{\"name\":\"a\"},{\"role\":\"x\"}]}", -EINVAL, "groups[1].name must be" },
                { "{\"groups\":[{\"name\":\"\"}]}", -EINVAL, "groups[0].name must be" },
                { "{\"groups\":[{\"name\":\"a\",\"role\":5}]}", -EINVAL, "groups[0].role must be a string" },
                { "{\"version\":2,\"messageMode\":\"x\",\"meshes\":5}", -EINVAL,
                  "version must be 1 (a newer claudemesh wrote this file; upgrade claudemeshd); meshes must be an "
                  "array; messageMode must be one of push, inbox, off" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                MeshConfig *c = NULL;
                _cleanup_free_ char *error = NULL;

                ASSERT_EQ(mesh_config_parse(cases[i].text, strlen(cases[i].text), PATH, &c, &error), cases[i].r);
                ASSERT_TRUE(c == NULL);
                ASSERT_CONTAINS(error, PATH ": ");
                ASSERT_CONTAINS(error, cases[i].want);
                /* Callers may pass no ret_error. */
                ASSERT_EQ(mesh_config_parse(cases[i].text, strlen(cases[i].text), PATH, &c, NULL), cases[i].r);
        }
}

static void test_embedded_nul(void) {
        static const char text[] = "{\"meshes\":[]}\0{}";
        MeshConfig *c = NULL;
        _cleanup_free_ char *error = NULL;

        ASSERT_EQ(mesh_config_parse(text, sizeof text - 1, PATH, &c, &error), -EBADMSG);
        ASSERT_CONTAINS(error, "unexpected data after the top-level object");
}

static void write_config(const char *path, const char *text, mode_t mode) {
        ASSERT_OK(write_file_atomic(path, text, strlen(text), mode));
}

static void test_load(void) {
        json_object *entries[] = { entry_new("acme", "mesh-acme", &keys[0]) };
        _cleanup_free_ char *text = config_text(ELEMENTSOF(entries), entries);
        _cleanup_free_ char *big = NULL;
        char dir[512], path[1024], want[4096], target[1024];
        MeshConfig *c = NULL;
        char *error = NULL;

        snprintf(dir, sizeof dir, "%s/claudemesh", test_tmpdir());
        snprintf(path, sizeof path, "%s/config.json", dir);

        /* Missing directory or file: an empty config, as upstream treats it. */
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), 0);
        ASSERT_TRUE(c && !error);
        ASSERT_STREQ(c->path, path);
        ASSERT_EQ(c->n_meshes, 0);
        c = mesh_config_free(c);
        ASSERT_OK(mkdir_parents_mode(dir, 0700));
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), 0);
        ASSERT_EQ(c->n_meshes, 0);
        c = mesh_config_free(c);

        write_config(path, text, 0600);
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), 0);
        ASSERT_TRUE(!error);
        ASSERT_EQ(c->n_meshes, 1);
        ASSERT_EQ(c->n_invalid, 0);
        ASSERT_STREQ(c->meshes[0].slug, "acme");
        ASSERT_EQ(memcmp(c->meshes[0].secret_key, keys[0].sk, sizeof keys[0].sk), 0);
        c = mesh_config_free(c);

        /* 0400 is fine too; any group/other bit is not. */
        ASSERT_OK(chmod(path, 0400));
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), 0);
        c = mesh_config_free(c);
        for (mode_t m = 01; m <= 040; m <<= 1) {
                ASSERT_OK(chmod(path, 0600 | m));
                ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EPERM);
                ASSERT_TRUE(c == NULL);
                snprintf(want, sizeof want, "run: chmod 600 %s", path);
                ASSERT_CONTAINS(error, want);
                free(TAKE_PTR(error));
        }
        ASSERT_OK(chmod(path, 0600));

        /* Owned by someone else (as seen from the uid we claim to run as). */
        ASSERT_EQ(mesh_config_load(path, geteuid() + 1, &c, &error), -EPERM);
        snprintf(want, sizeof want, "File %s is owned by uid %u", path, (unsigned) geteuid());
        ASSERT_CONTAINS(error, want);
        snprintf(want, sizeof want, "chown %u %s", (unsigned) geteuid() + 1, path);
        ASSERT_CONTAINS(error, want);
        free(TAKE_PTR(error));

        /* The directory's mode. */
        ASSERT_OK(chmod(dir, 0755));
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EPERM);
        snprintf(want, sizeof want, "Directory %s is accessible by group or others (mode 0755)", dir);
        ASSERT_CONTAINS(error, want);
        snprintf(want, sizeof want, "run: chmod 700 %s", dir);
        ASSERT_CONTAINS(error, want);
        free(TAKE_PTR(error));
        ASSERT_OK(chmod(dir, 0700));

        /* The directory's owner: needs a file owned by a uid the directory is not (root only). */
        if (geteuid() == 0) {
                ASSERT_OK(chown(path, 4242, (gid_t) -1));
                ASSERT_EQ(mesh_config_load(path, 4242, &c, &error), -EPERM);
                snprintf(want, sizeof want, "Directory %s is owned by uid 0", dir);
                ASSERT_CONTAINS(error, want);
                snprintf(want, sizeof want, "chown 4242 %s", dir);
                ASSERT_CONTAINS(error, want);
                free(TAKE_PTR(error));
                ASSERT_OK(chown(path, 0, (gid_t) -1));
        }

        /* A symlink to a perfectly good file is still refused. */
        snprintf(target, sizeof target, "%s/real.json", dir);
        ASSERT_OK(rename(path, target));
        ASSERT_OK(symlink(target, path));
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -ELOOP);
        ASSERT_CONTAINS(error, path);
        ASSERT_CONTAINS(error, "is a symbolic link");
        free(TAKE_PTR(error));
        ASSERT_OK(unlink(path));

        ASSERT_OK(mkdir(path, 0700));
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EISDIR);
        ASSERT_CONTAINS(error, "is a directory");
        free(TAKE_PTR(error));
        ASSERT_OK(rmdir(path));

        /* Exactly 1 MiB is allowed (and then fails as JSON); one byte more is refused unread. */
        big = malloc(MESH_CONFIG_MAX_SIZE + 2);
        ASSERT_TRUE(big);
        memset(big, ' ', MESH_CONFIG_MAX_SIZE + 1);
        big[MESH_CONFIG_MAX_SIZE + 1] = '\0';
        write_config(path, big, 0600);
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EFBIG);
        ASSERT_CONTAINS(error, "larger than 1 MiB");
        ASSERT_CONTAINS(error, path);
        free(TAKE_PTR(error));
        big[MESH_CONFIG_MAX_SIZE] = '\0';
        write_config(path, big, 0600);
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EBADMSG);
        free(TAKE_PTR(error));
        ASSERT_EQ(mesh_config_parse(big, MESH_CONFIG_MAX_SIZE + 1, path, &c, &error), -EFBIG);
        free(TAKE_PTR(error));

        /* Broken JSON comes back as a message naming the file, not a crash. */
        write_config(path, "{\"meshes\": [", 0600);
        ASSERT_EQ(mesh_config_load(path, geteuid(), &c, &error), -EBADMSG);
        snprintf(want, sizeof want, "%s: not valid JSON", path);
        ASSERT_CONTAINS(error, want);
        free(TAKE_PTR(error));
        ASSERT_TRUE(c == NULL);
}

int main(void) {
        keys_generate();
        test_bad_fields();
        test_bad_slug();
        test_required_features();
        test_bad_secret_key();
        test_uppercase_pubkey_refused();
        test_all_problems_collected();
        test_entry_not_object();
        test_valid();
        test_duplicates();
        test_many_duplicates();
        test_top_level();
        test_file_level_errors();
        test_embedded_nul();
        test_load();
        return 0;
}
