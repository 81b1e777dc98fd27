/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "mesh-config.h"

typedef struct Manager Manager;
typedef struct MeshLink MeshLink;

/* What a mesh is doing, as the Mesh1.State property says it. */
typedef enum MeshState {
        MESH_INVALID,  /* its config.json entry is broken; LastError says how */
        MESH_DETACHED, /* the host fingerprint does not match: waiting for AcceptHost */
        MESH_OFFLINE,  /* attached, no broker link running */
        MESH_CONNECTING,
        MESH_CONNECTED,
        MESH_BACKOFF,  /* waiting to reconnect */
        MESH_FAILED,   /* the link stopped for good (revoked, replaced, required features missing) */
        _MESH_STATE_MAX,
} MeshState;

typedef struct Mesh {
        Manager *manager;
        const MeshEntry *entry; /* points into manager->config, replaced on reload */
        char *path;             /* /org/claudemesh/Daemon1/mesh/<escaped slug> */
        MeshState state;
        char *last_error;       /* "" when none */
        MeshLink *link;         /* the broker link, while the mesh is attached */
        unsigned unread;        /* inbox rows after the read mark (UnreadCount) */
        bool dnd;               /* our profile status on this mesh is "dnd": no desktop notifications */
        json_object *profile;   /* what SetProfile set (mesh_profile_load()), sent again on every hello; or NULL */
} Mesh;

#define MESH_OBJECT_PREFIX "/org/claudemesh/Daemon1/mesh"

const char *mesh_state_to_string(MeshState s);

int mesh_new(Manager *m, const MeshEntry *entry, Mesh **ret);
Mesh *mesh_free(Mesh *mesh);
DEFINE_TRIVIAL_CLEANUP_FUNC(Mesh *, mesh_free);

/* Recomputes State and LastError from the entry and the host state; true when either changed. */
bool mesh_update_state(Mesh *mesh);
