/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Idempotent send budget (followup 2). Each member has `limit` sends per fixed window. A send
 * with a client_message_id spends budget at most once per window: the key
 * (mesh, member, client_message_id, window bucket) records that it already paid, so two requests with
 * one id in one window cost one unit even when both miss the dedupe fast path (for example
 * when the first was rejected after paying). No refunds. State is in TEMP tables: a broker
 * restart starts every budget afresh, which errs on the side of letting clients through.
 */

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

int ratelimit_init(Store *s);

/* 1 = allowed, 0 = denied with *ret_retry_after_ms until the window turns; negative errno on
 * database failure. limit 0 means no limit. */
int ratelimit_consume(Store *s, unsigned limit, unsigned window_sec, const char *mesh_id, const char *member_id,
                      const char *client_message_id, int64_t now, int64_t *ret_retry_after_ms);
