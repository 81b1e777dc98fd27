/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"
#include "retention.h"

#define MS_PER_DAY (24 * 3600 * 1000LL)

static int run(Store *s, const char *sql, int64_t arg, int64_t *ret_changes) {
        StoreStmt *st = store_stmt(s, sql);
        int r;

        if (!st)
                return -EIO;
        store_bind_int64(st, 1, arg);
        r = store_step_done(s, st);
        if (r >= 0 && ret_changes)
                *ret_changes = store_changes(s);
        return r;
}

int retention_purge(Store *s, int64_t now, unsigned message_retention_days, RetentionStats *ret) {
        int64_t cutoff = now - (int64_t) message_retention_days * MS_PER_DAY;
        RetentionStats stats = { .messages_pruned = 0 };
        int r;

        r = store_begin(s);
        if (r < 0)
                return r;

        /* In this order: marked first, by the message ids about to go (NULL-cmid messages have no
         * dedupe row), then what refers to a message, then the messages, then expired ids. */
        const struct {
                const char *sql;
                int64_t arg;
                int64_t *changes;
        } steps[] = {
                { "UPDATE client_message_dedupe SET history_available = 0"
                  " WHERE history_available = 1 AND broker_message_id IN"
                  "  (SELECT id FROM message WHERE created_at < ?1 AND client_message_id IS NOT NULL)",
                  cutoff, &stats.dedupe_marked },
                { "DELETE FROM delivery WHERE message_id IN (SELECT id FROM message WHERE created_at < ?1)",
                  cutoff, NULL },
                { "DELETE FROM topic_message WHERE created_at < ?1", cutoff, NULL },
                { "DELETE FROM mention_index WHERE created_at < ?1", cutoff, NULL },
                { "DELETE FROM message WHERE created_at < ?1", cutoff, &stats.messages_pruned },
                { "DELETE FROM client_message_dedupe WHERE expires_at IS NOT NULL AND expires_at < ?1",
                  now, &stats.dedupe_purged },
        };
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                r = run(s, steps[i].sql, steps[i].arg, steps[i].changes);
                if (r < 0) {
                        store_rollback(s);
                        return log_error_errno(r, "Retention purge failed: %m");
                }
        }
        r = store_commit(s);
        if (r < 0)
                return log_error_errno(r, "Retention purge could not commit: %m");

        if (stats.messages_pruned || stats.dedupe_marked || stats.dedupe_purged)
                log_info("Retention: pruned %lld messages, marked %lld dedupe rows without history, purged %lld "
                         "expired dedupe rows.", (long long) stats.messages_pruned,
                         (long long) stats.dedupe_marked, (long long) stats.dedupe_purged);
        if (ret)
                *ret = stats;
        return 0;
}
