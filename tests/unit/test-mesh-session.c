/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "json-util.h"
#include "macro.h"
#include "mesh-session.h"
#include "tests.h"

static char *new_state_dir(void) {
        static unsigned counter;
        char *dir;

        ASSERT_TRUE(asprintf(&dir, "%s/state%u", test_tmpdir(), counter++) > 0);
        return dir;
}

/* Where the file of mesh_id must be: sessions/<hex SHA-256 of mesh_id>.json. */
static char *session_file(const char *state_dir, const char *mesh_id) {
        uint8_t digest[crypto_hash_sha256_BYTES];
        char hex[2 * crypto_hash_sha256_BYTES + 1], *path;

        crypto_hash_sha256(digest, (const unsigned char *) mesh_id, strlen(mesh_id));
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        ASSERT_TRUE(asprintf(&path, "%s/sessions/%s.json", state_dir, hex) > 0);
        return path;
}

static unsigned count_entries(const char *dir, const char *contains) {
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                if (de->d_name[0] != '.' && (!contains || strstr(de->d_name, contains)))
                        n++;
        closedir(d);
        return n;
}

static char *find_quarantined(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char *path = NULL;

        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                if (strstr(de->d_name, ".json.malformed-")) {
                        ASSERT_TRUE(!path);
                        ASSERT_TRUE(asprintf(&path, "%s/%s", dir, de->d_name) > 0);
                }
        closedir(d);
        ASSERT_TRUE(path);
        return path;
}

static void check_session(const MeshSession *s) {
        uint8_t pk[32], sk[64];
        char hex[65];

        ASSERT_TRUE(strneq(s->session_id, "claudemeshd-", 12));
        ASSERT_EQ(strlen(s->session_id), 12 + 32);
        ASSERT_EQ(strspn(s->session_id + 12, "0123456789abcdef"), 32);
        /* The keypair holds together: seed → pk, and the hex is the lowercase pk. */
        ASSERT_OK(crypto_sign_seed_keypair(pk, sk, s->secret_key));
        ASSERT_TRUE(memcmp(pk, s->public_key, 32) == 0);
        ASSERT_TRUE(memcmp(sk, s->secret_key, 64) == 0);
        sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
        ASSERT_STREQ(s->public_key_hex, hex);
}

static bool same_session(const MeshSession *a, const MeshSession *b) {
        return streq(a->session_id, b->session_id) && memcmp(a->secret_key, b->secret_key, 64) == 0 &&
               memcmp(a->public_key, b->public_key, 32) == 0 && streq(a->public_key_hex, b->public_key_hex);
}

static void test_create_and_reload(void) {
        _cleanup_free_ char *state = new_state_dir(), *path = NULL, *sessions = NULL, *text = NULL;
        _cleanup_(mesh_session_done) MeshSession a = { 0 }, b = { 0 };
        char secret_hex[129], expected[256];
        struct stat st;

        ASSERT_OK(mesh_session_load(state, "mesh-1", &a));
        check_session(&a);

        path = session_file(state, "mesh-1");
        ASSERT_TRUE(asprintf(&sessions, "%s/sessions", state) > 0);
        ASSERT_OK(stat(sessions, &st));
        ASSERT_EQ(st.st_mode & 07777, 0700);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);

        /* The documented format, and no public key in it. */
        ASSERT_OK(read_full_file(path, 4096, &text, NULL, NULL));
        sodium_bin2hex(secret_hex, sizeof secret_hex, a.secret_key, sizeof a.secret_key);
        snprintf(expected, sizeof expected, "{\"schema_version\":1,\"session_id\":\"%s\",\"secret_key\":\"%s\"}\n",
                 a.session_id, secret_hex);
        ASSERT_STREQ(text, expected);
        sodium_memzero(secret_hex, sizeof secret_hex);

        /* A restart finds the same presence. */
        ASSERT_OK(mesh_session_load(state, "mesh-1", &b));
        ASSERT_TRUE(same_session(&a, &b));
        ASSERT_EQ(count_entries(sessions, NULL), 1);

        mesh_session_done(&b);
        for (size_t i = 0; i < sizeof b; i++)
                ASSERT_EQ(((const uint8_t *) &b)[i], 0);
}

static void test_two_meshes(void) {
        _cleanup_free_ char *state = new_state_dir(), *sessions = NULL, *path1 = NULL, *path2 = NULL;
        _cleanup_(mesh_session_done) MeshSession a = { 0 }, b = { 0 }, a2 = { 0 };
        struct stat st;

        /* Mesh ids are opaque: slashes and dots must not reach the file system as such. */
        ASSERT_OK(mesh_session_load(state, "../evil/mesh", &a));
        ASSERT_OK(mesh_session_load(state, "Q3nV0cX1 ünïcode", &b));
        ASSERT_TRUE(!streq(a.session_id, b.session_id));
        ASSERT_TRUE(!streq(a.public_key_hex, b.public_key_hex));

        ASSERT_TRUE(asprintf(&sessions, "%s/sessions", state) > 0);
        ASSERT_EQ(count_entries(sessions, NULL), 2);
        path1 = session_file(state, "../evil/mesh");
        path2 = session_file(state, "Q3nV0cX1 ünïcode");
        ASSERT_OK(stat(path1, &st));
        ASSERT_OK(stat(path2, &st));

        ASSERT_OK(mesh_session_load(state, "../evil/mesh", &a2));
        ASSERT_TRUE(same_session(&a, &a2));

        ASSERT_EQ(mesh_session_load(state, "", &a2), -EINVAL);
        ASSERT_EQ(mesh_session_load(state, NULL, &a2), -EINVAL);
}

/* Writes text over the mesh's file, loads, and checks the file was set aside and replaced. */
static void check_quarantined(const char *text) {
        _cleanup_free_ char *state = new_state_dir(), *path = NULL, *sessions = NULL, *kept = NULL,
                            *quarantined = NULL;
        _cleanup_(mesh_session_done) MeshSession a = { 0 }, b = { 0 }, c = { 0 };
        size_t size;
        struct stat st;

        ASSERT_OK(mesh_session_load(state, "mesh-q", &a));
        path = session_file(state, "mesh-q");
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));

        ASSERT_OK(mesh_session_load(state, "mesh-q", &b));
        check_session(&b);
        ASSERT_TRUE(!same_session(&a, &b));

        ASSERT_TRUE(asprintf(&sessions, "%s/sessions", state) > 0);
        ASSERT_EQ(count_entries(sessions, ".json.malformed-"), 1);
        ASSERT_EQ(count_entries(sessions, NULL), 2);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);

        /* The replacement is stable in turn. */
        ASSERT_OK(mesh_session_load(state, "mesh-q", &c));
        ASSERT_TRUE(same_session(&b, &c));
        ASSERT_EQ(count_entries(sessions, NULL), 2);

        /* The malformed file is kept as it was, for a look. */
        quarantined = find_quarantined(sessions);
        ASSERT_OK(read_full_file(quarantined, 1024 * 1024, &kept, &size, NULL));
        ASSERT_EQ(size, strlen(text));
        ASSERT_TRUE(memcmp(kept, text, size) == 0);
}

static void test_malformed(void) {
        char secret_hex[129], text[512], *big;
        uint8_t pk[32], sk[64];
        const char *id = "claudemeshd-0123456789abcdef0123456789abcdef";

        check_quarantined("");
        check_quarantined("not json");
        check_quarantined("[]");
        check_quarantined("{\"schema_version\":1,\"session_id\":\"claudemeshd-00\"}");

        ASSERT_OK(crypto_sign_keypair(pk, sk));
        sodium_bin2hex(secret_hex, sizeof secret_hex, sk, sizeof sk);

        /* The good form, to show that only the one change below makes each case bad. */
        snprintf(text, sizeof text, "{\"schema_version\":1,\"session_id\":\"%s\",\"secret_key\":\"%s\"}", id,
                 secret_hex);
        {
                _cleanup_free_ char *state = new_state_dir(), *path = session_file(state, "m");
                _cleanup_(mesh_session_done) MeshSession s = { 0 };

                ASSERT_OK(mesh_session_load(state, "m", &s));
                ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
                ASSERT_OK(mesh_session_load(state, "m", &s));
                ASSERT_STREQ(s.session_id, id);
                ASSERT_TRUE(memcmp(s.public_key, pk, 32) == 0);
        }

        snprintf(text, sizeof text, "{\"schema_version\":2,\"session_id\":\"%s\",\"secret_key\":\"%s\"}", id,
                 secret_hex);
        check_quarantined(text);
        snprintf(text, sizeof text, "{\"schema_version\":1,\"session_id\":\"daemon-42\",\"secret_key\":\"%s\"}",
                 secret_hex);
        check_quarantined(text);
        snprintf(text, sizeof text, "{\"schema_version\":1,\"session_id\":\"%s\",\"secret_key\":\"%.64s\"}", id,
                 secret_hex);
        check_quarantined(text);
        snprintf(text, sizeof text, "{\"schema_version\":1,\"session_id\":\"%s\",\"secret_key\":\"%s\"} x", id,
                 secret_hex);
        check_quarantined(text);

        /* The pk half that does not belong to the seed. */
        secret_hex[127] = secret_hex[127] == '0' ? '1' : '0';
        snprintf(text, sizeof text, "{\"schema_version\":1,\"session_id\":\"%s\",\"secret_key\":\"%s\"}", id,
                 secret_hex);
        check_quarantined(text);
        sodium_memzero(secret_hex, sizeof secret_hex);
        sodium_memzero(sk, sizeof sk);

        big = malloc(8192);
        ASSERT_TRUE(big);
        memset(big, ' ', 8191);
        big[8191] = 0;
        check_quarantined(big);
        free(big);
}

/* A file others could read is tightened to 0600, the session kept. */
static void test_wrong_mode(void) {
        _cleanup_free_ char *state = new_state_dir(), *path = NULL, *sessions = NULL;
        _cleanup_(mesh_session_done) MeshSession a = { 0 }, b = { 0 };
        struct stat st;

        ASSERT_OK(mesh_session_load(state, "mesh-m", &a));
        path = session_file(state, "mesh-m");
        ASSERT_TRUE(asprintf(&sessions, "%s/sessions", state) > 0);
        ASSERT_OK(chmod(path, 0644));
        ASSERT_OK(chmod(sessions, 0755));

        ASSERT_OK(mesh_session_load(state, "mesh-m", &b));
        ASSERT_TRUE(same_session(&a, &b));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_OK(stat(sessions, &st));
        ASSERT_EQ(st.st_mode & 07777, 0700);
        ASSERT_EQ(count_entries(sessions, NULL), 1);
}

/* Where the profile of mesh_id must be: sessions/<hex SHA-256 of mesh_id>.profile.json. */
static char *profile_file(const char *state_dir, const char *mesh_id) {
        _cleanup_free_ char *session = session_file(state_dir, mesh_id);
        char *path;

        session[strlen(session) - strlen(".json")] = '\0';
        ASSERT_TRUE(asprintf(&path, "%s.profile.json", session) > 0);
        return path;
}

static void test_profile_roundtrip(void) {
        _cleanup_free_ char *state = new_state_dir(), *path = NULL, *text = NULL;
        _cleanup_(json_object_putp) json_object *p = NULL, *back = NULL;
        const char *json = "{\"summary\":\"reviewing\",\"status\":\"dnd\",\"visible\":false,"
                           "\"profile\":{\"title\":\"Dr\",\"capabilities\":[\"review\",\"ops\"]}}";
        struct stat st;
        size_t size;

        /* Nothing saved yet: no profile, no error. */
        ASSERT_OK(mesh_profile_load(state, "mesh-1", &back));
        ASSERT_TRUE(!back);

        p = json_tokener_parse(json);
        ASSERT_TRUE(p);
        ASSERT_OK(mesh_profile_save(state, "mesh-1", p));
        path = profile_file(state, "mesh-1");
        ASSERT_OK(stat(path, &st) < 0 ? -errno : 0);
        ASSERT_EQ(st.st_mode & 07777, 0600);
        ASSERT_OK(read_full_file(path, 65536, &text, &size, NULL));
        ASSERT_TRUE(strstr(text, "\"schema_version\":1"));

        ASSERT_OK(mesh_profile_load(state, "mesh-1", &back));
        ASSERT_TRUE(back);
        ASSERT_TRUE(json_object_equal(p, back));
        /* Another mesh has its own file. */
        json_object_put(back);
        ASSERT_OK(mesh_profile_load(state, "mesh-2", &back));
        ASSERT_TRUE(!back);

        /* What it would never write is refused. */
        json_object_object_add(p, "status", json_object_new_string("asleep"));
        ASSERT_EQ(mesh_profile_save(state, "mesh-1", p), -EINVAL);
}

static void check_profile_refused(const char *text, size_t size) {
        _cleanup_free_ char *state = new_state_dir(), *path = NULL, *dir = NULL, *moved = NULL;
        _cleanup_(json_object_putp) json_object *p = NULL, *back = NULL;

        /* A valid save first creates the directory; then the file is replaced by text. */
        p = json_tokener_parse("{\"summary\":\"x\"}");
        ASSERT_OK(mesh_profile_save(state, "mesh-1", p));
        path = profile_file(state, "mesh-1");
        ASSERT_OK(write_file_atomic(path, text, size, 0600));

        ASSERT_OK(mesh_profile_load(state, "mesh-1", &back));
        ASSERT_TRUE(!back);
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);
        ASSERT_TRUE(asprintf(&dir, "%s/sessions", state) > 0);
        moved = find_quarantined(dir);
        ASSERT_TRUE(strstr(moved, ".profile.json.malformed-"));
}

static void test_profile_malformed(void) {
        static const char *const texts[] = {
                "",
                "[]",
                "{\"summary\":\"x\"}",                                    /* no schema_version */
                "{\"schema_version\":2,\"summary\":\"x\"}",
                "{\"schema_version\":1,\"summary\":\"x\"} trailing",
                "{\"schema_version\":1,\"status\":\"sleeping\"}",
                "{\"schema_version\":1,\"summary\":7}",
                "{\"schema_version\":1,\"visible\":\"yes\"}",
                "{\"schema_version\":1,\"nickname\":\"x\"}",
                "{\"schema_version\":1,\"profile\":{\"shoe_size\":\"9\"}}",
                "{\"schema_version\":1,\"profile\":{\"capabilities\":[\"a\",1]}}",
                "{\"schema_version\":1,\"summary\":\"a\\u0000b\"}",     /* NUL inside a string */
                "{\"schema_version\":1,\"summary\":\"\xff\"}",          /* not UTF-8 */
        };
        char *big;

        for (size_t i = 0; i < ELEMENTSOF(texts); i++)
                check_profile_refused(texts[i], strlen(texts[i]));
        /* Larger than any frame the broker takes. */
        big = malloc(70000);
        ASSERT_TRUE(big);
        memset(big, ' ', 70000);
        memcpy(big, "{\"schema_version\":1}", 20);
        check_profile_refused(big, 70000);
        free(big);
}

int main(void) {
        ASSERT_OK(sodium_init());
        test_create_and_reload();
        test_two_meshes();
        test_malformed();
        test_wrong_mode();
        test_profile_roundtrip();
        test_profile_malformed();
        return 0;
}
