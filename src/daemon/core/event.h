/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "inbox.h"
#include "mesh.h"

typedef struct Manager Manager;
typedef struct MeshLink MeshLink;
typedef struct Peer Peer;
typedef struct Session Session;

/*
 * What the core tells the world, once per happening. The front-ends subscribe (D-Bus signals and
 * PropertiesChanged, /v1 event streams, desktop notifications) and each renders the event its own
 * way; the core never calls a front-end itself.
 */
typedef enum EventKind {
        EVENT_DELIVERED,        /* mesh_id, client_message_id, detail: the broker's message id */
        EVENT_SEND_FAILED,      /* mesh_id, client_message_id, detail: why it was given up */
        EVENT_MESSAGE_RECEIVED, /* mesh, message (stored, with id and received_at), direct */
        EVENT_UNREAD_CHANGED,   /* mesh: its unread count changed */
        EVENT_PEER_JOINED,      /* mesh, link, peer: a key's first presence */
        EVENT_PEER_LEFT,        /* mesh, link, peer: a key's last presence went */
        EVENT_PEER_CHANGED,     /* mesh, link, peer: a peer's status or summary changed */
        EVENT_MESH_ADDED,       /* mesh: configured anew */
        EVENT_MESH_REMOVED,     /* mesh: gone from the config (freed after the event) */
        EVENT_MESH_CHANGED,     /* mesh: its entry or state may have changed */
        EVENT_MESH_STATE,       /* mesh, before: its state changed from before */
        EVENT_STATUS_CHANGED,   /* the manager's status, config error or host state changed */
        EVENT_SESSION_ADDED,    /* session: registered */
        EVENT_SESSION_REMOVED,  /* session: ended (freed after the event) */
        EVENT_SESSION_CHANGED,  /* session: its status or summary changed */
        EVENT_REPLY_REQUESTED,  /* mesh_id, message_id, sender: "Reply" chosen on a notification */
        _EVENT_KIND_MAX,
} EventKind;

typedef struct Event {
        EventKind kind;
        Mesh *mesh;
        const char *mesh_id;
        const char *client_message_id;
        const char *detail;
        const InboxMessage *message;
        bool direct;            /* the message was sealed to us */
        const MeshLink *link;
        const Peer *peer;
        MeshState before;
        const Session *session;
        const char *message_id; /* what a reply names in reply_to_id */
        const char *sender;     /* the key a reply goes to */
} Event;

/* Returns < 0 only where the core must know that the event did not get out (a message not
 * announced is announced again at the next start); otherwise 0. */
typedef int (*EventHandler)(Manager *m, const Event *e, void *userdata);

#define EVENT_SUBSCRIBERS_MAX 4

typedef struct EventSubscriber {
        EventHandler handler;
        void *userdata;
} EventSubscriber;

/* Handlers run in the order they subscribed. -ENOSPC past EVENT_SUBSCRIBERS_MAX. */
int manager_subscribe(Manager *m, EventHandler handler, void *userdata);
/* Drops the subscription of handler with userdata, if there is one. */
void manager_unsubscribe(Manager *m, EventHandler handler, void *userdata);
/* Hands e to every subscriber; stops at the first that fails and returns its error. */
int manager_emit(Manager *m, const Event *e);
