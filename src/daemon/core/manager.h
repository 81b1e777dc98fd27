/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cm-error.h"
#include "event.h"
#include "host-fingerprint.h"
#include "keypair-archive.h"
#include "mesh-config.h"
#include "inbox.h"
#include "mesh.h"
#include "outbox.h"
#include "polkit.h"
#include "send-queue.h"
#include "session.h"
#include "transition-queue.h"

#define DAEMON_BUS_NAME    "org.claudemesh.Daemon1"
#define DAEMON_OBJECT_PATH "/org/claudemesh/Daemon1"
#define DAEMON_INTERFACE   "org.claudemesh.Daemon1"
#define MESH_INTERFACE     "org.claudemesh.Mesh1"
#define SESSION_INTERFACE  "org.claudemesh.Session1"

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        PolkitRegistry *polkit;
        sd_event_source *config_watch;
        sd_event_source *config_parent_watch; /* sees the config folder created or replaced */

        char *config_path;
        char *config_dir;
        char *state_dir;
        const char *host_root;     /* "/" except in tests of the derivation itself */

        MeshConfig *config;        /* the last config that parsed; meshes point into it */
        char *config_error;        /* "" when config.json is fine */

        Mesh **meshes;             /* only entries with a usable slug get an object */
        size_t n_meshes;

        HostIdentity host;
        HostFingerprintState host_state;
        char *host_reason;         /* why it is a mismatch, else NULL */

        KeypairArchive *archive;

        bool synchronous_full;     /* SQLite synchronous=FULL (default) or NORMAL */
        bool offline;              /* --offline: meshes stay attached, no broker links */
        Outbox *outbox;            /* NULL when it could not be opened: outbox_error says why */
        char *outbox_error;
        Inbox *inbox;
        char *inbox_error;
        SendQueue *send_queue;
        TransitionQueue *transitions; /* drain status changes the store has not taken yet */
        sd_event_source *expire_timer;
        sd_event_source *drain_timer;

        char *status;              /* the STATUS= text, also the Status property */

        Session **sessions;        /* registered agent processes (session.h), at most SESSIONS_MAX */
        size_t n_sessions;

        EventSubscriber subscribers[EVENT_SUBSCRIBERS_MAX]; /* the front-ends (event.h) */
        size_t n_subscribers;
} Manager;

int manager_new(Manager **ret);
/* Stops the links and answers every waiting caller (through the front-ends, which must still be
 * there); manager_free() does it too. */
void manager_shutdown(Manager *m);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

/* The core before the front-ends: state dir, host check, key archive, stores, config. */
int manager_startup(Manager *m);
/* After the front-ends subscribed (event.h): the broker links, and the stored messages no one was
 * told of yet. */
void manager_start(Manager *m);

/* Re-reads config.json; a file that does not parse keeps the meshes as they are. ConfigInvalid
 * (-EINVAL) listing the problems when the file (or an entry) is broken. error may be NULL. */
int manager_reload_config(Manager *m, CmError *error);

/* AcceptHost: freezes the current host identity as the expected one and attaches the meshes.
 * HostFingerprintUnavailable, StorageFailure. */
int manager_accept_host(Manager *m, CmError *error);

Mesh *manager_find_mesh_by_path(Manager *m, const char *path);

/* The mesh a caller means: its slug or id, or "" when exactly one mesh is configured.
 * NoSuchMesh error otherwise, naming the meshes there are. */
int manager_lookup_mesh(Manager *m, const char *name, Mesh **ret, CmError *error);

/* Recomputes Status, sends STATUS= and emits PropertiesChanged where something changed. */
void manager_refresh(Manager *m);

/* Starts a broker link for every attached mesh that has none, and stops those of meshes that
 * are no longer attached (invalid entry, host mismatch). */
void manager_attach_links(Manager *m);

/* Wakes the drain of every connected mesh when the next outbox row falls due. */
void manager_schedule_drain(Manager *m);
/* Drains every connected mesh now (new rows: accepted, requeued). */
void manager_drain_all(Manager *m);
