/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The retention job. Message rows (with their topic history, undelivered delivery rows and
 * mention index rows) older than message_retention_days are pruned, and the dedupe rows that
 * point at them are marked history_available = false; dedupe rows past expires_at are deleted.
 * The clock is a parameter, so tests (and `claudemesh-broker purge --now=`) inject it.
 */

#include <stdint.h>

#include "server.h"
#include "store.h"

typedef struct RetentionStats {
        int64_t messages_pruned;
        int64_t dedupe_marked;
        int64_t dedupe_purged;
} RetentionStats;

int retention_purge(Store *s, int64_t now, unsigned message_retention_days, RetentionStats *ret);

/* The same purge from the event loop on PostgreSQL: its statements go to the pool in one
 * transaction and nothing waits for them; the outcome is logged. */
int retention_purge_async(Server *s, int64_t now);
