/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "bus-options.h"
#include "log.h"
#include "manager-link.h"
#include "manager.h"
#include "mesh-link.h"
#include "strv.h"
#include "time-util.h"

int bus_append_peer(sd_bus_message *m, const MeshLink *l, const Peer *p) {
        int r;

        r = sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}",
                                  "pubkey", "s", p->pubkey,
                                  "member_pubkey", "s", strempty(p->member_pubkey),
                                  "display_name", "s", p->display_name,
                                  "status", "s", strempty(p->status),
                                  "summary", "s", strempty(p->summary));
        if (r < 0)
                return r;
        /* groups is an as: no fixed-signature append takes a strv. */
        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", "groups");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, p->groups);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "{sv}{sv}{sv}{sv}",
                                     "session_id", "s", strempty(p->session_id),
                                     "connected_at", "t", (uint64_t) p->connected_at_usec,
                                     "hostname", "s", strempty(p->hostname),
                                     "self", "b", mesh_link_peer_is_self(l, p));
}

/* The start of a method whose only argument names a mesh with a broker link: 1 go on,
 * 0 the call is parked for polkit (return 1 from the handler), < 0 an error. */
static int mesh_link_call(sd_bus_message *msg, Manager *m, const char *action, Mesh **ret, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = manager_lookup_link(m, name, ret, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return bus_verify_polkit(m->polkit, msg, action, error);
}

static void reply_peers(const MeshLink *l, int result, const CmError *error, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = userdata, *reply = NULL;
        usec_t updated_at = mesh_link_peers_updated_at(l);
        const Peer *peers;
        size_t n;
        int r;

        if (cm_error_is_set(error)) {
                r = bus_reply_cm_error(call, error);
                goto finish;
        }
        /* Not fresh (result < 0) still answers: the last list known beats none, but each row
         * says it is stale and since when. An empty stale list would claim nobody is there. */
        peers = mesh_link_peers(l, &n);
        if (result < 0 && n == 0) {
                char when[ISO8601_MAX] = "";

                if (updated_at > 0)
                        (void) format_iso8601(updated_at, when);
                r = sd_bus_reply_method_errorf(call, cm_error_dbus_name(CM_ERR_NOT_CONNECTED), "Mesh \"%s\" %s; %s%s.",
                                               mesh_link_mesh(l)->entry->slug,
                                               result == -ETIMEDOUT ? "got no peer list from its broker in time"
                                                                    : "is not connected to its broker",
                                               when[0] ? "its peer list was empty when last current, at " :
                                                         "it has no peer list from before",
                                               when);
                goto finish;
        }
        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = bus_append_peer(reply, l, &peers[i]);
                if (r >= 0)
                        r = sd_bus_message_append(reply, "{sv}{sv}", "stale", "b", result < 0, "updated_at", "t",
                                                  (uint64_t) updated_at);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
finish:
        if (r < 0)
                log_debug_errno(r, "Cannot answer ListPeers: %s", STRERROR(r));
}

int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Mesh *mesh;
        int r;

        r = mesh_link_call(msg, userdata, POLKIT_ACTION_READ, &mesh, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Asked of the broker each time, so profile and status changes show; the cache answers
         * when it does not reply in time. */
        r = mesh_link_query_peers(mesh->link, reply_peers, sd_bus_message_ref(msg));
        if (r < 0) {
                sd_bus_message_unref(msg);
                return r;
        }
        return 1;
}

/* The fields SetProfile takes, with their D-Bus types. */
static const BusOption profile_fields[] = {
        { "summary", "s", NULL },
        { "status", "s", NULL },
        { "visible", "b", NULL },
        { "avatar", "s", NULL },
        { "title", "s", NULL },
        { "bio", "s", NULL },
        { "capabilities", "as", NULL },
};

/* One a{sv} entry's value, of the type its field takes (InvalidArgs otherwise), for
 * profile_update_set() to check further. */
static int read_profile_value(sd_bus_message *msg, const char *key, ProfileValue *v, char ***strings,
                              sd_bus_error *error) {
        const BusOption *field = NULL;
        const char *contents;
        int b, r;

        for (size_t i = 0; i < ELEMENTSOF(profile_fields); i++)
                if (streq(key, profile_fields[i].name))
                        field = &profile_fields[i];
        if (!field)
                return bus_option_unknown_error(error, key, profile_fields, ELEMENTSOF(profile_fields));
        r = sd_bus_message_peek_type(msg, NULL, &contents);
        if (r < 0)
                return r;
        if (!streq(contents, field->type))
                return bus_option_type_error(error, key, field->type, contents);
        if (streq(contents, "s")) {
                *v = (ProfileValue) { .type = PROFILE_VALUE_STRING };
                return sd_bus_message_read(msg, "v", "s", &v->string);
        }
        if (streq(contents, "b")) {
                r = sd_bus_message_read(msg, "v", "b", &b);
                *v = (ProfileValue) { .type = PROFILE_VALUE_BOOLEAN, .boolean = b };
                return r;
        }
        r = sd_bus_message_enter_container(msg, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(msg, strings);
        if (r < 0)
                return r;
        *v = (ProfileValue) { .type = PROFILE_VALUE_STRINGS, .strings = (const char *const *) *strings };
        return sd_bus_message_exit_container(msg);
}

int method_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        _cleanup_(profile_update_done) ProfileUpdate update = { 0 };
        Manager *m = userdata;
        const char *name;
        Mesh *mesh;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r >= 0)
                r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        /* Read and check everything before sending anything, so a bad field changes nothing. */
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                _cleanup_strv_free_ char **strings = NULL;
                const char *key;
                ProfileValue v;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                r = read_profile_value(msg, key, &v, &strings, error);
                if (r < 0)
                        return r;
                r = profile_update_set(&update, key, &v, &e);
                if (r < 0)
                        return bus_error_set_cm(error, r, &e);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        /* An unknown mesh fails before polkit is asked; manager_set_profile() looks again after. */
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = manager_lookup_link(m, name, &mesh, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_SET_PROFILE, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = manager_set_profile(m, name, &update, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
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
                return bus_error_setf(error, CM_ERR_NOT_CONNECTED, "Cannot reconnect mesh \"%s\": %s",
                                      mesh->entry->slug, STRERROR(r));
        return sd_bus_reply_method_return(msg, NULL);
}
