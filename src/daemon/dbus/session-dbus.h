/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "event.h"
#include "inbox.h"

typedef struct Manager Manager;
typedef struct Session Session;

/* org.claudemesh.Session1 on every session object (a fallback vtable with an enumerator). */
int session_dbus_register(Manager *m);
/* Daemon1.RegisterSession(s mesh, a{sv} options) -> (o session), for the manager's vtable. */
int session_dbus_method_register(sd_bus_message *msg, void *userdata, sd_bus_error *error);
/* InterfacesAdded, InterfacesRemoved and PropertiesChanged of the session events; 0 for others. */
int session_dbus_on_event(Manager *m, const Event *e);
/* Session1.MessageReceived on the object of s: a row that identity received. */
int session_dbus_emit_message(Manager *m, const Session *s, const InboxMessage *im);
