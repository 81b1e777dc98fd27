/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A connection's memory: its timers, queues and buffers, and freeing it once libuv is done
 * with the timers. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "worker.h"

#define TIMERS(c) { &(c)->retry_timer, &(c)->ping_timer, &(c)->liveness_timer, &(c)->hello_timer }

int conn_new(Worker *w, unsigned id, SessionConfig *session, Conn **ret) {
        _cleanup_free_ Conn *c = NULL;

        assert(w);
        assert(id <= WORKER_SESSIONS_MAX);
        assert(!w->conns[id]);
        assert(ret);

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->worker = w;
        c->id = id;
        if (id > 0)
                snprintf(c->label, sizeof c->label, "conn %u: ", id);

        uv_timer_t *timers[] = TIMERS(c);
        for (size_t i = 0; i < ELEMENTSOF(timers); i++) {
                int r = uv_timer_init(&w->loop, timers[i]);
                /* Cannot fail on Linux (it only fills the struct); if it did, nothing is registered. */
                if (r < 0)
                        return log_error_errno(-ENOMEM, "uv_timer_init failed: %s", uv_strerror(r));
                timers[i]->data = c;
        }
        /* Owned from here on. */
        c->session = session;
        c->open_timers = ELEMENTSOF(timers);
        w->conns[id] = c;
        *ret = TAKE_PTR(c);
        return 0;
}

static void conn_destroy(Conn *c) {
        (void) outbound_drop(c);
        strv_free(c->addrs);
        free(c->rx);
        session_config_free(c->session);
        free(c);
}

static void on_timer_closed(uv_handle_t *h) {
        Conn *c = h->data;

        assert(c->open_timers > 0);
        if (--c->open_timers == 0 && c->released)
                conn_destroy(c);
}

/* Its socket is gone and nothing refers to it any more: freed once its timers are closed. */
void conn_release(Conn *c) {
        uv_timer_t *timers[] = TIMERS(c);

        assert(!c->wsi);
        c->released = true;
        for (size_t i = 0; i < ELEMENTSOF(timers); i++)
                if (!uv_is_closing((uv_handle_t *) timers[i]))
                        uv_close((uv_handle_t *) timers[i], on_timer_closed);
}

void conn_state(Conn *c, const char *state, const char *detail, int64_t retry_in_ms, int close_code) {
        worker_send_state(c->worker, c->id, state, detail, retry_in_ms, close_code);
}

Conn *worker_find_sign_request(Worker *w, const char *request_id) {
        for (size_t i = 0; i < ELEMENTSOF(w->conns); i++)
                if (w->conns[i] && w->conns[i]->sign_request_id[0] && streq(w->conns[i]->sign_request_id, request_id))
                        return w->conns[i];
        return NULL;
}
