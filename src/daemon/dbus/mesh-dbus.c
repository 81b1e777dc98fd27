/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.claudemesh.Mesh1, one object per configured mesh under /org/claudemesh/Daemon1/mesh/. */
#include <string.h>

#include "log.h"
#include "mesh-dbus.h"
#include "manager.h"
#include "mesh-link.h"

static int mesh_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                            sd_bus_error *error) {
        Mesh *mesh = manager_find_mesh_by_path(userdata, path);
        if (!mesh)
                return 0;
        *found = mesh;
        return 1;
}

static int mesh_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                sd_bus_error *error) {
        Manager *m = userdata;
        char **l = calloc(m->n_meshes + 1, sizeof(char *));

        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_meshes; i++) {
                l[i] = strdup(m->meshes[i]->path);
                if (!l[i]) {
                        while (i > 0)
                                free(l[--i]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

/* The entry's strings may be NULL on an invalid entry: the property then reads "". */
#define MESH_ENTRY_STRING_PROPERTY(fn, field)                                                            \
        static int fn(sd_bus *bus, const char *path, const char *interface, const char *property,        \
                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {                      \
                Mesh *mesh = userdata;                                                                   \
                return sd_bus_message_append(reply, "s", strempty(mesh->entry->field));                  \
        }

MESH_ENTRY_STRING_PROPERTY(property_get_id, mesh_id)
MESH_ENTRY_STRING_PROPERTY(property_get_slug, slug)
MESH_ENTRY_STRING_PROPERTY(property_get_name, name)
MESH_ENTRY_STRING_PROPERTY(property_get_member_id, member_id)
MESH_ENTRY_STRING_PROPERTY(property_get_member_pubkey, pubkey_hex)
MESH_ENTRY_STRING_PROPERTY(property_get_broker_url, broker_url)

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Mesh *mesh = userdata;
        return sd_bus_message_append(reply, "s", mesh_state_to_string(mesh->state));
}

static int property_get_features(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Mesh *mesh = userdata;
        return sd_bus_message_append_strv(reply, mesh->link ? (char **) mesh_link_feature_names(mesh->link) : NULL);
}

static int property_get_outbox_depth(sd_bus *bus, const char *path, const char *interface, const char *property,
                                     sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Mesh *mesh = userdata;
        unsigned n = 0;

        if (mesh->manager->outbox && mesh->entry->mesh_id)
                (void) outbox_count_active(mesh->manager->outbox, mesh->entry->mesh_id, &n);
        return sd_bus_message_append(reply, "u", (uint32_t) n);
}

static const sd_bus_vtable mesh_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", property_get_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Slug", "s", property_get_slug, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemberId", "s", property_get_member_id, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MemberPubkey", "s", property_get_member_pubkey, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BrokerUrl", "s", property_get_broker_url, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", NULL, offsetof(Mesh, last_error), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Features", "as", property_get_features, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UnreadCount", "u", NULL, offsetof(Mesh, unread), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        /* Read on demand: it changes with every send and ack, too often to signal. */
        SD_BUS_PROPERTY("OutboxDepth", "u", property_get_outbox_depth, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
        SD_BUS_VTABLE_END,
};

int mesh_dbus_register(Manager *m) {
        int r;

        assert(m);

        r = sd_bus_add_fallback_vtable(m->bus, NULL, MESH_OBJECT_PREFIX, MESH_INTERFACE, mesh_vtable,
                                       mesh_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the mesh objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, MESH_OBJECT_PREFIX, mesh_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the mesh enumerator: %m");
        return 0;
}

int mesh_dbus_emit_added(Mesh *mesh) {
        assert(mesh);

        sd_bus *bus = mesh->manager->bus;
        return bus ? sd_bus_emit_interfaces_added(bus, mesh->path, MESH_INTERFACE, NULL) : 0;
}

int mesh_dbus_emit_removed(Mesh *mesh) {
        assert(mesh);

        sd_bus *bus = mesh->manager->bus;
        return bus ? sd_bus_emit_interfaces_removed(bus, mesh->path, MESH_INTERFACE, NULL) : 0;
}

int mesh_dbus_emit_changed(Mesh *mesh) {
        assert(mesh);

        sd_bus *bus = mesh->manager->bus;
        if (!bus)
                return 0;
        return sd_bus_emit_properties_changed(bus, mesh->path, MESH_INTERFACE, "Id", "Name", "MemberId",
                                              "MemberPubkey", "BrokerUrl", "State", "LastError", "Features", NULL);
}
