/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "caller.h"
#include "outbox.h"
#include "send-request.h"

typedef struct Manager Manager;

/*
 * Send as both surfaces call it, the bus method and POST /v1/send, so they cannot disagree: the
 * mesh (named, or the default one), validation (a refused request writes nothing and leaves its
 * id free), polkit's send action for the caller, then the group commit.
 */

typedef struct SendCall {
        const Caller *caller;
        bool interactive;        /* polkit may ask the user */
        usec_t polkit_timeout;   /* 0: polkit's usual; a client that gives up must not be answered later */
        const char *mesh;        /* slug or id; "" for the default mesh (manager_lookup_mesh) */
        const char *to;
        const char *message;
        SendOptions options;
} SendCall;

/* Exactly one of res (the duplicate table's answer, on disk) and error (polkit refused, or the
 * commit failed: nothing was stored) is set. */
typedef void (*ManagerSendDone)(const SendRequest *req, const OutboxAcceptResult *res, const sd_bus_error *error,
                                void *userdata);

/* < 0: refused before anything was queued, error says why; done never runs. 0: done runs
 * exactly once, later. */
int manager_send(Manager *m, const SendCall *call, ManagerSendDone done, void *userdata, sd_bus_error *error);
