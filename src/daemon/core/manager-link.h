/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include "cm-error.h"

typedef struct Manager Manager;
typedef struct Mesh Mesh;

/*
 * What the bus methods on a mesh's broker link and their /v1 routes share, so the two surfaces
 * cannot disagree: finding the link, and the profile update (SetProfile, POST /v1/profile),
 * checked field by field with the same sentences and handed to the broker the same way.
 */

/* The mesh named (slug or id; "" for the default one, as manager_lookup_mesh() chooses) with a
 * broker link; NoSuchMesh or NotConnected otherwise. */
int manager_lookup_link(Manager *m, const char *name, Mesh **ret, CmError *error);

typedef enum ProfileValueType {
        PROFILE_VALUE_STRING,
        PROFILE_VALUE_BOOLEAN,
        PROFILE_VALUE_STRINGS,
        PROFILE_VALUE_OTHER,   /* any other type: refused */
} ProfileValueType;

/* One field's value as a surface read it (a D-Bus variant, a JSON member). */
typedef struct ProfileValue {
        ProfileValueType type;
        const char *string;
        bool boolean;
        const char *const *strings; /* NULL-terminated */
} ProfileValue;

/* The broker frames' values; NULL leaves that part unchanged. */
typedef struct ProfileUpdate {
        json_object *summary;  /* set_summary */
        json_object *status;   /* set_status */
        json_object *visible;  /* set_visible */
        json_object *profile;  /* set_profile: avatar, title, bio, capabilities */
} ProfileUpdate;

void profile_update_done(ProfileUpdate *p);

/* Checks one field (summary, status, visible, avatar, title, bio, capabilities) and records it:
 * InvalidArgument with the sentence for an unknown field, a wrong type or an unknown status. */
int profile_update_set(ProfileUpdate *p, const char *key, const ProfileValue *v, CmError *error);

/* Sends the update to the named mesh's broker; NotConnected unless its link is connected. A status
 * of dnd silences the mesh's desktop notifications. The profile, merged with what was set before,
 * is then saved (mesh_profile_save(); StorageFailure when that fails), to be sent again by
 * mesh_profile_resend() on every connection: the broker forgets it with the connection. */
int manager_set_profile(Manager *m, const char *mesh, const ProfileUpdate *p, CmError *error);

/* Sends the saved profile of mesh to its broker again (after each hello_ack); nothing when none. */
void mesh_profile_resend(Mesh *mesh);
