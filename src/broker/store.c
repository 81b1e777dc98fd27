/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store.h"

#define STMT_CACHE_MAX 96
#define BUSY_TIMEOUT_MS 5000
#define SCHEMA_VERSION 1

struct Store {
        sqlite3 *db;
        struct {
                const char *sql;
                sqlite3_stmt *stmt;
        } cache[STMT_CACHE_MAX];
        size_t n_cache;
        bool batch_open;
};

/* delivery holds one row per (message, recipient key) still owed a client_ack, so delivered
 * rows leave the hot path; message rows stay until the retention job prunes them. */
static const char schema_sql[] =
        "CREATE TABLE IF NOT EXISTS mesh ("
        "  id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL);"
        "CREATE TABLE IF NOT EXISTS member ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,"
        "  peer_pubkey TEXT NOT NULL, display_name TEXT NOT NULL,"
        "  role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin','member')),"
        "  created_at INTEGER NOT NULL, revoked_at INTEGER, UNIQUE (mesh_id, peer_pubkey));"
        "CREATE TABLE IF NOT EXISTS topic ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (mesh_id, name));"
        "CREATE TABLE IF NOT EXISTS session ("
        "  mesh_id TEXT NOT NULL, session_pubkey TEXT NOT NULL,"
        "  member_id TEXT NOT NULL REFERENCES member(id) ON DELETE CASCADE,"
        "  last_seen_at INTEGER NOT NULL, PRIMARY KEY (mesh_id, session_pubkey)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS message ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, sender_member_id TEXT NOT NULL,"
        "  sender_pubkey TEXT NOT NULL, sender_member_pubkey TEXT NOT NULL, sender_name TEXT NOT NULL,"
        "  target_spec TEXT NOT NULL, priority TEXT NOT NULL, nonce TEXT NOT NULL, ciphertext TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL, client_message_id TEXT, request_fingerprint BLOB,"
        "  reply_to_id TEXT, topic_id TEXT);"
        "CREATE UNIQUE INDEX IF NOT EXISTS message_client_message_id"
        "  ON message(mesh_id, client_message_id) WHERE client_message_id IS NOT NULL;"
        "CREATE INDEX IF NOT EXISTS message_created_at ON message(created_at);"
        "CREATE TABLE IF NOT EXISTS client_message_dedupe ("
        "  mesh_id TEXT NOT NULL, client_message_id TEXT NOT NULL, broker_message_id TEXT NOT NULL,"
        "  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),"
        "  destination_kind TEXT NOT NULL CHECK (destination_kind IN ('topic','dm','queue')),"
        "  destination_ref TEXT NOT NULL, first_seen_at INTEGER NOT NULL, expires_at INTEGER,"
        "  history_available INTEGER NOT NULL DEFAULT 1,"
        "  PRIMARY KEY (mesh_id, client_message_id)) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS client_message_dedupe_expires"
        "  ON client_message_dedupe(expires_at) WHERE expires_at IS NOT NULL;"
        "CREATE INDEX IF NOT EXISTS client_message_dedupe_broker_id"
        "  ON client_message_dedupe(broker_message_id);"
        "CREATE TABLE IF NOT EXISTS topic_message ("
        "  message_id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, topic_id TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS topic_message_topic ON topic_message(topic_id, created_at);"
        "CREATE TABLE IF NOT EXISTS delivery ("
        "  message_id TEXT NOT NULL, recipient_pubkey TEXT NOT NULL, mesh_id TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL, PRIMARY KEY (message_id, recipient_pubkey)) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS delivery_recipient ON delivery(mesh_id, recipient_pubkey, created_at);"
        "CREATE TABLE IF NOT EXISTS mention_index ("
        "  broker_message_id TEXT NOT NULL, mesh_id TEXT NOT NULL, mentioned TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL, PRIMARY KEY (broker_message_id, mentioned)) WITHOUT ROWID;"
        "CREATE INDEX IF NOT EXISTS mention_index_lookup ON mention_index(mesh_id, mentioned, created_at);";

int store_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_DONE:
        case SQLITE_ROW:
                return 0;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_CANTOPEN:
        case SQLITE_PERM:
        case SQLITE_READONLY:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

int store_exec(Store *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                log_error("SQLite: %s", err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return store_errno(rc);
        }
        return 0;
}

static int migrate(Store *s) {
        sqlite3_stmt *st;
        int version = 0, r;

        st = store_stmt(s, "PRAGMA user_version");
        if (!st)
                return -EIO;
        if (sqlite3_step(st) == SQLITE_ROW)
                version = sqlite3_column_int(st, 0);
        sqlite3_reset(st);
        if (version > SCHEMA_VERSION)
                return log_error_errno(-EPROTO, "Database schema %d is newer than this broker (%d).",
                                       version, SCHEMA_VERSION);
        if (version == SCHEMA_VERSION)
                return 0;

        r = store_begin(s);
        if (r < 0)
                return r;
        r = store_exec(s, schema_sql);
        if (r >= 0)
                r = store_exec(s, "PRAGMA user_version = 1");
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        return store_commit(s);
}

int store_open(const char *path, Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;
        int rc, r;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return log_error_errno(store_errno(rc), "Cannot open database %s: %s", path,
                                       s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
        sqlite3_extended_result_codes(s->db, 1);

        /* NORMAL in WAL mode loses at most the last commits on power loss, never consistency;
         * clients retry unacknowledged sends and the dedupe table absorbs the retries. */
        r = store_exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                          "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;");
        if (r < 0)
                return log_error_errno(r, "Cannot configure database %s.", path);
        r = migrate(s);
        if (r < 0)
                return log_error_errno(r, "Cannot create the schema in %s.", path);

        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_cache; i++)
                sqlite3_finalize(s->cache[i].stmt);
        sqlite3_close(s->db);
        free(s);
        return NULL;
}

sqlite3 *store_db(Store *s) {
        return s->db;
}

sqlite3_stmt *store_stmt(Store *s, const char *sql) {
        sqlite3_stmt *st;
        int rc;

        for (size_t i = 0; i < s->n_cache; i++)
                if (s->cache[i].sql == sql) {
                        sqlite3_reset(s->cache[i].stmt);
                        sqlite3_clear_bindings(s->cache[i].stmt);
                        return s->cache[i].stmt;
                }

        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
        if (rc != SQLITE_OK) {
                log_error("SQLite prepare failed: %s (%s)", sqlite3_errmsg(s->db), sql);
                return NULL;
        }
        if (s->n_cache >= STMT_CACHE_MAX) {
                /* Not reached with the broker's fixed statement set; stay correct if it is. */
                sqlite3_finalize(s->cache[0].stmt);
                memmove(&s->cache[0], &s->cache[1], sizeof s->cache[0] * (STMT_CACHE_MAX - 1));
                s->n_cache--;
        }
        s->cache[s->n_cache].sql = sql;
        s->cache[s->n_cache].stmt = st;
        s->n_cache++;
        return st;
}

int store_step_done(Store *s, sqlite3_stmt *st) {
        int rc = sqlite3_step(st);

        if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
                sqlite3_reset(st);
                return 0;
        }
        log_debug("SQLite step failed: %s", sqlite3_errmsg(s->db));
        sqlite3_reset(st);
        return store_errno(rc);
}

static int exec_cached(Store *s, const char *sql) {
        sqlite3_stmt *st = store_stmt(s, sql);
        return st ? store_step_done(s, st) : -EIO;
}

int store_begin(Store *s) {
        return exec_cached(s, s->batch_open ? "SAVEPOINT tx" : "BEGIN IMMEDIATE");
}

int store_commit(Store *s) {
        int r = exec_cached(s, s->batch_open ? "RELEASE tx" : "COMMIT");
        if (r < 0)
                store_rollback(s);
        return r;
}

void store_rollback(Store *s) {
        if (s->batch_open) {
                (void) exec_cached(s, "ROLLBACK TO tx");
                (void) exec_cached(s, "RELEASE tx");
        } else if (!sqlite3_get_autocommit(s->db))
                (void) exec_cached(s, "ROLLBACK");
}

int store_batch_begin(Store *s) {
        int r;

        if (s->batch_open)
                return 0;
        r = exec_cached(s, "BEGIN IMMEDIATE");
        if (r < 0)
                return r;
        s->batch_open = true;
        return 0;
}

int store_batch_commit(Store *s) {
        int r;

        if (!s->batch_open)
                return 0;
        s->batch_open = false;
        r = exec_cached(s, "COMMIT");
        if (r < 0 && !sqlite3_get_autocommit(s->db))
                (void) exec_cached(s, "ROLLBACK");
        return r;
}

int store_changes(Store *s) {
        return sqlite3_changes(s->db);
}
