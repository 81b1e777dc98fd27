/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-json.h"
#include "bus-map.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"
#include "time-util.h"

static const char *peer_status_color(const char *status) {
        if (streq(status, "idle"))
                return ansi_green();
        if (streq(status, "dnd"))
                return ansi_red();
        return ansi_yellow();
}

static char *groups_of(json_object *peer) {
        _cleanup_free_ char *s = NULL;
        json_object *groups;
        size_t n = 0;
        FILE *f;

        /* The daemon gives the groups as "name" or "name:role"; the table shows the names. */
        if (!json_object_object_get_ex(peer, "groups", &groups) || !json_object_is_type(groups, json_type_array))
                return strdup("");
        f = open_memstream(&s, &n);
        if (!f)
                return NULL;
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                const char *g = json_object_get_string(json_object_array_get_idx(groups, i));
                fprintf(f, "%s@%.*s", i ? "," : "", (int) strcspn(g, ":"), g);
        }
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(s);
}

static int add_peer_row(Table *t, json_object *peer) {
        _cleanup_free_ char *name = NULL, *groups = groups_of(peer), *pubkey = NULL,
                            *summary = ellipsize(json_get_string(peer, "summary"), SIZE_MAX);
        const char *status = json_get_string(peer, "status");
        char when[RELATIVE_MAX];
        usec_t connected = json_get_uint64(peer, "connected_at");
        int r;

        if (asprintf(&name, "%s%s", json_get_string(peer, "display_name"),
                     json_get_bool(peer, "self") ? " (you)" : "") < 0 ||
            !(pubkey = abbreviate_key(json_get_string(peer, "pubkey"), 16)) || !groups || !summary)
                return -ENOMEM;

        r = table_add_cell(t, name, ansi_bold());
        if (r < 0)
                return r;
        r = table_add_cell(t, status, peer_status_color(status));
        if (r < 0)
                return r;
        r = table_add_cell(t, summary, NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, groups, NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(peer, "hostname"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, format_relative(connected, when), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, pubkey, ansi_grey());
        return r;
}

int verb_peers(sd_bus *bus, int argc, char **argv) {
        static const char *const headers[] = { "NAME", "STATUS", "SUMMARY", "GROUPS", "HOST", "CONNECTED", "PUBKEY" };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(json_object_putp) json_object *peers = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        BusMapError error = { .want = NULL };
        int r;

        r = bus_new_daemon_call(bus, "ListPeers", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListPeers call: %m");
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListPeers call: %m");
        r = bus_call(bus, m, "list the peers", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict_array(reply, &bus_map_peer, &peers, &error);
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_peer, "read the peers");

        if (arg.json) {
                json_print(peers);
                return CTL_EXIT_OK;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return ctl_error_errno(-ENOMEM, "Cannot list the peers: %m");
        table_set_shrinkable(t, 0, 12);
        table_set_shrinkable(t, 2, 12);
        table_set_shrinkable(t, 3, 8);
        table_set_shrinkable(t, 4, 8);
        table_set_shrinkable(t, 6, 8);
        for (size_t i = 0; i < json_object_array_length(peers); i++) {
                r = add_peer_row(t, json_object_array_get_idx(peers, i));
                if (r < 0)
                        return ctl_error_errno(r, "Cannot list the peers: %m");
        }
        if (table_rows(t) == 0) {
                printf("No peers are connected.\n");
                return CTL_EXIT_OK;
        }
        r = table_print(t);
        /* The daemon answers from its last list when the broker cannot: say so, and how old. */
        if (r == CTL_EXIT_OK && json_get_bool(json_object_array_get_idx(peers, 0), "stale")) {
                usec_t at = json_get_uint64(json_object_array_get_idx(peers, 0), "updated_at");
                char iso[ISO8601_MAX] = "?", when[RELATIVE_MAX];

                (void) format_iso8601(at, iso);
                printf("%s(stale: no word from the broker since %s, %s)%s\n", ansi_yellow(), iso,
                       format_relative(at, when), ansi_normal());
        }
        return r;
}

/* Adds one profile field to the call and to the JSON echo of what was set. */
static int append_field(sd_bus_message *m, json_object *echo, const char *key, const char *value) {
        if (!value)
                return 0;
        json_object_object_add(echo, key, json_object_new_string(value));
        return bus_append_string_option(m, key, value);
}

static int append_profile(sd_bus_message *m, json_object *echo) {
        int r;

        const struct {
                const char *key, *value;
        } fields[] = {
                { "summary", arg.summary }, { "status", arg.status }, { "title", arg.title },
                { "bio", arg.bio },         { "avatar", arg.avatar },
        };

        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = append_field(m, echo, fields[i].key, fields[i].value);
                if (r < 0)
                        return r;
        }
        if (arg.visible >= 0) {
                json_object_object_add(echo, "visible", json_object_new_boolean(arg.visible));
                r = sd_bus_message_append(m, "{sv}", "visible", "b", arg.visible);
                if (r < 0)
                        return r;
        }
        if (arg.capabilities) {
                json_object *caps = json_object_new_array();

                for (size_t i = 0; caps && i < arg.n_capabilities; i++)
                        json_object_array_add(caps, json_object_new_string(arg.capabilities[i]));
                json_object_object_add(echo, "capabilities", caps);
                r = bus_append_strv_option(m, "capabilities", arg.capabilities);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

/* profile without options: this daemon's own row of the peer list, as the broker shows it. */
static int show_profile(sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(json_object_putp) json_object *peers = NULL;
        json_object *self = NULL;
        BusMapError error = { .want = NULL };
        int r;

        r = bus_new_daemon_call(bus, "ListPeers", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListPeers call: %m");
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListPeers call: %m");
        r = bus_call(bus, m, "show the profile", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict_array(reply, &bus_map_peer, &peers, &error);
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_peer, "read the peers");
        for (size_t i = 0; !self && i < json_object_array_length(peers); i++)
                if (json_get_bool(json_object_array_get_idx(peers, i), "self"))
                        self = json_object_array_get_idx(peers, i);
        if (!self) {
                ctl_error("Cannot show the profile: the broker does not list this session yet.");
                ctl_hint("'claudemeshctl status' shows whether the mesh is connected.");
                return CTL_EXIT_NOT_FOUND;
        }
        if (arg.json) {
                json_print(self);
                return CTL_EXIT_OK;
        }
        _cleanup_free_ char *groups = groups_of(self);
        if (!groups)
                return ctl_error_errno(-ENOMEM, "Cannot show the profile: %m");
        print_field(8, "Name", NULL, json_get_string(self, "display_name"));
        print_field(8, "Status", peer_status_color(json_get_string(self, "status")), json_get_string(self, "status"));
        print_field(8, "Summary", NULL, json_get_string(self, "summary"));
        print_field(8, "Groups", NULL, groups);
        print_field(8, "Host", NULL, json_get_string(self, "hostname"));
        print_field(8, "Pubkey", NULL, json_get_string(self, "pubkey"));
        return CTL_EXIT_OK;
}

int verb_profile(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *echo = json_object_new_object(), *o = NULL;
        int r;

        if (!echo)
                return ctl_error_errno(-ENOMEM, "Cannot build the SetProfile call: %m");
        r = bus_new_daemon_call(bus, "SetProfile", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the SetProfile call: %m");
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the SetProfile call: %m");
        r = append_profile(m, echo);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the SetProfile call: %m");
        if (json_object_object_length(echo) == 0)
                return show_profile(bus);

        r = bus_call(bus, m, "set the profile", NULL);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg.json) {
                o = json_object_new_object();
                if (!o)
                        return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
                json_object_object_add(o, "mesh", json_object_new_string(strempty(arg.mesh)));
                json_object_object_add(o, "profile", TAKE_PTR(echo));
                json_print(o);
        } else
                printf("Updated the profile%s%s.\n", arg.mesh ? " in " : "", strempty(arg.mesh));
        return CTL_EXIT_OK;
}

int verb_reconnect(sd_bus *bus, int argc, char **argv) {
        char done[256];

        snprintf(done, sizeof done, "Reconnecting%s%s.", arg.mesh ? " " : "", strempty(arg.mesh));
        return mesh_method_call(bus, "Reconnect", "reconnect", done);
}

int mesh_method_call(sd_bus *bus, const char *method, const char *what, const char *done_human) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_new_daemon_call(bus, method, &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the %s call: %m", method);
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the %s call: %m", method);
        r = bus_call(bus, m, what, NULL);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg.json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
                json_object_object_add(o, "mesh", json_object_new_string(strempty(arg.mesh)));
                json_print(o);
        } else
                puts(done_human);
        return CTL_EXIT_OK;
}
