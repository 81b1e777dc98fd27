/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

typedef struct InboxListRequest InboxListRequest;
typedef struct InboxMessage InboxMessage;
typedef struct Manager Manager;

/* Connects to the session bus, serves org.claudemesh.Daemon1 and the mesh objects and subscribes
 * their signals to the core's events. */
int manager_dbus_register(Manager *m);
/* Takes the bus name: callers (and D-Bus activation) see the daemon from now on, so the other
 * front-ends start before. */
int manager_dbus_request_name(Manager *m);

/* Daemon1.Send's contract for msg, whose fixed arguments were read (its options are next), sent as
 * sender_pubkey (a session's key; NULL the member): polkit, the duplicate table, the reply. */
int manager_dbus_send(sd_bus_message *msg, Manager *m, const char *mesh_name, const char *to, const char *message,
                      const char *sender_pubkey, sd_bus_error *error);
/* Answers msg with an aa{sv}: one dictionary per item, written by append. */
int reply_dict_list(sd_bus_message *msg, Manager *m, const void *items, size_t n, size_t item_size,
                    int (*append)(sd_bus_message *reply, Manager *m, const void *item));
/* The MessageReceived and ListInbox dictionary of an InboxMessage. */
int bus_append_inbox_message(sd_bus_message *reply, Manager *m, const void *item);
/* MessageReceived of im on path's interface: its arguments are mesh_slug (left out when NULL)
 * and the message's dictionary. */
int bus_emit_inbox_message(Manager *m, const char *path, const char *interface, const char *mesh_slug,
                           const InboxMessage *im);
/* The ListInbox filter (since, from, topic, limit) of msg into q; the other fields stay. */
int bus_read_inbox_filter(sd_bus_message *msg, InboxListRequest *q, sd_bus_error *error);
/* ListInbox's contract for the request q read from msg: the check, polkit, the reply. */
int manager_dbus_list_inbox(sd_bus_message *msg, Manager *m, const InboxListRequest *q, sd_bus_error *error);
