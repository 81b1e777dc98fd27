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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define SCHEMA_VERSION 6
/* The advisory lock the nodes take to migrate one at a time: "cmbrok" in ASCII. */
#define SCHEMA_LOCK_KEY "109321454251883"
/* Statements of one lane in one transaction at most; more wait for the next Sync. */
#define LANE_GROUP_MAX 64

typedef enum EntryKind {
        ENTRY_PREPARE,
        ENTRY_QUERY,
        ENTRY_SYNC,
} EntryKind;

/* What a lane's connection owes results for, in the order they come back. */
typedef struct Entry {
        struct Entry *next;
        EntryKind kind;
        bool got;                        /* res holds the statement's result */
        int r;                           /* its outcome, once its results ended */
        PGresult *res;
        StoreAsyncCallback cb;
        void *userdata;
} Entry;

typedef struct Lane {
        PGconn *conn;                    /* lane 0's is StorePg.conn; the others are owned */
        Entry *head, *tail;
        const char *prepared[STMT_CACHE_MAX];   /* SQL (by address) prepared as "a<index>" */
        size_t n_prepared;
        unsigned unsynced;               /* statements sent since the last Sync */
        unsigned n;                      /* entries in head..tail */
        /* Statements whose results are in, their callbacks waiting for the group's Sync: until
         * it, the group is one transaction, which a later failure in it rolls back whole. */
        Entry *ended_head, *ended_tail;
        bool group_failed;
} Lane;

struct StorePg {
        PGconn *conn;
        Lane lanes[1 + STORE_POOL_MAX];
        unsigned n_lanes;                /* 0 until store_pool_open() */
        bool quiescing;                  /* in a blocking call's wait for lane 0 */
        Entry *deferred_head, *deferred_tail;   /* lane 0's completions during it */
        void (*defer_hook)(void *userdata);
        void *defer_userdata;
        char *uri;
        PGconn *listen;                  /* LISTEN only, nonblocking; NULL when down */
        int listen_phase;                /* LISTEN_CONNECTING, _SUBSCRIBING or _OPEN */
        char *listen_sql;                /* the LISTEN commands; set from open to close */
        struct ListenConnect *connecting;   /* the LISTEN connection, being opened by a thread */
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

/* Schema 4 (PostgreSQL only): the hot path as functions, so the event loop sends one
 * statement per accept and per client_ack, without waiting (see pool.h). cm_accept is the
 * B0 lookup, the rate limiter (cm_rate), the recipient or topic check, the dedupe claim, the
 * message with its topic, delivery and mention rows and the other nodes' wake-ups, in the
 * one transaction of its statement: all of an accept or none of it. Its outcome: 0 new,
 * 1 the id names an earlier message (its row returned), 2 no such recipient, 3 no such
 * topic, 4 rate limited (retry after o_retry_after ms), 5 the id names a message whose dedupe
 * row has expired (kept longer than the dedupe: SQLite's accept fails on its unique index
 * then; here no statement may fail, or its group would fail with it). Each statement of the
 * function sees what was committed when it began: the same id's accept committed by another
 * node between the B0 lookup and the message check shows the message but not, to the first
 * lookup, its dedupe row, so that is looked up again before the outcome is 5 (schema 6 puts
 * this body in place of schema 4's). */
static const char schema_v4_sql[] =
        "CREATE OR REPLACE FUNCTION cm_accept(p_id TEXT, p_mesh TEXT, p_member TEXT, p_sender TEXT, p_sender_member TEXT,\n"
        "  p_name TEXT, p_target TEXT, p_priority TEXT, p_nonce TEXT, p_ciphertext TEXT, p_now BIGINT,\n"
        "  p_cmid TEXT, p_client_fp BYTEA, p_reply_to TEXT, p_topic TEXT, p_scope TEXT, p_fp BYTEA,\n"
        "  p_kind TEXT, p_ref TEXT, p_expires BIGINT, p_limit BIGINT, p_window BIGINT, p_direct TEXT,\n"
        "  p_recipients TEXT[], p_mentions TEXT[], p_wakes TEXT[],\n"
        "  OUT o_outcome INTEGER, OUT o_message_id TEXT, OUT o_fingerprint BYTEA,\n"
        "  OUT o_history_available INTEGER, OUT o_first_seen_at BIGINT, OUT o_topic_name TEXT,\n"
        "  OUT o_retry_after BIGINT)\n"
        " LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  o_outcome := 0;\n"
        "  IF p_cmid IS NOT NULL THEN\n"
        "    SELECT d.broker_message_id, d.request_fingerprint, d.history_available, d.first_seen_at\n"
        "      INTO o_message_id, o_fingerprint, o_history_available, o_first_seen_at\n"
        "      FROM client_message_dedupe d\n"
        "     WHERE d.mesh_id = p_mesh AND d.sender_scope = p_scope AND d.client_message_id = p_cmid;\n"
        "    IF FOUND THEN o_outcome := 1; RETURN; END IF;\n"
        "  END IF;\n"
        "  IF p_limit > 0 THEN\n"
        "    o_retry_after := cm_rate(p_mesh, p_member, p_cmid, p_limit, p_window, p_now);\n"
        "    IF o_retry_after > 0 THEN o_outcome := 4; RETURN; END IF;\n"
        "  END IF;\n"
        "  IF p_direct IS NOT NULL AND NOT EXISTS (\n"
        "      SELECT 1 FROM member m WHERE m.mesh_id = p_mesh AND m.peer_pubkey = p_direct AND m.revoked_at IS NULL\n"
        "      UNION ALL SELECT 1 FROM session se JOIN member m ON m.id = se.member_id\n"
        "       WHERE se.mesh_id = p_mesh AND se.session_pubkey = p_direct AND m.revoked_at IS NULL) THEN\n"
        "    o_outcome := 2; RETURN;\n"
        "  END IF;\n"
        "  IF p_topic IS NOT NULL THEN\n"
        "    SELECT t.name INTO o_topic_name FROM topic t WHERE t.mesh_id = p_mesh AND t.id = p_topic;\n"
        "    IF NOT FOUND THEN o_outcome := 3; RETURN; END IF;\n"
        "  END IF;\n"
        "  IF p_cmid IS NOT NULL AND EXISTS (SELECT 1 FROM message m WHERE m.mesh_id = p_mesh\n"
        "      AND m.sender_scope = p_scope AND m.client_message_id = p_cmid) THEN\n"
        "    SELECT d.broker_message_id, d.request_fingerprint, d.history_available, d.first_seen_at\n"
        "      INTO o_message_id, o_fingerprint, o_history_available, o_first_seen_at\n"
        "      FROM client_message_dedupe d\n"
        "     WHERE d.mesh_id = p_mesh AND d.sender_scope = p_scope AND d.client_message_id = p_cmid;\n"
        "    IF FOUND THEN o_outcome := 1; ELSE o_outcome := 5; END IF;\n"
        "    RETURN;\n"
        "  END IF;\n"
        "  IF p_cmid IS NOT NULL THEN\n"
        "    INSERT INTO client_message_dedupe (mesh_id, client_message_id, broker_message_id, request_fingerprint,\n"
        "        destination_kind, destination_ref, first_seen_at, expires_at, sender_scope)\n"
        "      VALUES (p_mesh, p_cmid, p_id, p_fp, p_kind, p_ref, p_now, p_expires, p_scope)\n"
        "      ON CONFLICT (mesh_id, sender_scope, client_message_id) DO NOTHING;\n"
        "    IF NOT FOUND THEN\n"
        "      SELECT d.broker_message_id, d.request_fingerprint, d.history_available, d.first_seen_at\n"
        "        INTO o_message_id, o_fingerprint, o_history_available, o_first_seen_at\n"
        "        FROM client_message_dedupe d\n"
        "       WHERE d.mesh_id = p_mesh AND d.sender_scope = p_scope AND d.client_message_id = p_cmid;\n"
        "      o_outcome := 1; RETURN;\n"
        "    END IF;\n"
        "  END IF;\n"
        "  INSERT INTO message (id, mesh_id, sender_member_id, sender_pubkey, sender_member_pubkey, sender_name,\n"
        "      target_spec, priority, nonce, ciphertext, created_at, client_message_id, request_fingerprint,\n"
        "      reply_to_id, topic_id, sender_scope)\n"
        "    VALUES (p_id, p_mesh, p_member, p_sender, p_sender_member, p_name, p_target, p_priority, p_nonce,\n"
        "      p_ciphertext, p_now, p_cmid, p_client_fp, p_reply_to, p_topic, p_scope);\n"
        "  IF p_topic IS NOT NULL THEN\n"
        "    INSERT INTO topic_message (message_id, mesh_id, topic_id, created_at) VALUES (p_id, p_mesh, p_topic, p_now);\n"
        "  END IF;\n"
        "  INSERT INTO delivery (message_id, recipient_pubkey, mesh_id, created_at)\n"
        "    SELECT p_id, k, p_mesh, p_now FROM unnest(p_recipients) k ON CONFLICT DO NOTHING;\n"
        "  INSERT INTO mention_index (broker_message_id, mesh_id, mentioned, created_at)\n"
        "    SELECT p_id, p_mesh, n, p_now FROM unnest(p_mentions) n ON CONFLICT DO NOTHING;\n"
        "  PERFORM pg_notify('claudemesh_delivery', w) FROM unnest(p_wakes) w;\n"
        "  o_message_id := p_id;\n"
        "END $$;\n";

/* Part of schema 4: the signed hellos already used, shared so that one replayed through
 * another node is refused too (see hello.c); the rate limiter (0, or the milliseconds until
 * the window ends); a push
 * handed to a client that does not acknowledge, which is its delivery; a client_ack, on the
 * connection whose session holds the leases. */
static const char schema_v4_more_sql[] =
        "CREATE UNLOGGED TABLE hello_seen (signature BYTEA PRIMARY KEY, expires_at BIGINT NOT NULL);\n"
        "CREATE INDEX hello_seen_expires ON hello_seen(expires_at);\n"
        "CREATE FUNCTION cm_rate(p_mesh TEXT, p_member TEXT, p_cmid TEXT, p_limit BIGINT, p_window BIGINT, p_now BIGINT)\n"
        " RETURNS BIGINT LANGUAGE plpgsql AS $$\n"
        "DECLARE v_bucket BIGINT := p_now / p_window;\n"
        "BEGIN\n"
        "  IF p_cmid IS NOT NULL AND EXISTS (SELECT 1 FROM rate_paid r WHERE r.mesh_id = p_mesh\n"
        "      AND r.client_message_id = p_cmid AND r.bucket = v_bucket AND r.member_id = p_member) THEN\n"
        "    RETURN 0;\n"
        "  END IF;\n"
        "  IF NOT EXISTS (SELECT 1 FROM rate_budget b WHERE b.mesh_id = p_mesh AND b.member_id = p_member\n"
        "      AND b.bucket = v_bucket) THEN\n"
        "    DELETE FROM rate_budget b WHERE b.bucket < v_bucket;\n"
        "    DELETE FROM rate_paid r WHERE r.bucket < v_bucket;\n"
        "  END IF;\n"
        "  INSERT INTO rate_budget AS b (mesh_id, member_id, bucket, used) VALUES (p_mesh, p_member, v_bucket, 1)\n"
        "    ON CONFLICT (mesh_id, member_id, bucket) DO UPDATE SET used = b.used + 1 WHERE b.used < p_limit;\n"
        "  IF NOT FOUND THEN\n"
        "    RETURN (v_bucket + 1) * p_window - p_now;\n"
        "  END IF;\n"
        "  IF p_cmid IS NOT NULL THEN\n"
        "    INSERT INTO rate_paid (mesh_id, client_message_id, bucket, member_id)\n"
        "      VALUES (p_mesh, p_cmid, v_bucket, p_member) ON CONFLICT DO NOTHING;\n"
        "  END IF;\n"
        "  RETURN 0;\n"
        "END $$;\n"
        "CREATE FUNCTION cm_settle(p_id TEXT, p_key TEXT, p_member_key TEXT, p_now BIGINT)\n"
        " RETURNS VOID LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  DELETE FROM delivery d WHERE d.message_id = p_id AND d.recipient_pubkey IN (p_key, p_member_key);\n"
        "  UPDATE message m SET delivered_at = p_now WHERE m.id = p_id AND m.delivered_at IS NULL\n"
        "     AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.message_id = p_id);\n"
        "END $$;\n"
        "CREATE FUNCTION cm_ack(p_id TEXT, p_key TEXT, p_member_key TEXT, p_now BIGINT)\n"
        " RETURNS VOID LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  PERFORM cm_settle(p_id, p_key, p_member_key, p_now);\n"
        "  DELETE FROM pg_temp.lease l WHERE l.message_id = p_id AND l.recipient_pubkey IN (p_key, p_member_key);\n"
        "END $$;\n";

/* Schema 5 (PostgreSQL only): the presence frames each node notified (see nodes.c), read
 * back by a node whose LISTEN connection was down; kept an hour. UNLOGGED like presence: a
 * database crash ends every LISTEN connection, and the presence rows with them. */
static const char schema_v5_sql[] =
        "CREATE UNLOGGED TABLE presence_event ("
        "  id BIGSERIAL PRIMARY KEY, at BIGINT NOT NULL, node_id TEXT NOT NULL, payload TEXT NOT NULL);"
        "CREATE INDEX presence_event_at ON presence_event(at);";

static const struct {
        int from, to;
        const char *sql, *more;
        const char *what;
} migrations[] = {
        { 0, 3, schema_v3_sql, schema_v3_nodes_sql, "create schema 3" },
        { 3, 4, schema_v4_sql, schema_v4_more_sql, "the accept and client_ack functions" },
        { 4, 5, schema_v5_sql, NULL, "the presence frames kept for a node's LISTEN gap" },
        { 5, 6, schema_v4_sql, NULL, "cm_accept answers a retry that another node committed meanwhile" },
};

/* The tables every node shares although SQLite keeps them per process (see schema). */
static const char *const shared_tables[] = { "rate_budget", "rate_paid", "hello_seen" };

/* The URI, with defaults it may override: a bounded connect and TCP keepalives, so a dead
 * server or a dropped route is noticed rather than waited on. The LISTEN connection's bound
 * is the event loop's, whatever the URI, its service or PGCONNECT_TIMEOUT say (0 waits
 * forever): its connect must end for the next one to start (see listen_connect_start()). */
#define LISTEN_CONNECT_S "5"

static PGconn *connect_uri(const char *uri, const char *application_name, bool listen) {
        const char *keys[] = { "connect_timeout", "keepalives", "keepalives_idle", "application_name",
                               "dbname", listen ? "connect_timeout" : NULL, NULL };
        const char *values[ELEMENTSOF(keys)] = { "5", "1", "30", application_name, uri, LISTEN_CONNECT_S };

        /* expand_dbname: the URI in dbname is parsed; its settings win over those before
         * it, and those after it win over its own. */
        return PQconnectdbParams(keys, values, 1);
}

/* libpq does blocking work inside PQconnectStart() and PQconnectPoll(): it resolves host
 * names (from the URI, PGHOST, or a service file), reads service and password files, and
 * may run a GSSAPI exchange. The LISTEN connection, reopened from the event loop, is
 * therefore opened by a thread with the blocking PQconnectdbParams(), and handed over
 * connected; the loop then uses it without waiting. One connect at a time: one still
 * running when the loop gives up on it is reused by the next pg_listen_open(). */
/* The connect threads still inside libpq: store_threads_running(). */
static atomic_int connect_threads;

typedef struct ListenConnect {
        atomic_int refs;                 /* the store's and the thread's */
        atomic_bool done;                /* conn is set; stored after it, read before it */
        char *uri;                       /* a copy: the thread may outlive the store */
        PGconn *conn;
} ListenConnect;

static void listen_connect_unref(ListenConnect *c) {
        if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        if (c->conn)
                PQfinish(c->conn);
        free(c->uri);
        free(c);
}

static void *listen_connect_run(void *userdata) {
        ListenConnect *c = userdata;

        c->conn = connect_uri(c->uri, "claudemesh-broker listen", true);
        atomic_store(&c->done, true);
        /* Counted until after the unref: its PQfinish(), when the store is gone, is libpq's
         * work too. */
        listen_connect_unref(c);
        atomic_fetch_sub(&connect_threads, 1);
        return NULL;
}

static int listen_connect_start(const char *uri, ListenConnect **ret) {
        _cleanup_free_ ListenConnect *c = calloc(1, sizeof *c);
        sigset_t all, saved;
        pthread_t t;
        int r;

        if (!c)
                return -ENOMEM;
        c->uri = strdup(uri);
        if (!c->uri)
                return -ENOMEM;
        atomic_init(&c->refs, 2);
        /* Signals are the loop's: the thread starts with all of them blocked. */
        sigfillset(&all);
        r = pthread_sigmask(SIG_SETMASK, &all, &saved);
        if (r != 0) {
                free(c->uri);
                return -r;
        }
        atomic_fetch_add(&connect_threads, 1);
        r = pthread_create(&t, NULL, listen_connect_run, c);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r != 0) {
                atomic_fetch_sub(&connect_threads, 1);
                free(c->uri);
                return -r;
        }
        pthread_detach(t);
        *ret = TAKE_PTR(c);
        return 0;
}

bool pg_threads_running(void) {
        return atomic_load(&connect_threads) > 0;
}

static void set_error(StorePg *pg, const char *message) {
        char *copy = strdup(message ? message : "unknown error");
        size_t n;

        if (!copy)
                return;
        /* libpq ends its messages with a newline, and some span lines: a log line is one. */
        n = strlen(copy);
        while (n > 0 && copy[n - 1] == '\n')
                copy[--n] = '\0';
        for (char *p = copy; *p; p++)
                if (*p == '\n' || *p == '\t')
                        *p = ' ';
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

static int quiesce(StorePg *pg);

static int exec_plain(Store *s, const char *sql, bool log_failure) {
        _cleanup_free_ char *text = translate(sql);
        PGresult *res;
        int r;

        if (!text)
                return -ENOMEM;
        r = quiesce(s->pg);
        if (r < 0)
                return r;
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
/* The steps from version up to SCHEMA_VERSION and the new version row, inside the caller's
 * transaction. */
static int migrate_steps(Store *s, int version) {
        char set_version[64];
        int r;

        for (size_t i = 0; i < ELEMENTSOF(migrations); i++) {
                if (migrations[i].from != version)
                        continue;
                r = exec_plain(s, migrations[i].sql, true);
                if (r < 0)
                        return log_error_errno(r, "Schema step to %d (%s) failed: %m", migrations[i].to,
                                               migrations[i].what);
                if (migrations[i].more) {
                        r = exec_plain(s, migrations[i].more, true);
                        if (r < 0)
                                return log_error_errno(r, "Schema step to %d (%s) failed: %m", migrations[i].to,
                                                       migrations[i].what);
                }
                version = migrations[i].to;
        }
        if (version != SCHEMA_VERSION)
                return log_error_errno(-EPROTO, "No migration leads from schema %d to %d.", version, SCHEMA_VERSION);
        r = exec_plain(s, "CREATE TABLE IF NOT EXISTS broker_schema (version INTEGER NOT NULL);"
                          "DELETE FROM broker_schema", true);
        if (r < 0)
                return r;
        snprintf(set_version, sizeof set_version, "INSERT INTO broker_schema VALUES (%d)", SCHEMA_VERSION);
        return exec_plain(s, set_version, true);
}

static int migrate(Store *s) {
        int version = 0, r;

        r = exec_plain(s, "BEGIN", true);
        if (r < 0)
                return r;
        r = exec_plain(s, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", true);
        if (r < 0) {
                (void) exec_plain(s, "ROLLBACK", false);
                return log_error_errno(r, "Cannot lock the schema: %s", s->pg->last_error);
        }
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

        r = migrate_steps(s, version);
        if (r < 0) {
                (void) exec_plain(s, "ROLLBACK", false);
                return r;
        }
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
        s->pg->conn = connect_uri(uri, "claudemesh-broker", false);
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
                return log_error_errno(r, "Cannot create the schema in PostgreSQL: %m");
        return 0;
}

static void lane_drop(Lane *l);

void pg_close(Store *s) {
        if (!s->pg)
                return;
        for (Entry *e = s->pg->deferred_head, *next; e; e = next) {
                next = e->next;
                PQclear(e->res);
                free(e);
        }
        for (unsigned i = 0; i < s->pg->n_lanes; i++) {
                lane_drop(&s->pg->lanes[i]);
                if (i > 0)
                        PQfinish(s->pg->lanes[i].conn);
        }
        if (s->pg->conn)
                PQfinish(s->pg->conn);
        pg_listen_close(s);
        listen_connect_unref(s->pg->connecting);
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
        int r = quiesce(s->pg);
        if (r < 0)
                return r;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        snprintf(p->name, sizeof p->name, "s%u", s->pg->next_stmt++);
        res = PQprepare(s->pg->conn, p->name, text, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                set_error(s->pg, PQresultErrorMessage(res));
                log_error("PostgreSQL prepare failed: %s (%s)", s->pg->last_error, text);
                r = result_errno(res);
                PQclear(res);
                free(p);
                return r;
        }
        PQclear(res);
        res = PQdescribePrepared(s->pg->conn, p->name);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                set_error(s->pg, PQresultErrorMessage(res));
                log_error("PostgreSQL describe failed: %s (%s)", s->pg->last_error, text);
                r = result_errno(res);
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
                int r = quiesce(pg);
                if (r < 0)
                        return r;
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
        if (quiesce(s->pg) < 0)
                return false;
        return PQtransactionStatus(s->pg->conn) != PQTRANS_IDLE;
}

bool pg_connected(Store *s) {
        return PQstatus(s->pg->conn) == CONNECTION_OK;
}

int pg_changes(Store *s) {
        return s->pg->changes;
}

enum { LISTEN_CONNECTING, LISTEN_SUBSCRIBING, LISTEN_OPEN };

int pg_listen_open(Store *s, const char *const *channels) {
        StorePg *pg = s->pg;
        _cleanup_free_ char *sql = NULL;
        size_t n = 0;
        int r;

        pg_listen_close(s);
        /* Identifiers of our own, but quoted all the same. */
        for (const char *const *c = channels; *c; c++) {
                for (const char *p = *c; *p; p++)
                        if (!(*p == '_' || (*p >= 'a' && *p <= 'z')))
                                return -EINVAL;
                n += strlen(*c) + sizeof "LISTEN \"\"; ";
        }
        sql = malloc(n + 1);
        if (!sql)
                return -ENOMEM;
        sql[0] = '\0';
        for (const char *const *c = channels; *c; c++) {
                strcat(sql, "LISTEN \"");
                strcat(sql, *c);
                strcat(sql, "\"; ");
        }
        free(pg->listen_sql);
        pg->listen_sql = TAKE_PTR(sql);
        /* A connect still running, or done since the loop gave up on it, is the one to wait
         * for: one connect at a time. One that failed then is not reported now; a new one
         * is started. */
        if (pg->connecting && atomic_load(&pg->connecting->done) &&
            PQstatus(pg->connecting->conn) != CONNECTION_OK) {
                listen_connect_unref(pg->connecting);
                pg->connecting = NULL;
        }
        if (!pg->connecting) {
                r = listen_connect_start(pg->uri, &pg->connecting);
                if (r < 0) {
                        pg_listen_close(s);
                        return r;
                }
        }
        pg->listen_phase = LISTEN_CONNECTING;
        return 0;
}

/* Not logged here: the caller retries every catch-up and limits its lines (nodes.c). */
static int listen_failed(Store *s, const char *message) {
        set_error(s->pg, message);
        pg_listen_close(s);
        return -ECONNREFUSED;
}

int pg_listen_poll(Store *s, int *ret_fd) {
        StorePg *pg = s->pg;
        PGresult *res;
        int fd;

        if (!pg->listen_sql)
                return -ENOTCONN;
        if (pg->listen_phase == LISTEN_CONNECTING) {
                ListenConnect *c = pg->connecting;

                if (!atomic_load(&c->done))
                        return 0;
                pg->connecting = NULL;
                pg->listen = TAKE_PTR(c->conn);
                listen_connect_unref(c);
                if (!pg->listen)
                        return listen_failed(s, "out of memory");
                if (PQstatus(pg->listen) != CONNECTION_OK)
                        return listen_failed(s, PQerrorMessage(pg->listen));
                /* Connected: from here on the loop never waits on it. */
                if (PQsetnonblocking(pg->listen, 1) < 0 || !PQsendQuery(pg->listen, pg->listen_sql))
                        return listen_failed(s, PQerrorMessage(pg->listen));
                pg->listen_phase = LISTEN_SUBSCRIBING;
        }
        if (pg->listen_phase == LISTEN_SUBSCRIBING) {
                if (PQflush(pg->listen) < 0 || !PQconsumeInput(pg->listen))
                        return listen_failed(s, PQerrorMessage(pg->listen));
                while (!PQisBusy(pg->listen)) {
                        res = PQgetResult(pg->listen);
                        if (!res) {
                                pg->listen_phase = LISTEN_OPEN;
                                break;
                        }
                        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                                int r = listen_failed(s, PQresultErrorMessage(res));
                                PQclear(res);
                                return r;
                        }
                        PQclear(res);
                }
                if (pg->listen_phase != LISTEN_OPEN)
                        return 0;
        }
        fd = fcntl(PQsocket(pg->listen), F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                fd = -errno;
                pg_listen_close(s);
                return fd;
        }
        *ret_fd = fd;
        return 1;
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
        if (!s->pg)
                return;
        if (s->pg->listen)
                PQfinish(s->pg->listen);
        s->pg->listen = NULL;
        s->pg->listen_sql = mfree(s->pg->listen_sql);
        /* A connect still running is kept for the next open (see pg_listen_open()). */
}

/* ---- lanes: statements in pipeline mode, for the event loop ---- */

/* The lanes' queues and the deferred callbacks are all singly linked lists in order. */
static void entry_append(Entry **head, Entry **tail, Entry *e) {
        e->next = NULL;
        if (*tail)
                (*tail)->next = e;
        else
                *head = e;
        *tail = e;
}

static Entry *entry_pop(Entry **head, Entry **tail) {
        Entry *e = *head;

        if (!e)
                return NULL;
        *head = e->next;
        if (!*head)
                *tail = NULL;
        return e;
}

static Entry *lane_push(Lane *l, EntryKind kind, StoreAsyncCallback cb, void *userdata) {
        Entry *e = calloc(1, sizeof *e);

        if (!e)
                return NULL;
        *e = (Entry) { .kind = kind, .cb = cb, .userdata = userdata };
        entry_append(&l->head, &l->tail, e);
        l->n++;
        return e;
}

static Entry *lane_pop(Lane *l) {
        Entry *e = entry_pop(&l->head, &l->tail);

        if (e)
                l->n--;
        return e;
}

static Entry *lane_pop_ended(Lane *l) {
        return entry_pop(&l->ended_head, &l->ended_tail);
}

/* At close: the entries go without their callbacks, whose owners are gone too. */
static void lane_drop(Lane *l) {
        Entry *e;

        while ((e = lane_pop_ended(l)) || (e = lane_pop(l))) {
                PQclear(e->res);
                free(e);
        }
}

static int entry_errno(StorePg *pg, const Entry *e) {
        ExecStatusType status = e->res ? PQresultStatus(e->res) : PGRES_FATAL_ERROR;

        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
                return 0;
        if (status == PGRES_PIPELINE_ABORTED)
                return -ECANCELED;         /* an earlier statement of its group failed */
        set_error(pg, e->res ? PQresultErrorMessage(e->res) : "no result");
        return result_errno(e->res);
}

static void entry_complete(StorePg *pg, Entry *e, int r) {
        /* The others of a failed group are told of once, by lane_group_end(). */
        if (r < 0 && r != -ECANCELED && (e->kind == ENTRY_PREPARE || !e->cb))
                log_warning("PostgreSQL (pipelined statement): %s", pg->last_error ? pg->last_error : "failed");
        if (e->kind == ENTRY_QUERY && e->cb && pg->quiescing) {
                /* Inside a blocking call: the callback runs later, from the loop, since it may
                 * send on lane 0 itself. */
                e->got = r >= 0;
                if (r < 0) {
                        PQclear(e->res);
                        e->res = NULL;
                }
                entry_append(&pg->deferred_head, &pg->deferred_tail, e);
                if (pg->defer_hook)
                        pg->defer_hook(pg->defer_userdata);
                return;
        }
        if (e->kind == ENTRY_QUERY && e->cb)
                e->cb(r, r < 0 ? NULL : (StoreResult *) e->res, e->userdata);
        PQclear(e->res);
        free(e);
}

void pg_async_run_deferred(Store *s) {
        StorePg *pg = s->pg;

        Entry *e;

        while ((e = entry_pop(&pg->deferred_head, &pg->deferred_tail))) {
                /* A failure's message is gone by now: the callback gets the errno only. */
                e->cb(e->got ? 0 : -EIO, e->got ? (StoreResult *) e->res : NULL, e->userdata);
                PQclear(e->res);
                free(e);
        }
}

void pg_async_set_defer_hook(Store *s, void (*hook)(void *userdata), void *userdata) {
        s->pg->defer_hook = hook;
        s->pg->defer_userdata = userdata;
}

/* The connection is gone: every statement still owed fails, those of a group whose Sync did
 * not come back too (whether it committed is unknown). */
static int lane_fail(StorePg *pg, Lane *l) {
        Entry *e;

        set_error(pg, PQerrorMessage(l->conn));
        while ((e = lane_pop_ended(l)) || (e = lane_pop(l)))
                entry_complete(pg, e, -ECONNRESET);
        l->group_failed = false;
        return -ECONNRESET;
}

/* A statement's results ended: its callback waits for the group's end. */
static void lane_ended(Lane *l, Entry *e, int r) {
        e->r = r;
        if (r < 0)
                l->group_failed = true;
        entry_append(&l->ended_head, &l->ended_tail, e);
}

/* The group's Sync came back: it committed, or, when one of its statements failed, none of it
 * did. Only then do the callbacks run, so no reply tells a client of a write that is undone. */
static void lane_group_end(StorePg *pg, Lane *l) {
        bool failed = l->group_failed;
        Entry *group = l->ended_head, *e;
        unsigned n = 0;

        /* Taken off the lane first: a callback may read the lane again (a blocking call). */
        l->ended_head = l->ended_tail = NULL;
        l->group_failed = false;
        if (failed)
                for (e = group; e; e = e->next)
                        n++;
        if (n > 1)
                log_warning("A statement failed in a group of %u pipelined statements, all undone: %s", n,
                            pg->last_error ? pg->last_error : "failed");
        while ((e = group)) {
                group = e->next;
                entry_complete(pg, e, failed && e->r >= 0 ? -ECANCELED : e->r);
        }
}

/* Completes the entries whose results have arrived, without waiting for more. */
static int lane_read(StorePg *pg, Lane *l) {
        if (!PQconsumeInput(l->conn) || PQstatus(l->conn) != CONNECTION_OK)
                return lane_fail(pg, l);
        while (l->head && !PQisBusy(l->conn)) {
                Entry *e = l->head;
                PGresult *res = PQgetResult(l->conn);

                if (!res) {
                        /* The end of a statement's results; nothing more yet otherwise. */
                        if (e->kind == ENTRY_SYNC || !e->got)
                                break;
                        (void) lane_pop(l);
                        lane_ended(l, e, entry_errno(pg, e));
                        continue;
                }
                if ((PQresultStatus(res) == PGRES_PIPELINE_SYNC) != (e->kind == ENTRY_SYNC)) {
                        /* Results out of step with what was sent: trust nothing more on it. */
                        PQclear(res);
                        log_error("PostgreSQL pipeline out of step; giving up its statements.");
                        return lane_fail(pg, l);
                }
                if (e->kind == ENTRY_SYNC) {
                        PQclear(res);
                        free(lane_pop(l));
                        lane_group_end(pg, l);
                        continue;
                }
                PQclear(e->res);
                e->res = res;
                e->got = true;
        }
        return 0;
}

/* Ends the lane's group: the statements sent since the last Sync are one transaction. */
static int lane_sync(StorePg *pg, Lane *l) {
        if (l->unsynced == 0)
                return 0;
        l->unsynced = 0;
        if (!PQpipelineSync(l->conn) || !lane_push(l, ENTRY_SYNC, NULL, NULL)) {
                /* The statements are queued: their callbacks still run, failing with the lane. */
                set_error(pg, PQerrorMessage(l->conn));
                log_error("PostgreSQL: cannot end a group of pipelined statements: %s", pg->last_error);
                return -EIO;
        }
        return 0;
}

/* Lane 0 is shared with the blocking calls: before one, its pipeline is run to its end
 * (bounded by the statements already sent) and left. */
static int quiesce(StorePg *pg) {
        Lane *l = &pg->lanes[0];
        int r;

        if (pg->n_lanes == 0 || PQpipelineStatus(l->conn) == PQ_PIPELINE_OFF)
                return 0;
        r = lane_sync(pg, l);
        if (r < 0)
                return r;
        pg->quiescing = true;
        while (l->head) {
                int pending = PQflush(l->conn);
                if (pending < 0) {
                        r = lane_fail(pg, l);
                        break;
                }
                r = lane_read(pg, l);
                if (r < 0 || !l->head)
                        break;
                struct pollfd p = { .fd = PQsocket(l->conn), .events = POLLIN | (pending ? POLLOUT : 0) };
                if (poll(&p, 1, -1) < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
        }
        pg->quiescing = false;
        if (r < 0)
                return r;
        if (!PQexitPipelineMode(l->conn)) {
                PGresult *res;
                while ((res = PQgetResult(l->conn)))
                        PQclear(res);
                if (!PQexitPipelineMode(l->conn)) {
                        set_error(pg, PQerrorMessage(l->conn));
                        return -EIO;
                }
        }
        return PQsetnonblocking(l->conn, 0) < 0 ? -EIO : 0;
}

int pg_pool_open(Store *s, unsigned n) {
        StorePg *pg = s->pg;

        assert(pg->n_lanes == 0);
        pg->lanes[0].conn = pg->conn;
        pg->n_lanes = 1;
        for (unsigned i = 1; i <= n; i++) {
                Lane *l = &pg->lanes[i];

                /* At start, before the event loop runs: a blocking connect is fine here. */
                l->conn = connect_uri(pg->uri, "claudemesh-broker pool", false);
                if (!l->conn)
                        return -ENOMEM;
                pg->n_lanes++;
                if (PQstatus(l->conn) != CONNECTION_OK) {
                        set_error(pg, PQerrorMessage(l->conn));
                        return log_error_errno(-ECONNREFUSED, "Cannot open pool connection %u to PostgreSQL: %s",
                                               i, pg->last_error);
                }
                if (PQsetnonblocking(l->conn, 1) < 0 || !PQenterPipelineMode(l->conn)) {
                        set_error(pg, PQerrorMessage(l->conn));
                        return log_error_errno(-EIO, "Cannot set up pool connection %u: %s", i, pg->last_error);
                }
        }
        return 0;
}

unsigned pg_async_queued(Store *s, unsigned lane) {
        return s->pg->lanes[lane].n;
}

unsigned pg_lanes(Store *s) {
        return s->pg->n_lanes;
}

int pg_lane_fd(Store *s, unsigned lane) {
        return PQsocket(s->pg->lanes[lane].conn);
}

/* The lane's name for sql, queueing its preparation the first time. */
static int lane_prepare(StorePg *pg, Lane *l, const char *sql, char name[static 16]) {
        _cleanup_free_ char *text = NULL;
        size_t i;

        for (i = 0; i < l->n_prepared; i++)
                if (l->prepared[i] == sql)
                        break;
        snprintf(name, 16, "a%zu", i);
        if (i < l->n_prepared)
                return 0;
        if (i >= STMT_CACHE_MAX)
                return log_error_errno(-E2BIG, "More than %d pipelined statements.", STMT_CACHE_MAX);
        text = translate(sql);
        if (!text)
                return -ENOMEM;
        if (!PQsendPrepare(l->conn, name, text, 0, NULL)) {
                set_error(pg, PQerrorMessage(l->conn));
                return -EIO;
        }
        if (!lane_push(l, ENTRY_PREPARE, NULL, NULL))
                return -ENOMEM;
        l->prepared[l->n_prepared++] = sql;
        return 0;
}

int pg_async(Store *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
             StoreAsyncCallback cb, void *userdata) {
        StorePg *pg = s->pg;
        Lane *l = &pg->lanes[lane];
        char name[16];
        int r;

        if (PQpipelineStatus(l->conn) == PQ_PIPELINE_OFF) {
                /* Only lane 0 leaves pipeline mode, for the blocking calls; it joins no
                 * transaction of theirs. */
                if (PQtransactionStatus(l->conn) != PQTRANS_IDLE)
                        return -EBUSY;
                if (PQsetnonblocking(l->conn, 1) < 0 || !PQenterPipelineMode(l->conn)) {
                        set_error(pg, PQerrorMessage(l->conn));
                        return -EIO;
                }
        }
        r = lane_prepare(pg, l, sql, name);
        if (r < 0)
                return r;
        if (!PQsendQueryPrepared(l->conn, name, (int) n_params, values, NULL, NULL, 0)) {
                set_error(pg, PQerrorMessage(l->conn));
                return -EIO;
        }
        if (!lane_push(l, ENTRY_QUERY, cb, userdata))
                return -ENOMEM;
        if (++l->unsynced >= LANE_GROUP_MAX)
                lane_sync(pg, l);
        return 0;
}

int pg_async_sync(Store *s, unsigned lane) {
        return lane_sync(s->pg, &s->pg->lanes[lane]);
}

int pg_async_process(Store *s, unsigned lane) {
        StorePg *pg = s->pg;
        Lane *l = &pg->lanes[lane];

        if (lane == 0 && PQpipelineStatus(l->conn) == PQ_PIPELINE_OFF)
                /* The blocking calls own it now; only a lost connection is news. */
                return PQconsumeInput(l->conn) && PQstatus(l->conn) == CONNECTION_OK ? 0 : -ECONNRESET;
        return lane_read(pg, l);
}

int pg_async_flush(Store *s, unsigned lane) {
        Lane *l = &s->pg->lanes[lane];
        int r;

        if (PQpipelineStatus(l->conn) == PQ_PIPELINE_OFF)
                return 0;
        r = PQflush(l->conn);
        return r < 0 ? lane_fail(s->pg, l) : r;
}

bool pg_async_idle(Store *s, unsigned lane) {
        return !s->pg->lanes[lane].head;
}

int pg_result_rows(const StoreResult *res) {
        return PQntuples((const PGresult *) res);
}

const char *pg_result_text(const StoreResult *res, int row, int col) {
        const PGresult *r = (const PGresult *) res;

        if (row < 0 || row >= PQntuples(r) || col < 0 || col >= PQnfields(r) || PQgetisnull(r, row, col))
                return NULL;
        return PQgetvalue(r, row, col);
}
