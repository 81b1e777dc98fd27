/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "keypair-archive.h"
#include "macro.h"
#include "tests.h"
#include "time-util.h"

/* 2027-01-15T08:00:00Z: a fixed clock, whole milliseconds so ISO 8601 round trips exactly. */
#define NOW   ((usec_t) 1800000000 * USEC_PER_SEC)
#define DAY   ((usec_t) 86400 * USEC_PER_SEC)

static char *new_path(void) {
        static unsigned counter;
        char dir[4096], *path;

        snprintf(dir, sizeof dir, "%s/case%u", test_tmpdir(), counter++);
        ASSERT_OK(mkdir_parents_mode(dir, 0700));
        ASSERT_TRUE(asprintf(&path, "%s/" KEYPAIR_ARCHIVE_FILE, dir) > 0);
        return path;
}

/* A real x25519 pair, rotated out at rotated and expiring at expires. */
static void make_key(ArchivedKey *k, const char *key_id, usec_t rotated, usec_t expires) {
        uint8_t ed[32];

        *k = (ArchivedKey) { 0 };
        snprintf(k->key_id, sizeof k->key_id, "%s", key_id);
        randombytes_buf(ed, sizeof ed);
        sodium_bin2hex(k->ed25519_pubkey, sizeof k->ed25519_pubkey, ed, sizeof ed);
        randombytes_buf(k->x25519_privkey, sizeof k->x25519_privkey);
        ASSERT_OK(crypto_scalarmult_base(k->x25519_pubkey, k->x25519_privkey));
        k->created_at = rotated - 30 * DAY;
        k->rotated_out_at = rotated;
        k->expires_at = expires;
}

static void b64(char ret[static 64], const uint8_t *data, size_t size) {
        sodium_bin2base64(ret, 64, data, size, sodium_base64_VARIANT_ORIGINAL);
}

/* One "keys" element, written independently of keypair_archive_save(). */
static char *entry_json(const ArchivedKey *k) {
        char pub[64], priv[64], created[ISO8601_MAX], rotated[ISO8601_MAX], expires[ISO8601_MAX], *s;

        b64(pub, k->x25519_pubkey, 32);
        b64(priv, k->x25519_privkey, 32);
        ASSERT_OK(format_iso8601(k->created_at, created));
        ASSERT_OK(format_iso8601(k->rotated_out_at, rotated));
        ASSERT_OK(format_iso8601(k->expires_at, expires));
        ASSERT_TRUE(asprintf(&s,
                             "{\"ed25519_pubkey\":\"%s\",\"x25519_pubkey\":\"%s\",\"x25519_privkey\":\"%s\","
                             "\"key_id\":\"%s\",\"created_at\":\"%s\",\"rotated_out_at\":\"%s\",\"expires_at\":\"%s\"}",
                             k->ed25519_pubkey, pub, priv, k->key_id, created, rotated, expires) > 0);
        return s;
}

/* Writes an archive file with the given header fields and keys, mode 0600. */
static void write_archive(const char *path, const char *header, const ArchivedKey *keys, size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t len;

        ASSERT_TRUE(asprintf(&text, "{%s\"keys\":[", header) > 0);
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *e = entry_json(&keys[i]);
                char *t;
                ASSERT_TRUE(asprintf(&t, "%s%s%s", text, i > 0 ? "," : "", e) > 0);
                free(text);
                text = t;
        }
        len = strlen(text);
        text = realloc(text, len + 3);
        ASSERT_TRUE(text);
        memcpy(text + len, "]}", 3);
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
}

static void write_text(const char *path, const char *text) {
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
}

static char *read_text(const char *path) {
        char *buf = NULL;

        ASSERT_OK(read_full_file(path, 1 << 20, &buf, NULL, NULL));
        return buf;
}

static bool file_exists(const char *path) {
        return access(path, F_OK) == 0;
}

static void assert_same_key(const ArchivedKey *a, const ArchivedKey *b) {
        ASSERT_STREQ(a->key_id, b->key_id);
        ASSERT_STREQ(a->ed25519_pubkey, b->ed25519_pubkey);
        ASSERT_TRUE(memcmp(a->x25519_pubkey, b->x25519_pubkey, 32) == 0);
        ASSERT_TRUE(memcmp(a->x25519_privkey, b->x25519_privkey, 32) == 0);
        ASSERT_EQ(a->created_at, b->created_at);
        ASSERT_EQ(a->rotated_out_at, b->rotated_out_at);
        ASSERT_EQ(a->expires_at, b->expires_at);
}

static void assert_unchanged(const KeypairArchiveReport *r) {
        ASSERT_TRUE(!r->quarantined && !r->quarantine_path);
        ASSERT_EQ(r->dropped_expired, 0);
        ASSERT_EQ(r->force_expired, 0);
        ASSERT_EQ(r->rejected_duplicates, 0);
        ASSERT_TRUE(!r->mode_fixed && !r->rewritten && !r->deleted);
}

static size_t count(const char *haystack, const char *needle) {
        size_t n = 0;

        for (const char *p = haystack; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

static void test_missing_is_empty(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path();
        KeypairArchiveReport r;

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(a->n_keys, 0);
        ASSERT_EQ(a->max_archived_keys, 8);
        assert_unchanged(&r);
        ASSERT_TRUE(!file_exists(path));
        keypair_archive_report_done(&r);
}

static void test_round_trip(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL, *b = NULL;
        _cleanup_free_ char *path = new_path(), *text = NULL, *expected_head = NULL;
        json_object *o, *keys, *v;
        KeypairArchiveReport r;
        ArchivedKey k[3];
        char pub[64], priv[64];
        struct stat st;

        make_key(&k[0], "k_01JTA0000000000000000000AA", NOW - 2 * DAY, NOW + 5 * DAY);
        make_key(&k[1], "k_01JTA0000000000000000000BB", NOW - 1 * DAY, NOW + 6 * DAY);
        make_key(&k[2], "k_01JTA0000000000000000000CC", NOW - 3 * DAY, NOW + 4 * DAY);

        ASSERT_OK(keypair_archive_new(&a));
        for (size_t i = 0; i < ELEMENTSOF(k); i++)
                ASSERT_EQ(keypair_archive_add(a, &k[i]), 0);
        ASSERT_OK(keypair_archive_save(path, a));

        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);

        /* JSON.stringify(x, null, 2) layout, keys in the documented order. */
        text = read_text(path);
        b64(pub, k[0].x25519_pubkey, 32);
        b64(priv, k[0].x25519_privkey, 32);
        ASSERT_TRUE(asprintf(&expected_head,
                             "{\n  \"schema_version\": 1,\n  \"max_archived_keys\": 8,\n  \"keys\": [\n    {\n"
                             "      \"ed25519_pubkey\": \"%s\",\n      \"x25519_pubkey\": \"%s\",\n"
                             "      \"x25519_privkey\": \"%s\",\n      \"key_id\": \"%s\",\n",
                             k[0].ed25519_pubkey, pub, priv, k[0].key_id) > 0);
        ASSERT_TRUE(strneq(text, expected_head, strlen(expected_head)));
        ASSERT_CONTAINS(text, "\"rotated_out_at\": \"2027-01-13T08:00:00.000Z\"");
        ASSERT_TRUE(strlen(text) > 6 && streq(text + strlen(text) - 6, "  ]\n}\n"));

        /* And it is plain JSON to anyone else. */
        o = json_tokener_parse(text);
        ASSERT_TRUE(o);
        ASSERT_TRUE(json_object_object_get_ex(o, "keys", &keys));
        ASSERT_EQ(json_object_array_length(keys), 3);
        ASSERT_TRUE(json_object_object_get_ex(json_object_array_get_idx(keys, 1), "key_id", &v));
        ASSERT_STREQ(json_object_get_string(v), k[1].key_id);
        json_object_put(o);

        ASSERT_OK(keypair_archive_load(path, NOW, &b, &r));
        assert_unchanged(&r);
        ASSERT_EQ(b->n_keys, 3);
        ASSERT_EQ(b->max_archived_keys, 8);
        for (size_t i = 0; i < ELEMENTSOF(k); i++)
                assert_same_key(&b->keys[i], &k[i]);
        keypair_archive_report_done(&r);

        /* Saving an empty archive removes the file. */
        a = keypair_archive_free(a);
        ASSERT_OK(keypair_archive_new(&a));
        ASSERT_OK(keypair_archive_save(path, a));
        ASSERT_TRUE(!file_exists(path));
        ASSERT_OK(keypair_archive_save(path, a));
        sodium_memzero(k, sizeof k);
}

static void test_expired_dropped(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path(), *text = NULL;
        KeypairArchiveReport r;
        ArchivedKey k[4];

        make_key(&k[0], "k_expired_long_ago", NOW - 20 * DAY, NOW - 13 * DAY);
        make_key(&k[1], "k_live", NOW - 1 * DAY, NOW + 6 * DAY);
        make_key(&k[2], "k_expires_now", NOW - 7 * DAY, NOW);   /* expires_at <= now: gone */
        make_key(&k[3], "k_live_too", NOW - 2 * DAY, NOW + USEC_PER_MSEC);
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":8,", k, 4);

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(r.dropped_expired, 2);
        ASSERT_TRUE(r.rewritten && !r.deleted && !r.quarantined);
        ASSERT_EQ(a->n_keys, 2);
        assert_same_key(&a->keys[0], &k[1]);
        ASSERT_STREQ(a->keys[1].key_id, "k_live_too");
        keypair_archive_report_done(&r);

        text = read_text(path);
        ASSERT_TRUE(!strstr(text, "k_expired_long_ago") && !strstr(text, "k_expires_now"));
        ASSERT_CONTAINS(text, "k_live");
        a = keypair_archive_free(a);

        /* Already clean: nothing more to do. */
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        assert_unchanged(&r);
        ASSERT_EQ(a->n_keys, 2);
        a = keypair_archive_free(a);

        /* Later, everything has expired: the file goes away. */
        ASSERT_OK(keypair_archive_load(path, NOW + 7 * DAY, &a, &r));
        ASSERT_EQ(r.dropped_expired, 2);
        ASSERT_TRUE(r.deleted && !r.rewritten);
        ASSERT_EQ(a->n_keys, 0);
        ASSERT_TRUE(!file_exists(path));
        keypair_archive_report_done(&r);
        sodium_memzero(k, sizeof k);
}

/* Loads text from a fresh path and checks it was set aside untouched. */
static void check_quarantined(const char *text) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path(), *moved = NULL, *prefix = NULL;
        KeypairArchiveReport r;
        struct stat st;

        write_text(path, text);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_TRUE(r.quarantined);
        ASSERT_EQ(a->n_keys, 0);
        ASSERT_EQ(a->max_archived_keys, 8);
        ASSERT_TRUE(!r.rewritten && !r.deleted);
        ASSERT_TRUE(asprintf(&prefix, "%s.malformed-", path) > 0);
        ASSERT_TRUE(strneq(r.quarantine_path, prefix, strlen(prefix)));
        ASSERT_TRUE(strlen(r.quarantine_path) > strlen(prefix));
        for (const char *p = r.quarantine_path + strlen(prefix); *p; p++)
                ASSERT_TRUE(*p >= '0' && *p <= '9');
        ASSERT_TRUE(!file_exists(path));
        moved = read_text(r.quarantine_path);
        ASSERT_STREQ(moved, text);
        ASSERT_OK(stat(r.quarantine_path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        keypair_archive_report_done(&r);
        ASSERT_TRUE(r.quarantine_path == NULL);
}

static void test_malformed_quarantined(void) {
        _cleanup_free_ char *good = NULL, *t = NULL;
        char pub[64], priv[64];
        ArchivedKey k;

        make_key(&k, "k_01JTA0000000000000000000AA", NOW - DAY, NOW + 6 * DAY);
        good = entry_json(&k);
        b64(pub, k.x25519_pubkey, 32);
        b64(priv, k.x25519_privkey, 32);

        /* Bad JSON. */
        check_quarantined("{\"schema_version\":1,\"keys\":[");
        check_quarantined("");
        check_quarantined("{\"schema_version\":1,\"keys\":[]} trailing");
        /* Wrong types. */
        check_quarantined("[]");
        check_quarantined("{\"keys\":[]}");
        check_quarantined("{\"schema_version\":\"1\",\"keys\":[]}");
        check_quarantined("{\"schema_version\":1}");
        check_quarantined("{\"schema_version\":1,\"keys\":{}}");
        check_quarantined("{\"schema_version\":1,\"keys\":[42]}");
        check_quarantined("{\"schema_version\":1,\"max_archived_keys\":\"8\",\"keys\":[]}");
        check_quarantined("{\"schema_version\":1,\"max_archived_keys\":0,\"keys\":[]}");
        /* Unknown schema_version. */
        check_quarantined("{\"schema_version\":2,\"keys\":[]}");

        /* A good entry quarantined for what surrounds it is still set aside whole. */
        ASSERT_TRUE(asprintf(&t, "{\"schema_version\":3,\"keys\":[%s]}", good) > 0);
        check_quarantined(t);
        free(TAKE_PTR(t));

        /* Bad entries. */
#define ENTRY(ed, pubkey, privkey, id, created)                                                              \
        "{\"schema_version\":1,\"keys\":[{\"ed25519_pubkey\":" ed ",\"x25519_pubkey\":" pubkey                \
        ",\"x25519_privkey\":" privkey ",\"key_id\":" id ",\"created_at\":" created                          \
        ",\"rotated_out_at\":\"2027-01-14T08:00:00.000Z\",\"expires_at\":\"2027-01-21T08:00:00.000Z\"}]}"
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "42", "\"2026-12-01T00:00:00Z\""),
                             k.ed25519_pubkey, pub, priv) > 0);
        check_quarantined(t);   /* key_id not a string */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "\"k_a b\"", "\"2026-12-01T00:00:00Z\""),
                             k.ed25519_pubkey, pub, priv) > 0);
        check_quarantined(t);   /* key_id with a space */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "\"k_1\"", "\"2026-12-01T00:00:00Z\""),
                             "abc", pub, priv) > 0);
        check_quarantined(t);   /* ed25519_pubkey not 64 hex */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "\"k_1\"", "\"2026-12-01T00:00:00Z\""),
                             k.ed25519_pubkey, pub, "not*base64") > 0);
        check_quarantined(t);   /* private key not base64 */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "\"k_1\"", "\"2026-12-01T00:00:00Z\""),
                             k.ed25519_pubkey, pub, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==") > 0);
        check_quarantined(t);   /* private key of 31 bytes */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "null", "\"%s\"", "\"k_1\"", "\"2026-12-01T00:00:00Z\""),
                             k.ed25519_pubkey, priv) > 0);
        check_quarantined(t);   /* public key null */
        free(TAKE_PTR(t));
        ASSERT_TRUE(asprintf(&t, ENTRY("\"%s\"", "\"%s\"", "\"%s\"", "\"k_1\"", "\"1 December\""),
                             k.ed25519_pubkey, pub, priv) > 0);
        check_quarantined(t);   /* timestamp */
        free(TAKE_PTR(t));
#undef ENTRY
        sodium_memzero(priv, sizeof priv);
        sodium_memzero(&k, sizeof k);
}

static void test_privkey_mismatch_quarantined(void) {
        _cleanup_free_ char *path = new_path();
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        KeypairArchiveReport r;
        ArchivedKey k[2];

        make_key(&k[0], "k_good", NOW - DAY, NOW + 6 * DAY);
        make_key(&k[1], "k_bad", NOW - DAY, NOW + 6 * DAY);
        k[1].x25519_privkey[0] ^= 0x40;   /* no longer the private half of x25519_pubkey */
        write_archive(path, "\"schema_version\":1,", k, 2);

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_TRUE(r.quarantined);
        ASSERT_EQ(a->n_keys, 0);
        ASSERT_TRUE(!file_exists(path));
        ASSERT_TRUE(file_exists(r.quarantine_path));
        keypair_archive_report_done(&r);
        sodium_memzero(k, sizeof k);
}

static void test_duplicates_rejected(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path(), *text = NULL;
        KeypairArchiveReport r;
        ArchivedKey k[5];

        make_key(&k[0], "k_a", NOW - 3 * DAY, NOW + 4 * DAY);
        make_key(&k[1], "k_b", NOW - 2 * DAY, NOW + 5 * DAY);
        make_key(&k[2], "k_a", NOW - 1 * DAY, NOW + 6 * DAY);
        make_key(&k[3], "k_c", NOW - 1 * DAY, NOW + 6 * DAY);
        make_key(&k[4], "k_a", NOW - 1 * DAY, NOW + 6 * DAY);
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":8,", k, 5);

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(r.rejected_duplicates, 2);
        ASSERT_TRUE(r.rewritten && !r.quarantined);
        ASSERT_EQ(a->n_keys, 3);
        assert_same_key(&a->keys[0], &k[0]);
        assert_same_key(&a->keys[1], &k[1]);
        assert_same_key(&a->keys[2], &k[3]);
        keypair_archive_report_done(&r);

        text = read_text(path);
        ASSERT_EQ(count(text, "\"k_a\""), 1);
        a = keypair_archive_free(a);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        assert_unchanged(&r);
        assert_same_key(&a->keys[0], &k[0]);
        sodium_memzero(k, sizeof k);
}

static void test_max_keys_force_expired(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path(), *text = NULL;
        /* Rotation days, deliberately not in file order: the oldest are k_3 and k_7. */
        static const unsigned days_ago[10] = { 5, 4, 6, 9, 2, 1, 3, 10, 7, 8 };
        KeypairArchiveReport r;
        ArchivedKey k[10];

        for (size_t i = 0; i < ELEMENTSOF(k); i++) {
                char id[16];
                snprintf(id, sizeof id, "k_%zu", i);
                make_key(&k[i], id, NOW - days_ago[i] * DAY, NOW + 20 * DAY);
        }
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":8,", k, 10);

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(r.force_expired, 2);
        ASSERT_TRUE(r.rewritten);
        ASSERT_EQ(a->n_keys, 8);
        for (size_t i = 0, j = 0; i < ELEMENTSOF(k); i++) {
                if (i == 3 || i == 7)
                        continue;
                assert_same_key(&a->keys[j++], &k[i]);
        }
        keypair_archive_report_done(&r);
        text = read_text(path);
        ASSERT_TRUE(!strstr(text, "\"k_3\"") && !strstr(text, "\"k_7\""));
        free(TAKE_PTR(text));
        a = keypair_archive_free(a);

        /* A smaller limit in the file is honoured and kept. */
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":3,", k, 10);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(r.force_expired, 7);
        ASSERT_EQ(a->max_archived_keys, 3);
        ASSERT_EQ(a->n_keys, 3);
        ASSERT_STREQ(a->keys[0].key_id, "k_4");
        ASSERT_STREQ(a->keys[1].key_id, "k_5");
        ASSERT_STREQ(a->keys[2].key_id, "k_6");
        text = read_text(path);
        ASSERT_CONTAINS(text, "\"max_archived_keys\": 3,");
        free(TAKE_PTR(text));
        a = keypair_archive_free(a);

        /* A larger one is clamped to 8, and the file says so afterwards. */
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":100,", k, 10);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(a->max_archived_keys, 8);
        ASSERT_EQ(r.force_expired, 2);
        ASSERT_EQ(a->n_keys, 8);
        a = keypair_archive_free(a);
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":100,", k, 2);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(r.force_expired, 0);
        ASSERT_TRUE(r.rewritten);
        text = read_text(path);
        ASSERT_CONTAINS(text, "\"max_archived_keys\": 8,");
        a = keypair_archive_free(a);

        /* Absent: the default. */
        write_archive(path, "\"schema_version\":1,", k, 9);
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_EQ(a->max_archived_keys, 8);
        ASSERT_EQ(r.force_expired, 1);
        sodium_memzero(k, sizeof k);
}

static void test_mode_fixed(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_free_ char *path = new_path();
        KeypairArchiveReport r;
        ArchivedKey k;
        struct stat st;

        make_key(&k, "k_1", NOW - DAY, NOW + 6 * DAY);
        write_archive(path, "\"schema_version\":1,\"max_archived_keys\":8,", &k, 1);
        ASSERT_OK(chmod(path, 0644));

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_TRUE(r.mode_fixed);
        ASSERT_TRUE(!r.rewritten && !r.quarantined);
        ASSERT_EQ(a->n_keys, 1);
        assert_same_key(&a->keys[0], &k);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        a = keypair_archive_free(a);

        /* Stricter than 0600 is still not 0600. */
        ASSERT_OK(chmod(path, 0400));
        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        ASSERT_TRUE(r.mode_fixed);
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        a = keypair_archive_free(a);

        ASSERT_OK(keypair_archive_load(path, NOW, &a, &r));
        assert_unchanged(&r);
        sodium_memzero(&k, sizeof k);
}

static void test_add(void) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        ArchivedKey k;

        ASSERT_OK(keypair_archive_new(&a));
        a->max_archived_keys = 2;
        make_key(&k, "k_mid", NOW - 2 * DAY, NOW + DAY);
        ASSERT_EQ(keypair_archive_add(a, &k), 0);
        make_key(&k, "k_old", NOW - 3 * DAY, NOW + DAY);
        ASSERT_EQ(keypair_archive_add(a, &k), 0);
        ASSERT_EQ(keypair_archive_add(a, &k), -EEXIST);
        make_key(&k, "k new", NOW - DAY, NOW + DAY);
        ASSERT_EQ(keypair_archive_add(a, &k), -EINVAL);
        make_key(&k, "k_new", NOW - DAY, NOW + DAY);
        ASSERT_EQ(keypair_archive_add(a, &k), 1);
        ASSERT_EQ(a->n_keys, 2);
        ASSERT_STREQ(a->keys[0].key_id, "k_mid");
        ASSERT_STREQ(a->keys[1].key_id, "k_new");
        sodium_memzero(&k, sizeof k);

        ASSERT_TRUE(keypair_archive_free(NULL) == NULL);
        keypair_archive_report_done(NULL);
}

int main(void) {
        ASSERT_TRUE(sodium_init() >= 0);
        test_missing_is_empty();
        test_round_trip();
        test_expired_dropped();
        test_malformed_quarantined();
        test_privkey_mismatch_quarantined();
        test_duplicates_rejected();
        test_max_keys_force_expired();
        test_mode_fixed();
        test_add();
        return 0;
}
