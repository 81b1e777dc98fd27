/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store-internal.h"

#define BUSY_TIMEOUT_MS 5000
#define SCHEMA_VERSION 3


/* Schema 1, as the first release created it. A new database is created as schema 1 and then
 * migrated, so new and upgraded databases are the same and every start exercises the
 * migrations.
 * delivery holds one row per (message, recipient key) still owed a client_ack, so delivered
 * rows leave the hot path; message rows stay until the retention job prunes them. */
static const char schema_v1_sql[] =
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

/* Schema 2 (DECISIONS rule 16): client_message_ids are scoped to their sender, so one sender
 * cannot squat another's ids. sender_scope is the sending member's id for a hello connection;
 * a session_hello connection's scope will be its session pubkey, hence the generic column.
 * A v1 dedupe row takes the scope of the message it names; a row whose message is already
 * pruned names no sender and cannot be scoped: it is dropped (its retries, older than the
 * message retention, would be accepted again). */
static const char migrate_v2_sql[] =
        "ALTER TABLE message ADD COLUMN sender_scope TEXT NOT NULL DEFAULT '';"
        "UPDATE message SET sender_scope = sender_member_id;"
        "DROP INDEX message_client_message_id;"
        "CREATE UNIQUE INDEX message_client_message_id"
        "  ON message(mesh_id, sender_scope, client_message_id) WHERE client_message_id IS NOT NULL;"
        "CREATE TABLE client_message_dedupe_v2 ("
        "  mesh_id TEXT NOT NULL, sender_scope TEXT NOT NULL, client_message_id TEXT NOT NULL,"
        "  broker_message_id TEXT NOT NULL,"
        "  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),"
        "  destination_kind TEXT NOT NULL CHECK (destination_kind IN ('topic','dm','queue')),"
        "  destination_ref TEXT NOT NULL, first_seen_at INTEGER NOT NULL, expires_at INTEGER,"
        "  history_available INTEGER NOT NULL DEFAULT 1,"
        "  PRIMARY KEY (mesh_id, sender_scope, client_message_id)) WITHOUT ROWID;"
        "INSERT INTO client_message_dedupe_v2 (mesh_id, sender_scope, client_message_id, broker_message_id,"
        "  request_fingerprint, destination_kind, destination_ref, first_seen_at, expires_at, history_available)"
        " SELECT d.mesh_id, m.sender_scope, d.client_message_id, d.broker_message_id, d.request_fingerprint,"
        "  d.destination_kind, d.destination_ref, d.first_seen_at, d.expires_at, d.history_available"
        " FROM client_message_dedupe d JOIN message m ON m.id = d.broker_message_id;"
        "DROP TABLE client_message_dedupe;"
        "ALTER TABLE client_message_dedupe_v2 RENAME TO client_message_dedupe;"
        "CREATE INDEX client_message_dedupe_expires"
        "  ON client_message_dedupe(expires_at) WHERE expires_at IS NOT NULL;"
        "CREATE INDEX client_message_dedupe_broker_id ON client_message_dedupe(broker_message_id);";

/* Schema 3 (issue 13): when a message's last delivery row went (message_status), topic
 * descriptions (topic_create), the mesh's shared key/value state (set_state), and the keys
 * that have acknowledged a push before (so their next connection is ack-aware at once).
 * Existing rows are kept; delivered_at of earlier messages stays unknown (NULL). */
static const char migrate_v3_sql[] =
        "ALTER TABLE message ADD COLUMN delivered_at INTEGER;"
        "ALTER TABLE topic ADD COLUMN description TEXT;"
        "CREATE TABLE mesh_state ("
        "  mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE, key TEXT NOT NULL,"
        "  value TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at INTEGER NOT NULL,"
        "  PRIMARY KEY (mesh_id, key)) WITHOUT ROWID;"
        "CREATE TABLE ack_seen ("
        "  mesh_id TEXT NOT NULL, pubkey TEXT NOT NULL, first_ack_at INTEGER NOT NULL,"
        "  PRIMARY KEY (mesh_id, pubkey)) WITHOUT ROWID;";

static const struct {
        const char *sql;
        const char *what;
} migrations[SCHEMA_VERSION] = {
        { schema_v1_sql,  "create schema 1" },
        { migrate_v2_sql, "scope the dedupe to the sender" },
        { migrate_v3_sql, "delivery times, topic descriptions, mesh state, ack history" },
};

static int lite_errno(int rc) {
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

static int lite_exec(Store *s, const char *sql) {
        char *err = NULL;
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);

        if (rc != SQLITE_OK) {
                log_error("SQLite: %s", err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return lite_errno(rc);
        }
        return 0;
}

static int count_rows(Store *s, const char *sql, int64_t *ret) {
        sqlite3_stmt *st;
        int rc;

        /* Not cached: runs once, on a table the migration then drops. */
        rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK)
                return lite_errno(rc);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                *ret = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return rc == SQLITE_ROW ? 0 : lite_errno(rc ? rc : SQLITE_ERROR);
}

/* The steps from version up to SCHEMA_VERSION and the new version number, inside the caller's
 * transaction. */
static int lite_migrate_steps(Store *s, int version, int64_t *unscoped) {
        _cleanup_free_ char *set_version = NULL;
        int r;

        for (int v = version; v < SCHEMA_VERSION; v++) {
                if (v == 1) {
                        r = count_rows(s, "SELECT COUNT(*) FROM client_message_dedupe d WHERE NOT EXISTS"
                                          " (SELECT 1 FROM message m WHERE m.id = d.broker_message_id)", unscoped);
                        if (r < 0)
                                return log_error_errno(r, "Schema step %d (%s) failed: %m", v + 1,
                                                       migrations[v].what);
                }
                r = lite_exec(s, migrations[v].sql);
                if (r < 0)
                        return log_error_errno(r, "Schema step %d (%s) failed: %m", v + 1, migrations[v].what);
        }
        if (asprintf(&set_version, "PRAGMA user_version = %d", SCHEMA_VERSION) < 0)
                return -ENOMEM;
        return lite_exec(s, set_version);
}

/* Every step from the database's version up to SCHEMA_VERSION, in one transaction: a crash
 * or an error leaves the old schema and its rows untouched. */
static int lite_migrate(Store *s) {
        int64_t unscoped = 0;
        StoreStmt *st;
        int version = 0, r;

        st = store_stmt(s, "PRAGMA user_version");
        if (!st)
                return -EIO;
        if (store_step(st) == STORE_ROW)
                version = store_col_int(st, 0);
        store_reset(st);
        if (version > SCHEMA_VERSION)
                return log_error_errno(-EPROTO, "Database schema %d is newer than this broker (%d).",
                                       version, SCHEMA_VERSION);
        if (version == SCHEMA_VERSION)
                return 0;
        if (version < 0)
                return log_error_errno(-EBADMSG, "Database schema version %d is not valid.", version);

        r = store_begin(s);
        if (r < 0)
                return r;
        r = lite_migrate_steps(s, version, &unscoped);
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        r = store_commit(s);
        if (r < 0)
                return r;
        if (version > 0)
                log_info("Database schema migrated from %d to %d.", version, SCHEMA_VERSION);
        if (unscoped > 0)
                log_notice("%" PRId64 " dedupe rows named messages already pruned and had no sender to scope "
                           "them to; they were dropped.", unscoped);
        return 0;
}

static int lite_open(Store *s, const char *path) {
        int rc, r;

        rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return log_error_errno(lite_errno(rc), "Cannot open database %s: %s", path,
                                       s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
        sqlite3_extended_result_codes(s->db, 1);

        /* NORMAL in WAL mode loses at most the last commits on power loss, never consistency;
         * clients retry unacknowledged sends and the dedupe table absorbs the retries. */
        r = lite_exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                         "PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;");
        if (r < 0)
                return log_error_errno(r, "Cannot configure database %s: %m", path);
        r = lite_migrate(s);
        if (r < 0)
                return log_error_errno(r, "Cannot create the schema in %s: %m", path);
        return 0;
}

bool store_is_postgresql(const char *db) {
        return db && (strneq(db, "postgresql://", strlen("postgresql://")) ||
                      strneq(db, "postgres://", strlen("postgres://")));
}

int store_open(const char *db, Store **ret) {
        _cleanup_(store_freep) Store *s = NULL;
        int r;

        assert(db);
        assert(ret);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if (store_is_postgresql(db)) {
                s->engine = STORE_POSTGRESQL;
                r = pg_open(s, db);
        } else {
                s->engine = STORE_SQLITE;
                s->name = strdup(db);
                if (!s->name)
                        return -ENOMEM;
                r = lite_open(s, db);
        }
        if (r < 0)
                return r;

        *ret = TAKE_PTR(s);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_cache; i++) {
                if (s->engine == STORE_SQLITE)
                        sqlite3_finalize(s->cache[i]->lite);
                else
                        pg_stmt_free(s->cache[i]);
                free(s->cache[i]);
        }
        if (s->engine == STORE_SQLITE)
                sqlite3_close(s->db);
        else {
                pg_listen_close(s);
                pg_close(s);
        }
        free(s->name);
        free(s);
        return NULL;
}

StoreEngine store_engine(const Store *s) {
        return s->engine;
}

const char *store_name(const Store *s) {
        return s->name;
}

bool store_connected(Store *s) {
        return s->engine == STORE_SQLITE || pg_connected(s);
}

const char *store_errmsg(Store *s) {
        return s->engine == STORE_SQLITE ? sqlite3_errmsg(s->db) : pg_errmsg(s);
}

StoreStmt *store_stmt(Store *s, const char *sql) {
        _cleanup_free_ StoreStmt *st = NULL;
        int r;

        for (size_t i = 0; i < s->n_cache; i++)
                if (s->cache[i]->sql == sql) {
                        store_reset(s->cache[i]);
                        if (s->engine == STORE_SQLITE)
                                sqlite3_clear_bindings(s->cache[i]->lite);
                        else
                                pg_stmt_clear(s->cache[i]);
                        return s->cache[i];
                }

        st = calloc(1, sizeof *st);
        if (!st)
                return NULL;
        st->store = s;
        st->sql = sql;
        if (s->engine == STORE_SQLITE) {
                int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->lite, NULL);
                if (rc != SQLITE_OK) {
                        log_error("SQLite prepare failed: %s (%s)", sqlite3_errmsg(s->db), sql);
                        return NULL;
                }
        } else {
                r = pg_prepare(s, st);
                if (r < 0)
                        return NULL;
        }
        if (s->n_cache >= STMT_CACHE_MAX) {
                /* Not reached with the broker's fixed statement set; stay correct if it is. */
                if (s->engine == STORE_SQLITE)
                        sqlite3_finalize(s->cache[0]->lite);
                else
                        pg_stmt_free(s->cache[0]);
                free(s->cache[0]);
                memmove(&s->cache[0], &s->cache[1], sizeof s->cache[0] * (STMT_CACHE_MAX - 1));
                s->n_cache--;
        }
        s->cache[s->n_cache++] = st;
        return TAKE_PTR(st);
}

void store_bind_text(StoreStmt *st, int i, const char *v) {
        if (st->store->engine == STORE_SQLITE)
                sqlite3_bind_text(st->lite, i, v, -1, SQLITE_STATIC);
        else
                pg_bind(st, i, v, 0, false);
}

void store_bind_int64(StoreStmt *st, int i, int64_t v) {
        if (st->store->engine == STORE_SQLITE)
                sqlite3_bind_int64(st->lite, i, v);
        else
                pg_bind_int64(st, i, v);
}

void store_bind_blob(StoreStmt *st, int i, const void *p, size_t n) {
        if (st->store->engine == STORE_SQLITE)
                sqlite3_bind_blob(st->lite, i, p, (int) n, SQLITE_STATIC);
        else
                pg_bind(st, i, p, n, true);
}

void store_bind_null(StoreStmt *st, int i) {
        if (st->store->engine == STORE_SQLITE)
                sqlite3_bind_null(st->lite, i);
        else
                pg_bind(st, i, NULL, 0, false);
}

int store_step(StoreStmt *st) {
        if (st->store->engine != STORE_SQLITE)
                return pg_step(st);

        int rc = sqlite3_step(st->lite);
        if (rc == SQLITE_ROW)
                return STORE_ROW;
        if (rc == SQLITE_DONE)
                return STORE_DONE;
        return lite_errno(rc) < 0 ? lite_errno(rc) : -EIO;
}

bool store_col_is_null(StoreStmt *st, int i) {
        if (st->store->engine != STORE_SQLITE)
                return pg_col_text(st, i) == NULL;
        return sqlite3_column_type(st->lite, i) == SQLITE_NULL;
}

const char *store_col_text(StoreStmt *st, int i) {
        if (st->store->engine != STORE_SQLITE)
                return pg_col_text(st, i);
        return (const char *) sqlite3_column_text(st->lite, i);
}

int64_t store_col_int64(StoreStmt *st, int i) {
        if (st->store->engine != STORE_SQLITE)
                return pg_col_int64(st, i);
        return sqlite3_column_int64(st->lite, i);
}

int store_col_int(StoreStmt *st, int i) {
        return (int) store_col_int64(st, i);
}

const void *store_col_blob(StoreStmt *st, int i, size_t *ret_size) {
        if (st->store->engine != STORE_SQLITE)
                return pg_col_blob(st, i, ret_size);
        const void *p = sqlite3_column_blob(st->lite, i);
        *ret_size = (size_t) sqlite3_column_bytes(st->lite, i);
        return p;
}

void store_reset(StoreStmt *st) {
        if (st->store->engine == STORE_SQLITE)
                sqlite3_reset(st->lite);
        else
                pg_reset(st);
}

int store_step_done(Store *s, StoreStmt *st) {
        int r = store_step(st);

        if (r < 0)
                log_debug("Database step failed: %s", store_errmsg(s));
        store_reset(st);
        return r < 0 ? r : 0;
}

int store_exec(Store *s, const char *sql) {
        return s->engine == STORE_SQLITE ? lite_exec(s, sql) : pg_exec(s, sql);
}

static int exec_cached(Store *s, const char *sql) {
        StoreStmt *st = store_stmt(s, sql);
        return st ? store_step_done(s, st) : -EIO;
}

static bool in_transaction(Store *s) {
        return s->engine == STORE_SQLITE ? !sqlite3_get_autocommit(s->db) : pg_in_transaction(s);
}

/* IMMEDIATE takes SQLite's write lock at once, so two writers never deadlock upgrading;
 * PostgreSQL locks rows, not the database. */
static const char *begin_sql(Store *s) {
        return s->engine == STORE_SQLITE ? "BEGIN IMMEDIATE" : "BEGIN";
}

int store_begin(Store *s) {
        return exec_cached(s, s->batch_open ? "SAVEPOINT tx" : begin_sql(s));
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
        } else if (in_transaction(s))
                (void) exec_cached(s, "ROLLBACK");
}

int store_batch_begin(Store *s) {
        int r;

        if (s->batch_open)
                return 0;
        r = exec_cached(s, begin_sql(s));
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
        if (r < 0 && in_transaction(s))
                (void) exec_cached(s, "ROLLBACK");
        return r;
}

/* After SQLite rolled the transaction back on its own, statements autocommit one by one. */
bool store_batch_is_open(Store *s) {
        return s->batch_open && in_transaction(s);
}

int store_changes(Store *s) {
        return s->engine == STORE_SQLITE ? sqlite3_changes(s->db) : pg_changes(s);
}


int store_listen_open(Store *s, const char *const *channels) {
        assert(s->engine == STORE_POSTGRESQL);
        return pg_listen_open(s, channels);
}

int store_listen_poll(Store *s, int *ret_fd) {
        assert(s->engine == STORE_POSTGRESQL);
        return pg_listen_poll(s, ret_fd);
}

int store_listen_read(Store *s, StoreNotifyCallback cb, void *userdata) {
        assert(s->engine == STORE_POSTGRESQL);
        return pg_listen_read(s, cb, userdata);
}

void store_listen_close(Store *s) {
        if (s->engine == STORE_POSTGRESQL)
                pg_listen_close(s);
}

bool store_threads_running(void) {
        return pg_threads_running();
}

int store_pool_open(Store *s, unsigned n) {
        assert(s->engine == STORE_POSTGRESQL);
        assert(n <= STORE_POOL_MAX);
        return pg_pool_open(s, n);
}

unsigned store_lanes(Store *s) {
        return s->engine == STORE_POSTGRESQL ? pg_lanes(s) : 0;
}

int store_lane_fd(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_lane_fd(s, lane);
}

int store_async(Store *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
                StoreAsyncCallback cb, void *userdata) {
        assert(sql);
        assert(lane < store_lanes(s));
        assert(n_params <= STORE_ASYNC_PARAMS_MAX);
        return pg_async(s, lane, sql, n_params, values, cb, userdata);
}

int store_async_process(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_async_process(s, lane);
}

int store_async_flush(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_async_flush(s, lane);
}

int store_async_sync(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_async_sync(s, lane);
}

void store_async_run_deferred(Store *s) {
        assert(store_lanes(s) > 0);
        pg_async_run_deferred(s);
}

void store_async_set_defer_hook(Store *s, void (*hook)(void *userdata), void *userdata) {
        assert(store_lanes(s) > 0);
        pg_async_set_defer_hook(s, hook, userdata);
}

bool store_async_idle(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_async_idle(s, lane);
}

unsigned store_async_queued(Store *s, unsigned lane) {
        assert(lane < store_lanes(s));
        return pg_async_queued(s, lane);
}

int store_result_rows(const StoreResult *res) {
        return res ? pg_result_rows(res) : 0;
}

const char *store_result_text(const StoreResult *res, int row, int col) {
        return res ? pg_result_text(res, row, col) : NULL;
}

int64_t store_result_int64(const StoreResult *res, int row, int col) {
        const char *v = store_result_text(res, row, col);

        if (!v)
                return 0;
        if (streq(v, "t"))
                return 1;
        if (streq(v, "f"))
                return 0;
        return strtoll(v, NULL, 10);
}
