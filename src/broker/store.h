/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker's storage seam: every module reaches the database through this interface and
 * never through an engine's own API, so the same statements run on either engine.
 *
 * Engines: SQLite (a file, WAL; the default) and, when built with it, PostgreSQL (libpq,
 * selected by a postgresql:// or postgres:// URI). The broker process and the admin
 * subcommands use the database at the same time; writers wait on each other.
 *
 * Statements are written once, in the SQL both engines accept (?N parameters, ON CONFLICT,
 * temp.name for the process' own scratch tables), prepared once per connection and cached
 * by the address of their SQL text, so each module keeps its SQL next to the code that uses
 * it. The schema and its versioned migrations are per engine.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

typedef struct Store Store;
typedef struct StoreStmt StoreStmt;

typedef enum StoreEngine {
        STORE_SQLITE,
        STORE_POSTGRESQL,
} StoreEngine;

/* store_step() results; failures are negative errnos. */
#define STORE_DONE 0
#define STORE_ROW 1

/* True when db names a PostgreSQL database (a postgresql:// or postgres:// URI). */
bool store_is_postgresql(const char *db);

/* Opens (creating if needed) the database and brings the schema up to date; refuses a
 * schema newer than this broker knows. */
int store_open(const char *db, Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

StoreEngine store_engine(const Store *s);

/* The database for messages: the SQLite path, or the PostgreSQL server and database without
 * the URI's password. */
const char *store_name(const Store *s);

/* False once a PostgreSQL connection is lost (an SQLite file is always there). */
bool store_connected(Store *s);

/* The engine's message for the last failure on this connection. */
const char *store_errmsg(Store *s);

/* The cached statement for sql, reset and with bindings cleared; NULL (logged) on error.
 * sql must be a string literal: the cache is keyed by its address. */
StoreStmt *store_stmt(Store *s, const char *sql);

/* Parameters count from 1, as ?N in the SQL. Text and blobs are not copied: they must stay
 * valid until the statement is stepped. A NULL text binds SQL NULL. */
void store_bind_text(StoreStmt *st, int i, const char *v);
void store_bind_int64(StoreStmt *st, int i, int64_t v);
void store_bind_blob(StoreStmt *st, int i, const void *p, size_t n);
void store_bind_null(StoreStmt *st, int i);

/* STORE_ROW with a row to read, STORE_DONE at the end, negative errno on failure
 * (busy → -EBUSY, constraint → -EEXIST). */
int store_step(StoreStmt *st);

/* Columns count from 0 and are valid until the next step or reset. */
bool store_col_is_null(StoreStmt *st, int i);
const char *store_col_text(StoreStmt *st, int i);     /* NULL for SQL NULL */
int64_t store_col_int64(StoreStmt *st, int i);
int store_col_int(StoreStmt *st, int i);
const void *store_col_blob(StoreStmt *st, int i, size_t *ret_size);

/* Ends the statement's current execution (it stays cached). */
void store_reset(StoreStmt *st);

/* Executes a cached statement that returns no rows (or ignores them): 0 or negative errno. */
int store_step_done(Store *s, StoreStmt *st);

/* Runs a statement list that is not cached (scratch tables at start). */
int store_exec(Store *s, const char *sql);

/* BEGIN / COMMIT / ROLLBACK; inside a batch, a savepoint that commits or rolls back on its
 * own within it. Rollback is best effort and never fails. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Group commit: the broker opens one batch transaction for the frames it handles in one
 * event loop iteration and commits it before any byte of a reply leaves. Every statement in
 * between joins it; store_begin() nests as a savepoint. */
int store_batch_begin(Store *s);
int store_batch_commit(Store *s);
/* Whether a batch is open and still a transaction (SQLite may have rolled it back on an
 * I/O error), so a statement run now joins it. */
bool store_batch_is_open(Store *s);

/* Number of rows the last statement changed. */
int store_changes(Store *s);

/* Several broker nodes on one PostgreSQL database wake each other with LISTEN/NOTIFY; the
 * rows stay the truth, so a lost notification only waits for the next catch-up.
 * The broker sends its notifications with pg_notify() on the pool (pool.h).
 * store_listen_open() starts a second connection that will listen on the channels (a
 * NULL-ended list), without waiting; store_listen_poll() advances it, also without waiting:
 * 0 while it connects and subscribes, 1 and a descriptor to poll for reading once it listens
 * (a duplicate: the caller closes it), a negative errno when it failed (it is closed):
 * -ECONNREFUSED when the server did not connect or subscribe it, store_errmsg() saying why;
 * store_listen_read() calls cb for each notification received, -ECONNRESET when the
 * connection is lost. PostgreSQL only. Neither logs: a server that cannot be reached fails
 * every retry, and the caller limits its lines (nodes.c). */
typedef void (*StoreNotifyCallback)(const char *channel, const char *payload, void *userdata);
int store_listen_open(Store *s, const char *const *channels);
int store_listen_poll(Store *s, int *ret_fd);
int store_listen_read(Store *s, StoreNotifyCallback cb, void *userdata);
void store_listen_close(Store *s);
/* True while a thread of a store still runs inside libpq (a LISTEN connect in a name lookup
 * or a TLS handshake; it ends within its connect_timeout, or after the lookup): exit() would
 * then run the libraries' exit handlers (OpenSSL's cleanup) under it, so the process leaves
 * with _exit() once the rest is cleaned up. */
bool store_threads_running(void);

/*
 * PostgreSQL only: statements sent without waiting, for the event loop's hot path. Each
 * lane is one connection in libpq's pipeline mode; lane 0 is the connection of the calls
 * above (its session holds the scratch tables), lanes 1..n a pool opened by
 * store_pool_open(). The statements sent on a lane until store_async_sync() (or 64 of
 * them) are one transaction, a group commit: a failing one fails the others of its group
 * (-ECANCELED), so each must be whole on its own. Results come back in order per lane: the caller watches
 * store_lane_fd() for reading (then store_async_process()) and, while store_async_flush()
 * says 1, for writing. Parameters are text, copied. The callback gets 0 and the result, or
 * a negative errno and NULL (-ECONNRESET when the lane's connection is lost).
 * A call above on lane 0 first waits for lane 0's statements to finish; the callbacks of
 * those that finish then are deferred (the hook is told) until store_async_run_deferred(),
 * which the caller runs from its loop, as a callback may send on lane 0 again.
 */
typedef struct StoreResult StoreResult;
typedef void (*StoreAsyncCallback)(int r, StoreResult *res, void *userdata);

#define STORE_POOL_MAX 32
#define STORE_ASYNC_PARAMS_MAX 40

int store_pool_open(Store *s, unsigned n);
unsigned store_lanes(Store *s);
int store_lane_fd(Store *s, unsigned lane);
int store_async(Store *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
                StoreAsyncCallback cb, void *userdata);
int store_async_process(Store *s, unsigned lane);
int store_async_flush(Store *s, unsigned lane);
int store_async_sync(Store *s, unsigned lane);
/* True when the lane owes no result. */
bool store_async_idle(Store *s, unsigned lane);
/* How many statements (and group ends) the lane owes results for. */
unsigned store_async_queued(Store *s, unsigned lane);
void store_async_run_deferred(Store *s);
void store_async_set_defer_hook(Store *s, void (*hook)(void *userdata), void *userdata);

int store_result_rows(const StoreResult *res);
const char *store_result_text(const StoreResult *res, int row, int col);  /* NULL for SQL NULL */
int64_t store_result_int64(const StoreResult *res, int row, int col);
