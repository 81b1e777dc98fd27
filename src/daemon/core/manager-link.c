/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "manager-link.h"
#include "manager.h"
#include "mesh-link.h"
#include "mesh-session.h"
#include "wire-send.h"

int manager_lookup_link(Manager *m, const char *name, Mesh **ret, CmError *error) {
        assert(m);

        Mesh *mesh;
        int r = manager_lookup_mesh(m, name, &mesh, error);
        if (r < 0)
                return r;
        if (!mesh->link)
                return cm_error_setf(error, CM_ERR_NOT_CONNECTED, "Mesh \"%s\" has no broker link (%s%s%s).",
                                         mesh->entry->slug, mesh_state_to_string(mesh->state),
                                         mesh->last_error[0] ? ": " : "", mesh->last_error);
        *ret = mesh;
        return 0;
}

void profile_update_done(ProfileUpdate *p) {
        json_object_put(p->summary);
        json_object_put(p->status);
        json_object_put(p->visible);
        json_object_put(p->profile);
        *p = (ProfileUpdate) { 0 };
}

static int profile_error(const char *key, const char *what, CmError *error) {
        return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "Profile field \"%s\" %s.", key, what);
}

static json_object *strings_to_json(const char *const *strings) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();

        if (!a)
                return NULL;
        for (size_t i = 0; strings && strings[i]; i++)
                if (json_object_array_add(a, json_object_new_string(strings[i])) < 0)
                        return NULL;
        return TAKE_PTR(a);
}

/* Fills *slot (empty: profile_update_set refuses a repeated field). */
static int set_value(json_object **slot, json_object *value) {
        if (!value)
                return -ENOMEM;
        *slot = value;
        return 0;
}

static bool profile_has(const ProfileUpdate *p, const char *key) {
        if (streq(key, "summary"))
                return p->summary;
        if (streq(key, "status"))
                return p->status;
        if (streq(key, "visible"))
                return p->visible;
        return p->profile && json_object_object_get_ex(p->profile, key, NULL);
}

int profile_update_set(ProfileUpdate *p, const char *key, const ProfileValue *v, CmError *error) {
        _cleanup_(json_object_putp) json_object *value = NULL;

        assert(p);

        /* "Last wins" would let a caller's earlier value vanish unseen. */
        if (profile_has(p, key))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "Profile field \"%s\" is given twice.", key);

        if (streq(key, "visible")) {
                if (v->type != PROFILE_VALUE_BOOLEAN)
                        return profile_error(key, "must be a boolean", error);
                return set_value(&p->visible, json_object_new_boolean(v->boolean));
        }
        if (streq(key, "capabilities")) {
                if (v->type != PROFILE_VALUE_STRINGS)
                        return profile_error(key, "must be an array of strings", error);
        } else if (streq(key, "summary") || streq(key, "status") || streq(key, "avatar") || streq(key, "title") ||
                   streq(key, "bio")) {
                if (v->type != PROFILE_VALUE_STRING)
                        return profile_error(key, "must be a string", error);
        } else
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "Unknown profile field \"%s\".", key);

        if (streq(key, "summary"))
                return set_value(&p->summary, json_object_new_string(v->string));
        if (streq(key, "status")) {
                if (!streq(v->string, "idle") && !streq(v->string, "working") && !streq(v->string, "dnd"))
                        return profile_error(key, "must be idle, working or dnd", error);
                return set_value(&p->status, json_object_new_string(v->string));
        }
        value = v->type == PROFILE_VALUE_STRINGS ? strings_to_json(v->strings) : json_object_new_string(v->string);
        if (!value || (!p->profile && !(p->profile = json_object_new_object())))
                return -ENOMEM;
        return json_object_object_add(p->profile, key, TAKE_PTR(value));
}

/* One broker frame {"type": type, key: value}; value stays the caller's. */
static json_object *frame_simple(const char *type, const char *key, json_object *value) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();

        if (!f ||
            json_object_object_add(f, "type", json_object_new_string(type)) < 0 ||
            json_object_object_add(f, key, json_object_get(value)) < 0)
                return NULL;
        return TAKE_PTR(f);
}

/* {"type": "set_profile", fields...}; fields stay the caller's. */
static json_object *frame_profile(json_object *fields) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();

        if (!f || json_object_object_add(f, "type", json_object_new_string("set_profile")) < 0)
                return NULL;
        json_object_object_foreach(fields, key, value)
                if (json_object_object_add(f, key, json_object_get(value)) < 0)
                        return NULL;
        return TAKE_PTR(f);
}

/* set_summary, set_status, set_visible, set_profile */
#define PROFILE_FRAMES 4

static void frames_putp(json_object ***frames) {
        for (size_t i = 0; i < PROFILE_FRAMES; i++)
                json_object_put((*frames)[i]);
}

/* The frames of an update, in the order set_summary, set_status, set_visible, set_profile;
 * NULL where the update leaves a field alone. */
static int update_frames(const ProfileUpdate *p, json_object *frames[static PROFILE_FRAMES]) {
        frames[0] = p->summary ? frame_simple("set_summary", "summary", p->summary) : NULL;
        frames[1] = p->status ? frame_simple("set_status", "status", p->status) : NULL;
        frames[2] = p->visible ? frame_simple("set_visible", "visible", p->visible) : NULL;
        frames[3] = p->profile ? frame_profile(p->profile) : NULL;
        if ((p->summary && !frames[0]) || (p->status && !frames[1]) || (p->visible && !frames[2]) ||
            (p->profile && !frames[3]))
                return -ENOMEM;
        return 0;
}

static int send_frames(MeshLink *l, json_object *frames[static PROFILE_FRAMES]) {
        int r;

        for (size_t i = 0; i < PROFILE_FRAMES; i++) {
                if (!frames[i])
                        continue;
                r = mesh_link_send_frame(l, frames[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* state (mesh_profile_load()'s form) with the update applied, as the broker applies it: fields
 * replace, set_profile's fields merge into the earlier ones. NULL on ENOMEM. */
static json_object *profile_state_merge(json_object *state, const ProfileUpdate *p) {
        _cleanup_(json_object_putp) json_object *merged = json_object_new_object();
        json_object *fields, *earlier = NULL;

        if (!merged)
                return NULL;
        if (state) {
                json_object_object_foreach(state, key, value)
                        if (!streq(key, "profile") && json_object_object_add(merged, key, json_object_get(value)) < 0)
                                return NULL;
                (void) json_object_object_get_ex(state, "profile", &earlier);
        }
        if ((p->summary && json_object_object_add(merged, "summary", json_object_get(p->summary)) < 0) ||
            (p->status && json_object_object_add(merged, "status", json_object_get(p->status)) < 0) ||
            (p->visible && json_object_object_add(merged, "visible", json_object_get(p->visible)) < 0))
                return NULL;
        if (!earlier && !p->profile)
                return TAKE_PTR(merged);

        fields = json_object_new_object();
        if (!fields || json_object_object_add(merged, "profile", fields) < 0) {
                json_object_put(fields);
                return NULL;
        }
        if (earlier) {
                json_object_object_foreach(earlier, field, value)
                        if (json_object_object_add(fields, field, json_object_get(value)) < 0)
                                return NULL;
        }
        if (p->profile) {
                json_object_object_foreach(p->profile, field, value)
                        if (json_object_object_add(fields, field, json_object_get(value)) < 0)
                                return NULL;
        }
        return TAKE_PTR(merged);
}

int manager_set_profile(Manager *m, const char *name, const ProfileUpdate *p, CmError *error) {
        _cleanup_(json_object_putp) json_object *merged = NULL;
        Mesh *mesh;
        int r;

        assert(m);

        r = manager_lookup_link(m, name, &mesh, error);
        if (r < 0)
                return r;
        if (mesh_link_state(mesh->link) != LINK_CONNECTED)
                return cm_error_setf(error, CM_ERR_NOT_CONNECTED, "Mesh \"%s\" is not connected to its broker "
                                         "(%s); set the profile again once it is.", mesh->entry->slug,
                                         link_state_to_string(mesh_link_state(mesh->link)));

        json_object *frames[PROFILE_FRAMES] = { NULL };
        _cleanup_(frames_putp) json_object **cleanup = frames;

        r = update_frames(p, frames);
        if (r < 0)
                return r;
        /* Every frame is measured before any is sent: a field over the broker's frame limit is the
         * caller's to shorten, and the rest of the update must not go out without it. */
        for (size_t i = 0; i < ELEMENTSOF(frames); i++) {
                size_t size;

                if (!frames[i])
                        continue;
                if (!json_object_to_json_string_length(frames[i], JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                       &size))
                        return -ENOMEM;
                if (size > WIRE_FRAME_MAX)
                        return cm_error_setf(error, CM_ERR_PAYLOAD_TOO_LARGE, "The profile is too large: its "
                                                 "\"%s\" frame would be %zu bytes, the broker takes at most %d. "
                                                 "Nothing was sent.", json_object_get_string(json_object_object_get(frames[i], "type")),
                                                 size, WIRE_FRAME_MAX);
        }
        r = send_frames(mesh->link, frames);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_NOT_CONNECTED, "Could not hand the profile to the broker "
                                         "link: %s", STRERROR(r));
        if (p->status)
                mesh->dnd = streq(json_object_get_string(p->status), "dnd");

        /* Kept only once the broker link took it, so a profile it refuses is never re-sent. */
        merged = profile_state_merge(mesh->profile, p);
        if (!merged)
                return -ENOMEM;
        r = mesh_profile_save(m->state_dir, mesh->entry->mesh_id, merged);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "The broker has the profile, but it could not be "
                                         "saved (%s): it will be lost on the next reconnect.", STRERROR(r));
        json_object_put(mesh->profile);
        mesh->profile = TAKE_PTR(merged);
        return 0;
}

void mesh_profile_resend(Mesh *mesh) {
        json_object *frames[PROFILE_FRAMES] = { NULL };
        _cleanup_(frames_putp) json_object **cleanup = frames;
        ProfileUpdate p = { 0 };
        int r;

        assert(mesh);

        if (!mesh->profile || !mesh->link)
                return;
        /* Borrowed from mesh->profile: not profile_update_done(). */
        (void) json_object_object_get_ex(mesh->profile, "summary", &p.summary);
        (void) json_object_object_get_ex(mesh->profile, "status", &p.status);
        (void) json_object_object_get_ex(mesh->profile, "visible", &p.visible);
        (void) json_object_object_get_ex(mesh->profile, "profile", &p.profile);
        r = update_frames(&p, frames);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: could not build the saved profile's frames: %m", mesh->entry->slug);
                return;
        }
        r = send_frames(mesh->link, frames);
        if (r < 0)
                log_warning_errno(r, "Mesh %s: could not send the saved profile again: %m", mesh->entry->slug);
}
