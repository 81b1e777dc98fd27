/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

/* Lane 0 takes two statements or more per message (the lease and the client_ack, the
 * drains) where a pool lane takes one: under a flood it falls behind. Past lane0_high
 * entries owed (4,096) the clients are not read until it is back under a quarter of it, so
 * what waits stays bounded (a blocking call used to drain it, stopping the loop). */

bool pool_on(const Server *s) {
        return s->n_lanes > 0;
}

/* The outcome of statements already sent is unknown: stop before any more reply leaves. */
_Noreturn static void lane_lost(Server *s, unsigned lane) {
        log_error("The database connection was lost (lane %u: %s); exiting for a restart.", lane,
                  store_errmsg(s->store));
        _exit(EXIT_FAILURE);
}

static unsigned lane_of(const Server *s, const struct lws *wsi) {
        for (unsigned i = 0; i < s->n_lanes; i++)
                if (s->lane_wsi[i] == wsi)
                        return i;
        return UINT_MAX;
}

bool pool_owns(const Server *s, const struct lws *wsi) {
        return wsi && lane_of(s, wsi) != UINT_MAX;
}

static void want_write(Server *s, unsigned lane) {
        int r = store_async_flush(s->store, lane);

        if (r < 0)
                lane_lost(s, lane);
        if (r > 0)
                lws_callback_on_writable(s->lane_wsi[lane]);
}

int pool_readable(Server *s, struct lws *wsi) {
        unsigned lane = lane_of(s, wsi);

        if (store_async_process(s->store, lane) < 0)
                lane_lost(s, lane);
        /* What its callbacks queued on any lane is sent, and the throttle decided, by
         * pool_flush() at the end of the loop iteration. */
        return 0;
}

int pool_writeable(Server *s, struct lws *wsi) {
        want_write(s, lane_of(s, wsi));
        return 0;
}

void pool_wsi_destroyed(Server *s, struct lws *wsi) {
        unsigned lane = lane_of(s, wsi);

        if (lane == UINT_MAX)
                return;
        s->lane_wsi[lane] = NULL;
        if (!s->shutting_down)
                lane_lost(s, lane);
}

unsigned pool_lane_for(const Server *s, const char *member_id) {
        /* FNV-1a: any stable spread will do. */
        uint32_t h = 2166136261u;

        for (const char *p = member_id; *p; p++)
                h = (h ^ (uint8_t) *p) * 16777619u;
        return 1 + h % (s->n_lanes - 1);
}

int pool_submit(Server *s, unsigned lane, const char *sql, unsigned n_params, const char *const *values,
                StoreAsyncCallback cb, void *userdata) {
        assert(pool_on(s));
        assert(lane < s->n_lanes);
        if (lane == 0)
                server_commit_batch(s);
        return store_async(s->store, lane, sql, n_params, values, cb, userdata);
}

void pool_flush(Server *s) {
        for (unsigned lane = 0; lane < s->n_lanes; lane++) {
                if (store_async_sync(s->store, lane) < 0)
                        lane_lost(s, lane);
                want_write(s, lane);
        }
        if (!pool_on(s))
                return;
        /* Decided here, once per loop iteration, whatever emptied lane 0: its results, or a
         * blocking call that ran it to its end. */
        unsigned owed = store_async_queued(s->store, 0);
        if (!s->throttled && owed > s->opts.lane0_high)
                server_throttle(s, true);
        else if (s->throttled && owed < s->opts.lane0_high / 4)
                server_throttle(s, false);
}

static void run_deferred(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, pool_sul);

        store_async_run_deferred(s->store);
}

/* A blocking call on lane 0 finished statements whose callbacks wait: run them from the loop
 * at once, outside the handler that made the call. */
static void deferred(void *userdata) {
        Server *s = userdata;

        lws_sul_schedule(s->ctx, 0, &s->pool_sul, run_deferred, 0);
}

int pool_start(Server *s) {
        struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
        unsigned n;
        int r;

        if (store_engine(s->store) != STORE_POSTGRESQL)
                return 0;
        r = store_pool_open(s->store, s->opts.db_pool);
        if (r < 0)
                return r;
        n = store_lanes(s->store);
        store_async_set_defer_hook(s->store, deferred, s);
        for (unsigned i = 0; i < n; i++) {
                lws_sock_file_fd_type desc;

                /* lws closes what it adopts: it gets a duplicate, libpq keeps its own. */
                desc.filefd = fcntl(store_lane_fd(s->store, i), F_DUPFD_CLOEXEC, 3);
                if (desc.filefd < 0) {
                        r = -errno;
                        return log_error_errno(r, "Cannot duplicate a PostgreSQL descriptor: %m");
                }
                s->lane_wsi[i] = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, NULL, NULL) : NULL;
                if (!s->lane_wsi[i])
                        return log_error_errno(-ENOMEM, "Cannot add a PostgreSQL connection to the event loop.");
                s->n_lanes = i + 1;
        }
        log_info("PostgreSQL pool: %u connection%s for the hot path, beside the main one.", n - 1,
                 n - 1 == 1 ? "" : "s");
        return 0;
}

void pool_stop(Server *s) {
        if (!pool_on(s))
                return;
        /* Blocking, after the loop: every statement sent completes, with its callback. */
        for (unsigned lane = 0; lane < s->n_lanes; lane++) {
                (void) store_async_sync(s->store, lane);
                for (;;) {
                        int pending = store_async_flush(s->store, lane);
                        if (pending < 0 || store_async_process(s->store, lane) < 0)
                                break;
                        if (store_async_idle(s->store, lane))
                                break;
                        struct pollfd p = { .fd = store_lane_fd(s->store, lane),
                                            .events = POLLIN | (pending ? POLLOUT : 0) };
                        if (poll(&p, 1, 5000) <= 0)
                                break;
                }
        }
        lws_sul_cancel(&s->pool_sul);
        store_async_run_deferred(s->store);
}
