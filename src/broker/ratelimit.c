/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ratelimit.h"

int ratelimit_init(Store *s) {
        /* PostgreSQL's schema holds them, shared by every node: a member's limit is one limit. */
        if (store_engine(s) == STORE_POSTGRESQL)
                return 0;
        return store_exec(s,
                          "CREATE TEMP TABLE rate_budget ("
                          "  mesh_id TEXT NOT NULL, member_id TEXT NOT NULL, bucket INTEGER NOT NULL,"
                          "  used INTEGER NOT NULL, PRIMARY KEY (mesh_id, member_id, bucket)) WITHOUT ROWID;"
                          "CREATE TEMP TABLE rate_paid ("
                          "  mesh_id TEXT NOT NULL, member_id TEXT NOT NULL, client_message_id TEXT NOT NULL,"
                          "  bucket INTEGER NOT NULL,"
                          "  PRIMARY KEY (mesh_id, member_id, client_message_id, bucket)) WITHOUT ROWID;");
}

static int forget_old_buckets(Store *s, int64_t bucket) {
        StoreStmt *st = store_stmt(s, "DELETE FROM temp.rate_budget WHERE bucket < ?1");
        int r;

        if (!st)
                return -EIO;
        store_bind_int64(st, 1, bucket);
        r = store_step_done(s, st);
        if (r < 0)
                return r;
        st = store_stmt(s, "DELETE FROM temp.rate_paid WHERE bucket < ?1");
        if (!st)
                return -EIO;
        store_bind_int64(st, 1, bucket);
        return store_step_done(s, st);
}

int ratelimit_consume(Store *s, unsigned limit, unsigned window_sec, const char *mesh_id, const char *member_id,
                      const char *client_message_id, int64_t now, int64_t *ret_retry_after_ms) {
        int64_t window_ms = (int64_t) (window_sec ? window_sec : 1) * 1000;
        int64_t bucket = now / window_ms;
        StoreStmt *st;
        int r;

        if (limit == 0)
                return 1;

        if (client_message_id) {
                /* Scoped to the member like the dedupe, so no one rides on another's payment. */
                st = store_stmt(s, "SELECT 1 FROM temp.rate_paid WHERE mesh_id = ?1 AND client_message_id = ?2"
                                   " AND bucket = ?3 AND member_id = ?4");
                if (!st)
                        return -EIO;
                store_bind_text(st, 1, mesh_id);
                store_bind_text(st, 2, client_message_id);
                store_bind_int64(st, 3, bucket);
                store_bind_text(st, 4, member_id);
                bool paid = store_step(st) == STORE_ROW;
                store_reset(st);
                if (paid)
                        return 1;
        }

        st = store_stmt(s, "SELECT 1 FROM temp.rate_budget WHERE mesh_id = ?1 AND member_id = ?2 AND bucket = ?3");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, member_id);
        store_bind_int64(st, 3, bucket);
        bool window_known = store_step(st) == STORE_ROW;
        store_reset(st);
        if (!window_known) {
                /* First use of a new window: drop the older ones so the tables stay small. */
                r = forget_old_buckets(s, bucket);
                if (r < 0)
                        return r;
        }

        /* The check and the count in one statement: nodes sharing the table cannot both take
         * the last unit of a window. No row back means the window is spent. */
        st = store_stmt(s, "INSERT INTO temp.rate_budget (mesh_id, member_id, bucket, used) VALUES (?1, ?2, ?3, 1)"
                           " ON CONFLICT (mesh_id, member_id, bucket) DO UPDATE SET used = rate_budget.used + 1"
                           " WHERE rate_budget.used < ?4 RETURNING used");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, member_id);
        store_bind_int64(st, 3, bucket);
        store_bind_int64(st, 4, limit);
        r = store_step(st);
        store_reset(st);
        if (r < 0)
                return r;
        if (r == STORE_DONE) {
                if (ret_retry_after_ms)
                        *ret_retry_after_ms = (bucket + 1) * window_ms - now;
                return 0;
        }

        if (client_message_id) {
                st = store_stmt(s, "INSERT INTO temp.rate_paid (mesh_id, client_message_id, bucket, member_id)"
                                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
                if (!st)
                        return -EIO;
                store_bind_text(st, 1, mesh_id);
                store_bind_text(st, 2, client_message_id);
                store_bind_int64(st, 3, bucket);
                store_bind_text(st, 4, member_id);
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }
        return 1;
}
