/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"

int bus_append_peer(sd_bus_message *m, const MeshLink *l, const Peer *p) {
        return sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                     "pubkey", "s", p->pubkey,
                                     "member_pubkey", "s", strempty(p->member_pubkey),
                                     "display_name", "s", p->display_name,
                                     "status", "s", strempty(p->status),
                                     "summary", "s", strempty(p->summary),
                                     "groups", "s", p->groups_json ? p->groups_json : "[]",
                                     "session_id", "s", strempty(p->session_id),
                                     "connected_at", "s", strempty(p->connected_at),
                                     "hostname", "s", strempty(p->hostname),
                                     "self", "b", streq(p->pubkey, l->session.public_key_hex));
}

/* The mesh named in a call, with a link: MeshUnavailable/NotConnected-style errors otherwise. */
static int lookup_link(Manager *m, const char *name, Mesh **ret, sd_bus_error *error) {
        Mesh *mesh;
        int r = manager_lookup_mesh(m, name, &mesh, error);
        if (r < 0)
                return r;
        if (!mesh->link)
                return sd_bus_error_setf(error, CM_ERROR_NOT_CONNECTED, "Mesh \"%s\" has no broker link (%s%s%s).",
                                         mesh->entry->slug, mesh_state_to_string(mesh->state),
                                         mesh->last_error[0] ? ": " : "", mesh->last_error);
        *ret = mesh;
        return 0;
}

/* The start of a method whose only argument names a mesh with a broker link: 1 go on,
 * 0 the call is parked for polkit (return 1 from the handler), < 0 an error. */
static int mesh_link_call(sd_bus_message *msg, Manager *m, const char *action, Mesh **ret, sd_bus_error *error) {
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r >= 0)
                r = lookup_link(m, name, ret, error);
        if (r < 0)
                return r;
        return polkit_verify_async(m->polkit, msg, action, error);
}

int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Mesh *mesh;
        int r;

        r = mesh_link_call(msg, userdata, POLKIT_ACTION_READ, &mesh, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Asked of the broker each time, so profile and status changes show; the cache answers
         * when it does not reply in time. */
        r = link_peers_query(mesh->link, msg);
        return r < 0 ? r : 1;
}

/* One broker frame {"type": type, key: value}. */
static int send_simple(MeshLink *l, const char *type, const char *key, json_object *value) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();
        if (!f || !value) {
                json_object_put(value);
                return -ENOMEM;
        }
        json_object_object_add(f, "type", json_object_new_string(type));
        json_object_object_add(f, key, value);
        return mesh_link_send_frame(l, f);
}

static int profile_error(const char *key, const char *what, sd_bus_error *error) {
        return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "Profile field \"%s\" %s.", key, what);
}

int method_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *profile = json_object_new_object(), *summary = NULL, *status = NULL,
                                                *visible = NULL;
        Manager *m = userdata;
        const char *name, *key;
        Mesh *mesh;
        int r;

        if (!profile)
                return -ENOMEM;
        r = sd_bus_message_read(msg, "s", &name);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        /* Read and check everything before sending anything, so a bad field changes nothing. */
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *contents, *s;
                int b;

                r = sd_bus_message_read(msg, "s", &key);
                if (r >= 0)
                        r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                if (streq(key, "visible")) {
                        if (!streq(contents, "b"))
                                return profile_error(key, "must be a boolean", error);
                        r = sd_bus_message_read(msg, "v", "b", &b);
                        visible = json_object_new_boolean(b);
                } else if (streq(key, "capabilities")) {
                        char **caps = NULL;
                        json_object *a = json_object_new_array();
                        if (!streq(contents, "as") || !a) {
                                json_object_put(a);
                                return profile_error(key, "must be an array of strings", error);
                        }
                        r = sd_bus_message_enter_container(msg, 'v', "as");
                        if (r >= 0)
                                r = sd_bus_message_read_strv(msg, &caps);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(msg);
                        for (size_t i = 0; caps && caps[i]; i++) {
                                json_object_array_add(a, json_object_new_string(caps[i]));
                                free(caps[i]);
                        }
                        free(caps);
                        json_object_object_add(profile, "capabilities", a);
                } else if (streq(key, "summary") || streq(key, "status") || streq(key, "avatar") ||
                           streq(key, "title") || streq(key, "bio")) {
                        if (!streq(contents, "s"))
                                return profile_error(key, "must be a string", error);
                        r = sd_bus_message_read(msg, "v", "s", &s);
                        if (r < 0)
                                return r;
                        if (streq(key, "status") && !streq(s, "idle") && !streq(s, "working") && !streq(s, "dnd"))
                                return profile_error(key, "must be idle, working or dnd", error);
                        if (streq(key, "summary"))
                                summary = json_object_new_string(s);
                        else if (streq(key, "status"))
                                status = json_object_new_string(s);
                        else
                                json_object_object_add(profile, key, json_object_new_string(s));
                } else
                        return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "Unknown profile field \"%s\".", key);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r >= 0)
                r = lookup_link(m, name, &mesh, error);
        if (r < 0)
                return r;
        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_SET_PROFILE, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (mesh_link_state(mesh->link) != LINK_CONNECTED)
                return sd_bus_error_setf(error, CM_ERROR_NOT_CONNECTED, "Mesh \"%s\" is not connected to its broker "
                                         "(%s); the profile is only kept by the broker.", mesh->entry->slug,
                                         link_state_to_string(mesh_link_state(mesh->link)));

        r = 0;
        if (summary)
                r = send_simple(mesh->link, "set_summary", "summary", TAKE_PTR(summary));
        if (r >= 0 && status) {
                mesh->dnd = streq(json_object_get_string(status), "dnd");
                r = send_simple(mesh->link, "set_status", "status", TAKE_PTR(status));
        }
        if (r >= 0 && visible)
                r = send_simple(mesh->link, "set_visible", "visible", TAKE_PTR(visible));
        if (r >= 0 && json_object_object_length(profile) > 0) {
                json_object_object_add(profile, "type", json_object_new_string("set_profile"));
                r = mesh_link_send_frame(mesh->link, profile);
        }
        if (r < 0)
                return sd_bus_error_setf(error, CM_ERROR_NOT_CONNECTED, "Could not hand the profile to the broker "
                                         "link: %s", STRERROR(r));
        return sd_bus_reply_method_return(msg, NULL);
}

int method_reconnect(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Mesh *mesh;
        int r;

        r = mesh_link_call(msg, userdata, POLKIT_ACTION_RECONNECT, &mesh, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = mesh_link_reconnect(mesh->link);
        if (r < 0)
                return sd_bus_error_setf(error, CM_ERROR_NOT_CONNECTED, "Cannot reconnect mesh \"%s\": %s",
                                         mesh->entry->slug, STRERROR(r));
        return sd_bus_reply_method_return(msg, NULL);
}
