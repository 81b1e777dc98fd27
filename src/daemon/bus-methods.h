/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "inbox.h"
#include "outbox.h"

/* Method handlers of org.claudemesh.Daemon1 that live outside bus-manager.c. */
int method_send(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_outbox(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_requeue(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_inbox(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_reconnect(sd_bus_message *msg, void *userdata, sd_bus_error *error);

typedef struct Manager Manager;
typedef struct MeshLink MeshLink;
typedef struct Peer Peer;

/* The {sv} entries of one inbox message (an InboxMessage), as ListInbox and MessageReceived carry them. */
int bus_append_inbox_message(sd_bus_message *m, Manager *manager, const void *item);
/* The {sv} entries of one peer, as ListPeers, PeerJoined and PeerLeft carry them. */
int bus_append_peer(sd_bus_message *m, const MeshLink *l, const Peer *p);

/*
 * The core of ListOutbox, Requeue and ListInbox, shared with their /v1 routes (compat-route-store.c)
 * so the two surfaces cannot disagree. Each surface parses its own arguments, runs the check,
 * asks polkit for the same action, then runs the call; errors are set as the bus methods return them.
 */
/* "" = every mesh; otherwise the id of the mesh named by slug or id (NoSuchMesh when unknown). */
int manager_mesh_filter(Manager *m, const char *name, const char **ret_mesh_id, sd_bus_error *error);
/* The slug of a configured mesh, "" for a mesh no longer in the config. */
const char *manager_mesh_slug(Manager *m, const char *mesh_id);
int manager_outbox_check(Manager *m, sd_bus_error *error);     /* OutboxUnavailable */
int manager_inbox_check(Manager *m, sd_bus_error *error);      /* Storage */
int manager_list_outbox(Manager *m, const char *mesh_id, OutboxStatus status, unsigned limit, OutboxRow **ret,
                        size_t *ret_n, sd_bus_error *error);
int manager_list_inbox(Manager *m, const char *mesh_id, usec_t since, const char *from, const char *topic,
                       unsigned limit, InboxMessage **ret, size_t *ret_n, sd_bus_error *error);
/* new_client_message_id and aborted_by may be NULL (a minted ULID, "operator"). */
int manager_requeue_check(Manager *m, const char *new_client_message_id, const char *aborted_by,
                          sd_bus_error *error);
/* NoSuchMessage, NotRequeueable (neither pending nor dead), ClientMessageIdInUse, Storage. */
int manager_requeue(Manager *m, const char *row_id, const char *new_client_message_id, const char *aborted_by,
                    char ret_new_row_id[static ULID_MAX], char **ret_new_client_message_id, sd_bus_error *error);
