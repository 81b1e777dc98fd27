/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

typedef struct Manager Manager;

/* Connects to the session bus, serves org.claudemesh.Daemon1 and the mesh objects, subscribes
 * their signals to the core's events and takes the bus name. */
int manager_dbus_register(Manager *m);
