/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <systemd/sd-bus.h>

#include "manager.h"
#include "mesh-link.h"
#include "mesh-session.h"
#include "mesh.h"

static const char *const mesh_state_table[_MESH_STATE_MAX] = {
        [MESH_INVALID] = "invalid",
        [MESH_DETACHED] = "detached",
        [MESH_OFFLINE] = "offline",
        [MESH_CONNECTING] = "connecting",
        [MESH_CONNECTED] = "connected",
        [MESH_BACKOFF] = "backoff",
        [MESH_FAILED] = "failed",
};

const char *mesh_state_to_string(MeshState s) {
        return s >= 0 && s < _MESH_STATE_MAX ? mesh_state_table[s] : NULL;
}

int mesh_new(Manager *m, const MeshEntry *entry, Mesh **ret) {
        _cleanup_(mesh_freep) Mesh *mesh = NULL;
        int r;

        assert(m);

        mesh = calloc(1, sizeof(*mesh));
        if (!mesh)
                return -ENOMEM;
        mesh->manager = m;
        mesh->entry = entry;
        mesh->state = _MESH_STATE_MAX;
        r = sd_bus_path_encode(MESH_OBJECT_PREFIX, entry->slug, &mesh->path);
        if (r < 0)
                return r;
        mesh->last_error = strdup("");
        if (!mesh->last_error)
                return -ENOMEM;
        if (m->inbox && entry->mesh_id) {
                if (entry->pubkey_hex)
                        (void) inbox_adopt_member(m->inbox, entry->mesh_id, entry->pubkey_hex);
                (void) inbox_count_unread(m->inbox, entry->mesh_id, &mesh->unread);
        }
        if (m->state_dir && entry->mesh_id && entry->mesh_id[0]) {
                json_object *status;

                /* A profile that cannot be read is logged and left unset: peers see the default. */
                (void) mesh_profile_load(m->state_dir, entry->mesh_id, &mesh->profile);
                mesh->dnd = mesh->profile && json_object_object_get_ex(mesh->profile, "status", &status) &&
                            streq(json_object_get_string(status), "dnd");
        }
        mesh_update_state(mesh);
        *ret = TAKE_PTR(mesh);
        return 0;
}

Mesh *mesh_free(Mesh *mesh) {
        if (!mesh)
                return NULL;
        mesh_link_free(mesh->link);
        json_object_put(mesh->profile);
        free(mesh->path);
        free(mesh->last_error);
        free(mesh);
        return NULL;
}

bool mesh_update_state(Mesh *mesh) {
        const Manager *m = mesh->manager;
        const char *error;
        MeshState state;

        assert(mesh);

        if (mesh->entry->error) {
                state = MESH_INVALID;
                error = mesh->entry->error;
        } else if (m->host_state == HOST_FINGERPRINT_MISMATCH) {
                state = MESH_DETACHED;
                error = m->host_reason ? m->host_reason : "host fingerprint mismatch";
        } else if (mesh->link) {
                static const MeshState from_link[_LINK_STATE_MAX] = {
                        [LINK_CONNECTING] = MESH_CONNECTING,
                        [LINK_CONNECTED] = MESH_CONNECTED,
                        [LINK_BACKOFF] = MESH_BACKOFF,
                        [LINK_FAILED] = MESH_FAILED,
                };
                state = from_link[mesh_link_state(mesh->link)];
                error = state == MESH_CONNECTED ? "" : mesh_link_detail(mesh->link);
        } else {
                state = MESH_OFFLINE;
                error = "";
        }

        if (state == mesh->state && streq(error, mesh->last_error))
                return false;
        char *copy = strdup(error);
        if (!copy)
                return false;
        free(mesh->last_error);
        mesh->last_error = copy;
        mesh->state = state;
        return true;
}
