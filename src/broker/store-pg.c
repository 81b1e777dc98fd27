/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The PostgreSQL engine behind store.h (libpq). The broker's statements are written in the
 * SQL both engines accept; this file maps the few spellings that differ (?N parameters,
 * temp.name, SQLite's table options) when it prepares them, and owns the PostgreSQL schema
 * and its migrations.
 */
#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define SCHEMA_VERSION 3
/* The advisory lock the nodes take to migrate one at a time: "cmbrok" in ASCII. */
#define SCHEMA_LOCK_KEY "109321454251883"

struct StorePg {
        PGconn *conn;
        char *uri;
        PGconn *listen;                  /* LISTEN only, nonblocking; NULL when down */
        char *last_error;
        unsigned next_stmt;
        int changes;
};

struct StorePgStmt {
        char name[16];
        int n_declared;                  /* parameters the statement has; unbound ones are NULL */
        int n_params;
        const char *values[STORE_PARAMS_MAX];
        int lengths[STORE_PARAMS_MAX];
        int formats[STORE_PARAMS_MAX];
        char numbers[STORE_PARAMS_MAX][24];
        PGresult *res;
        int row, n_rows;
        bool executed;
        uint8_t *blob;                   /* the last bytea column read, decoded */
};

/* Schema 3 in PostgreSQL's types: the tables and rules of the SQLite schema after its
 * migrations (see store.c), so both engines hold the same rows. PostgreSQL databases start
 * at 3; later versions add steps here and in store.c alike.
 * rate_budget and rate_paid are shared by every node on the database, so a member's limit
 * is one limit; UNLOGGED, as a crash only forgets a window's counts. broker_node and
 * presence are the nodes and their live connections (see nodes.c), UNLOGGED likewise. */
static const char schema_v3_sql[] =
        "CREATE TABLE mesh ("
        "  id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL);"
        "CREATE TABLE member ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,"
        "  peer_pubkey TEXT NOT NULL, display_name TEXT NOT NULL,"
        "  role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin','member')),"
        "  created_at BIGINT NOT NULL, revoked_at BIGINT, UNIQUE (mesh_id, peer_pubkey));"
        "CREATE TABLE topic ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL, created_at BIGINT NOT NULL, description TEXT, UNIQUE (mesh_id, name));"
        "CREATE TABLE session ("
        "  mesh_id TEXT NOT NULL, session_pubkey TEXT NOT NULL,"
        "  member_id TEXT NOT NULL REFERENCES member(id) ON DELETE CASCADE,"
        "  last_seen_at BIGINT NOT NULL, PRIMARY KEY (mesh_id, session_pubkey));"
        "CREATE TABLE message ("
        "  id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, sender_member_id TEXT NOT NULL,"
        "  sender_pubkey TEXT NOT NULL, sender_member_pubkey TEXT NOT NULL, sender_name TEXT NOT NULL,"
        "  target_spec TEXT NOT NULL, priority TEXT NOT NULL, nonce TEXT NOT NULL, ciphertext TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL, client_message_id TEXT, request_fingerprint BYTEA,"
        "  reply_to_id TEXT, topic_id TEXT, sender_scope TEXT NOT NULL DEFAULT '', delivered_at BIGINT);"
        "CREATE UNIQUE INDEX message_client_message_id"
        "  ON message(mesh_id, sender_scope, client_message_id) WHERE client_message_id IS NOT NULL;"
        "CREATE INDEX message_created_at ON message(created_at);"
        "CREATE TABLE client_message_dedupe ("
        "  mesh_id TEXT NOT NULL, sender_scope TEXT NOT NULL, client_message_id TEXT NOT NULL,"
        "  broker_message_id TEXT NOT NULL,"
        "  request_fingerprint BYTEA NOT NULL CHECK (octet_length(request_fingerprint) = 32),"
        "  destination_kind TEXT NOT NULL CHECK (destination_kind IN ('topic','dm','queue')),"
        "  destination_ref TEXT NOT NULL, first_seen_at BIGINT NOT NULL, expires_at BIGINT,"
        "  history_available INTEGER NOT NULL DEFAULT 1,"
        "  PRIMARY KEY (mesh_id, sender_scope, client_message_id));"
        "CREATE INDEX client_message_dedupe_expires"
        "  ON client_message_dedupe(expires_at) WHERE expires_at IS NOT NULL;"
        "CREATE INDEX client_message_dedupe_broker_id ON client_message_dedupe(broker_message_id);"
        "CREATE TABLE topic_message ("
        "  message_id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, topic_id TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL);"
        "CREATE INDEX topic_message_topic ON topic_message(topic_id, created_at);"
        "CREATE TABLE delivery ("
        "  message_id TEXT NOT NULL, recipient_pubkey TEXT NOT NULL, mesh_id TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL, PRIMARY KEY (message_id, recipient_pubkey));"
        "CREATE INDEX delivery_recipient ON delivery(mesh_id, recipient_pubkey, created_at);"
        "CREATE TABLE mention_index ("
        "  broker_message_id TEXT NOT NULL, mesh_id TEXT NOT NULL, mentioned TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL, PRIMARY KEY (broker_message_id, mentioned));"
        "CREATE INDEX mention_index_lookup ON mention_index(mesh_id, mentioned, created_at);"
        "CREATE TABLE mesh_state ("
        "  mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE, key TEXT NOT NULL,"
        "  value TEXT NOT NULL, updated_by TEXT NOT NULL, updated_at BIGINT NOT NULL,"
        "  PRIMARY KEY (mesh_id, key));"
        "CREATE TABLE ack_seen ("
        "  mesh_id TEXT NOT NULL, pubkey TEXT NOT NULL, first_ack_at BIGINT NOT NULL,"
        "  PRIMARY KEY (mesh_id, pubkey));"
        "CREATE UNLOGGED TABLE rate_budget ("
        "  mesh_id TEXT NOT NULL, member_id TEXT NOT NULL, bucket BIGINT NOT NULL,"
        "  used BIGINT NOT NULL, PRIMARY KEY (mesh_id, member_id, bucket));"
        "CREATE UNLOGGED TABLE rate_paid ("
        "  mesh_id TEXT NOT NULL, member_id TEXT NOT NULL, client_message_id TEXT NOT NULL,"
        "  bucket BIGINT NOT NULL, PRIMARY KEY (mesh_id, member_id, client_message_id, bucket));";

/* Part of schema 3, apart only for the compiler's string length. */
static const char schema_v3_nodes_sql[] =
        "CREATE UNLOGGED TABLE broker_node (id TEXT PRIMARY KEY, seen_at BIGINT NOT NULL);"
        "CREATE UNLOGGED TABLE presence ("
        "  node_id TEXT NOT NULL, serial BIGINT NOT NULL, mesh_id TEXT NOT NULL, member_pubkey TEXT NOT NULL,"
        "  routing_key TEXT NOT NULL, name TEXT NOT NULL, visible INTEGER NOT NULL, groups TEXT,"
        "  connected_at BIGINT NOT NULL, peer TEXT NOT NULL, PRIMARY KEY (node_id, serial));"
        "CREATE INDEX presence_mesh ON presence(mesh_id, connected_at);";

static const struct {
        int from, to;
        const char *sql, *more;
        const char *what;
} migrations[] = {
        { 0, 3, schema_v3_sql, schema_v3_nodes_sql, "create schema 3" },
};

/* The tables every node shares although SQLite keeps them per process (see schema). */
static const char *const shared_tables[] = { "rate_budget", "rate_paid" };

/* The URI, with defaults it may override: a bounded connect (the LISTEN connection is
 * reopened from the event loop) and TCP keepalives, so a dead server or a dropped route is
 * noticed rather than waited on. */
static PGconn *connect_uri(const char *uri, const char *application_name) {
        const char *const keys[] = { "connect_timeout", "keepalives", "keepalives_idle", "application_name",
                                     "dbname", NULL };
        const char *const values[] = { "5", "1", "30", application_name, uri, NULL };

        /* expand_dbname: the URI in dbname is parsed, and its own settings win over those
         * before it. */
        return PQconnectdbParams(keys, values, 1);
}

static void set_error(StorePg *pg, const char *message) {
        char *copy = strdup(message ? message : "unknown error");
        size_t n;

        if (!copy)
                return;
        /* libpq ends its messages with a newline; the log adds its own. */
        n = strlen(copy);
        while (n > 0 && copy[n - 1] == '\n')
                copy[--n] = '\0';
        free(pg->last_error);
        pg->last_error = copy;
}

static int result_errno(const PGresult *res) {
        const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

        if (!state)
                return -EIO;
        if (strneq(state, "23", 2))               /* integrity constraint violation */
                return -EEXIST;
        if (streq(state, "40001") || streq(state, "40P01") || streq(state, "55P03"))
                return -EBUSY;                     /* serialization, deadlock, lock not available */
        if (strneq(state, "08", 2) || strneq(state, "57P", 3))
                return -ECONNRESET;                /* connection or server shut down */
        if (strneq(state, "53", 2))
                return -ENOMEM;                    /* insufficient resources */
        if (strneq(state, "42501", 5))
                return -EACCES;
        return -EIO;
}

/* The statement text in PostgreSQL's spelling: ?N becomes $N, temp.x pg_temp.x (or x for a
 * shared table and for an index name, which takes its table's schema), and SQLite's table
 * options and type names go. String literals are copied unchanged. */
static char *translate(const char *sql) {
        size_t n = strlen(sql);
        char *out = malloc(2 * n + 1), *o = out;
        bool in_string = false;

        if (!out)
                return NULL;
        for (const char *p = sql; *p;) {
                if (*p == '\'') {
                        in_string = !in_string;
                        *o++ = *p++;
                        continue;
                }
                if (in_string) {
                        *o++ = *p++;
                        continue;
                }
                if (*p == '?' && isdigit((unsigned char) p[1])) {
                        *o++ = '$';
                        p++;
                        continue;
                }
                bool word_start = p == sql || !(isalnum((unsigned char) p[-1]) || p[-1] == '_' || p[-1] == '.');
                if (word_start && strneq(p, "temp.", 5)) {
                        bool index_name = o - out >= 13 && strneq(o - 13, "CREATE INDEX ", 13);
                        bool shared = false;
                        for (size_t i = 0; i < ELEMENTSOF(shared_tables); i++) {
                                size_t l = strlen(shared_tables[i]);
                                if (strneq(p + 5, shared_tables[i], l) && !isalnum((unsigned char) p[5 + l]) &&
                                    p[5 + l] != '_')
                                        shared = true;
                        }
                        if (!index_name && !shared)
                                o = stpcpy(o, "pg_temp.");
                        p += 5;
                        continue;
                }
                if (word_start && strneq(p, " WITHOUT ROWID", 14)) {
                        p += 14;
                        continue;
                }
                if (word_start && strneq(p, "BLOB", 4) && !isalnum((unsigned char) p[4])) {
                        o = stpcpy(o, "BYTEA");
                        p += 4;
                        continue;
                }
                if (word_start && strneq(p, "INTEGER", 7) && !isalnum((unsigned char) p[7])) {
                        o = stpcpy(o, "BIGINT");
                        p += 7;
                        continue;
                }
                *o++ = *p++;
        }
        *o = '\0';
        return out;
}

static int exec_plain(Store *s, const char *sql, bool log_failure) {
        _cleanup_free_ char *text = translate(sql);
        PGresult *res;
        int r = 0;

        if (!text)
                return -ENOMEM;
        res = PQexec(s->pg->conn, text);
        if (!res || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)) {
                set_error(s->pg, res ? PQresultErrorMessage(res) : PQerrorMessage(s->pg->conn));
                r = result_errno(res);
                if (log_failure)
                        log_error("PostgreSQL: %s", s->pg->last_error);
        } else
                s->pg->changes = atoi(PQcmdTuples(res));
        PQclear(res);
        return r;
}

int pg_exec(Store *s, const char *sql) {
        return exec_plain(s, sql, true);
}

/* The version stored in broker_schema, 0 for a database the broker has not used yet. */
static int read_version(Store *s, int *ret) {
        PGresult *res = PQexec(s->pg->conn, "SELECT to_regclass('broker_schema') IS NOT NULL");
        bool exists;
        int r = 0;

        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
                goto fail;
        exists = streq(PQgetvalue(res, 0, 0), "t");
        PQclear(res);
        *ret = 0;
        if (!exists)
                return 0;
        res = PQexec(s->pg->conn, "SELECT version FROM broker_schema");
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
                goto fail;
        if (PQntuples(res) > 0)
                *ret = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        return 0;
fail:
        set_error(s->pg, res ? PQresultErrorMessage(res) : PQerrorMessage(s->pg->conn));
        r = result_errno(res);
        PQclear(res);
        return r;
}

/* Under an advisory lock, so nodes starting together migrate once; in one transaction, so a
 * failure leaves the old schema. */
static int migrate(Store *s) {
        int version = 0, r;

        r = exec_plain(s, "BEGIN", true);
        if (r < 0)
                return r;
        r = exec_plain(s, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", true);
        if (r >= 0)
                r = read_version(s, &version);
        if (r < 0) {
                (void) exec_plain(s, "ROLLBACK", false);
                return log_error_errno(r, "Cannot read the schema version: %s", s->pg->last_error);
        }
        if (version > SCHEMA_VERSION) {
                (void) exec_plain(s, "ROLLBACK", false);
                return log_error_errno(-EPROTO, "Database schema %d is newer than this broker (%d).",
                                       version, SCHEMA_VERSION);
        }
        if (version == SCHEMA_VERSION)
                return exec_plain(s, "COMMIT", true);

        for (size_t i = 0; i < ELEMENTSOF(migrations) && r >= 0; i++) {
                if (migrations[i].from != version)
                        continue;
                r = exec_plain(s, migrations[i].sql, true);
                if (r >= 0 && migrations[i].more)
                        r = exec_plain(s, migrations[i].more, true);
                if (r < 0)
                        log_error_errno(r, "Schema step to %d (%s) failed.", migrations[i].to, migrations[i].what);
                else
                        version = migrations[i].to;
        }
        if (r >= 0 && version != SCHEMA_VERSION)
                r = log_error_errno(-EPROTO, "No migration leads from schema %d to %d.", version, SCHEMA_VERSION);
        if (r >= 0)
                r = exec_plain(s, "CREATE TABLE IF NOT EXISTS broker_schema (version INTEGER NOT NULL);"
                                  "DELETE FROM broker_schema", true);
        if (r >= 0) {
                char set_version[64];
                snprintf(set_version, sizeof set_version, "INSERT INTO broker_schema VALUES (%d)", SCHEMA_VERSION);
                r = exec_plain(s, set_version, true);
        }
        if (r >= 0)
                r = exec_plain(s, "COMMIT", true);
        if (r < 0) {
                (void) exec_plain(s, "ROLLBACK", false);
                return r;
        }
        log_info("PostgreSQL schema created (version %d).", SCHEMA_VERSION);
        return 0;
}

int pg_open(Store *s, const char *uri) {
        int r;

        s->pg = calloc(1, sizeof *s->pg);
        if (!s->pg)
                return -ENOMEM;
        s->pg->uri = strdup(uri);
        if (!s->pg->uri)
                return -ENOMEM;
        s->pg->conn = connect_uri(uri, "claudemesh-broker");
        if (!s->pg->conn)
                return -ENOMEM;
        if (PQstatus(s->pg->conn) != CONNECTION_OK) {
                set_error(s->pg, PQerrorMessage(s->pg->conn));
                /* The URI may hold a password: name only the failure. */
                return log_error_errno(-ECONNREFUSED, "Cannot connect to PostgreSQL: %s", s->pg->last_error);
        }
        if (asprintf(&s->name, "postgresql://%s@%s:%s/%s", PQuser(s->pg->conn), PQhost(s->pg->conn),
                     PQport(s->pg->conn), PQdb(s->pg->conn)) < 0) {
                s->name = NULL;
                return -ENOMEM;
        }
        /* Notices (IF NOT EXISTS, implicit indexes) are not the broker's news. */
        r = exec_plain(s, "SET client_min_messages = warning", true);
        if (r < 0)
                return r;
        r = migrate(s);
        if (r < 0)
                return log_error_errno(r, "Cannot create the schema in PostgreSQL.");
        return 0;
}

void pg_close(Store *s) {
        if (!s->pg)
                return;
        if (s->pg->conn)
                PQfinish(s->pg->conn);
        free(s->pg->last_error);
        free(s->pg->uri);
        free(s->pg);
        s->pg = NULL;
}

const char *pg_errmsg(Store *s) {
        return s->pg->last_error ? s->pg->last_error : PQerrorMessage(s->pg->conn);
}

int pg_prepare(Store *s, StoreStmt *st) {
        _cleanup_free_ char *text = translate(st->sql);
        StorePgStmt *p;
        PGresult *res;

        if (!text)
                return -ENOMEM;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        snprintf(p->name, sizeof p->name, "s%u", s->pg->next_stmt++);
        res = PQprepare(s->pg->conn, p->name, text, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                set_error(s->pg, PQresultErrorMessage(res));
                log_error("PostgreSQL prepare failed: %s (%s)", s->pg->last_error, text);
                int r = result_errno(res);
                PQclear(res);
                free(p);
                return r;
        }
        PQclear(res);
        res = PQdescribePrepared(s->pg->conn, p->name);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                set_error(s->pg, PQresultErrorMessage(res));
                log_error("PostgreSQL describe failed: %s (%s)", s->pg->last_error, text);
                int r = result_errno(res);
                PQclear(res);
                free(p);
                return r;
        }
        p->n_declared = PQnparams(res);
        PQclear(res);
        if (p->n_declared > STORE_PARAMS_MAX) {
                log_error("Statement has %d parameters, more than %d: %s", p->n_declared, STORE_PARAMS_MAX, text);
                free(p);
                return -E2BIG;
        }
        st->pg = p;
        return 0;
}

void pg_reset(StoreStmt *st) {
        StorePgStmt *p = st->pg;

        PQclear(p->res);
        p->res = NULL;
        p->executed = false;
        p->row = p->n_rows = 0;
        PQfreemem(p->blob);
        p->blob = NULL;
}

void pg_stmt_clear(StoreStmt *st) {
        StorePgStmt *p = st->pg;

        pg_reset(st);
        p->n_params = 0;
        memset(p->values, 0, sizeof p->values);
        memset(p->lengths, 0, sizeof p->lengths);
        memset(p->formats, 0, sizeof p->formats);
}

void pg_stmt_free(StoreStmt *st) {
        if (!st->pg)
                return;
        pg_reset(st);
        free(st->pg);
        st->pg = NULL;
}

void pg_bind(StoreStmt *st, int i, const void *v, size_t n, bool binary) {
        StorePgStmt *p = st->pg;

        assert(i >= 1 && i <= STORE_PARAMS_MAX);
        p->values[i - 1] = v;
        p->lengths[i - 1] = binary ? (int) n : 0;
        p->formats[i - 1] = binary;
        if (i > p->n_params)
                p->n_params = i;
}

void pg_bind_int64(StoreStmt *st, int i, int64_t v) {
        StorePgStmt *p = st->pg;

        assert(i >= 1 && i <= STORE_PARAMS_MAX);
        snprintf(p->numbers[i - 1], sizeof p->numbers[i - 1], "%" PRId64, v);
        pg_bind(st, i, p->numbers[i - 1], 0, false);
}

int pg_step(StoreStmt *st) {
        StorePg *pg = st->store->pg;
        StorePgStmt *p = st->pg;

        if (!p->executed) {
                int n = p->n_params > p->n_declared ? p->n_params : p->n_declared;
                p->res = PQexecPrepared(pg->conn, p->name, n, p->values, p->lengths, p->formats, 0);
                p->executed = true;
                switch (PQresultStatus(p->res)) {
                case PGRES_TUPLES_OK:
                        p->n_rows = PQntuples(p->res);
                        p->row = -1;
                        pg->changes = p->n_rows;
                        break;
                case PGRES_COMMAND_OK:
                        /* COMMIT of a transaction an earlier error aborted answers ROLLBACK. */
                        if (streq(st->sql, "COMMIT") && streq(PQcmdStatus(p->res), "ROLLBACK")) {
                                set_error(pg, "the transaction was aborted by an earlier error and rolled back");
                                return -EIO;
                        }
                        pg->changes = atoi(PQcmdTuples(p->res));
                        return STORE_DONE;
                default:
                        set_error(pg, p->res ? PQresultErrorMessage(p->res) : PQerrorMessage(pg->conn));
                        return result_errno(p->res);
                }
        }
        if (p->row + 1 >= p->n_rows) {
                p->row = p->n_rows;
                return STORE_DONE;
        }
        p->row++;
        PQfreemem(p->blob);
        p->blob = NULL;
        return STORE_ROW;
}

const char *pg_col_text(StoreStmt *st, int i) {
        StorePgStmt *p = st->pg;

        if (!p->res || p->row < 0 || p->row >= p->n_rows || i >= PQnfields(p->res) ||
            PQgetisnull(p->res, p->row, i))
                return NULL;
        return PQgetvalue(p->res, p->row, i);
}

int64_t pg_col_int64(StoreStmt *st, int i) {
        const char *v = pg_col_text(st, i);

        if (!v)
                return 0;
        /* A boolean expression comes back as t or f; SQLite's is 1 or 0. */
        if (streq(v, "t"))
                return 1;
        if (streq(v, "f"))
                return 0;
        return strtoll(v, NULL, 10);
}

const void *pg_col_blob(StoreStmt *st, int i, size_t *ret_size) {
        StorePgStmt *p = st->pg;
        const char *v = pg_col_text(st, i);
        size_t n;

        *ret_size = 0;
        if (!v)
                return NULL;
        PQfreemem(p->blob);
        p->blob = PQunescapeBytea((const unsigned char *) v, &n);
        if (!p->blob)
                return NULL;
        *ret_size = n;
        return p->blob;
}

bool pg_in_transaction(Store *s) {
        return PQtransactionStatus(s->pg->conn) != PQTRANS_IDLE;
}

bool pg_connected(Store *s) {
        return PQstatus(s->pg->conn) == CONNECTION_OK;
}

int pg_changes(Store *s) {
        return s->pg->changes;
}

int pg_listen_open(Store *s, const char *const *channels, int *ret_fd) {
        StorePg *pg = s->pg;
        PGresult *res;
        int fd;

        pg_listen_close(s);
        /* A blocking connect (bounded by connect_timeout), at start and when the catch-up finds
         * the listener gone. */
        pg->listen = connect_uri(pg->uri, "claudemesh-broker listen");
        if (!pg->listen || PQstatus(pg->listen) != CONNECTION_OK) {
                set_error(pg, pg->listen ? PQerrorMessage(pg->listen) : "out of memory");
                pg_listen_close(s);
                return log_warning_errno(-ECONNREFUSED, "Cannot open the LISTEN connection: %s", pg->last_error);
        }
        for (const char *const *c = channels; *c; c++) {
                _cleanup_free_ char *sql = NULL;
                char *quoted = PQescapeIdentifier(pg->listen, *c, strlen(*c));

                if (!quoted || asprintf(&sql, "LISTEN %s", quoted) < 0) {
                        PQfreemem(quoted);
                        pg_listen_close(s);
                        return -ENOMEM;
                }
                PQfreemem(quoted);
                res = PQexec(pg->listen, sql);
                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                        set_error(pg, PQresultErrorMessage(res));
                        PQclear(res);
                        pg_listen_close(s);
                        return log_warning_errno(-EIO, "LISTEN failed: %s", pg->last_error);
                }
                PQclear(res);
        }
        if (PQsetnonblocking(pg->listen, 1) < 0) {
                pg_listen_close(s);
                return -EIO;
        }
        fd = fcntl(PQsocket(pg->listen), F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                pg_listen_close(s);
                return -errno;
        }
        *ret_fd = fd;
        return 0;
}

int pg_listen_read(Store *s, StoreNotifyCallback cb, void *userdata) {
        StorePg *pg = s->pg;
        PGnotify *n;

        if (!pg->listen)
                return -ECONNRESET;
        if (!PQconsumeInput(pg->listen) || PQstatus(pg->listen) != CONNECTION_OK) {
                set_error(pg, PQerrorMessage(pg->listen));
                return -ECONNRESET;
        }
        while ((n = PQnotifies(pg->listen))) {
                cb(n->relname, n->extra, userdata);
                PQfreemem(n);
        }
        return 0;
}

void pg_listen_close(Store *s) {
        if (!s->pg || !s->pg->listen)
                return;
        PQfinish(s->pg->listen);
        s->pg->listen = NULL;
}
