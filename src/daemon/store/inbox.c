/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "error-message.h"
#include "fileio.h"
#include "inbox.h"
#include "log.h"
#include "store.h"
#include "ulid.h"

struct Inbox {
        Store *store;
};

/* Step i takes the schema from version i to i + 1 (store_open). The indexes serve the list
 * filters within a mesh, newest first, and (received_at) the listing of every mesh. */
static const char *const migrations[] = {
        "CREATE TABLE inbox ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL,"
        "  broker_message_id TEXT,"
        "  mesh_id TEXT NOT NULL,"
        "  topic TEXT,"
        "  sender_pubkey TEXT NOT NULL,"
        "  sender_name TEXT NOT NULL,"
        "  body TEXT,"
        "  meta TEXT,"
        "  received_at INTEGER NOT NULL,"
        "  reply_to_id TEXT,"
        "  UNIQUE (mesh_id, client_message_id));"
        "CREATE INDEX inbox_received_at ON inbox(received_at);"
        "CREATE INDEX inbox_mesh_received_at ON inbox(mesh_id, received_at);"
        "CREATE INDEX inbox_topic ON inbox(mesh_id, topic, received_at);"
        "CREATE INDEX inbox_sender ON inbox(mesh_id, sender_pubkey, received_at);",
        /* Where the user has read up to, per mesh: UnreadCount and MarkRead. */
        "CREATE TABLE read_marks (mesh_id TEXT PRIMARY KEY, read_until INTEGER NOT NULL) WITHOUT ROWID;",
        /* When MessageReceived announced a row (NULL: not yet), so a crash between the commit and
         * the signal is made good at the next start. Rows stored before this version were
         * announced as they arrived: marking them keeps an upgrade from replaying the history. */
        "ALTER TABLE inbox ADD COLUMN announced_at INTEGER;"
        "UPDATE inbox SET announced_at = received_at;"
        "CREATE INDEX inbox_unannounced ON inbox(mesh_id, received_at) WHERE announced_at IS NULL;",
        /* DECISIONS §16: a duplicate is the same id from the same sender; ids of different senders
         * never meet. SQLite cannot change a table's UNIQUE constraint in place, so the table is
         * rebuilt with its rows (rowids kept: they order rows received in the same µs). */
        "CREATE TABLE inbox_v4 ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL,"
        "  broker_message_id TEXT,"
        "  mesh_id TEXT NOT NULL,"
        "  topic TEXT,"
        "  sender_pubkey TEXT NOT NULL,"
        "  sender_name TEXT NOT NULL,"
        "  body TEXT,"
        "  meta TEXT,"
        "  received_at INTEGER NOT NULL,"
        "  reply_to_id TEXT,"
        "  announced_at INTEGER,"
        "  UNIQUE (mesh_id, sender_pubkey, client_message_id));"
        "INSERT INTO inbox_v4 (rowid, id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey,"
        "  sender_name, body, meta, received_at, reply_to_id, announced_at) "
        "SELECT rowid, id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey, sender_name, body,"
        "  meta, received_at, reply_to_id, announced_at FROM inbox ORDER BY rowid;"
        "DROP TABLE inbox;"
        "ALTER TABLE inbox_v4 RENAME TO inbox;"
        "CREATE INDEX inbox_received_at ON inbox(received_at);"
        "CREATE INDEX inbox_mesh_received_at ON inbox(mesh_id, received_at);"
        "CREATE INDEX inbox_topic ON inbox(mesh_id, topic, received_at);"
        "CREATE INDEX inbox_sender ON inbox(mesh_id, sender_pubkey, received_at);"
        "CREATE INDEX inbox_unannounced ON inbox(mesh_id, received_at) WHERE announced_at IS NULL;",
        /* Upstream's per-row read state (/v1/inbox's seen_at, unread_only, /v1/inbox/seen). Rows
         * stored before were delivered already: seen, so an upgrade does not push them again. */
        "ALTER TABLE inbox ADD COLUMN seen_at INTEGER;"
        "UPDATE inbox SET seen_at = received_at;",
        /* Sessions (#14): the identity that received a row, the member's key or a session's, and
         * which of the two. Each identity is a receiver of its own, so the dedupe key takes it in:
         * a broadcast that reaches the member and two sessions is three rows, one for each. Rows
         * stored before were the member's; '' until inbox_adopt_member() names its key. */
        "CREATE TABLE inbox_v6 ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL,"
        "  broker_message_id TEXT,"
        "  mesh_id TEXT NOT NULL,"
        "  topic TEXT,"
        "  sender_pubkey TEXT NOT NULL,"
        "  sender_name TEXT NOT NULL,"
        "  body TEXT,"
        "  meta TEXT,"
        "  received_at INTEGER NOT NULL,"
        "  reply_to_id TEXT,"
        "  announced_at INTEGER,"
        "  seen_at INTEGER,"
        "  recipient_pubkey TEXT NOT NULL DEFAULT '',"
        "  recipient_kind TEXT NOT NULL DEFAULT 'member' CHECK (recipient_kind = 'member' OR recipient_kind = 'session'),"
        "  UNIQUE (mesh_id, sender_pubkey, client_message_id, recipient_pubkey));"
        "INSERT INTO inbox_v6 (rowid, id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey,"
        "  sender_name, body, meta, received_at, reply_to_id, announced_at, seen_at) "
        "SELECT rowid, id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey, sender_name, body,"
        "  meta, received_at, reply_to_id, announced_at, seen_at FROM inbox ORDER BY rowid;"
        "DROP TABLE inbox;"
        "ALTER TABLE inbox_v6 RENAME TO inbox;"
        "CREATE INDEX inbox_received_at ON inbox(received_at);"
        "CREATE INDEX inbox_mesh_received_at ON inbox(mesh_id, received_at);"
        "CREATE INDEX inbox_topic ON inbox(mesh_id, topic, received_at);"
        "CREATE INDEX inbox_sender ON inbox(mesh_id, sender_pubkey, received_at);"
        "CREATE INDEX inbox_recipient ON inbox(recipient_pubkey, received_at);"
        "CREATE INDEX inbox_unannounced ON inbox(mesh_id, received_at) WHERE announced_at IS NULL;",
};

/* The file and its WAL move together, so the set-aside copy stays readable as it was. */
static int set_aside(const char *path, char **ret_new_path) {
        static const char *const suffixes[] = { "-wal", "-shm" };
        _cleanup_free_ char *new_path = NULL;
        int r;

        r = quarantine_file(path, "corrupt", &new_path);
        if (r < 0)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(suffixes); k++) {
                _cleanup_free_ char *from = NULL, *to = NULL;

                if (asprintf(&from, "%s%s", path, suffixes[k]) < 0 || asprintf(&to, "%s%s", new_path, suffixes[k]) < 0)
                        return -ENOMEM;
                if (rename(from, to) < 0 && errno != ENOENT)
                        return negative_errno();
        }
        *ret_new_path = TAKE_PTR(new_path);
        return 0;
}

int inbox_open(const char *path, bool synchronous_full, Inbox **ret, bool *ret_recreated, char **ret_error) {
        _cleanup_free_ char *error = NULL, *new_path = NULL;
        bool recreated = false;
        Inbox *i;
        int r;

        i = calloc(1, sizeof *i);
        if (!i)
                return -ENOMEM;
        r = store_open(path, synchronous_full, migrations, ELEMENTSOF(migrations), &i->store, &error);
        if (r == -EUCLEAN) {
                /* The inbox is a cache of what the broker delivered: keep the damaged copy for
                 * inspection and go on with an empty one rather than refuse to receive. */
                r = set_aside(path, &new_path);
                if (r < 0) {
                        free(i);
                        return error_setf(ret_error, r, "%s Setting it aside failed too: %s.", strna(error),
                                          STRERROR(r));
                }
                log_warning("%s The damaged inbox was moved to %s and an empty one created.", error, new_path);
                error = mfree(error);
                recreated = true;
                r = store_open(path, synchronous_full, migrations, ELEMENTSOF(migrations), &i->store, &error);
        }
        if (r < 0) {
                free(i);
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        if (ret_recreated)
                *ret_recreated = recreated;
        *ret = i;
        return 0;
}

Inbox *inbox_free(Inbox *i) {
        if (!i)
                return NULL;
        store_free(i->store);
        free(i);
        return NULL;
}

int inbox_insert(Inbox *i, const InboxMessage *msg, bool *ret_new) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        char minted[ULID_MAX];
        usec_t received_at;
        int r, rc;

        assert(i);

        if (!msg->client_message_id || !msg->mesh_id || !msg->sender_pubkey || !msg->sender_name)
                return -EINVAL;
        if (msg->recipient_kind && !streq(msg->recipient_kind, "member") && !streq(msg->recipient_kind, "session"))
                return -EINVAL;
        received_at = msg->received_at > 0 ? msg->received_at : now_usec(CLOCK_REALTIME);
        if (!msg->id) {
                r = ulid_new(received_at, minted);
                if (r < 0)
                        return r;
        }

        r = store_stmt(i->store,
                       "INSERT INTO inbox (id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey, "
                       "  sender_name, body, meta, received_at, reply_to_id, recipient_pubkey, recipient_kind) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) "
                       "ON CONFLICT (mesh_id, sender_pubkey, client_message_id, recipient_pubkey) DO NOTHING "
                       "RETURNING id",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "an inbox row", "sssssssssisss", msg->id ? msg->id : minted,
                       msg->client_message_id, msg->broker_message_id, msg->mesh_id, msg->topic,
                       msg->sender_pubkey, msg->sender_name, msg->body, msg->meta_json, (int64_t) received_at,
                       msg->reply_to_id, strempty(msg->recipient_pubkey),
                       msg->recipient_kind ? msg->recipient_kind : "member");
        if (r < 0)
                return r;

        /* RETURNING yields the id only for an inserted row; the statement completes on the next step. */
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                rc = sqlite3_step(st);
                if (rc != SQLITE_DONE)
                        return store_log_error(i->store, rc, "inserting an inbox row");
                if (ret_new)
                        *ret_new = true;
                return 0;
        }
        if (rc != SQLITE_DONE)
                return store_log_error(i->store, rc, "inserting an inbox row");
        if (ret_new)
                *ret_new = false;
        return 0;
}

int inbox_count_unread(Inbox *i, const char *mesh_id, unsigned *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(i);

        r = store_stmt(i->store,
                       "SELECT count(*) FROM inbox WHERE mesh_id = ?1 AND recipient_kind = 'member' AND "
                       "received_at > coalesce((SELECT read_until FROM read_marks WHERE mesh_id = ?1), 0)",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the unread count", "s", mesh_id);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_log_error(i->store, rc, "counting unread messages");
        *ret = (unsigned) sqlite3_column_int64(st, 0);
        return 0;
}

int inbox_mark_read(Inbox *i, const char *mesh_id, usec_t now) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);

        r = store_stmt(i->store,
                       "INSERT INTO read_marks (mesh_id, read_until) VALUES (?1, ?2) "
                       "ON CONFLICT(mesh_id) DO UPDATE SET read_until = max(read_until, excluded.read_until)",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the read mark", "si", mesh_id, (int64_t) now);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "storing the read mark");
        return r < 0 ? r : 0;
}

void inbox_message_done(InboxMessage *m) {
        if (!m)
                return;
        free(m->id);
        free(m->client_message_id);
        free(m->broker_message_id);
        free(m->mesh_id);
        free(m->topic);
        free(m->sender_pubkey);
        free(m->sender_name);
        free(m->body);
        free(m->meta_json);
        free(m->reply_to_id);
        free(m->recipient_pubkey);
        free(m->recipient_kind);
        *m = (InboxMessage) { 0 };
}

void inbox_messages_free(InboxMessage *m, size_t n) {
        for (size_t k = 0; k < n; k++)
                inbox_message_done(&m[k]);
        free(m);
}

static int read_message(sqlite3_stmt *st, InboxMessage *ret) {
        _cleanup_(inbox_message_done) InboxMessage m = { 0 };
        char **text[] = {
                &m.id, &m.client_message_id, &m.broker_message_id, &m.mesh_id, &m.topic, &m.sender_pubkey,
                &m.sender_name, &m.body, &m.meta_json, &m.reply_to_id, &m.recipient_pubkey, &m.recipient_kind,
        };

        for (size_t k = 0; k < ELEMENTSOF(text); k++) {
                const unsigned char *t = sqlite3_column_text(st, (int) k);

                if (!t)
                        continue;
                *text[k] = strdup((const char *) t);
                if (!*text[k])
                        return -ENOMEM;
        }
        m.received_at = (usec_t) sqlite3_column_int64(st, (int) ELEMENTSOF(text));
        m.seen_at = (usec_t) sqlite3_column_int64(st, (int) ELEMENTSOF(text) + 1);
        *ret = m;
        m = (InboxMessage) { 0 };
        return 0;
}

#define MESSAGE_COLUMNS                                                                                  \
        "id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey, sender_name, body, meta, " \
        "reply_to_id, recipient_pubkey, recipient_kind, received_at, seen_at"
#define LIST_SELECT "SELECT " MESSAGE_COLUMNS " FROM inbox WHERE (?6 = 0 OR seen_at IS NULL)"
#define LIST_RECIPIENT " AND recipient_pubkey = ?7"
#define LIST_MESH " AND mesh_id = ?1"
#define LIST_SINCE " AND received_at >= ?2"
#define LIST_FROM " AND sender_pubkey = ?3"
#define LIST_TOPIC " AND topic = ?4"
/* Newest first in index order: the indexes end in the rowid, which follows insertion. */
#define LIST_ORDER " ORDER BY received_at DESC, rowid DESC LIMIT ?5"

/* One literal per combination of filters, indexed by the bits mesh 1, since 2, from 4, topic 8
 * (and recipient in the second half), so each is prepared once and planned for the indexes it can use. */
#define LIST_VARIANTS(R)                                                                \
        LIST_SELECT R LIST_ORDER,                                                       \
        LIST_SELECT LIST_MESH R LIST_ORDER,                                             \
        LIST_SELECT LIST_SINCE R LIST_ORDER,                                            \
        LIST_SELECT LIST_MESH LIST_SINCE R LIST_ORDER,                                  \
        LIST_SELECT LIST_FROM R LIST_ORDER,                                             \
        LIST_SELECT LIST_MESH LIST_FROM R LIST_ORDER,                                   \
        LIST_SELECT LIST_SINCE LIST_FROM R LIST_ORDER,                                  \
        LIST_SELECT LIST_MESH LIST_SINCE LIST_FROM R LIST_ORDER,                        \
        LIST_SELECT LIST_TOPIC R LIST_ORDER,                                            \
        LIST_SELECT LIST_MESH LIST_TOPIC R LIST_ORDER,                                  \
        LIST_SELECT LIST_SINCE LIST_TOPIC R LIST_ORDER,                                 \
        LIST_SELECT LIST_MESH LIST_SINCE LIST_TOPIC R LIST_ORDER,                       \
        LIST_SELECT LIST_FROM LIST_TOPIC R LIST_ORDER,                                  \
        LIST_SELECT LIST_MESH LIST_FROM LIST_TOPIC R LIST_ORDER,                        \
        LIST_SELECT LIST_SINCE LIST_FROM LIST_TOPIC R LIST_ORDER,                       \
        LIST_SELECT LIST_MESH LIST_SINCE LIST_FROM LIST_TOPIC R LIST_ORDER

int inbox_list(Inbox *i, const char *mesh_id, usec_t since, const char *from, const char *topic, bool unread_only,
               unsigned limit, InboxMessage **ret, size_t *ret_n) {
        return inbox_list_filtered(i,
                                   &(InboxFilter) {
                                           .mesh_id = mesh_id,
                                           .since = since,
                                           .from = from,
                                           .topic = topic,
                                           .unread_only = unread_only,
                                           .limit = limit,
                                   },
                                   ret, ret_n);
}

int inbox_list_filtered(Inbox *i, const InboxFilter *f, InboxMessage **ret, size_t *ret_n) {
        static const char *const sql[32] = { LIST_VARIANTS(""), LIST_VARIANTS(LIST_RECIPIENT) };
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        InboxMessage *messages = NULL;
        size_t n = 0;
        unsigned limit;
        int r, rc;

        assert(i);
        assert(f);

        limit = f->limit == 0 ? INBOX_LIST_DEFAULT : f->limit > INBOX_LIST_MAX ? INBOX_LIST_MAX : f->limit;
        r = store_stmt(i->store,
                       sql[(f->mesh_id ? 1 : 0) | (f->since > 0 ? 2 : 0) | (f->from ? 4 : 0) | (f->topic ? 8 : 0) |
                           (f->recipient_pubkey ? 16 : 0)],
                       &st);
        if (r < 0)
                return r;
        /* ?5 and ?6 are in every variant and ?7 binds last, so binding ?1–?4 is always in range, used
         * or not; ?7 only where it is used. */
        r = store_bind(i->store, st, "the inbox list filter", "sissii", f->mesh_id, (int64_t) f->since, f->from,
                       f->topic, (int64_t) limit, (int64_t) f->unread_only);
        if (r < 0)
                return r;
        if (f->recipient_pubkey) {
                rc = sqlite3_bind_text(st, 7, f->recipient_pubkey, -1, SQLITE_STATIC);
                if (rc != SQLITE_OK)
                        return store_log_error(i->store, rc, "binding the inbox list filter");
        }

        while (n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                InboxMessage *a = reallocarray(messages, n + 1, sizeof *messages);

                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                messages = a;
                r = read_message(st, &messages[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r >= 0 && n < limit && rc != SQLITE_DONE)
                r = store_log_error(i->store, rc, "reading inbox rows");
        if (r < 0) {
                inbox_messages_free(messages, n);
                return r;
        }
        *ret = messages;
        *ret_n = n;
        return 0;
}

int inbox_list_unannounced(Inbox *i, const char *mesh_id, const char *recipient_pubkey, unsigned limit,
                           InboxMessage **ret, size_t *ret_n) {
        /* Oldest first, as they arrived: listeners see them in the order they would have. */
        static const char *const sql[2] = {
                "SELECT " MESSAGE_COLUMNS " FROM inbox WHERE mesh_id = ?1 AND announced_at IS NULL AND "
                "recipient_kind = 'member' AND ?3 IS NULL ORDER BY received_at, rowid LIMIT ?2",
                "SELECT " MESSAGE_COLUMNS " FROM inbox WHERE mesh_id = ?1 AND announced_at IS NULL AND "
                "recipient_pubkey = ?3 ORDER BY received_at, rowid LIMIT ?2",
        };
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        InboxMessage *messages = NULL;
        size_t n = 0;
        int r = 0, rc;

        assert(i);
        assert(mesh_id);
        assert(ret);
        assert(ret_n);

        limit = limit == 0 ? INBOX_LIST_DEFAULT : limit > INBOX_LIST_MAX ? INBOX_LIST_MAX : limit;
        r = store_stmt(i->store, sql[recipient_pubkey ? 1 : 0], &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the unannounced rows' query", "sis", mesh_id, (int64_t) limit, recipient_pubkey);
        if (r < 0)
                return r;

        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                InboxMessage *a = reallocarray(messages, n + 1, sizeof *messages);

                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                messages = a;
                r = read_message(st, &messages[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = store_log_error(i->store, rc, "reading unannounced inbox rows");
        if (r < 0) {
                inbox_messages_free(messages, n);
                return r;
        }
        *ret = messages;
        *ret_n = n;
        return 0;
}

int inbox_mark_announced(Inbox *i, const char *id, usec_t now) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);
        assert(id);

        r = store_stmt(i->store, "UPDATE inbox SET announced_at = ?2 WHERE id = ?1 AND announced_at IS NULL", &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the announcement mark", "si", id, (int64_t) now);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "marking an inbox row announced");
        return r < 0 ? r : 0;
}

int inbox_mark_seen(Inbox *i, const char *const *ids, size_t n, usec_t now, unsigned *ret_flipped) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        unsigned flipped = 0;
        bool own;
        int r;

        assert(i);
        assert(ids || n == 0);
        assert(ret_flipped);

        r = store_stmt(i->store, "UPDATE inbox SET seen_at = ?2 WHERE id = ?1 AND seen_at IS NULL", &st);
        if (r < 0)
                return r;
        /* One transaction: the ids of a request are marked together or not at all. */
        r = store_atomic_begin(i->store, &own);
        if (r < 0)
                return r;
        for (size_t k = 0; k < n && r >= 0; k++) {
                sqlite3_reset(st);
                r = store_bind(i->store, st, "inbox rows to mark seen", "si", ids[k], (int64_t) now);
                if (r < 0)
                        break;
                r = store_run(i->store, st, "marking inbox rows seen");
                if (r > 0)
                        flipped += (unsigned) r;
        }
        r = store_atomic_end(i->store, own, r);
        if (r < 0)
                return r;
        *ret_flipped = flipped;
        return 0;
}

int inbox_delete(Inbox *i, const char *id, bool *ret_found) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);
        assert(id);
        assert(ret_found);

        r = store_stmt(i->store, "DELETE FROM inbox WHERE id = ?1", &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "an inbox row to delete", "s", id);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "deleting an inbox row");
        if (r < 0)
                return r;
        *ret_found = r > 0;
        return 0;
}

int inbox_flush(Inbox *i, const char *mesh_id, usec_t before, unsigned *ret_removed) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);
        assert(ret_removed);

        r = store_stmt(i->store,
                       "DELETE FROM inbox WHERE (?1 IS NULL OR mesh_id = ?1) AND (?2 = 0 OR received_at < ?2)", &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the inbox flush", "si", mesh_id, (int64_t) before);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "flushing the inbox");
        if (r < 0)
                return r;
        *ret_removed = (unsigned) r;
        return 0;
}

int inbox_count_unseen(Inbox *i, const char *recipient_pubkey, unsigned *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(i);
        assert(recipient_pubkey);
        assert(ret);

        r = store_stmt(i->store, "SELECT count(*) FROM inbox WHERE recipient_pubkey = ?1 AND seen_at IS NULL", &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the unseen count", "s", recipient_pubkey);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_log_error(i->store, rc, "counting unseen messages");
        *ret = (unsigned) sqlite3_column_int64(st, 0);
        return 0;
}

int inbox_mark_seen_for(Inbox *i, const char *recipient_pubkey, usec_t now, unsigned *ret_flipped) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);
        assert(recipient_pubkey);

        r = store_stmt(i->store, "UPDATE inbox SET seen_at = ?2 WHERE recipient_pubkey = ?1 AND seen_at IS NULL", &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the rows to mark seen", "si", recipient_pubkey, (int64_t) now);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "marking a recipient's rows seen");
        if (r < 0)
                return r;
        if (ret_flipped)
                *ret_flipped = (unsigned) r;
        return 0;
}

int inbox_adopt_member(Inbox *i, const char *mesh_id, const char *member_pubkey) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(i);
        assert(mesh_id);
        assert(member_pubkey);

        /* OR IGNORE: a row the broker pushed again after the upgrade is there under the key already. */
        r = store_stmt(i->store,
                       "UPDATE OR IGNORE inbox SET recipient_pubkey = ?2 WHERE mesh_id = ?1 AND recipient_pubkey = ''",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(i->store, st, "the member's rows", "ss", mesh_id, member_pubkey);
        if (r < 0)
                return r;
        r = store_run(i->store, st, "naming the member as the recipient of older rows");
        return r < 0 ? r : 0;
}
