/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The two engines behind store.h; only store.c and store-pg.c see this. */

#include <errno.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"

#define STMT_CACHE_MAX 128
#define STORE_PARAMS_MAX 16

typedef struct StorePg StorePg;
typedef struct StorePgStmt StorePgStmt;

struct StoreStmt {
        Store *store;
        const char *sql;                 /* the cache key */
        sqlite3_stmt *lite;
        StorePgStmt *pg;
};

struct Store {
        StoreEngine engine;
        char *name;                      /* see store_name() */
        sqlite3 *db;
        StorePg *pg;
        StoreStmt *cache[STMT_CACHE_MAX];
        size_t n_cache;
        bool batch_open;
};

#if HAVE_LIBPQ
int pg_open(Store *s, const char *uri);
void pg_close(Store *s);
const char *pg_errmsg(Store *s);
int pg_prepare(Store *s, StoreStmt *st);
void pg_stmt_free(StoreStmt *st);
void pg_stmt_clear(StoreStmt *st);
void pg_bind(StoreStmt *st, int i, const void *p, size_t n, bool binary);
void pg_bind_int64(StoreStmt *st, int i, int64_t v);
int pg_step(StoreStmt *st);
const char *pg_col_text(StoreStmt *st, int i);
int64_t pg_col_int64(StoreStmt *st, int i);
const void *pg_col_blob(StoreStmt *st, int i, size_t *ret_size);
void pg_reset(StoreStmt *st);
int pg_exec(Store *s, const char *sql);
bool pg_in_transaction(Store *s);
int pg_changes(Store *s);
bool pg_connected(Store *s);
int pg_listen_open(Store *s, const char *const *channels);
int pg_listen_poll(Store *s, int *ret_fd);
int pg_listen_read(Store *s, StoreNotifyCallback cb, void *userdata);
void pg_listen_close(Store *s);
bool pg_threads_running(void);
int pg_pool_open(Store *s, unsigned n);
unsigned pg_lanes(Store *s);
int pg_lane_fd(Store *s, unsigned lane);
int pg_async(Store *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
             StoreAsyncCallback cb, void *userdata);
int pg_async_process(Store *s, unsigned lane);
int pg_async_flush(Store *s, unsigned lane);
int pg_async_sync(Store *s, unsigned lane);
bool pg_async_idle(Store *s, unsigned lane);
unsigned pg_async_queued(Store *s, unsigned lane);
void pg_async_run_deferred(Store *s);
void pg_async_set_defer_hook(Store *s, void (*hook)(void *userdata), void *userdata);
int pg_result_rows(const StoreResult *res);
const char *pg_result_text(const StoreResult *res, int row, int col);
#else
/* Without libpq a Store is always SQLite: store_open() refuses a PostgreSQL URI, so only
 * pg_open() is reachable. */
static inline int pg_open(Store *s, const char *uri) {
        return log_error_errno(-EPROTONOSUPPORT, "This broker was built without PostgreSQL support: cannot open %s.",
                               uri);
}
#define PG_UNREACHABLE abort()
static inline void pg_close(Store *s) { (void) s; }
static inline const char *pg_errmsg(Store *s) { (void) s; PG_UNREACHABLE; }
static inline int pg_prepare(Store *s, StoreStmt *st) { (void) s; (void) st; PG_UNREACHABLE; }
static inline void pg_stmt_free(StoreStmt *st) { (void) st; }
static inline void pg_stmt_clear(StoreStmt *st) { (void) st; PG_UNREACHABLE; }
static inline void pg_bind(StoreStmt *st, int i, const void *p, size_t n, bool binary) {
        (void) st; (void) i; (void) p; (void) n; (void) binary; PG_UNREACHABLE;
}
static inline void pg_bind_int64(StoreStmt *st, int i, int64_t v) { (void) st; (void) i; (void) v; PG_UNREACHABLE; }
static inline int pg_step(StoreStmt *st) { (void) st; PG_UNREACHABLE; }
static inline const char *pg_col_text(StoreStmt *st, int i) { (void) st; (void) i; PG_UNREACHABLE; }
static inline int64_t pg_col_int64(StoreStmt *st, int i) { (void) st; (void) i; PG_UNREACHABLE; }
static inline const void *pg_col_blob(StoreStmt *st, int i, size_t *n) {
        (void) st; (void) i; (void) n; PG_UNREACHABLE;
}
static inline void pg_reset(StoreStmt *st) { (void) st; PG_UNREACHABLE; }
static inline int pg_exec(Store *s, const char *sql) { (void) s; (void) sql; PG_UNREACHABLE; }
static inline bool pg_in_transaction(Store *s) { (void) s; PG_UNREACHABLE; }
static inline int pg_changes(Store *s) { (void) s; PG_UNREACHABLE; }
static inline bool pg_connected(Store *s) { (void) s; PG_UNREACHABLE; }
static inline int pg_listen_open(Store *s, const char *const *channels) {
        (void) s; (void) channels; PG_UNREACHABLE;
}
static inline int pg_listen_poll(Store *s, int *ret_fd) { (void) s; (void) ret_fd; PG_UNREACHABLE; }
static inline int pg_listen_read(Store *s, StoreNotifyCallback cb, void *userdata) {
        (void) s; (void) cb; (void) userdata; PG_UNREACHABLE;
}
static inline void pg_listen_close(Store *s) { (void) s; }
static inline bool pg_threads_running(void) { return false; }
static inline int pg_pool_open(Store *s, unsigned n) { (void) s; (void) n; PG_UNREACHABLE; }
static inline unsigned pg_lanes(Store *s) { (void) s; PG_UNREACHABLE; }
static inline int pg_lane_fd(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline int pg_async(Store *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
                           StoreAsyncCallback cb, void *userdata) {
        (void) s; (void) lane; (void) sql; (void) n_params; (void) values; (void) cb; (void) userdata;
        PG_UNREACHABLE;
}
static inline int pg_async_process(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline int pg_async_flush(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline int pg_async_sync(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline bool pg_async_idle(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline unsigned pg_async_queued(Store *s, unsigned lane) { (void) s; (void) lane; PG_UNREACHABLE; }
static inline void pg_async_run_deferred(Store *s) { (void) s; PG_UNREACHABLE; }
static inline void pg_async_set_defer_hook(Store *s, void (*hook)(void *userdata), void *userdata) {
        (void) s; (void) hook; (void) userdata; PG_UNREACHABLE;
}
static inline int pg_result_rows(const StoreResult *res) { (void) res; PG_UNREACHABLE; }
static inline const char *pg_result_text(const StoreResult *res, int row, int col) {
        (void) res; (void) row; (void) col; PG_UNREACHABLE;
}
#endif
