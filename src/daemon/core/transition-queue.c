/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "transition-queue.h"

#define RETRY_MIN_USEC (500 * USEC_PER_MSEC)
#define RETRY_MAX_USEC (30 * USEC_PER_SEC)

typedef struct Kept {
        TransitionKind kind;
        char *mesh_id;
        char *row_id;
        char *client_message_id;
        char *detail;
        usec_t at;
} Kept;

struct TransitionQueue {
        sd_event *event;
        Outbox *outbox;
        TransitionLanded landed;
        StoreRecovered recovered;
        void *userdata;
        Kept *kept;
        size_t n_kept;
        unsigned failures;  /* retry rounds since the store last worked */
        bool store_failed;  /* something outside the queue waits for the store */
        bool flushing;
        sd_event_source *timer;
};

static void kept_done(Kept *k) {
        free(k->mesh_id);
        free(k->row_id);
        free(k->client_message_id);
        free(k->detail);
        *k = (Kept) { 0 };
}

static Transition kept_view(const Kept *k) {
        return (Transition) {
                .kind = k->kind,
                .mesh_id = k->mesh_id,
                .row_id = k->row_id,
                .client_message_id = k->client_message_id,
                .detail = k->detail,
                .at = k->at,
        };
}

static int store_transition(Outbox *o, const Transition *t) {
        switch (t->kind) {
        case TRANSITION_DONE:
                return outbox_mark_done(o, t->row_id, t->detail, t->at);
        case TRANSITION_RETRY:
                return outbox_mark_retry(o, t->row_id, t->detail, t->at);
        case TRANSITION_DEAD:
                return outbox_mark_dead(o, t->row_id, t->detail);
        default:
                return -EINVAL;
        }
}

/* -ESTALE and -ENOENT are about the row, -EINVAL about the caller; anything else is the store. */
static bool is_store_failure(int r) {
        return r < 0 && r != -ESTALE && r != -ENOENT && r != -EINVAL;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void arm(TransitionQueue *q) {
        usec_t delay = RETRY_MIN_USEC;

        for (unsigned i = 0; i < q->failures && delay < RETRY_MAX_USEC; i++)
                delay *= 2;
        if (delay > RETRY_MAX_USEC)
                delay = RETRY_MAX_USEC;
        q->failures++;
        if (!q->timer) {
                if (sd_event_add_time_relative(q->event, &q->timer, CLOCK_MONOTONIC, delay, 0, on_timer, q) < 0) {
                        log_error("Cannot arm the outbox retry timer; kept transitions wait for the next store operation");
                        return;
                }
        } else
                (void) sd_event_source_set_time_relative(q->timer, delay);
        (void) sd_event_source_set_enabled(q->timer, SD_EVENT_ONESHOT);
}

/* The timer runs exactly while failures > 0: a new failure meanwhile does not push it out. */
static void ensure_armed(TransitionQueue *q) {
        if (q->failures == 0)
                arm(q);
}

/* Applies every kept transition in order; stops at the first store failure. Returns whether the
 * store worked for all of them. */
static bool flush(TransitionQueue *q) {
        size_t done = 0;
        bool ok = true;

        if (q->flushing)
                return true;
        q->flushing = true;
        for (; done < q->n_kept; done++) {
                Kept *k = &q->kept[done];
                Transition t = kept_view(k);
                int r = store_transition(q->outbox, &t);

                if (is_store_failure(r)) {
                        ok = false;
                        break;
                }
                if (r >= 0) {
                        log_info("%s: the delayed %s of %s is stored now", outbox_path(q->outbox),
                                 t.kind == TRANSITION_DONE ? "delivery" : t.kind == TRANSITION_DEAD ? "failure" : "retry",
                                 t.client_message_id);
                        q->landed(&t, q->userdata);
                }
                kept_done(k);
        }
        memmove(q->kept, q->kept + done, (q->n_kept - done) * sizeof(Kept));
        q->n_kept -= done;
        q->flushing = false;
        return ok;
}

static void store_worked(TransitionQueue *q) {
        bool waited = q->store_failed || q->failures > 0;

        q->failures = 0;
        q->store_failed = false;
        (void) sd_event_source_set_enabled(q->timer, SD_EVENT_OFF);
        if (waited)
                q->recovered(q->userdata);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        TransitionQueue *q = userdata;

        if (!flush(q)) {
                arm(q);
                return 0;
        }
        store_worked(q);
        return 0;
}

int transition_queue_new(sd_event *event, Outbox *outbox, TransitionLanded landed, StoreRecovered recovered,
                         void *userdata, TransitionQueue **ret) {
        TransitionQueue *q;

        if (!event || !outbox || !landed || !recovered || !ret)
                return -EINVAL;
        q = calloc(1, sizeof *q);
        if (!q)
                return -ENOMEM;
        *q = (TransitionQueue) {
                .event = event,
                .outbox = outbox,
                .landed = landed,
                .recovered = recovered,
                .userdata = userdata,
        };
        *ret = q;
        return 0;
}

TransitionQueue *transition_queue_free(TransitionQueue *q) {
        if (!q)
                return NULL;
        /* What is still kept is lost with the process, as a crash would lose it: the rows are
         * inflight on disk, and recovery at the next start sends them again. */
        if (q->n_kept > 0)
                log_warning("%s: %zu status change(s) could not be stored; they are redone at the next start",
                            outbox_path(q->outbox), q->n_kept);
        for (size_t i = 0; i < q->n_kept; i++)
                kept_done(&q->kept[i]);
        free(q->kept);
        sd_event_source_disable_unref(q->timer);
        free(q);
        return NULL;
}

static int keep(TransitionQueue *q, const Transition *t) {
        Kept k = { .kind = t->kind, .at = t->at }, *grown;
        size_t i;

        k.mesh_id = strdup(t->mesh_id);
        k.row_id = strdup(t->row_id);
        k.client_message_id = strdup(t->client_message_id);
        k.detail = t->detail ? strdup(t->detail) : NULL;
        if (!k.mesh_id || !k.row_id || !k.client_message_id || (t->detail && !k.detail)) {
                kept_done(&k);
                return -ENOMEM;
        }
        for (i = 0; i < q->n_kept; i++)
                if (streq(q->kept[i].row_id, t->row_id))
                        break;
        if (i < q->n_kept) {
                /* The newer outcome of the same row wins. */
                kept_done(&q->kept[i]);
                q->kept[i] = k;
                return 0;
        }
        grown = reallocarray(q->kept, q->n_kept + 1, sizeof(Kept));
        if (!grown) {
                kept_done(&k);
                return -ENOMEM;
        }
        q->kept = grown;
        q->kept[q->n_kept++] = k;
        return 0;
}

int transition_queue_apply(TransitionQueue *q, const Transition *t) {
        int r;

        if (!q || !t || !t->mesh_id || !t->row_id || !t->client_message_id)
                return -EINVAL;
        /* Kept ones first: they are older, and a row's own kept transition must not land after this one. */
        if (q->n_kept > 0 && !flush(q)) {
                r = keep(q, t);
                if (r < 0)
                        return r;
                ensure_armed(q);
                return -EAGAIN;
        }
        r = store_transition(q->outbox, t);
        if (is_store_failure(r)) {
                log_warning_errno(r, "%s: cannot store the %s of %s (%m); keeping it and trying again",
                                  outbox_path(q->outbox),
                                  t->kind == TRANSITION_DONE ? "delivery" : t->kind == TRANSITION_DEAD ? "failure" : "retry",
                                  t->client_message_id);
                r = keep(q, t);
                if (r < 0)
                        return r;
                ensure_armed(q);
                return -EAGAIN;
        }
        if (r < 0)
                return r;
        q->landed(t, q->userdata);
        if (q->failures > 0 || q->store_failed)
                store_worked(q);
        return 0;
}

void transition_queue_store_failed(TransitionQueue *q) {
        if (!q)
                return;
        q->store_failed = true;
        ensure_armed(q);
}

void transition_queue_kick(TransitionQueue *q) {
        if (!q || (q->n_kept == 0 && !q->store_failed) || !flush(q))
                return;
        store_worked(q);
}

size_t transition_queue_size(const TransitionQueue *q) {
        return q ? q->n_kept : 0;
}

bool transition_queue_has(const TransitionQueue *q, const char *row_id) {
        for (size_t i = 0; q && i < q->n_kept; i++)
                if (streq(q->kept[i].row_id, row_id))
                        return true;
        return false;
}
