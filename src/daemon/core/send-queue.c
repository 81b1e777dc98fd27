/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "log.h"
#include "send-queue.h"

#define BATCH_MAX 256

typedef struct PendingSend {
        SendQueueDone done;
        void *userdata;
        char *mesh_id;
        SendRequest req;
} PendingSend;

struct SendQueue {
        sd_event_source *commit_source;
        Outbox *outbox;
        SendQueueCommitted committed;
        void *userdata;
        PendingSend items[BATCH_MAX];
        size_t n_items;
};

static void pending_send_done(PendingSend *p) {
        free(p->mesh_id);
        send_request_done(&p->req);
        *p = (PendingSend) { 0 };
}

/* Accepts the first n queued sends in one transaction; results[] and *n_results, *n_queued say
 * how far it got. The caller rolls back on failure. */
static int accept_batch(SendQueue *q, size_t n, usec_t now, OutboxAcceptResult results[static BATCH_MAX],
                        size_t *n_results, unsigned *n_queued) {
        int r;

        r = outbox_begin(q->outbox);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                PendingSend *p = &q->items[i];
                r = outbox_accept(q->outbox, p->req.client_message_id, p->req.fingerprint,
                                  &(OutboxEnvelope) {
                                          .mesh_id = p->mesh_id,
                                          .kind = p->req.destination.kind,
                                          .destination_ref = p->req.destination.ref,
                                          .target_spec = p->req.destination.target_spec,
                                          .priority = p->req.priority,
                                          .meta_json = p->req.meta_json,
                                          .reply_to = p->req.reply_to,
                                          .body = p->req.body,
                                          .body_size = p->req.body_size,
                                          .sender_pubkey = p->req.sender_pubkey,
                                  },
                                  now, &results[i]);
                if (r < 0)
                        return r;
                (*n_results)++;
                if (results[i].outcome == OUTBOX_ACCEPT_QUEUED)
                        (*n_queued)++;
        }
        return outbox_commit(q->outbox);
}

static int send_queue_flush(SendQueue *q) {
        OutboxAcceptResult results[BATCH_MAX];
        size_t n = q->n_items, n_results = 0;
        unsigned n_queued = 0;
        usec_t now = now_usec(CLOCK_REALTIME);
        int r;

        if (n == 0)
                return 0;
        q->n_items = 0;
        (void) sd_event_source_set_enabled(q->commit_source, SD_EVENT_OFF);

        r = accept_batch(q, n, now, results, &n_results, &n_queued);
        if (r < 0) {
                /* The whole batch is rolled back: nothing of it was stored. */
                outbox_rollback(q->outbox);
                n_queued = 0;
                log_error_errno(r, "Failed to commit %zu accepted send(s): %m", n);
                for (size_t i = 0; i < n; i++)
                        q->items[i].done(&q->items[i].req, NULL, r, q->items[i].userdata);
        } else {
                log_debug("Committed %zu accepted send(s) in one transaction, %u new", n, n_queued);
                for (size_t i = 0; i < n; i++)
                        q->items[i].done(&q->items[i].req, &results[i], 0, q->items[i].userdata);
        }
        for (size_t i = 0; i < n_results; i++)
                outbox_accept_result_done(&results[i]);
        for (size_t i = 0; i < n; i++)
                pending_send_done(&q->items[i]);
        if (n_queued > 0 && q->committed)
                q->committed(q->userdata, n_queued);
        return 0;
}

static int on_commit(sd_event_source *s, void *userdata) {
        return send_queue_flush(userdata);
}

int send_queue_new(sd_event *event, Outbox *outbox, SendQueueCommitted committed, void *userdata,
                   SendQueue **ret) {
        _cleanup_(send_queue_freep) SendQueue *q = NULL;
        int r;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        q->outbox = outbox;
        q->committed = committed;
        q->userdata = userdata;
        r = sd_event_add_defer(event, &q->commit_source, on_commit, q);
        if (r < 0)
                return r;
        /* Idle priority: runs only when no bus call is waiting, so a burst lands in one batch. */
        r = sd_event_source_set_priority(q->commit_source, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(q->commit_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(q);
        return 0;
}

SendQueue *send_queue_free(SendQueue *q) {
        if (!q)
                return NULL;
        /* Calls still queued never reach the disk: answer them rather than leave callers hanging. */
        send_queue_flush(q);
        sd_event_source_disable_unref(q->commit_source);
        free(q);
        return NULL;
}

int send_queue_add(SendQueue *q, const char *mesh_id, SendRequest *req, SendQueueDone done, void *userdata) {
        PendingSend *p = &q->items[q->n_items];
        int r;

        assert(q);

        /* Everything that can fail comes first: once queued, done must run. */
        p->mesh_id = strdup(mesh_id);
        if (!p->mesh_id)
                return -ENOMEM;
        r = sd_event_source_set_enabled(q->commit_source, SD_EVENT_ONESHOT);
        if (r < 0) {
                p->mesh_id = mfree(p->mesh_id);
                return r;
        }
        p->done = done;
        p->userdata = userdata;
        p->req = *req;
        *req = (SendRequest) { 0 };
        q->n_items++;

        if (q->n_items == BATCH_MAX)
                return send_queue_flush(q);
        return 0;
}
