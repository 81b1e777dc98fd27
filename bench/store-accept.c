/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Accepted outbox rows per second, with 1, 8 and 100 accepts per transaction (group commit) at
 * synchronous=FULL and NORMAL, next to the floor measured in the same run: plain SQLite inserts
 * of one small row into a one-index table with the same batching and durability. Run by hand:
 *
 *   store-accept [DIRECTORY]   (default /var/tmp; use a disk, not tmpfs, or fsync costs nothing)
 */
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "outbox.h"
#include "store.h"
#include "time-util.h"

/* How long each configuration runs. */
#define RUN_USEC (1500 * USEC_PER_MSEC)

static char *db_path(const char *dir, const char *name, unsigned batch, bool full) {
        char *p;

        if (asprintf(&p, "%s/%s-%u-%s.db", dir, name, batch, full ? "full" : "normal") < 0)
                return NULL;
        return p;
}

static void remove_db(const char *path) {
        static const char *const suffixes[] = { "", "-wal", "-shm" };

        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s%s", path, suffixes[i]) >= 0)
                        (void) unlink(p);
        }
}

/* Plain SQLite: INSERT of a 32-byte BLOB, batch rows per BEGIN IMMEDIATE … COMMIT. */
static int floor_rate(const char *path, unsigned batch, bool full, double *ret) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *ins = NULL, *begin = NULL, *commit = NULL;
        uint8_t blob[32] = { 0 };
        usec_t start, now;
        unsigned long rows = 0;

        remove_db(path);
        if (sqlite3_open(path, &db) != SQLITE_OK ||
            sqlite3_exec(db, full ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; CREATE TABLE t (b BLOB)"
                                  : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE t (b BLOB)",
                         NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "INSERT INTO t (b) VALUES (?1)", -1, &ins, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
            sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK)
                return log_error_errno(-EIO, "%s: %s", path, sqlite3_errmsg(db));

        start = now_usec(CLOCK_MONOTONIC);
        do {
                if (sqlite3_step(begin) != SQLITE_DONE)
                        return log_error_errno(-EIO, "%s: %s", path, sqlite3_errmsg(db));
                sqlite3_reset(begin);
                for (unsigned i = 0; i < batch; i++, rows++) {
                        memcpy(blob, &rows, sizeof rows);
                        sqlite3_bind_blob(ins, 1, blob, sizeof blob, SQLITE_STATIC);
                        if (sqlite3_step(ins) != SQLITE_DONE)
                                return log_error_errno(-EIO, "%s: %s", path, sqlite3_errmsg(db));
                        sqlite3_reset(ins);
                }
                if (sqlite3_step(commit) != SQLITE_DONE)
                        return log_error_errno(-EIO, "%s: %s", path, sqlite3_errmsg(db));
                sqlite3_reset(commit);
                now = now_usec(CLOCK_MONOTONIC);
        } while (now - start < RUN_USEC);

        *ret = (double) rows * USEC_PER_SEC / (double) (now - start);
        return 0;
}

/* outbox_accept() of distinct ids (a real envelope, a random fingerprint), batch per commit. */
static int outbox_rate(const char *path, unsigned batch, bool full, double *ret) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        _cleanup_free_ char *error = NULL;
        OutboxEnvelope env = {
                .mesh_id = "mesh-bench",
                .kind = "dm",
                .destination_ref = "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2",
                .target_spec = "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2",
                .priority = "next",
                .meta_json = "{\"source\":\"bench\"}",
                .body = "a message of a typical size for a chat between two coding agents",
        };
        usec_t start, now;
        unsigned long rows = 0;
        int r;

        env.body_size = strlen(env.body);
        remove_db(path);
        r = outbox_open(path, full, &o, &error);
        if (r < 0)
                return log_error_errno(r, "%s", strna(error));

        start = now_usec(CLOCK_MONOTONIC);
        do {
                r = outbox_begin(o);
                if (r < 0)
                        return log_error_errno(r, "BEGIN failed: %s", STRERROR(r));
                for (unsigned i = 0; i < batch; i++, rows++) {
                        OutboxAcceptResult res;
                        uint8_t fp[32] = { 0 };
                        char cmid[32];

                        /* Distinct per row and free to make: the bus computes the real one. */
                        memcpy(fp, &rows, sizeof rows);
                        snprintf(cmid, sizeof cmid, "bench-%lu", rows);
                        r = outbox_accept(o, cmid, fp, &env, now_usec(CLOCK_REALTIME), &res);
                        if (r < 0 || res.outcome != OUTBOX_ACCEPT_QUEUED)
                                return log_error_errno(r < 0 ? r : -EIO, "Accept failed: %s", STRERROR(r));
                        outbox_accept_result_done(&res);
                }
                r = outbox_commit(o);
                if (r < 0)
                        return log_error_errno(r, "COMMIT failed: %s", STRERROR(r));
                now = now_usec(CLOCK_MONOTONIC);
        } while (now - start < RUN_USEC);

        *ret = (double) rows * USEC_PER_SEC / (double) (now - start);
        return 0;
}

int main(int argc, char *argv[]) {
        static const unsigned batches[] = { 1, 8, 100 };
        const char *dir = argc > 1 ? argv[1] : "/var/tmp";
        char tmpl[4096];
        double full100 = 0;

        log_setup();
        if (sodium_init() < 0)
                return EXIT_FAILURE;
        snprintf(tmpl, sizeof tmpl, "%s/store-accept.XXXXXX", dir);
        if (!mkdtemp(tmpl)) {
                fprintf(stderr, "mkdtemp %s: %s\n", tmpl, strerror(errno));
                return EXIT_FAILURE;
        }

        printf("Accepted rows/s in %s, %.1f s per figure; floor = plain SQLite INSERT, same batching\n\n",
               tmpl, (double) RUN_USEC / USEC_PER_SEC);
        printf("%-7s %6s %14s %14s %8s\n", "sync", "batch", "outbox rows/s", "floor rows/s", "ratio");
        for (unsigned f = 0; f < 2; f++) {
                bool full = f == 0;

                for (size_t b = 0; b < ELEMENTSOF(batches); b++) {
                        _cleanup_free_ char *fp = db_path(tmpl, "floor", batches[b], full),
                                            *op = db_path(tmpl, "outbox", batches[b], full);
                        double floor_r = 0, ours = 0;

                        if (!fp || !op || floor_rate(fp, batches[b], full, &floor_r) < 0 ||
                            outbox_rate(op, batches[b], full, &ours) < 0)
                                return EXIT_FAILURE;
                        remove_db(fp);
                        remove_db(op);
                        printf("%-7s %6u %14.0f %14.0f %7.2fx\n", full ? "FULL" : "NORMAL", batches[b], ours, floor_r,
                               ours / floor_r);
                        fflush(stdout);
                        if (full && batches[b] == 100)
                                full100 = ours;
                }
        }
        (void) rmdir(tmpl);

        printf("\nPERFORMANCE.md floors on the reference machine: FULL 1/txn ~9,600/s, FULL 100/txn ~360,000 rows/s,"
               " NORMAL 1/txn p50 7 us.\n");
        printf("Target: >= 10,000 accepted rows/s at FULL with 100 per transaction: %.0f/s (%.1fx the target).\n",
               full100, full100 / 10000);
        return EXIT_SUCCESS;
}
