/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "caller.h"
#include "cm-error.h"
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
        const char *sender_pubkey; /* a session's key to send as (it must be registered); NULL: the member */
        SendOptions options;
} SendCall;

/* Either res is the duplicate table's answer, on disk (result 0), or nothing was stored: result
 * < 0, with error set when the user can act on it (polkit refused, the commit failed). */
typedef void (*ManagerSendDone)(const SendRequest *req, const OutboxAcceptResult *res, int result,
                                const CmError *error, void *userdata);

/* < 0: refused before anything was queued, error says why; done never runs. 0: done runs
 * exactly once, later. */
int manager_send(Manager *m, const SendCall *call, ManagerSendDone done, void *userdata, CmError *error);
