/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-event.h>
#include <sys/types.h>

#include "macro.h"

/*
 * One claudemesh-worker child, started the way dbus-broker-launch starts its broker: a
 * SOCK_SEQPACKET socketpair, fork, PR_SET_PDEATHSIG, only the channel passed (as fd 3), execve of
 * the installed binary; watched with sd_event_add_child. Packets from the worker go to
 * on_packet; when it exits (or the channel breaks and it is killed), on_exit runs once and the
 * WorkerProcess is dead: free it later (not from inside a handler) and start a new one.
 */

typedef struct WorkerProcess WorkerProcess;

typedef struct WorkerHandlers {
        void (*on_packet)(void *userdata, json_object *packet);
        void (*on_exit)(void *userdata, const char *how);
} WorkerHandlers;

/* The worker binary: $CLAUDEMESH_WORKER when set (tests), else LIBEXECDIR/claudemesh-worker. */
const char *worker_binary_path(void);

int worker_process_start(sd_event *event, const WorkerHandlers *handlers, void *userdata, WorkerProcess **ret);
/* Asks the worker to stop (SIGTERM) and forgets it; the child is reaped by sd-event. */
WorkerProcess *worker_process_free(WorkerProcess *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(WorkerProcess *, worker_process_free);

int worker_process_send(WorkerProcess *w, json_object *packet);
pid_t worker_process_pid(const WorkerProcess *w);
