/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error-message.h"
#include "log.h"
#include "store.h"

#define BUSY_TIMEOUT_MS 5000
#define FILE_MODE 0600

static bool page_cache_configured = false;

typedef struct CachedStmt {
        const char *sql; /* the caller's literal: the key */
        sqlite3_stmt *stmt;
} CachedStmt;

struct Store {
        sqlite3 *db;
        char *path;
        CachedStmt *cache;
        size_t n_cache;
};

int store_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        /* Another connection held the lock past busy_timeout: kept apart from -EBUSY, which the
         * callers use for "a transaction is already open" and "the row is in the wrong state". */
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -ETIMEDOUT;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_PERM:
        case SQLITE_CANTOPEN:
        case SQLITE_READONLY:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_MISUSE:
        case SQLITE_RANGE:
                return -EINVAL;
        default:
                return -EIO;
        }
}

int store_log_error(Store *s, int rc, const char *what) {
        assert(s);

        return log_error_errno(store_errno(rc), "%s: %s failed: %s", s->path, what, sqlite3_errmsg(s->db));
}

int store_bind(Store *s, sqlite3_stmt *st, const char *what, const char *types, ...) {
        va_list ap;
        int rc = SQLITE_OK;

        assert(s);
        assert(st);
        assert(what);
        assert(types);

        va_start(ap, types);
        for (int i = 0; types[i] && rc == SQLITE_OK; i++)
                switch (types[i]) {
                case 's':
                        rc = sqlite3_bind_text(st, i + 1, va_arg(ap, const char *), -1, SQLITE_STATIC);
                        break;
                case 'i':
                        rc = sqlite3_bind_int64(st, i + 1, (sqlite3_int64) va_arg(ap, int64_t));
                        break;
                default:
                        assert(!"store_bind: unknown type");
                        rc = SQLITE_MISUSE;
                }
        va_end(ap);
        if (rc == SQLITE_OK)
                return 0;
        _cleanup_free_ char *text = NULL;
        if (asprintf(&text, "binding %s", what) < 0)
                return store_log_error(s, rc, what);
        return store_log_error(s, rc, text);
}

sqlite3 *store_db(Store *s) {
        assert(s);

        return s->db;
}

const char *store_path(Store *s) {
        assert(s);

        return s->path;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_cache; i++)
                sqlite3_finalize(s->cache[i].stmt);
        free(s->cache);
        sqlite3_close(s->db);
        free(s->path);
        free(s);
        return NULL;
}

int store_stmt(Store *s, const char *sql, sqlite3_stmt **ret) {
        sqlite3_stmt *stmt;
        CachedStmt *c;
        int rc;

        assert(s);

        for (size_t i = 0; i < s->n_cache; i++)
                if (s->cache[i].sql == sql) {
                        *ret = s->cache[i].stmt;
                        return 0;
                }

        c = reallocarray(s->cache, s->n_cache + 1, sizeof *c);
        if (!c)
                return -ENOMEM;
        s->cache = c;
        rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
        if (rc != SQLITE_OK)
                return store_log_error(s, rc, "preparing a statement");
        s->cache[s->n_cache++] = (CachedStmt) { .sql = sql, .stmt = stmt };
        *ret = stmt;
        return 0;
}

int store_exec(Store *s, const char *sql) {
        char *err = NULL;
        int rc;

        assert(s);

        rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_error("%s: %s", s->path, err ? err : sqlite3_errstr(rc));
                sqlite3_free(err);
                return store_errno(rc);
        }
        return 0;
}

int store_run(Store *s, sqlite3_stmt *st, const char *what) {
        int rc;

        assert(s);
        assert(st);
        assert(what);

        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
                return store_log_error(s, rc, what);
        return sqlite3_changes(sqlite3_db_handle(st));
}

/* Runs one cached statement that returns no rows. */
static int step_simple(Store *s, const char *sql) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r;

        r = store_stmt(s, sql, &st);
        if (r < 0)
                return r;
        r = store_run(s, st, sql);
        return r < 0 ? r : 0;
}

bool store_in_transaction(Store *s) {
        assert(s);

        return !sqlite3_get_autocommit(s->db);
}

int store_begin(Store *s) {
        assert(s);

        if (store_in_transaction(s))
                return -EBUSY;
        return step_simple(s, "BEGIN IMMEDIATE");
}

int store_commit(Store *s) {
        int r;

        assert(s);

        r = step_simple(s, "COMMIT");
        if (r < 0)
                store_rollback(s);
        return r;
}

void store_rollback(Store *s) {
        assert(s);

        /* Some errors (SQLITE_FULL, IOERR, ...) already rolled the transaction back. */
        if (store_in_transaction(s))
                (void) step_simple(s, "ROLLBACK");
}

int store_atomic_begin(Store *s, bool *ret_own) {
        assert(s);

        *ret_own = !store_in_transaction(s);
        return *ret_own ? store_begin(s) : step_simple(s, "SAVEPOINT store_atomic");
}

int store_atomic_end(Store *s, bool own, int r) {
        assert(s);

        if (own) {
                if (r < 0) {
                        store_rollback(s);
                        return r;
                }
                return store_commit(s);
        }
        if (r < 0) {
                /* ROLLBACK TO keeps the savepoint open; RELEASE then pops it. */
                (void) step_simple(s, "ROLLBACK TO store_atomic");
                (void) step_simple(s, "RELEASE store_atomic");
                return r;
        }
        return step_simple(s, "RELEASE store_atomic");
}

/* SQLite gives -wal and -shm the mode of the database file, so creating that 0600 before SQLite
 * does covers all three. Files left with a wider mode by something else are narrowed. */
static int ensure_mode(const char *path, bool create) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (create ? O_CREAT : 0), FILE_MODE);
        if (fd < 0)
                return !create && errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((st.st_mode & 07777) != FILE_MODE) {
                log_warning("%s had mode %04o, setting it to %04o.", path, (unsigned) (st.st_mode & 07777),
                            (unsigned) FILE_MODE);
                if (fchmod(fd, FILE_MODE) < 0)
                        return negative_errno();
        }
        return 0;
}

static int ensure_modes(const char *path) {
        static const char *const suffixes[] = { "-wal", "-shm" };
        int r;

        r = ensure_mode(path, true);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s%s", path, suffixes[i]) < 0)
                        return -ENOMEM;
                r = ensure_mode(p, false);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int quick_check(Store *s, char **ret_error) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        int rc;

        rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const char *result = (const char *) sqlite3_column_text(st, 0);

                _cleanup_free_ char *what = NULL;

                if (result && streq(result, "ok"))
                        return 0;
                /* Its report spans lines ("*** in database main ***\nPage 22: ..."): keep one sentence. */
                what = strdup(strna(result));
                if (!what)
                        return -ENOMEM;
                for (char *p = what; *p; p++)
                        if (*p == '\n')
                                *p = ' ';
                return error_setf(ret_error, -EUCLEAN, "%s is damaged: PRAGMA quick_check says \"%s\".", s->path, what);
        }
        if (store_errno(rc) == -EUCLEAN)
                return error_setf(ret_error, -EUCLEAN, "%s is damaged or not an SQLite database (%s).", s->path,
                                  sqlite3_errmsg(s->db));
        return error_setf(ret_error, store_errno(rc), "Cannot read %s: %s.", s->path, sqlite3_errmsg(s->db));
}

static int read_user_version(Store *s, int *ret) {
        _cleanup_(store_stmt_resetp) sqlite3_stmt *st = NULL;
        int r, rc;

        r = store_stmt(s, "PRAGMA user_version", &st);
        if (r < 0)
                return r;
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW)
                return store_log_error(s, rc, "reading the schema version");
        *ret = sqlite3_column_int(st, 0);
        return 0;
}

/* The schema version, read in a write transaction that the caller ends. */
static int read_version_locked(Store *s, int *ret) {
        int r;

        r = store_begin(s);
        if (r < 0)
                return r;
        return read_user_version(s, ret);
}

/* One migration and its version bump in the open transaction, committed; rolled back when either
 * fails. */
static int migrate_step(Store *s, const char *migration, const char *bump) {
        int r;

        r = store_exec(s, migration);
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        r = store_exec(s, bump);
        if (r < 0) {
                store_rollback(s);
                return r;
        }
        return store_commit(s);
}

static int migrate(Store *s, const char *const *migrations, size_t n_migrations, char **ret_error) {
        /* A file created now passes through every step: that is no migration worth telling. */
        bool created = false;

        for (;;) {
                char bump[64];
                int version = 0, r;

                /* Read again under the write lock: another process may have migrated meanwhile. */
                r = read_version_locked(s, &version);
                if (r < 0) {
                        store_rollback(s);
                        return error_setf(ret_error, r, "Cannot read the schema version of %s: %s.", s->path,
                                          STRERROR(r));
                }
                if (version < 0 || (size_t) version > n_migrations) {
                        store_rollback(s);
                        return error_setf(ret_error, -EPROTO,
                                          "%s has schema version %d, but this claudemeshd knows only versions up to "
                                          "%zu; refusing to open it. Run a newer claudemeshd, or move the file aside.",
                                          s->path, version, n_migrations);
                }
                if ((size_t) version == n_migrations) {
                        store_rollback(s);
                        return 0;
                }

                if (version == 0)
                        created = true;
                snprintf(bump, sizeof bump, "PRAGMA user_version = %d", version + 1);
                r = migrate_step(s, migrations[version], bump);
                if (r < 0)
                        return error_setf(ret_error, r, "Cannot migrate %s from schema version %d to %d: %s.",
                                          s->path, version, version + 1, STRERROR(r));
                log_full_errno(created ? LOG_DEBUG : LOG_INFO, 0, "%s: migrated the schema from version %d to %d.",
                               s->path, version, version + 1);
        }
}

static int set_pragmas(Store *s, bool synchronous_full, char **ret_error) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
        const char *mode;
        int rc, r;

        rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        mode = rc == SQLITE_ROW ? (const char *) sqlite3_column_text(st, 0) : NULL;
        if (!mode || !streq(mode, "wal"))
                return error_setf(ret_error, rc == SQLITE_ROW ? -EIO : store_errno(rc),
                                  "Cannot switch %s to WAL journal mode: %s.", s->path,
                                  rc == SQLITE_ROW ? strna(mode) : sqlite3_errmsg(s->db));

        /* The page cache's bound, 128 KiB (SQLite's default is 2 MiB): the cache keeps every
         * page a request touched until it is full, so an idle daemon held what its busiest
         * moments read. Sends and receipts touch the right edge of each b-tree: over 500 DMs the
         * outbox missed the cache 26 times in 47,700 lookups at this size. */
#define SETTINGS "PRAGMA foreign_keys = ON; PRAGMA cache_size = -128; PRAGMA synchronous = "
        r = store_exec(s, synchronous_full ? SETTINGS "FULL" : SETTINGS "NORMAL");
#undef SETTINGS
        if (r < 0)
                return error_setf(ret_error, r, "Cannot configure %s: %s.", s->path, sqlite3_errmsg(s->db));
        return 0;
}

static int store_open_file(const char *path, bool synchronous_full, const char *const *migrations,
                           size_t n_migrations, Store **ret, char **ret_error) {
        _cleanup_(store_freep) Store *s = NULL;
        int r, rc;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->path = strdup(path);
        if (!s->path)
                return -ENOMEM;

        r = ensure_modes(path);
        if (r < 0)
                return error_setf(ret_error, r, "Cannot create %s with mode 0600: %s.", path, STRERROR(r));

        /* Without it each connection's page cache starts with one block of 20 pages (~88 KiB),
         * all touched and kept until the connection closes, where an idle store holds a few
         * pages: pages come from malloc one by one, and sqlite3_db_release_memory() frees them.
         * Only possible before SQLite initialises, at the first open. */
        if (!page_cache_configured) {
                rc = sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
                if (rc != SQLITE_OK)
                        log_debug("Cannot turn off SQLite's initial page cache block: %s", sqlite3_errstr(rc));
                page_cache_configured = true;
        }

        rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
                             NULL);
        if (rc != SQLITE_OK)
                return error_setf(ret_error, store_errno(rc), "Cannot open %s: %s.", path,
                                  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

        /* Until the file passed the check, closing must not checkpoint a WAL into it: a damaged
         * file is left exactly as it was found, for whoever repairs it. */
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *) NULL);
        r = quick_check(s, ret_error);
        if (r < 0)
                return r;
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *) NULL);

        r = set_pragmas(s, synchronous_full, ret_error);
        if (r < 0)
                return r;
        r = migrate(s, migrations, n_migrations, ret_error);
        if (r < 0)
                return r;
        /* quick_check read every page into the page cache, which keeps up to 2 MiB of them
         * for the life of the connection: the requests that follow need only a few. */
        (void) sqlite3_db_release_memory(s->db);

        *ret = TAKE_PTR(s);
        return 0;
}

static int fsync_dir_of(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = '\0';
        else if (slash)
                *slash = '\0';
        else
                strcpy(dir, ".");
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0)
                return negative_errno();
        return 0;
}

/* A new store is built as "<path>.new" and renamed into place once it holds its schema, so a
 * crash never leaves an empty file at path: an empty store file is always damage. */
static int store_create(const char *path, bool synchronous_full, const char *const *migrations,
                        size_t n_migrations, char **ret_error) {
        static const char *const suffixes[] = { "", "-wal", "-shm" };
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        Store *s = NULL;
        int r;

        if (asprintf(&tmp, "%s.new", path) < 0)
                return -ENOMEM;
        /* Left by a creation that crashed: it never held anything. */
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s%s", tmp, suffixes[i]) < 0)
                        return -ENOMEM;
                if (unlink(p) < 0 && errno != ENOENT) {
                        r = negative_errno();
                        return error_setf(ret_error, r, "Cannot remove %s: %s.", p, STRERROR(r));
                }
        }
        r = store_open_file(tmp, synchronous_full, migrations, n_migrations, &s, ret_error);
        if (r < 0)
                return r;
        /* Closing checkpoints the WAL into the file and removes it. */
        store_free(s);
        fd = open(tmp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        /* link(), not rename(): a file that appeared at path meanwhile is never replaced. */
        if (fd < 0 || fsync(fd) < 0 || (link(tmp, path) < 0 && errno != EEXIST)) {
                r = negative_errno();
                return error_setf(ret_error, r, "Cannot create %s: %s.", path, STRERROR(r));
        }
        (void) unlink(tmp);
        r = fsync_dir_of(path);
        if (r < 0)
                return error_setf(ret_error, r, "Cannot create %s: %s.", path, STRERROR(r));
        return 0;
}

int store_open(const char *path, bool synchronous_full, const char *const *migrations, size_t n_migrations,
               Store **ret, char **ret_error) {
        struct stat st;
        int r;

        if (n_migrations > INT_MAX - 1)
                return -EINVAL;
        if (lstat(path, &st) < 0) {
                if (errno != ENOENT) {
                        r = negative_errno();
                        return error_setf(ret_error, r, "Cannot open %s: %s.", path, STRERROR(r));
                }
                r = store_create(path, synchronous_full, migrations, n_migrations, ret_error);
                if (r < 0)
                        return r;
        } else if (S_ISREG(st.st_mode) && st.st_size == 0)
                return error_setf(ret_error, -EUCLEAN, "%s is empty (0 bytes): whatever it held is gone, "
                                  "truncated by a crash or a full disk.", path);
        return store_open_file(path, synchronous_full, migrations, n_migrations, ret, ret_error);
}
