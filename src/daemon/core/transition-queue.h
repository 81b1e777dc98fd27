/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "macro.h"
#include "outbox.h"
#include "time-util.h"

/*
 * The drain's status transitions, kept until they are on disk. A transition the store cannot
 * take (ENOSPC, I/O error, a lock held too long) is not forgotten: the row would stay inflight
 * (OutboxDepth never back to 0) until a restart. It is kept in memory and applied again, on a
 * timer with backoff (500 ms doubling to 30 s) and at once after the next store operation that
 * worked. Its signal (Delivered, SendFailed) goes out when it lands.
 */

typedef enum TransitionKind {
        TRANSITION_DONE,  /* inflight → done */
        TRANSITION_RETRY, /* inflight → pending */
        TRANSITION_DEAD,  /* pending|inflight → dead */
        _TRANSITION_KIND_MAX,
} TransitionKind;

typedef struct Transition {
        TransitionKind kind;
        const char *mesh_id;
        const char *row_id;
        const char *client_message_id;
        const char *detail; /* DONE: the broker message id; RETRY, DEAD: the error */
        usec_t at;          /* DONE: delivered_at; RETRY: next_attempt_at (CLOCK_REALTIME) */
} Transition;

typedef struct TransitionQueue TransitionQueue;

/* landed: a transition is on disk (at once or after retries). recovered: the store worked again
 * after a failure, so whatever waited for it (the drain) can go on. */
typedef void (*TransitionLanded)(const Transition *t, void *userdata);
typedef void (*StoreRecovered)(void *userdata);

int transition_queue_new(sd_event *event, Outbox *outbox, TransitionLanded landed, StoreRecovered recovered,
                         void *userdata, TransitionQueue **ret);
TransitionQueue *transition_queue_free(TransitionQueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(TransitionQueue *, transition_queue_free);

/* 0: on disk, landed ran. -ESTALE/-ENOENT: the row moved on meanwhile (requeued, say): nothing to
 * do. -EAGAIN: the store failed; t is kept (replacing any kept one of the same row) and landed
 * runs when it is applied. -ENOMEM. */
int transition_queue_apply(TransitionQueue *q, const Transition *t);
/* The store failed on something not kept here (marking a row inflight): retry on the timer,
 * then call recovered. */
void transition_queue_store_failed(TransitionQueue *q);
/* A store operation worked: apply what is kept now. */
void transition_queue_kick(TransitionQueue *q);
size_t transition_queue_size(const TransitionQueue *q);
/* Whether a transition of row_id is kept (the drain leaves such a row alone). */
bool transition_queue_has(const TransitionQueue *q, const char *row_id);
