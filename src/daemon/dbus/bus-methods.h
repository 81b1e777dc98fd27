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
