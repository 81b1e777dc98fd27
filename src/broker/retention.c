/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "pool.h"
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

/* The steps, in this order: marked first, by the message ids about to go (NULL-cmid messages
 * have no dedupe row), then what refers to a message, then the messages, then expired ids.
 * ?1 is the cutoff, or now for the last. The async form counts through its RETURNING. */
typedef struct Step {
        const char *sql;
        const char *sql_async;
        bool at_now;
        size_t stat;                     /* offset in RetentionStats, or SIZE_MAX */
} Step;

#define NO_STAT SIZE_MAX

static const Step steps[] = {
        { "UPDATE client_message_dedupe SET history_available = 0"
          " WHERE history_available = 1 AND broker_message_id IN"
          "  (SELECT id FROM message WHERE created_at < ?1 AND client_message_id IS NOT NULL)",
          "WITH x AS (UPDATE client_message_dedupe SET history_available = 0"
          " WHERE history_available = 1 AND broker_message_id IN"
          "  (SELECT id FROM message WHERE created_at < ?1 AND client_message_id IS NOT NULL) RETURNING 1)"
          " SELECT count(*) FROM x",
          false, offsetof(RetentionStats, dedupe_marked) },
        { "DELETE FROM delivery WHERE message_id IN (SELECT id FROM message WHERE created_at < ?1)", NULL,
          false, NO_STAT },
        { "DELETE FROM topic_message WHERE created_at < ?1", NULL, false, NO_STAT },
        { "DELETE FROM mention_index WHERE created_at < ?1", NULL, false, NO_STAT },
        { "DELETE FROM message WHERE created_at < ?1",
          "WITH x AS (DELETE FROM message WHERE created_at < ?1 RETURNING 1) SELECT count(*) FROM x",
          false, offsetof(RetentionStats, messages_pruned) },
        { "DELETE FROM client_message_dedupe WHERE expires_at IS NOT NULL AND expires_at < ?1",
          "WITH x AS (DELETE FROM client_message_dedupe WHERE expires_at IS NOT NULL AND expires_at < ?1"
          " RETURNING 1) SELECT count(*) FROM x",
          true, offsetof(RetentionStats, dedupe_purged) },
};

static void log_stats(const RetentionStats *stats) {
        if (stats->messages_pruned || stats->dedupe_marked || stats->dedupe_purged)
                log_info("Retention: pruned %lld messages, marked %lld dedupe rows without history, purged %lld "
                         "expired dedupe rows.", (long long) stats->messages_pruned,
                         (long long) stats->dedupe_marked, (long long) stats->dedupe_purged);
}

int retention_purge(Store *s, int64_t now, unsigned message_retention_days, RetentionStats *ret) {
        int64_t cutoff = now - (int64_t) message_retention_days * MS_PER_DAY;
        RetentionStats stats = { .messages_pruned = 0 };
        int r;

        r = store_begin(s);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                int64_t *changes = steps[i].stat == NO_STAT ? NULL : (int64_t *) ((char *) &stats + steps[i].stat);
                r = run(s, steps[i].sql, steps[i].at_now ? now : cutoff, changes);
                if (r < 0) {
                        store_rollback(s);
                        return log_error_errno(r, "Retention purge failed: %m");
                }
        }
        r = store_commit(s);
        if (r < 0)
                return log_error_errno(r, "Retention purge could not commit: %m");
        log_stats(&stats);
        if (ret)
                *ret = stats;
        return 0;
}

/* One purge in flight: its steps' callbacks fill stats, the last logs them. */
typedef struct Purge {
        RetentionStats stats;
        unsigned left;
        bool failed;
} Purge;

typedef struct PurgeStep {
        Purge *purge;
        size_t stat;
} PurgeStep;

static void purge_release(Purge *purge) {
        if (--purge->left > 0)
                return;
        if (purge->failed)
                log_warning("Retention purge failed; it is retried at the next interval.");
        else
                log_stats(&purge->stats);
        free(purge);
}

static void step_done(int r, StoreResult *res, void *userdata) {
        PurgeStep *p = userdata;
        Purge *purge = p->purge;

        if (r < 0)
                purge->failed = true;
        else if (p->stat != NO_STAT && store_result_rows(res) == 1)
                *(int64_t *) ((char *) &purge->stats + p->stat) = store_result_int64(res, 0, 0);
        free(p);
        purge_release(purge);
}

int retention_purge_async(Server *s, int64_t now) {
        int64_t cutoff = now - (int64_t) s->opts.message_retention_days * MS_PER_DAY;
        char cutoff_text[24], now_text[24];
        Purge *purge = calloc(1, sizeof *purge);

        if (!purge)
                return -ENOMEM;
        snprintf(cutoff_text, sizeof cutoff_text, "%" PRId64, cutoff);
        snprintf(now_text, sizeof now_text, "%" PRId64, now);
        /* One transaction: the steps go in one group on lane 0, where a failing one fails
         * those after it. Each callback holds the purge until the last. */
        purge->left = 1;
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                PurgeStep *p = calloc(1, sizeof *p);
                const char *values[] = { steps[i].at_now ? now_text : cutoff_text };
                if (!p) {
                        purge->failed = true;
                        break;
                }
                *p = (PurgeStep) { .purge = purge, .stat = steps[i].stat };
                if (pool_submit(s, 0, steps[i].sql_async ? steps[i].sql_async : steps[i].sql, 1, values, step_done,
                                p) < 0) {
                        free(p);
                        purge->failed = true;
                        break;
                }
                purge->left++;
        }
        purge_release(purge);     /* the hold taken above */
        return 0;
}
