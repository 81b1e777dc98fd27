/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The PostgreSQL hot path on the event loop. The store's lanes (store.h) become raw
 * descriptors of the lws loop: a readable lane completes the statements whose results
 * arrived, a lane with unsent bytes waits for writable. Sends (accept.c) go to the pool lane
 * of their sender's member, so one member's accepts keep their order and one connection
 * takes its rate-limit rows; client_acks and leases go to lane 0, whose session holds the
 * leases. Nothing here waits for the database.
 *
 * A lane whose connection is lost ends the process with status 1, as a failed commit does:
 * its statements' outcomes are unknown, and the clients retry against another node, where
 * the dedupe table answers what did commit.
 *
 * Without a pool (SQLite) the handlers take their blocking path.
 */

#include <stdbool.h>

#include "server.h"

int pool_start(Server *s);
/* At shutdown, after the last frame: waits for the statements in flight. */
void pool_stop(Server *s);

bool pool_on(const Server *s);

/* At the end of each loop iteration: what the iteration queued on each lane is sent, one
 * transaction per lane (a group commit, as the batch of the blocking calls). */
void pool_flush(Server *s);

bool pool_owns(const Server *s, const struct lws *wsi);
int pool_readable(Server *s, struct lws *wsi);
int pool_writeable(Server *s, struct lws *wsi);
void pool_wsi_destroyed(Server *s, struct lws *wsi);

/* The lane for a member's sends. */
unsigned pool_lane_for(const Server *s, const char *member_id);

/* Queues a statement on a lane (see store_async()). Lane 0 joins no transaction of the
 * blocking calls: an open batch is committed first. 0, or a negative errno and the callback
 * will not run. */
int pool_submit(Server *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
                StoreAsyncCallback cb, void *userdata);
