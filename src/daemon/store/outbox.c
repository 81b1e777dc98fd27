/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error-message.h"
#include "fileio.h"
#include "log.h"
#include "outbox-internal.h"
#include "store.h"

struct Outbox {
        Store *store;
        bool synchronous_full;
};

/* The columns of schema version 2, which migrations copy as they are. */
#define V2_COLUMNS                                                                                      \
        "id, client_message_id, mesh_id, kind, destination_ref, target_spec, priority, meta, reply_to, " \
        "body, request_fingerprint, enqueued_at, attempts, next_attempt_at, status, last_error, "        \
        "delivered_at, broker_message_id, aborted_at, aborted_by, superseded_by"
#define ROW_COLUMNS V2_COLUMNS ", sender_pubkey"

/* Step i takes the schema from version i to i + 1 (store_open). Besides reference §4.2: the
 * normalized envelope (mesh_id … body) so the drain can route a row by itself, and an index for
 * listing a mesh's rows newest first. The table is clustered on its ULID id, which grows with
 * time: an accept appends to the table and touches three indexes, and "newest first" is the
 * primary key read backwards. */
const char *const outbox_migrations[] = {
        "CREATE TABLE outbox ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL UNIQUE,"
        "  mesh_id TEXT NOT NULL,"
        "  kind TEXT NOT NULL CHECK (kind IN ('dm','topic')),"
        "  destination_ref TEXT NOT NULL,"
        "  target_spec TEXT NOT NULL,"
        "  priority TEXT NOT NULL CHECK (priority IN ('now','next','low')),"
        "  meta TEXT,"
        "  reply_to TEXT,"
        "  body BLOB NOT NULL,"
        "  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),"
        "  enqueued_at INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  next_attempt_at INTEGER NOT NULL,"
        "  status TEXT NOT NULL CHECK (status IN ('pending','inflight','done','dead','aborted')),"
        "  last_error TEXT,"
        "  delivered_at INTEGER,"
        "  broker_message_id TEXT,"
        "  aborted_at INTEGER,"
        "  aborted_by TEXT CHECK (aborted_by IN ('operator','auto')),"
        "  superseded_by TEXT) WITHOUT ROWID;"
        "CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);"
        "CREATE INDEX outbox_aborted ON outbox(status, aborted_at) WHERE status = 'aborted';"
        "CREATE INDEX outbox_mesh ON outbox(mesh_id, id);",

        /* The same table, its CHECKs spelled as comparisons. SQLite tests a column against a
         * constant IN list of more than two values by first building a temporary b-tree of the
         * list, each time the statement runs: the priority and status CHECKs made two of them on
         * every INSERT (and the status one on every drain transition), a quarter of the
         * daemon's instructions per Send. The constraints accept exactly the same values (NULL
         * included: an OR of comparisons is NULL too); a CHECK cannot be altered, so the table
         * is rebuilt, rows copied as they are. */
        "CREATE TABLE outbox_v2 ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL UNIQUE,"
        "  mesh_id TEXT NOT NULL,"
        "  kind TEXT NOT NULL CHECK (kind = 'dm' OR kind = 'topic'),"
        "  destination_ref TEXT NOT NULL,"
        "  target_spec TEXT NOT NULL,"
        "  priority TEXT NOT NULL CHECK (priority = 'now' OR priority = 'next' OR priority = 'low'),"
        "  meta TEXT,"
        "  reply_to TEXT,"
        "  body BLOB NOT NULL,"
        "  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),"
        "  enqueued_at INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  next_attempt_at INTEGER NOT NULL,"
        "  status TEXT NOT NULL CHECK (status = 'pending' OR status = 'inflight' OR status = 'done' OR"
        "                              status = 'dead' OR status = 'aborted'),"
        "  last_error TEXT,"
        "  delivered_at INTEGER,"
        "  broker_message_id TEXT,"
        "  aborted_at INTEGER,"
        "  aborted_by TEXT CHECK (aborted_by = 'operator' OR aborted_by = 'auto'),"
        "  superseded_by TEXT) WITHOUT ROWID;"
        "INSERT INTO outbox_v2 (" V2_COLUMNS ") SELECT " V2_COLUMNS " FROM outbox;"
        "DROP TABLE outbox;"
        "ALTER TABLE outbox_v2 RENAME TO outbox;"
        "CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);"
        "CREATE INDEX outbox_aborted ON outbox(status, aborted_at) WHERE status = 'aborted';"
        "CREATE INDEX outbox_mesh ON outbox(mesh_id, id);",

        /* DECISIONS §17: a session's dedupe scope is its own key. sender_pubkey names the identity
         * a row goes out as ('' = the member, as every row before this version did), and an id is
         * unique per sender only; a column's UNIQUE cannot be dropped, so the table is rebuilt. */
        "CREATE TABLE outbox_v3 ("
        "  id TEXT PRIMARY KEY,"
        "  client_message_id TEXT NOT NULL,"
        "  mesh_id TEXT NOT NULL,"
        "  kind TEXT NOT NULL CHECK (kind = 'dm' OR kind = 'topic'),"
        "  destination_ref TEXT NOT NULL,"
        "  target_spec TEXT NOT NULL,"
        "  priority TEXT NOT NULL CHECK (priority = 'now' OR priority = 'next' OR priority = 'low'),"
        "  meta TEXT,"
        "  reply_to TEXT,"
        "  body BLOB NOT NULL,"
        "  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),"
        "  enqueued_at INTEGER NOT NULL,"
        "  attempts INTEGER NOT NULL DEFAULT 0,"
        "  next_attempt_at INTEGER NOT NULL,"
        "  status TEXT NOT NULL CHECK (status = 'pending' OR status = 'inflight' OR status = 'done' OR"
        "                              status = 'dead' OR status = 'aborted'),"
        "  last_error TEXT,"
        "  delivered_at INTEGER,"
        "  broker_message_id TEXT,"
        "  aborted_at INTEGER,"
        "  aborted_by TEXT CHECK (aborted_by = 'operator' OR aborted_by = 'auto'),"
        "  superseded_by TEXT,"
        "  sender_pubkey TEXT NOT NULL DEFAULT '',"
        "  UNIQUE (sender_pubkey, client_message_id)) WITHOUT ROWID;"
        "INSERT INTO outbox_v3 (" V2_COLUMNS ") SELECT " V2_COLUMNS " FROM outbox;"
        "DROP TABLE outbox;"
        "ALTER TABLE outbox_v3 RENAME TO outbox;"
        "CREATE INDEX outbox_pending ON outbox(status, next_attempt_at);"
        "CREATE INDEX outbox_aborted ON outbox(status, aborted_at) WHERE status = 'aborted';"
        "CREATE INDEX outbox_mesh ON outbox(mesh_id, id);",
};

_Static_assert(ELEMENTSOF(outbox_migrations) == OUTBOX_SCHEMA_VERSION, "OUTBOX_SCHEMA_VERSION is the number of steps");

static const char *const status_table[_OUTBOX_STATUS_MAX] = {
        [OUTBOX_PENDING] = "pending",
        [OUTBOX_INFLIGHT] = "inflight",
        [OUTBOX_DONE] = "done",
        [OUTBOX_DEAD] = "dead",
        [OUTBOX_ABORTED] = "aborted",
};

const char *outbox_status_to_string(OutboxStatus s) {
        return s >= 0 && s < _OUTBOX_STATUS_MAX ? status_table[s] : NULL;
}

OutboxStatus outbox_status_from_string(const char *s) {
        if (s)
                for (OutboxStatus i = 0; i < _OUTBOX_STATUS_MAX; i++)
                        if (streq(s, status_table[i]))
                                return i;
        return _OUTBOX_STATUS_INVALID;
}

bool outbox_client_message_id_is_valid(const char *id) {
        size_t n = 0;

        if (!id)
                return false;
        for (; id[n]; n++)
                if (id[n] < 0x20 || id[n] > 0x7e || n >= OUTBOX_CLIENT_MESSAGE_ID_MAX)
                        return false;
        return n > 0;
}

static bool one_of(const char *s, const char *a, const char *b, const char *c) {
        return s && (streq(s, a) || streq(s, b) || (c && streq(s, c)));
}

static bool envelope_is_valid(const OutboxEnvelope *env) {
        return env && env->mesh_id && *env->mesh_id && one_of(env->kind, "dm", "topic", NULL) &&
               env->destination_ref && *env->destination_ref && env->target_spec && *env->target_spec &&
               one_of(env->priority, "now", "next", "low") && (env->body || env->body_size == 0);
}

/* A missing outbox.db is a fresh start only when nothing shows there was one: not the marker
 * written once it existed, and not a write-ahead log of it left behind. Otherwise the sends it
 * held would vanish without a word. */
static int check_not_lost(const char *path, const char *marker, char **ret_error) {
        _cleanup_free_ char *wal = NULL;
        struct stat st;

        if (lstat(path, &st) == 0 || errno != ENOENT)
                return 0;
        if (access(marker, F_OK) == 0)
                return error_setf(ret_error, -EUCLEAN,
                                  "%s is missing, but %s shows claudemeshd kept an outbox there: the sends it held "
                                  "may be lost. Sends are refused until it is restored (from a backup); to start an "
                                  "empty outbox instead, remove %s.", path, marker, marker);
        if (asprintf(&wal, "%s-wal", path) < 0)
                return -ENOMEM;
        if (lstat(wal, &st) == 0 && st.st_size > 0)
                return error_setf(ret_error, -EUCLEAN,
                                  "%s is missing, but its write-ahead log %s is there: the sends it held may be "
                                  "lost. Sends are refused until it is restored (from a backup); to start an empty "
                                  "outbox instead, move %s aside.", path, wal, wal);
        return 0;
}

static void write_marker(const char *marker) {
        static const char text[] =
                "claudemeshd keeps its outbox in outbox.db beside this file. While this file exists, a missing\n"
                "outbox.db is an error (its sends would be lost), not a fresh start. See claudemeshd(8).\n";
        int r;

        if (access(marker, F_OK) == 0)
                return;
        r = write_file_atomic(marker, text, sizeof text - 1, 0600);
        if (r < 0)
                log_warning_errno(r, "Cannot write %s; a lost outbox.db would go unnoticed until it is: %m", marker);
}

int outbox_open(const char *path, bool synchronous_full, Outbox **ret, char **ret_error) {
        _cleanup_free_ char *error = NULL, *marker = NULL;
        Outbox *o;
        int r;

        if (asprintf(&marker, "%s.created", path) < 0)
                return -ENOMEM;
        r = check_not_lost(path, marker, ret_error);
        if (r < 0)
                return r;
        o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->synchronous_full = synchronous_full;
        r = store_open(path, synchronous_full, outbox_migrations, ELEMENTSOF(outbox_migrations), &o->store, &error);
        if (r < 0) {
                free(o);
                /* Never set aside automatically (unlike the inbox): it holds sends not yet delivered. */
                if (r == -EUCLEAN)
                        return error_setf(ret_error, r,
                                          "%s Sends are refused until the outbox is restored or repaired; the file is "
                                          "left as it is. To give up what it held and start an empty outbox: "
                                          "mv %s %s.corrupt && rm -f %s.",
                                          strna(error), path, path, marker);
                if (ret_error)
                        *ret_error = TAKE_PTR(error);
                return r;
        }
        write_marker(marker);
        *ret = o;
        return 0;
}

Outbox *outbox_free(Outbox *o) {
        if (!o)
                return NULL;
        store_free(o->store);
        free(o);
        return NULL;
}

const char *outbox_path(Outbox *o) {
        assert(o);

        return store_path(o->store);
}

sqlite3 *outbox_db(Outbox *o) {
        assert(o);

        return store_db(o->store);
}

int outbox_begin(Outbox *o) {
        assert(o);

        return store_begin(o->store);
}

int outbox_commit(Outbox *o) {
        assert(o);

        return store_commit(o->store);
}

void outbox_rollback(Outbox *o) {
        assert(o);

        store_rollback(o->store);
}

void outbox_accept_result_done(OutboxAcceptResult *r) {
        if (!r)
                return;
        r->broker_message_id = mfree(r->broker_message_id);
        r->last_error = mfree(r->last_error);
}

static int strdup_column(sqlite3_stmt *st, int col, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, col);

        if (!t) {
                *ret = NULL;
                return sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM ? -ENOMEM : 0;
        }
        *ret = strdup((const char *) t);
        return *ret ? 0 : -ENOMEM;
}

static void fingerprint_prefix(const uint8_t *fp, char ret[static OUTBOX_FINGERPRINT_PREFIX_MAX]) {
        sodium_bin2hex(ret, OUTBOX_FINGERPRINT_PREFIX_MAX, fp, (OUTBOX_FINGERPRINT_PREFIX_MAX - 1) / 2);
}

/* [status][fingerprint matches]: the conflict names of reference §3.3, verbatim; NULL where the
 * duplicate is answered as a success. */
static const char *const conflict_table[_OUTBOX_STATUS_MAX][2] = {
        [OUTBOX_PENDING] = { "outbox_pending_fingerprint_mismatch", NULL },
        [OUTBOX_INFLIGHT] = { "outbox_inflight_fingerprint_mismatch", NULL },
        [OUTBOX_DONE] = { "outbox_done_fingerprint_mismatch", NULL },
        [OUTBOX_DEAD] = { "outbox_dead_fingerprint_mismatch", "outbox_dead_fingerprint_match" },
        [OUTBOX_ABORTED] = { "outbox_aborted_fingerprint_mismatch", "outbox_aborted_fingerprint_match" },
};

static const OutboxAcceptOutcome match_outcome[_OUTBOX_STATUS_MAX] = {
        [OUTBOX_PENDING] = OUTBOX_ACCEPT_PENDING,
        [OUTBOX_INFLIGHT] = OUTBOX_ACCEPT_INFLIGHT,
        [OUTBOX_DONE] = OUTBOX_ACCEPT_DONE,
        [OUTBOX_DEAD] = OUTBOX_ACCEPT_CONFLICT,
        [OUTBOX_ABORTED] = OUTBOX_ACCEPT_CONFLICT,
};

/* An existing row: steps 4–5 of reference §3.3 for a duplicate. Nothing is written. */
static int accept_duplicate(Outbox *o, sqlite3_stmt *st, const uint8_t *fingerprint, OutboxAcceptResult *ret) {
        const void *stored = sqlite3_column_blob(st, 1);
        OutboxStatus status;
        bool match;
        int r;

        if (sqlite3_column_bytes(st, 1) != OUTBOX_FINGERPRINT_SIZE || !stored)
                return log_error_errno(-EUCLEAN, "%s: a row has a request_fingerprint that is not 32 bytes.",
                                       outbox_path(o));
        status = outbox_status_from_string((const char *) sqlite3_column_text(st, 2));
        if (status < 0)
                return log_error_errno(-EUCLEAN, "%s: a row has an unknown status.", outbox_path(o));

        snprintf(ret->row_id, sizeof ret->row_id, "%s", (const char *) sqlite3_column_text(st, 0));
        match = sodium_memcmp(stored, fingerprint, OUTBOX_FINGERPRINT_SIZE) == 0;
        ret->conflict = conflict_table[status][match];
        ret->outcome = ret->conflict ? OUTBOX_ACCEPT_CONFLICT : match_outcome[status];
        fingerprint_prefix(ret->conflict ? stored : fingerprint, ret->fingerprint_prefix);

        if (status == OUTBOX_DONE) {
                r = strdup_column(st, 3, &ret->broker_message_id);
                if (r < 0)
                        return r;
        }
        if (status == OUTBOX_DEAD && match) {
                r = strdup_column(st, 4, &ret->last_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* 1: inserted; 0: the sender already used client_message_id, nothing written. */
static int accept_insert(Outbox *o, const char *client_message_id, const uint8_t *fingerprint,
                         const OutboxEnvelope *env, usec_t now, OutboxAcceptResult *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        char id[ULID_MAX];
        int r, rc;

        r = ulid_new(now, id);
        if (r < 0)
                return r;
        r = store_stmt(o->store,
                       "INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec, "
                       "  priority, meta, reply_to, body, request_fingerprint, enqueued_at, attempts, "
                       "  next_attempt_at, status, sender_pubkey) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?12, 'pending', ?13) "
                       "ON CONFLICT (sender_pubkey, client_message_id) DO NOTHING",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "a new outbox row", "sssssssss", id, client_message_id, env->mesh_id, env->kind,
                       env->destination_ref, env->target_spec, env->priority, env->meta_json, env->reply_to);
        if (r < 0)
                return r;
        /* An empty body is still a (zero-length) BLOB, not NULL. */
        rc = sqlite3_bind_blob64(st, 10, env->body ? env->body : "", env->body_size, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a new outbox row");
        rc = sqlite3_bind_blob(st, 11, fingerprint, OUTBOX_FINGERPRINT_SIZE, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a new outbox row");
        rc = sqlite3_bind_int64(st, 12, (sqlite3_int64) now);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a new outbox row");
        rc = sqlite3_bind_text(st, 13, strempty(env->sender_pubkey), -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a new outbox row");
        r = store_run(o->store, st, "inserting an outbox row");
        if (r <= 0)
                return r;

        ret->outcome = OUTBOX_ACCEPT_QUEUED;
        memcpy(ret->row_id, id, sizeof id);
        fingerprint_prefix(fingerprint, ret->fingerprint_prefix);
        return 1;
}

/* A new id is the common case: the INSERT's own uniqueness check finds a duplicate, and only then
 * is the stored row read (one b-tree search per new send instead of two). */
static int accept_locked(Outbox *o, const char *client_message_id, const uint8_t *fingerprint,
                         const OutboxEnvelope *env, usec_t now, OutboxAcceptResult *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        r = accept_insert(o, client_message_id, fingerprint, env, now, ret);
        if (r != 0)
                return r < 0 ? r : 0;

        r = store_stmt(o->store,
                       "SELECT id, request_fingerprint, status, broker_message_id, last_error FROM outbox "
                       "WHERE sender_pubkey = ?1 AND client_message_id = ?2",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "a client_message_id", "ss", strempty(env->sender_pubkey), client_message_id);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return accept_duplicate(o, st, fingerprint, ret);
        if (rc != SQLITE_DONE)
                return store_log_error(o->store, rc, "looking up a client_message_id");
        /* The INSERT found the id taken in this same transaction: its row cannot be missing. */
        return log_error_errno(-EUCLEAN, "%s: a client_message_id in use has no row.", outbox_path(o));
}

int outbox_accept(Outbox *o, const char *client_message_id, const uint8_t fingerprint[static OUTBOX_FINGERPRINT_SIZE],
                  const OutboxEnvelope *env, usec_t now, OutboxAcceptResult *ret) {
        bool own = false;
        int r;

        assert(o);

        *ret = (OutboxAcceptResult) { .outcome = OUTBOX_ACCEPT_CONFLICT };
        if (!outbox_client_message_id_is_valid(client_message_id) || !envelope_is_valid(env))
                return -EINVAL;

        /* Inside the caller's transaction the lookup and the single INSERT are already atomic. */
        if (!store_in_transaction(o->store)) {
                r = store_begin(o->store);
                if (r < 0)
                        return r;
                own = true;
        }
        r = accept_locked(o, client_message_id, fingerprint, env, now, ret);
        if (own)
                r = store_atomic_end(o->store, true, r);
        if (r < 0)
                outbox_accept_result_done(ret);
        return r;
}

void outbox_row_done(OutboxRow *row) {
        if (!row)
                return;
        free(row->id);
        free(row->client_message_id);
        free(row->mesh_id);
        free(row->kind);
        free(row->destination_ref);
        free(row->target_spec);
        free(row->priority);
        free(row->meta_json);
        free(row->reply_to);
        free(row->body);
        free(row->last_error);
        free(row->broker_message_id);
        free(row->aborted_by);
        free(row->superseded_by);
        free(row->sender_pubkey);
        *row = (OutboxRow) { .status = _OUTBOX_STATUS_INVALID };
}

void outbox_rows_free(OutboxRow *rows, size_t n) {
        for (size_t i = 0; i < n; i++)
                outbox_row_done(&rows[i]);
        free(rows);
}

static usec_t column_usec(sqlite3_stmt *st, int col) {
        return (usec_t) sqlite3_column_int64(st, col);
}

/* Moves *from into *to, leaving *from empty (so its cleanup frees nothing). */
static void row_move(OutboxRow *to, OutboxRow *from) {
        *to = *from;
        *from = (OutboxRow) { .status = _OUTBOX_STATUS_INVALID };
}

/* The current row of a SELECT ROW_COLUMNS into *ret, owned by the caller. */
static int read_row(sqlite3_stmt *st, OutboxRow *ret) {
        _cleanup_(outbox_row_done) OutboxRow row = { .status = _OUTBOX_STATUS_INVALID };
        char **text[] = {
                [0] = &row.id, [1] = &row.client_message_id, [2] = &row.mesh_id, [3] = &row.kind,
                [4] = &row.destination_ref, [5] = &row.target_spec, [6] = &row.priority, [7] = &row.meta_json,
                [8] = &row.reply_to, [15] = &row.last_error, [17] = &row.broker_message_id,
                [19] = &row.aborted_by, [20] = &row.superseded_by, [21] = &row.sender_pubkey,
        };
        const void *body, *fp;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(text); i++) {
                if (!text[i])
                        continue;
                r = strdup_column(st, (int) i, text[i]);
                if (r < 0)
                        return r;
        }

        body = sqlite3_column_blob(st, 9);
        row.body_size = (size_t) sqlite3_column_bytes(st, 9);
        row.body = malloc(row.body_size + 1);
        if (!row.body)
                return -ENOMEM;
        if (row.body_size > 0)
                memcpy(row.body, body, row.body_size);
        row.body[row.body_size] = 0;

        fp = sqlite3_column_blob(st, 10);
        if (!fp || sqlite3_column_bytes(st, 10) != OUTBOX_FINGERPRINT_SIZE)
                return -EUCLEAN;
        memcpy(row.request_fingerprint, fp, OUTBOX_FINGERPRINT_SIZE);

        row.status = outbox_status_from_string((const char *) sqlite3_column_text(st, 14));
        if (row.status < 0)
                return -EUCLEAN;
        row.enqueued_at = column_usec(st, 11);
        row.attempts = (unsigned) sqlite3_column_int64(st, 12);
        row.next_attempt_at = column_usec(st, 13);
        row.delivered_at = column_usec(st, 16);
        row.aborted_at = column_usec(st, 18);

        row_move(ret, &row);
        return 0;
}

/* Every row a bound SELECT ROW_COLUMNS returns, at most max of them. */
static int read_rows(Outbox *o, sqlite3_stmt *st, size_t max, OutboxRow **ret, size_t *ret_n) {
        OutboxRow *rows = NULL;
        size_t n = 0;
        int r = 0, rc = SQLITE_DONE;

        while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                OutboxRow *a = reallocarray(rows, n + 1, sizeof *rows);

                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                rows = a;
                r = read_row(st, &rows[n]);
                if (r < 0)
                        break;
                n++;
        }
        if (r >= 0 && n < max && rc != SQLITE_DONE)
                r = store_log_error(o->store, rc, "reading outbox rows");
        if (r < 0) {
                outbox_rows_free(rows, n);
                return r;
        }
        *ret = rows;
        *ret_n = n;
        return 0;
}

static unsigned clamp_limit(unsigned limit) {
        if (limit == 0)
                return OUTBOX_LIST_DEFAULT;
        return limit > OUTBOX_LIST_MAX ? OUTBOX_LIST_MAX : limit;
}

/* Newest first: ULIDs grow with time (and within a millisecond), so this is insertion order. */
#define LIST_SELECT "SELECT " ROW_COLUMNS " FROM outbox"
#define LIST_ORDER " ORDER BY id DESC LIMIT ?3"

int outbox_list(Outbox *o, const char *mesh_id, OutboxStatus status, unsigned limit, OutboxRow **ret, size_t *ret_n) {
        static const char *const sql[4] = {
                [0] = LIST_SELECT LIST_ORDER,
                [1] = LIST_SELECT " WHERE mesh_id = ?1" LIST_ORDER,
                [2] = LIST_SELECT " WHERE status = ?2" LIST_ORDER,
                [3] = LIST_SELECT " WHERE mesh_id = ?1 AND status = ?2" LIST_ORDER,
        };
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        const char *s = outbox_status_to_string(status);
        int r, rc;

        assert(o);

        if (!s && status != _OUTBOX_STATUS_INVALID)
                return -EINVAL;
        limit = clamp_limit(limit);
        r = store_stmt(o->store, sql[(mesh_id ? 1 : 0) | (s ? 2 : 0)], &st);
        if (r < 0)
                return r;
        /* ?3 is in every variant, so binding ?1 and ?2 is always in range, used or not. */
        rc = sqlite3_bind_text(st, 1, mesh_id, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the outbox list filter");
        rc = sqlite3_bind_text(st, 2, s, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the outbox list filter");
        rc = sqlite3_bind_int(st, 3, (int) limit);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the outbox list filter");
        return read_rows(o, st, limit, ret, ret_n);
}

int outbox_get(Outbox *o, const char *row_id, OutboxRow *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        if (!row_id)
                return -EINVAL;
        r = store_stmt(o->store, "SELECT " ROW_COLUMNS " FROM outbox WHERE id = ?1", &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, row_id, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a row id");
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_log_error(o->store, rc, "reading an outbox row");
        return read_row(st, ret);
}

int outbox_list_due(Outbox *o, const char *mesh_id, const char *sender_pubkey, usec_t now, unsigned limit,
                    OutboxRow **ret, size_t *ret_n) {
        /* Indexed by the bits mesh 1, sender 2; ?1 and ?2 are in every variant. */
        static const char *const sql[4] = {
                "SELECT " ROW_COLUMNS " FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 "
                "ORDER BY next_attempt_at LIMIT ?2",
                "SELECT " ROW_COLUMNS " FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 "
                "AND mesh_id = ?3 ORDER BY next_attempt_at LIMIT ?2",
                "SELECT " ROW_COLUMNS " FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 "
                "AND ?3 IS NULL AND sender_pubkey = ?4 ORDER BY next_attempt_at LIMIT ?2",
                "SELECT " ROW_COLUMNS " FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 "
                "AND mesh_id = ?3 AND sender_pubkey = ?4 ORDER BY next_attempt_at LIMIT ?2",
        };
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(o);

        limit = clamp_limit(limit);
        r = store_stmt(o->store, sql[(mesh_id ? 1 : 0) | (sender_pubkey ? 2 : 0)], &st);
        if (r < 0)
                return r;
        if (sender_pubkey)
                r = store_bind(o->store, st, "the due filter", "iiss", (int64_t) now, (int64_t) limit, mesh_id,
                               sender_pubkey);
        else if (mesh_id)
                r = store_bind(o->store, st, "the due filter", "iis", (int64_t) now, (int64_t) limit, mesh_id);
        else
                r = store_bind(o->store, st, "the due filter", "ii", (int64_t) now, (int64_t) limit);
        if (r < 0)
                return r;
        return read_rows(o, st, limit, ret, ret_n);
}

int outbox_list_active_from(Outbox *o, const char *sender_pubkey, unsigned limit, OutboxRow **ret, size_t *ret_n) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(o);
        assert(sender_pubkey);

        limit = clamp_limit(limit);
        r = store_stmt(o->store,
                       "SELECT " ROW_COLUMNS " FROM outbox WHERE status IN ('pending', 'inflight') AND "
                       "sender_pubkey = ?1 ORDER BY id LIMIT ?2",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "the sender filter", "si", sender_pubkey, (int64_t) limit);
        if (r < 0)
                return r;
        return read_rows(o, st, limit, ret, ret_n);
}

/* The first column of every row of a bound statement, as a NULL-terminated array. */
static int read_strv(Outbox *o, sqlite3_stmt *st, const char *what, char ***ret) {
        char **l = NULL;
        size_t n = 0;
        int r = 0, rc;

        l = calloc(1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                char **a = reallocarray(l, n + 2, sizeof(char *));

                if (!a) {
                        r = -ENOMEM;
                        break;
                }
                l = a;
                l[n + 1] = NULL;
                r = strdup_column(st, 0, &l[n]);
                if (r < 0 || !l[n]) {
                        r = r < 0 ? r : -EUCLEAN;
                        break;
                }
                n++;
        }
        if (r >= 0 && rc != SQLITE_DONE)
                r = store_log_error(o->store, rc, what);
        if (r < 0) {
                for (size_t i = 0; i < n; i++)
                        free(l[i]);
                free(l);
                return r;
        }
        *ret = l;
        return 0;
}

int outbox_list_active_senders(Outbox *o, unsigned limit, char ***ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(o);
        assert(ret);

        r = store_stmt(o->store,
                       "SELECT DISTINCT sender_pubkey FROM outbox WHERE status IN ('pending', 'inflight') AND "
                       "sender_pubkey != '' LIMIT ?1",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "the sender query", "i", (int64_t) clamp_limit(limit));
        if (r < 0)
                return r;
        return read_strv(o, st, "reading the senders of queued rows", ret);
}

int outbox_list_due_senders(Outbox *o, const char *mesh_id, usec_t now, unsigned limit, char ***ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(o);
        assert(mesh_id);
        assert(ret);

        /* The status index finds the due rows; only they are read. */
        r = store_stmt(o->store,
                       "SELECT DISTINCT sender_pubkey FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 "
                       "AND mesh_id = ?2 LIMIT ?3",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "the due senders", "isi", (int64_t) now, mesh_id, (int64_t) clamp_limit(limit));
        if (r < 0)
                return r;
        return read_strv(o, st, "reading the senders of due rows", ret);
}

int outbox_count_active(Outbox *o, const char *mesh_id, unsigned *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        /* The status index: only the rows still to deliver are read, not the history. */
        r = store_stmt(o->store,
                       "SELECT count(*) FROM outbox WHERE status IN ('pending', 'inflight') AND mesh_id = ?1", &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, mesh_id, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the outbox depth");
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_log_error(o->store, rc, "counting queued sends");
        *ret = (unsigned) sqlite3_column_int64(st, 0);
        return 0;
}

int outbox_next_attempt_at(Outbox *o, usec_t after, usec_t *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        r = store_stmt(o->store,
                       "SELECT next_attempt_at FROM outbox WHERE status = 'pending' AND next_attempt_at > ?1 "
                       "ORDER BY next_attempt_at LIMIT 1",
                       &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64) after);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the due time");
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_log_error(o->store, rc, "finding the next due row");
        *ret = column_usec(st, 0);
        return 0;
}

/* The status of row_id: -ENOENT when there is none. */
static int row_status(Outbox *o, const char *row_id, OutboxStatus *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_stmt(o->store, "SELECT status FROM outbox WHERE id = ?1", &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, row_id, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a row id");
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return -ENOENT;
        if (rc != SQLITE_ROW)
                return store_log_error(o->store, rc, "reading a row status");
        *ret = outbox_status_from_string((const char *) sqlite3_column_text(st, 0));
        return *ret < 0 ? -EUCLEAN : 0;
}

/* Whether the sender of row_id already used client_message_id (ids are unique per sender). */
static int client_message_id_used(Outbox *o, const char *row_id, const char *client_message_id) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_stmt(o->store,
                       "SELECT 1 FROM outbox WHERE client_message_id = ?2 AND "
                       "sender_pubkey = (SELECT sender_pubkey FROM outbox WHERE id = ?1)",
                       &st);
        if (r < 0)
                return r;
        r = store_bind(o->store, st, "a client_message_id", "ss", row_id, client_message_id);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                return 1;
        if (rc != SQLITE_DONE)
                return store_log_error(o->store, rc, "looking up a client_message_id");
        return 0;
}

static int requeue_locked(Outbox *o, const char *row_id, const char *client_message_id, const char *aborted_by,
                          usec_t now, const char *new_row_id) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *abort = NULL, *insert = NULL;
        OutboxStatus status;
        int r;

        r = row_status(o, row_id, &status);
        if (r < 0)
                return r;
        if (status != OUTBOX_PENDING && status != OUTBOX_DEAD)
                return -EBUSY;
        r = client_message_id_used(o, row_id, client_message_id);
        if (r < 0)
                return r;
        if (r > 0)
                return -EEXIST;

        r = store_stmt(o->store,
                       "UPDATE outbox SET status = 'aborted', aborted_at = ?2, aborted_by = ?3, superseded_by = ?4 "
                       "WHERE id = ?1 AND status IN ('pending','dead')",
                       &abort);
        if (r < 0)
                return r;
        r = store_bind(o->store, abort, "a requeued row", "siss", row_id, (int64_t) now, aborted_by, new_row_id);
        if (r < 0)
                return r;
        r = store_run(o->store, abort, "aborting a requeued row");
        if (r < 0)
                return r;

        /* The envelope and the frozen fingerprint are copied inside SQLite, never re-derived. */
        r = store_stmt(o->store,
                       "INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec, "
                       "  priority, meta, reply_to, body, request_fingerprint, enqueued_at, attempts, "
                       "  next_attempt_at, status, sender_pubkey) "
                       "SELECT ?1, ?2, mesh_id, kind, destination_ref, target_spec, priority, meta, reply_to, body, "
                       "  request_fingerprint, ?3, 0, ?3, 'pending', sender_pubkey FROM outbox WHERE id = ?4",
                       &insert);
        if (r < 0)
                return r;
        r = store_bind(o->store, insert, "a requeued row", "ssis", new_row_id, client_message_id, (int64_t) now,
                       row_id);
        if (r < 0)
                return r;
        r = store_run(o->store, insert, "inserting a requeued row");
        return r < 0 ? r : 0;
}

int outbox_requeue(Outbox *o, const char *row_id, const char *new_client_message_id, const char *aborted_by,
                   usec_t now, char ret_new_row_id[static ULID_MAX], char **ret_new_client_message_id) {
        _cleanup_free_ char *client_message_id = NULL;
        char new_row_id[ULID_MAX];
        bool own;
        int r;

        assert(o);

        aborted_by = aborted_by ? aborted_by : "operator";
        if (!row_id || !one_of(aborted_by, "operator", "auto", NULL))
                return -EINVAL;
        if (new_client_message_id) {
                if (!outbox_client_message_id_is_valid(new_client_message_id))
                        return -EINVAL;
                client_message_id = strdup(new_client_message_id);
        } else {
                char minted[ULID_MAX];

                r = ulid_new(now, minted);
                if (r < 0)
                        return r;
                client_message_id = strdup(minted);
        }
        if (!client_message_id)
                return -ENOMEM;
        r = ulid_new(now, new_row_id);
        if (r < 0)
                return r;

        r = store_atomic_begin(o->store, &own);
        if (r < 0)
                return r;
        r = requeue_locked(o, row_id, client_message_id, aborted_by, now, new_row_id);
        r = store_atomic_end(o->store, own, r);
        if (r < 0)
                return r;

        memcpy(ret_new_row_id, new_row_id, ULID_MAX);
        if (ret_new_client_message_id)
                *ret_new_client_message_id = TAKE_PTR(client_message_id);
        return 0;
}

/* Runs a bound guarded UPDATE of row_id: 0 when it changed the row, else -ESTALE (the row is
 * in another status) or -ENOENT (there is no such row). */
static int guarded_update(Outbox *o, sqlite3_stmt *st, const char *row_id, const char *what) {
        OutboxStatus status;
        int r, rc;

        /* Only an accept must be on disk before its reply. A drain transition lost to a power
         * cut is redone: the row comes back as pending (inflight rows are recovered at start)
         * and its resend is answered as a duplicate. So these commits skip the fsync. */
        if (o->synchronous_full)
                (void) store_exec(o->store, "PRAGMA synchronous = NORMAL");
        rc = sqlite3_step(st);
        if (o->synchronous_full)
                (void) store_exec(o->store, "PRAGMA synchronous = FULL");
        if (rc != SQLITE_DONE)
                return store_log_error(o->store, rc, what);
        if (sqlite3_changes(store_db(o->store)) > 0)
                return 0;
        r = row_status(o, row_id, &status);
        return r < 0 ? r : -ESTALE;
}

/* A drain transition of row_id by sql, whose ?1 is the row, ?2 text (bound when given) and ?3 a
 * time (bound when given). What is not bound is NULL: the cleanup clears a cached statement's
 * bindings. */
static int transition(Outbox *o, const char *sql, const char *row_id, const char *text, const usec_t *at,
                      const char *what) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        if (!row_id)
                return -EINVAL;
        r = store_stmt(o->store, sql, &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_text(st, 1, row_id, -1, SQLITE_STATIC);
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding a transition");
        if (text) {
                rc = sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
                if (rc != SQLITE_OK)
                        return store_log_error(o->store, rc, "binding a transition");
        }
        if (at) {
                rc = sqlite3_bind_int64(st, 3, (sqlite3_int64) *at);
                if (rc != SQLITE_OK)
                        return store_log_error(o->store, rc, "binding a transition");
        }
        return guarded_update(o, st, row_id, what);
}

int outbox_mark_inflight(Outbox *o, const char *row_id, usec_t now) {
        /* While inflight, next_attempt_at says when this attempt started. */
        return transition(o,
                          "UPDATE outbox SET status = 'inflight', attempts = attempts + 1, next_attempt_at = ?3 "
                          "WHERE id = ?1 AND status = 'pending'",
                          row_id, NULL, &now, "marking a row inflight");
}

int outbox_mark_done(Outbox *o, const char *row_id, const char *broker_message_id, usec_t now) {
        return transition(o,
                          "UPDATE outbox SET status = 'done', broker_message_id = ?2, delivered_at = ?3, "
                          "last_error = NULL WHERE id = ?1 AND status = 'inflight'",
                          row_id, broker_message_id, &now, "marking a row done");
}

int outbox_mark_retry(Outbox *o, const char *row_id, const char *error, usec_t next_attempt_at) {
        return transition(o,
                          "UPDATE outbox SET status = 'pending', last_error = ?2, next_attempt_at = ?3 "
                          "WHERE id = ?1 AND status = 'inflight'",
                          row_id, error, &next_attempt_at, "scheduling a retry");
}

int outbox_mark_dead(Outbox *o, const char *row_id, const char *error) {
        return transition(o,
                          "UPDATE outbox SET status = 'dead', last_error = ?2 "
                          "WHERE id = ?1 AND status IN ('pending','inflight')",
                          row_id, error, NULL, "marking a row dead");
}

int outbox_recover(Outbox *o, usec_t now) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        r = store_stmt(o->store, "UPDATE outbox SET status = 'pending', next_attempt_at = ?1 WHERE status = 'inflight'",
                       &st);
        if (r < 0)
                return r;
        rc = sqlite3_bind_int64(st, 1, (sqlite3_int64) (now + OUTBOX_MIN_BACKOFF_USEC));
        if (rc != SQLITE_OK)
                return store_log_error(o->store, rc, "binding the recovery time");
        r = store_run(o->store, st, "recovering inflight rows");
        if (r > 0)
                log_info("%s: %d send(s) interrupted by a restart will be retried.", outbox_path(o), r);
        return r;
}

int outbox_expire(Outbox *o, const char *mesh_id, usec_t now, usec_t max_age) {
        static const char *const sql[2] = {
                "UPDATE outbox SET status = 'dead', last_error = 'max_age' "
                "WHERE status IN ('pending','inflight') AND enqueued_at < ?1",
                "UPDATE outbox SET status = 'dead', last_error = 'max_age' "
                "WHERE status IN ('pending','inflight') AND enqueued_at < ?1 AND mesh_id = ?2",
        };
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        assert(o);

        if (now <= max_age)
                return 0;
        r = store_stmt(o->store, sql[mesh_id ? 1 : 0], &st);
        if (r < 0)
                return r;
        /* With no mesh the statement has no ?2: bind only what it has. */
        if (mesh_id)
                r = store_bind(o->store, st, "the age limit", "is", (int64_t) (now - max_age), mesh_id);
        else
                r = store_bind(o->store, st, "the age limit", "i", (int64_t) (now - max_age));
        if (r < 0)
                return r;
        r = store_run(o->store, st, "expiring old rows");
        if (r > 0)
                log_warning("%s: %d send(s) older than the broker's dedupe window gave up (max_age).",
                            outbox_path(o), r);
        return r;
}

unsigned outbox_max_age_hours(unsigned dedupe_retention_days, bool permanent) {
        unsigned d = dedupe_retention_days, margin, hours;

        if (permanent || d == 0)
                return 168;
        /* ceil(D · 0.1 · 24) in integers; D·24 >= 24 and >= ceil(2.4·D), so no underflow. */
        margin = (24 * d + 9) / 10;
        if (margin < 24)
                margin = 24;
        hours = 24 * d - margin;
        return hours < 72 ? 72 : hours;
}

usec_t outbox_retry_backoff(unsigned attempts) {
        usec_t cap = OUTBOX_MIN_BACKOFF_USEC;

        for (unsigned i = 0; i < attempts && cap < OUTBOX_MAX_BACKOFF_USEC; i++)
                cap *= 2;
        if (cap > OUTBOX_MAX_BACKOFF_USEC)
                cap = OUTBOX_MAX_BACKOFF_USEC;
        return randombytes_uniform((uint32_t) cap + 1);
}

int outbox_count(Outbox *o, const char *mesh_id, unsigned ret_counts[static _OUTBOX_STATUS_MAX]) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        assert(o);

        r = store_stmt(o->store,
                       mesh_id ? "SELECT status, count(*) FROM outbox WHERE mesh_id = ?1 GROUP BY status"
                               : "SELECT status, count(*) FROM outbox GROUP BY status",
                       &st);
        if (r < 0)
                return r;
        if (mesh_id) {
                rc = sqlite3_bind_text(st, 1, mesh_id, -1, SQLITE_STATIC);
                if (rc != SQLITE_OK)
                        return store_log_error(o->store, rc, "binding a mesh id");
        }
        for (size_t i = 0; i < _OUTBOX_STATUS_MAX; i++)
                ret_counts[i] = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                OutboxStatus s = outbox_status_from_string((const char *) sqlite3_column_text(st, 0));

                if (s >= 0)
                        ret_counts[s] = (unsigned) sqlite3_column_int64(st, 1);
        }
        if (rc != SQLITE_DONE)
                return store_log_error(o->store, rc, "counting outbox rows");
        return 0;
}
