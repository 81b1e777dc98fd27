/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker's one SQLite file (WAL). The broker process and the admin subcommands open it
 * at the same time; writers wait on each other through busy_timeout. Statements are prepared
 * once per connection and cached by the address of their SQL text, so each module keeps its
 * SQL next to the code that uses it.
 */

#include <sqlite3.h>
#include <stdbool.h>

#include "macro.h"

typedef struct Store Store;

/* Opens (creating if needed) the database and brings the schema up to date. */
int store_open(const char *path, Store **ret);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

sqlite3 *store_db(Store *s);

/* The cached statement for sql, reset and with bindings cleared; NULL (logged) on error.
 * sql must be a string literal: the cache is keyed by its address. */
sqlite3_stmt *store_stmt(Store *s, const char *sql);

/* Executes a cached statement that returns no rows (or ignores them): 0 or -EIO. */
int store_step_done(Store *s, sqlite3_stmt *st);

/* Runs a statement list that is not cached (schema, pragmas). */
int store_exec(Store *s, const char *sql);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK; inside a batch, a savepoint that commits or rolls back
 * on its own within it. Rollback is best effort and never fails. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);

/* Group commit: the broker opens one batch transaction for the frames it handles in one
 * event loop iteration and commits it before any byte of a reply leaves. Every statement in
 * between joins it; store_begin() nests as a savepoint. */
int store_batch_begin(Store *s);
int store_batch_commit(Store *s);

/* Number of rows the last statement changed. */
int store_changes(Store *s);

/* A negative errno for an SQLite result code (busy/locked → -EBUSY, constraint → -EEXIST). */
int store_errno(int sqlite_rc);
