/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

typedef struct Manager Manager;
typedef struct Mesh Mesh;

/* org.claudemesh.Mesh1 on every mesh object (a fallback vtable with an enumerator). */
int mesh_dbus_register(Manager *m);
/* InterfacesAdded, InterfacesRemoved and PropertiesChanged of a mesh object. */
int mesh_dbus_emit_added(Mesh *mesh);
int mesh_dbus_emit_removed(Mesh *mesh);
int mesh_dbus_emit_changed(Mesh *mesh);
