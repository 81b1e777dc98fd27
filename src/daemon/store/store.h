/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

#include "macro.h"

/*
 * The SQLite plumbing shared by outbox.db and inbox.db: one connection per file, opened 0600
 * in WAL mode with synchronous=FULL (or NORMAL), busy_timeout=5000 and foreign keys on;
 * PRAGMA quick_check on open; a forward-only schema version in PRAGMA user_version; cached
 * prepared statements; and BEGIN IMMEDIATE transactions.
 */

typedef struct Store Store;

/* migrations[i] is the SQL that takes the schema from version i to i + 1, so the version the
 * code knows is n_migrations. A missing file is built as "<path>.new" and linked into place once
 * it holds its schema, so no crash leaves an empty file at path; an empty file is -EUCLEAN. Each step runs in its own BEGIN IMMEDIATE transaction together
 * with the bump of user_version, so a crash leaves the file at a whole version.
 *
 * On failure *ret_error (when not NULL) holds a sentence naming the file:
 *   -EUCLEAN  not a database, or PRAGMA quick_check found damage (the file is left as it was:
 *             no checkpoint on close);
 *   -EPROTO   user_version is newer than n_migrations;
 *   other     the file cannot be created, opened or migrated. */
int store_open(const char *path, bool synchronous_full, const char *const *migrations, size_t n_migrations,
               Store **ret, char **ret_error);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

sqlite3 *store_db(Store *s);
const char *store_path(Store *s);

/* Maps an SQLite result code to a negative errno (0 for OK/ROW/DONE): BUSY/LOCKED (the lock was
 * held past busy_timeout) → -ETIMEDOUT, CONSTRAINT → -EEXIST, CORRUPT/NOTADB → -EUCLEAN,
 * FULL → -ENOSPC, ... */
int store_errno(int rc);
/* Logs what failed with SQLite's message for this connection and returns store_errno(rc). */
int store_log_error(Store *s, int rc, const char *what);

/* A prepared statement for sql, prepared once per store and kept: callers hold it with
 * _cleanup_(store_stmt_resetp), which resets it and drops the bindings when they are done.
 * sql is looked up by pointer first (string literals), then by text. */
int store_stmt(Store *s, const char *sql, sqlite3_stmt **ret);

static inline void store_stmt_resetp(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}

/* Binds ?1, ?2, ... of st in order, one argument per character of types: 's' a const char *
 * (NULL binds NULL), 'i' an int64_t (cast it: the argument list has no types). On a failure it
 * logs "binding <what>" and returns the error, so a caller checks once for all of them. */
int store_bind(Store *s, sqlite3_stmt *st, const char *what, const char *types, ...);

/* Steps st, a statement that returns no rows, to its end: the number of rows it changed, or the
 * error logged as "<what>" with SQLite's message. */
int store_run(Store *s, sqlite3_stmt *st, const char *what);

/* Runs SQL without results (one or more statements, not cached). */
int store_exec(Store *s, const char *sql);

/* One BEGIN IMMEDIATE transaction: -EBUSY if one is already open. A failed COMMIT rolls back. */
bool store_in_transaction(Store *s);
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Makes one operation atomic whether or not the caller has a transaction open: a BEGIN IMMEDIATE
 * transaction of its own, or else a savepoint inside the caller's. store_atomic_end() commits
 * (or releases) when r >= 0 and rolls back otherwise; it returns r, or the COMMIT's error. */
int store_atomic_begin(Store *s, bool *ret_own);
int store_atomic_end(Store *s, bool own, int r);

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3 *, sqlite3_close);
DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
