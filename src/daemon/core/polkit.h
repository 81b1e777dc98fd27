/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "caller.h"
#include "cm-error.h"
#include "time-util.h"

/*
 * Asynchronous polkit checks for methods called on the session bus, the systemd bus-polkit.c
 * way: the first call of polkit_verify_async() for a message sends CheckAuthorization to
 * org.freedesktop.PolicyKit1 on the system bus and returns 0; the method handler then returns 1
 * (the message stays parked, the loop keeps running). When polkit answers, the message is put
 * back into the read queue, the handler runs again, and this time polkit_verify_async() returns
 * the recorded answer at once.
 *
 * The subject is unix-process (pid, start time, uid) from the caller's session-bus credentials:
 * a system-bus-name subject would mean nothing to polkitd for a session-bus caller.
 *
 * polkit_check_async() is the same check for callers that are not bus messages (the /v1 socket,
 * whose caller comes from SO_PEERCRED): the answer goes to a callback instead.
 *
 * Without polkit (no system bus, or no polkitd on it) callers with the daemon's own uid get the
 * actions whose default is "yes"; everything else is refused with
 * org.claudemesh.Daemon1.Error.AuthorizationUnavailable.
 */

typedef struct PolkitRegistry PolkitRegistry;

typedef struct PolkitAction {
        const char *id;
        bool default_yes; /* allow_any=yes in the .policy file; otherwise auth_self_keep */
} PolkitAction;

#define POLKIT_ACTION_SEND           "org.claudemesh.daemon1.send"
#define POLKIT_ACTION_READ           "org.claudemesh.daemon1.read"
#define POLKIT_ACTION_MANAGE_OUTBOX  "org.claudemesh.daemon1.manage-outbox"
#define POLKIT_ACTION_SET_PROFILE    "org.claudemesh.daemon1.set-profile"
#define POLKIT_ACTION_RECONNECT      "org.claudemesh.daemon1.reconnect"
#define POLKIT_ACTION_RELOAD         "org.claudemesh.daemon1.reload"
#define POLKIT_ACTION_ACCEPT_HOST    "org.claudemesh.daemon1.accept-host"

/* Every action of polkit/org.claudemesh.daemon1.policy with its default (a test holds the two
 * together); NULL-terminated. */
extern const PolkitAction polkit_actions[];
const PolkitAction *polkit_action_find(const char *id);

int polkit_registry_new(sd_event *event, PolkitRegistry **ret);
PolkitRegistry *polkit_registry_free(PolkitRegistry *r);

/* 1: authorized, go on. 0: a query is under way, return 1 from the method handler.
 * < 0: not authorized or the check failed; error is set for the reply. */
int polkit_verify_async(PolkitRegistry *r, sd_bus_message *call, const char *action, CmError *error);

/* The caller of a bus message, as the polkit subject needs it (cached per unique name). */
int polkit_message_caller(PolkitRegistry *r, sd_bus_message *call, Caller *ret);

/* 1: authorized at once. < 0: refused at once (error set). 0: asked polkit; done runs later,
 * exactly once, with 1 or a negative result and the error (CM_ERR_TIMEOUT
 * when polkit did not answer within timeout; 0 for the usual 25 s), also with -ECANCELED when
 * the registry is freed first. */
typedef void (*PolkitDone)(int result, const CmError *error, void *userdata);
int polkit_check_async(PolkitRegistry *r, const Caller *caller, bool interactive, usec_t timeout,
                       const char *action, PolkitDone done, void *userdata, CmError *error);
