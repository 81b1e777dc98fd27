/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "outbox.h"
#include "send-request.h"

/*
 * Group commit of accepted sends. Send calls that arrive while the loop is busy queue up here; an
 * idle-priority event source commits all of them in one BEGIN IMMEDIATE transaction when the
 * loop has nothing more urgent to do (i.e. the bus has no further calls waiting), then tells
 * each caller. No caller hears "queued" before its row is on disk. A full batch commits at once,
 * so latency stays bounded under a flood.
 */

typedef struct SendQueue SendQueue;

/* Called after each committed batch with the number of new rows, e.g. to wake the drain. */
typedef void (*SendQueueCommitted)(void *userdata, unsigned n_queued);

int send_queue_new(sd_event *event, Outbox *outbox, SendQueueCommitted committed, void *userdata,
                   SendQueue **ret);
SendQueue *send_queue_free(SendQueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(SendQueue *, send_queue_free);

/* After the commit: res is the duplicate table's answer for req; or res is NULL and error < 0
 * when the batch could not be stored (nothing of it was). */
typedef void (*SendQueueDone)(const SendRequest *req, const OutboxAcceptResult *res, int error, void *userdata);

/* Takes over req (left zeroed); done runs exactly once, after the commit (at once when this add
 * fills the batch, or when the queue is freed). */
int send_queue_add(SendQueue *q, const char *mesh_id, SendRequest *req, SendQueueDone done, void *userdata);
