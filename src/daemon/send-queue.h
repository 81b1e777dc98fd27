/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "outbox.h"
#include "send-request.h"

/*
 * Group commit of accepted sends. Send calls that arrive while the loop is busy queue up here; an
 * idle-priority event source commits all of them in one BEGIN IMMEDIATE transaction when the
 * loop has nothing more urgent to do (i.e. the bus has no further calls waiting), then answers
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

/* Takes over req (left zeroed); the reply to call goes out after the commit. */
int send_queue_add(SendQueue *q, sd_bus_message *call, const char *mesh_id, SendRequest *req);
