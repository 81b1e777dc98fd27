/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "inbox.h"
#include "macro.h"
#include "store.h"
#include "tests.h"
#include "ulid.h"

#define NOW ((usec_t) 1800000000 * USEC_PER_SEC)

#define ALICE "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2"
#define BOB   "b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2d3d4d5d6d7d8d9e0e1"

static char *new_path(const char *name) {
        static unsigned counter;
        char *dir, *path;

        /* One directory per file, so a set-aside copy is easy to find. */
        ASSERT_TRUE(asprintf(&dir, "%s/%s-%u", test_tmpdir(), name, counter++) > 0);
        ASSERT_OK(mkdir_parents_mode(dir, 0700));
        ASSERT_TRUE(asprintf(&path, "%s/inbox.db", dir) > 0);
        free(dir);
        return path;
}

static Inbox *open_inbox(const char *path) {
        _cleanup_free_ char *error = NULL;
        bool recreated = true;
        Inbox *i = NULL;

        ASSERT_OK(inbox_open(path, true, &i, &recreated, &error));
        ASSERT_TRUE(!recreated && !error);
        return i;
}

static InboxMessage message(const char *mesh, const char *cmid, const char *from, const char *topic, usec_t at) {
        return (InboxMessage) {
                .client_message_id = (char *) cmid,
                .broker_message_id = (char *) "bm-1",
                .mesh_id = (char *) mesh,
                .topic = (char *) topic,
                .sender_pubkey = (char *) from,
                .sender_name = (char *) (streq(from, ALICE) ? "alice" : "bob"),
                .body = (char *) "hi",
                .meta_json = (char *) "{\"created_at\":\"2027-01-15T08:00:00.000Z\"}",
                .received_at = at,
        };
}

static void insert(Inbox *i, InboxMessage m, bool want_new) {
        bool is_new = !want_new;

        ASSERT_OK(inbox_insert(i, &m, &is_new));
        ASSERT_EQ(is_new, want_new);
}

static void test_insert(void) {
        _cleanup_free_ char *path = new_path("insert");
        _cleanup_(inbox_freep) Inbox *i = open_inbox(path);
        InboxMessage *m = NULL, dup;
        size_t n = 0;

        insert(i, message("mesh-1", "c-1", ALICE, NULL, NOW), true);
        /* A redelivery (a new broker id, even new text) is a duplicate: nothing changes. */
        dup = message("mesh-1", "c-1", ALICE, "#t", NOW + 5);
        dup.body = (char *) "changed";
        insert(i, dup, false);
        /* The same id in another mesh is another message. */
        insert(i, message("mesh-2", "c-1", ALICE, NULL, NOW + 1), true);

        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(m[0].body, "hi");
        ASSERT_TRUE(ulid_is_valid(m[0].id));
        ASSERT_STREQ(m[0].client_message_id, "c-1");
        ASSERT_STREQ(m[0].broker_message_id, "bm-1");
        ASSERT_STREQ(m[0].mesh_id, "mesh-1");
        ASSERT_TRUE(!m[0].topic && !m[0].reply_to_id);
        ASSERT_STREQ(m[0].sender_pubkey, ALICE);
        ASSERT_STREQ(m[0].sender_name, "alice");
        ASSERT_STREQ(m[0].body, "hi");
        ASSERT_STREQ(m[0].meta_json, "{\"created_at\":\"2027-01-15T08:00:00.000Z\"}");
        ASSERT_EQ(m[0].received_at, NOW);
        inbox_messages_free(m, n);

        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 2);
        inbox_messages_free(m, n);

        /* A given id is kept; missing required fields are refused; received_at 0 = now. */
        {
                InboxMessage given = message("mesh-1", "c-2", BOB, "#t", 0), bad;
                usec_t before = now_usec(CLOCK_REALTIME);

                given.id = (char *) "01ARZ3NDEKTSV4RRFFQ69G5FAV";
                given.reply_to_id = (char *) "bm-0";
                given.body = NULL;
                insert(i, given, true);
                ASSERT_OK(inbox_list(i, "mesh-1", 0, BOB, NULL, false, 0, &m, &n));
                ASSERT_EQ(n, 1);
                ASSERT_STREQ(m[0].id, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
                ASSERT_STREQ(m[0].reply_to_id, "bm-0");
                ASSERT_STREQ(m[0].topic, "#t");
                ASSERT_TRUE(!m[0].body);
                ASSERT_TRUE(m[0].received_at >= before);
                inbox_messages_free(m, n);

                /* Only (mesh, sender, client_message_id) is a duplicate: an id clash is an error. */
                bad = message("mesh-1", "c-other", ALICE, NULL, NOW);
                bad.id = given.id;
                ASSERT_EQ(inbox_insert(i, &bad, NULL), -EEXIST);

                bad = message("mesh-1", "c-3", ALICE, NULL, NOW);
                bad.client_message_id = NULL;
                ASSERT_EQ(inbox_insert(i, &bad, NULL), -EINVAL);
                bad = message("mesh-1", "c-3", ALICE, NULL, NOW);
                bad.mesh_id = NULL;
                ASSERT_EQ(inbox_insert(i, &bad, NULL), -EINVAL);
                bad = message("mesh-1", "c-3", ALICE, NULL, NOW);
                bad.sender_name = NULL;
                ASSERT_EQ(inbox_insert(i, &bad, NULL), -EINVAL);
        }

        /* Rows survive a reopen. */
        inbox_free(i);
        i = open_inbox(path);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 3);
        inbox_messages_free(m, n);
}

static void test_list(void) {
        _cleanup_free_ char *path = new_path("list");
        _cleanup_(inbox_freep) Inbox *i = open_inbox(path);
        InboxMessage *m = NULL;
        size_t n = 0;

        /* 1200 messages in mesh-1: even ones from alice, every third on #a; 10 in mesh-2. Two
         * per µs, so ties are broken by arrival. */
        for (unsigned k = 0; k < 1200; k++) {
                char cmid[32];

                snprintf(cmid, sizeof cmid, "m-%u", k);
                insert(i, message("mesh-1", cmid, k % 2 == 0 ? ALICE : BOB, k % 3 == 0 ? "#a" : NULL, NOW + k / 2),
                       true);
        }
        for (unsigned k = 0; k < 10; k++) {
                char cmid[32];

                snprintf(cmid, sizeof cmid, "m-%u", k);
                insert(i, message("mesh-2", cmid, ALICE, "#a", NOW + 10000 + k), true);
        }

        /* Newest first, default 100, clamped to 1..1000. */
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, INBOX_LIST_DEFAULT);
        ASSERT_STREQ(m[0].client_message_id, "m-1199");
        ASSERT_STREQ(m[1].client_message_id, "m-1198");
        for (size_t k = 1; k < n; k++)
                ASSERT_TRUE(m[k - 1].received_at >= m[k].received_at);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 5000, &m, &n));
        ASSERT_EQ(n, INBOX_LIST_MAX);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 1, &m, &n));
        ASSERT_EQ(n, 1);
        inbox_messages_free(m, n);

        /* since is inclusive. */
        ASSERT_OK(inbox_list(i, "mesh-1", NOW + 595, NULL, NULL, false, 1000, &m, &n));
        ASSERT_EQ(n, 10);
        ASSERT_STREQ(m[9].client_message_id, "m-1190");
        inbox_messages_free(m, n);

        /* from, topic and both. */
        ASSERT_OK(inbox_list(i, "mesh-1", 0, BOB, NULL, false, 1000, &m, &n));
        ASSERT_EQ(n, 600);
        for (size_t k = 0; k < n; k++)
                ASSERT_STREQ(m[k].sender_pubkey, BOB);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, "#a", false, 1000, &m, &n));
        ASSERT_EQ(n, 400);
        for (size_t k = 0; k < n; k++)
                ASSERT_STREQ(m[k].topic, "#a");
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, ALICE, "#a", false, 1000, &m, &n));
        ASSERT_EQ(n, 200);
        ASSERT_STREQ(m[0].client_message_id, "m-1194");
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", NOW + 597, ALICE, "#a", false, 1000, &m, &n));
        ASSERT_EQ(n, 1);
        inbox_messages_free(m, n);

        /* Without a mesh: every mesh; mesh-2's are the newest. */
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, "#a", false, 3, &m, &n));
        ASSERT_EQ(n, 3);
        ASSERT_STREQ(m[0].mesh_id, "mesh-2");
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, NULL, NOW, NULL, NULL, false, 1000, &m, &n));
        ASSERT_EQ(n, 1000);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-3", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 0);
        inbox_messages_free(m, n);
}

/* The one "inbox.db.corrupt-*" in the file's directory, or NULL. */
static char *find_quarantined(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        DIR *d;
        struct dirent *de;
        char *found = NULL;

        ASSERT_TRUE(dir);
        *strrchr(dir, '/') = 0;
        d = opendir(dir);
        ASSERT_TRUE(d);
        while ((de = readdir(d)))
                if (strneq(de->d_name, "inbox.db.corrupt-", 17) && !strchr(de->d_name + 17, '-')) {
                        ASSERT_TRUE(!found);
                        ASSERT_TRUE(asprintf(&found, "%s/%s", dir, de->d_name) > 0);
                }
        closedir(d);
        return found;
}

static void test_corrupt_quarantined(void) {
        _cleanup_free_ char *path = new_path("corrupt"), *error = NULL, *before = NULL, *after = NULL,
                            *moved = NULL, *wal = NULL, *moved_wal = NULL;
        size_t before_size, after_size;
        InboxMessage *m = NULL;
        bool recreated = false;
        Inbox *i = NULL;
        size_t n = 0;
        char junk[4096];
        struct stat st;
        int fd;

        i = open_inbox(path);
        for (unsigned k = 0; k < 300; k++) {
                char cmid[32];

                snprintf(cmid, sizeof cmid, "m-%u", k);
                insert(i, message("mesh-1", cmid, ALICE, "#a", NOW + k), true);
        }
        i = inbox_free(i);

        memset(junk, 0x5a, sizeof junk);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(fstat(fd, &st) < 0 ? -errno : 0);
        ASSERT_EQ(pwrite(fd, junk, sizeof junk, st.st_size / 2 / 4096 * 4096 + 64), (ssize_t) sizeof junk);
        close(fd);
        ASSERT_OK(read_full_file(path, 16 << 20, &before, &before_size, NULL));
        /* A WAL left behind (its header invalid, so SQLite reads no frames from it) moves along. */
        ASSERT_TRUE(asprintf(&wal, "%s-wal", path) > 0);
        ASSERT_OK(write_file_atomic(wal, junk, sizeof junk, 0600));

        ASSERT_OK(inbox_open(path, true, &i, &recreated, &error));
        ASSERT_TRUE(recreated);
        ASSERT_TRUE(!error);

        /* The damaged file is kept, byte for byte, under its new name; the new one is empty. */
        moved = find_quarantined(path);
        ASSERT_TRUE(moved);
        ASSERT_OK(read_full_file(moved, 16 << 20, &after, &after_size, NULL));
        ASSERT_EQ(after_size, before_size);
        ASSERT_TRUE(memcmp(before, after, before_size) == 0);
        free(after);
        ASSERT_TRUE(asprintf(&moved_wal, "%s-wal", moved) > 0);
        ASSERT_OK(read_full_file(moved_wal, 16 << 20, &after, &after_size, NULL));
        ASSERT_EQ(after_size, sizeof junk);
        ASSERT_TRUE(memcmp(junk, after, sizeof junk) == 0);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 0);
        inbox_messages_free(m, n);
        insert(i, message("mesh-1", "m-0", ALICE, NULL, NOW), true);
        i = inbox_free(i);

        /* The fresh inbox opens normally afterwards. */
        i = open_inbox(path);
        inbox_free(i);
}

static void test_not_a_database(void) {
        _cleanup_free_ char *path = new_path("garbage"), *moved = NULL, *error = NULL;
        bool recreated = false;
        Inbox *i = NULL;
        const char *text = "{\"this\": \"is json, not SQLite\"}\n";

        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0600));
        ASSERT_OK(inbox_open(path, true, &i, &recreated, &error));
        ASSERT_TRUE(recreated);
        moved = find_quarantined(path);
        ASSERT_TRUE(moved);
        insert(i, message("mesh-1", "m-0", ALICE, NULL, NOW), true);
        inbox_free(i);
}

static void test_mode(void) {
        _cleanup_free_ char *path = new_path("mode");
        const char *suffixes[] = { "", "-wal", "-shm" };
        mode_t old = umask(0);
        Inbox *i = open_inbox(path);

        insert(i, message("mesh-1", "m-0", ALICE, NULL, NOW), true);
        for (size_t k = 0; k < ELEMENTSOF(suffixes); k++) {
                _cleanup_free_ char *p = NULL;
                struct stat st;

                ASSERT_TRUE(asprintf(&p, "%s%s", path, suffixes[k]) > 0);
                ASSERT_OK(stat(p, &st) < 0 ? -errno : 0);
                ASSERT_EQ(st.st_mode & 07777, 0600);
        }
        inbox_free(i);
        umask(old);
}

/* DECISIONS §16: one sender cannot squat another's client_message_id at a receiver. */
static void test_dedupe_scoped_to_sender(void) {
        _cleanup_free_ char *path = new_path("scoped");
        _cleanup_(inbox_freep) Inbox *i = open_inbox(path);
        InboxMessage *m = NULL, from_bob = message("mesh-1", "same-id", BOB, NULL, NOW + 1);
        size_t n = 0;

        insert(i, message("mesh-1", "same-id", ALICE, NULL, NOW), true);
        from_bob.body = (char *) "bob's own";
        insert(i, from_bob, true);
        /* Each sender's redelivery is still a duplicate. */
        insert(i, message("mesh-1", "same-id", ALICE, NULL, NOW + 2), false);
        insert(i, from_bob, false);

        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].sender_pubkey, BOB);
        ASSERT_STREQ(m[0].body, "bob's own");
        ASSERT_STREQ(m[1].sender_pubkey, ALICE);
        ASSERT_STREQ(m[1].body, "hi");
        inbox_messages_free(m, n);
}

static size_t count_unannounced(Inbox *i, const char *mesh) {
        InboxMessage *m = NULL;
        size_t n = 0;

        ASSERT_OK(inbox_list_unannounced(i, mesh, NULL, 0, &m, &n));
        inbox_messages_free(m, n);
        return n;
}

static void test_announced(void) {
        _cleanup_free_ char *path = new_path("announced");
        Inbox *i = open_inbox(path);
        InboxMessage *m = NULL;
        size_t n = 0;

        ASSERT_EQ(count_unannounced(i, "mesh-1"), 0);
        /* Stored out of time order: the unannounced come back oldest first, each mesh alone. */
        insert(i, message("mesh-1", "late", ALICE, NULL, NOW + 10), true);
        insert(i, message("mesh-1", "early", BOB, NULL, NOW), true);
        insert(i, message("mesh-2", "other", ALICE, NULL, NOW + 5), true);
        /* A duplicate adds nothing to announce. */
        insert(i, message("mesh-1", "late", ALICE, NULL, NOW + 11), false);

        ASSERT_OK(inbox_list_unannounced(i, "mesh-1", NULL, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].client_message_id, "early");
        ASSERT_STREQ(m[0].sender_name, "bob");
        ASSERT_STREQ(m[0].body, "hi");
        ASSERT_EQ(m[0].received_at, NOW);
        ASSERT_STREQ(m[1].client_message_id, "late");
        ASSERT_OK(inbox_mark_announced(i, m[0].id, NOW + 20));
        /* Marking twice, or a row that is not there, changes nothing. */
        ASSERT_OK(inbox_mark_announced(i, m[0].id, NOW + 30));
        ASSERT_OK(inbox_mark_announced(i, "01ARZ3NDEKTSV4RRFFQ69G5FAV", NOW + 30));
        inbox_messages_free(m, n);

        /* The marks are durable: after a reopen only the unmarked row is left. */
        inbox_free(i);
        i = open_inbox(path);
        ASSERT_OK(inbox_list_unannounced(i, "mesh-1", NULL, 0, &m, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(m[0].client_message_id, "late");
        ASSERT_OK(inbox_mark_announced(i, m[0].id, NOW + 40));
        inbox_messages_free(m, n);
        ASSERT_EQ(count_unannounced(i, "mesh-1"), 0);
        ASSERT_EQ(count_unannounced(i, "mesh-2"), 1);
        /* Announcing is no reading: every row still lists. */
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 3);
        inbox_messages_free(m, n);
        inbox_free(i);
}

/* An inbox.db of schema version 2 (before announcements and sender scoping), as that code made it. */
static void make_v2_inbox(const char *path) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;

        ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(db,
                               "PRAGMA journal_mode = WAL;"
                               "CREATE TABLE inbox ("
                               "  id TEXT PRIMARY KEY, client_message_id TEXT NOT NULL, broker_message_id TEXT,"
                               "  mesh_id TEXT NOT NULL, topic TEXT, sender_pubkey TEXT NOT NULL,"
                               "  sender_name TEXT NOT NULL, body TEXT, meta TEXT, received_at INTEGER NOT NULL,"
                               "  reply_to_id TEXT, UNIQUE (mesh_id, client_message_id));"
                               "CREATE INDEX inbox_received_at ON inbox(received_at);"
                               "CREATE INDEX inbox_mesh_received_at ON inbox(mesh_id, received_at);"
                               "CREATE INDEX inbox_topic ON inbox(mesh_id, topic, received_at);"
                               "CREATE INDEX inbox_sender ON inbox(mesh_id, sender_pubkey, received_at);"
                               "CREATE TABLE read_marks (mesh_id TEXT PRIMARY KEY, read_until INTEGER NOT NULL) "
                               "  WITHOUT ROWID;"
                               /* Two rows of the same µs: the one stored later lists first. */
                               "INSERT INTO inbox VALUES ('01AAAAAAAAAAAAAAAAAAAAAAAZ', 'c-1', 'bm-1', 'mesh-1', "
                               "  NULL, '" ALICE "', 'alice', 'first', '{}', 1000, NULL);"
                               "INSERT INTO inbox VALUES ('01AAAAAAAAAAAAAAAAAAAAAAAA', 'c-2', 'bm-2', 'mesh-1', "
                               "  '#t', '" BOB "', 'bob', 'second', NULL, 1000, 'bm-1');"
                               "INSERT INTO read_marks VALUES ('mesh-1', 500);"
                               "PRAGMA user_version = 2;",
                               NULL, NULL, NULL),
                  SQLITE_OK);
}

static void test_migrate_v2(void) {
        _cleanup_free_ char *path = new_path("v2");
        _cleanup_(inbox_freep) Inbox *i = NULL;
        InboxMessage *m = NULL;
        unsigned unread = 0;
        size_t n = 0;

        make_v2_inbox(path);
        i = open_inbox(path);

        /* Every row and field is kept, in the same order; the read mark too. */
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].id, "01AAAAAAAAAAAAAAAAAAAAAAAA");
        ASSERT_STREQ(m[0].body, "second");
        ASSERT_STREQ(m[0].topic, "#t");
        ASSERT_STREQ(m[0].reply_to_id, "bm-1");
        ASSERT_TRUE(!m[0].meta_json);
        ASSERT_STREQ(m[1].id, "01AAAAAAAAAAAAAAAAAAAAAAAZ");
        ASSERT_STREQ(m[1].sender_pubkey, ALICE);
        ASSERT_STREQ(m[1].meta_json, "{}");
        ASSERT_EQ(m[1].received_at, 1000);
        /* ... and delivered: they count as seen, so upstream's unread_only does not list them. */
        ASSERT_EQ(m[1].seen_at, 1000);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, true, 0, &m, &n));
        ASSERT_EQ(n, 0);
        ASSERT_OK(inbox_count_unread(i, "mesh-1", &unread));
        ASSERT_EQ(unread, 2);

        /* The old rows were announced when they came: an upgrade does not replay them. */
        ASSERT_EQ(count_unannounced(i, "mesh-1"), 0);
        /* The new key: bob may now use alice's id, alice may not use it again. */
        insert(i, message("mesh-1", "c-1", BOB, NULL, NOW), true);
        insert(i, message("mesh-1", "c-1", ALICE, NULL, NOW), false);
        ASSERT_EQ(count_unannounced(i, "mesh-1"), 1);
}

#define MEMBER  "c0c1c2c3c4c5c6c7c8c9d0d1d2d3d4d5d6d7d8d9e0e1e2e3e4e5e6e7e8e9f0f1"
#define SESSION "d0d1d2d3d4d5d6d7d8d9e0e1e2e3e4e5e6e7e8e9f0f1f2f3f4f5f6f7f8f9a0a1"

static InboxMessage to(InboxMessage m, const char *recipient, const char *kind) {
        m.recipient_pubkey = (char *) recipient;
        m.recipient_kind = (char *) kind;
        return m;
}

/* Sessions: rows of an older file become the member's; each identity is a receiver of its own. */
static void test_recipients(void) {
        _cleanup_free_ char *path = new_path("recipients");
        _cleanup_(inbox_freep) Inbox *i = NULL;
        InboxMessage *m = NULL;
        unsigned count = 0, flipped = 0;
        size_t n = 0;
        bool is_new;

        make_v2_inbox(path);
        i = open_inbox(path);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].recipient_pubkey, "");
        ASSERT_STREQ(m[0].recipient_kind, "member");
        inbox_messages_free(m, n);

        /* Named after the upgrade; the broker's redelivery of an old row stays one row. */
        ASSERT_OK(inbox_adopt_member(i, "mesh-1", MEMBER));
        ASSERT_OK(inbox_list_filtered(i, &(InboxFilter) { .recipient_pubkey = MEMBER }, &m, &n));
        ASSERT_EQ(n, 2);
        inbox_messages_free(m, n);
        insert(i, to(message("mesh-1", "c-1", ALICE, NULL, NOW), MEMBER, "member"), false);

        /* A broadcast that reached the member and a session: a row for each; a redelivery to the
         * session: none. */
        insert(i, to(message("mesh-1", "b-1", ALICE, NULL, NOW), MEMBER, "member"), true);
        insert(i, to(message("mesh-1", "b-1", ALICE, NULL, NOW + 1), SESSION, "session"), true);
        insert(i, to(message("mesh-1", "b-1", ALICE, NULL, NOW + 2), SESSION, "session"), false);
        insert(i, to(message("mesh-1", "d-1", BOB, NULL, NOW + 3), SESSION, "session"), true);
        is_new = false;
        ASSERT_EQ(inbox_insert(i, &(InboxMessage) { .client_message_id = (char *) "x", .mesh_id = (char *) "mesh-1",
                                                    .sender_pubkey = (char *) BOB, .sender_name = (char *) "bob",
                                                    .recipient_kind = (char *) "peer" }, &is_new), -EINVAL);

        ASSERT_OK(inbox_list_filtered(i, &(InboxFilter) { .mesh_id = "mesh-1", .recipient_pubkey = SESSION }, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].client_message_id, "d-1");
        ASSERT_STREQ(m[0].recipient_kind, "session");
        ASSERT_STREQ(m[0].recipient_pubkey, SESSION);
        ASSERT_STREQ(m[1].client_message_id, "b-1");
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list_filtered(i, &(InboxFilter) { .from = BOB, .recipient_pubkey = SESSION }, &m, &n));
        ASSERT_EQ(n, 1);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 5);
        inbox_messages_free(m, n);

        /* The member's unread count leaves the session's rows out; the session's is per row. */
        ASSERT_OK(inbox_count_unread(i, "mesh-1", &count));
        ASSERT_EQ(count, 3);
        ASSERT_OK(inbox_count_unseen(i, SESSION, &count));
        ASSERT_EQ(count, 2);
        ASSERT_OK(inbox_mark_seen_for(i, SESSION, NOW + 10, &flipped));
        ASSERT_EQ(flipped, 2);
        ASSERT_OK(inbox_count_unseen(i, SESSION, &count));
        ASSERT_EQ(count, 0);
        ASSERT_OK(inbox_count_unseen(i, MEMBER, &count));
        ASSERT_EQ(count, 1);

        /* Unannounced rows: the member's and each session's apart. */
        ASSERT_OK(inbox_list_unannounced(i, "mesh-1", NULL, 0, &m, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(m[0].recipient_pubkey, MEMBER);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list_unannounced(i, "mesh-1", SESSION, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(m[0].client_message_id, "b-1");
        inbox_messages_free(m, n);
}

static void test_seen_and_removal(void) {
        _cleanup_free_ char *path = new_path("seen");
        _cleanup_(inbox_freep) Inbox *i = open_inbox(path);
        InboxMessage *m = NULL;
        unsigned count = 0;
        bool found = true;
        size_t n = 0;
        char *ids[3];

        insert(i, message("mesh-1", "c-1", ALICE, NULL, NOW), true);
        insert(i, message("mesh-1", "c-2", ALICE, NULL, NOW + 1), true);
        insert(i, message("mesh-2", "c-3", BOB, NULL, NOW + 2), true);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, true, 0, &m, &n));
        ASSERT_EQ(n, 3);
        for (size_t k = 0; k < n; k++) {
                ASSERT_EQ(m[k].seen_at, 0);
                ids[k] = strdup(m[k].id);
                ASSERT_TRUE(ids[k]);
        }
        inbox_messages_free(m, n);

        /* Newest first: ids[0] is c-3. Only rows not seen yet flip; unknown ids count nothing. */
        ASSERT_OK(inbox_mark_seen(i, (const char *const[]) { ids[2], "nope", ids[2] }, 3, NOW + 10, &count));
        ASSERT_EQ(count, 1);
        ASSERT_OK(inbox_mark_seen(i, (const char *const[]) { ids[2], ids[1] }, 2, NOW + 20, &count));
        ASSERT_EQ(count, 1);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, true, 0, &m, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(m[0].id, ids[0]);
        inbox_messages_free(m, n);
        ASSERT_OK(inbox_list(i, "mesh-1", 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 2);
        ASSERT_EQ(m[0].seen_at, NOW + 20);
        ASSERT_EQ(m[1].seen_at, NOW + 10);
        inbox_messages_free(m, n);

        /* One row, then a mesh before a time, then every mesh. */
        ASSERT_OK(inbox_delete(i, ids[1], &found));
        ASSERT_TRUE(found);
        ASSERT_OK(inbox_delete(i, ids[1], &found));
        ASSERT_TRUE(!found);
        ASSERT_OK(inbox_flush(i, "mesh-2", NOW + 2, &count));
        ASSERT_EQ(count, 0);
        ASSERT_OK(inbox_flush(i, "mesh-2", NOW + 3, &count));
        ASSERT_EQ(count, 1);
        ASSERT_OK(inbox_flush(i, NULL, 0, &count));
        ASSERT_EQ(count, 1);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 0, &m, &n));
        ASSERT_EQ(n, 0);
        inbox_messages_free(m, n);
        for (size_t k = 0; k < 3; k++)
                free(ids[k]);
}

/* An idle daemon keeps its connections open: what SQLite holds once a store is open, and after
 * a request read every row, stays bounded however large the file is (~2.5 MiB here). */
static void test_page_cache_bounded(void) {
        _cleanup_free_ char *path = new_path("cache");
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ char *body = malloc(4096);
        bool recreated = true;
        InboxMessage *m = NULL;
        sqlite3_int64 before;
        Inbox *i = NULL;
        size_t n = 0;

        ASSERT_TRUE(body);
        memset(body, 'x', 4095);
        body[4095] = '\0';
        ASSERT_OK(inbox_open(path, false, &i, &recreated, &error));
        for (unsigned k = 0; k < 600; k++) {
                char cmid[16];
                InboxMessage msg = message("mesh-1", cmid, ALICE, NULL, NOW + k);

                snprintf(cmid, sizeof cmid, "c-%u", k);
                msg.body = body;
                insert(i, msg, true);
        }
        i = inbox_free(i);

        before = sqlite3_memory_used();
        /* Opening runs PRAGMA quick_check, which reads every page: none of them stays cached
         * (what remains is the connection and its schema, ~32 KiB). */
        i = open_inbox(path);
        ASSERT_TRUE(sqlite3_memory_used() - before < 96 * 1024);
        ASSERT_OK(inbox_list(i, NULL, 0, NULL, NULL, false, 600, &m, &n));
        ASSERT_EQ(n, 600);
        inbox_messages_free(m, n);
        /* The page cache's bound (128 KiB) and the statement: SQLite's default would keep 2 MiB. */
        ASSERT_TRUE(sqlite3_memory_used() - before < 512 * 1024);
        inbox_free(i);
}

int main(void) {
        test_page_cache_bounded();
        test_seen_and_removal();
        test_insert();
        test_dedupe_scoped_to_sender();
        test_announced();
        test_migrate_v2();
        test_recipients();
        test_list();
        test_corrupt_quarantined();
        test_not_a_database();
        test_mode();
        return 0;
}
