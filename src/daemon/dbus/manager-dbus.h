/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

typedef struct Manager Manager;

/* Connects to the session bus, serves org.claudemesh.Daemon1 and the mesh objects and subscribes
 * their signals to the core's events. */
int manager_dbus_register(Manager *m);
/* Takes the bus name: callers (and D-Bus activation) see the daemon from now on, so the other
 * front-ends start before. */
int manager_dbus_request_name(Manager *m);
