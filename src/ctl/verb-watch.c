/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-json.h"
#include "bus-map.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"

/* With --mesh, the slug and id of that mesh: events of other meshes are skipped. */
static char *filter_slug, *filter_id;

static bool mesh_wanted(const char *mesh) {
        return !filter_slug || !mesh || streq(mesh, filter_slug) || streq(mesh, filter_id);
}

static char *format_value(json_object *v) {
        const char *s;

        if (!json_object_is_type(v, json_type_string))
                return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        s = json_object_get_string(v);
        if (!s[0] || strpbrk(s, " \t\n\""))
                return strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        return strdup(s);
}

/* "State=offline LastError=\"no route\"" */
static char *format_changes(json_object *changed, json_object *invalidated) {
        _cleanup_free_ char *s = NULL;
        size_t n = 0;
        bool first = true;
        FILE *f = open_memstream(&s, &n);

        if (!f)
                return NULL;
        for (struct json_object_iterator it = json_object_iter_begin(changed), end = json_object_iter_end(changed);
             !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
                _cleanup_free_ char *v = format_value(json_object_iter_peek_value(&it)),
                                    *shown = v ? ellipsize(v, 80) : NULL;

                fprintf(f, "%s%s=%s", first ? "" : " ", json_object_iter_peek_name(&it), strempty(shown));
                first = false;
        }
        for (size_t i = 0; invalidated && i < json_object_array_length(invalidated); i++) {
                fprintf(f, "%s%s changed", first ? "" : " ",
                        json_object_get_string(json_object_array_get_idx(invalidated, i)));
                first = false;
        }
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(s);
}

/* Prints one event: as a JSON line, or as "time  label  mesh  detail". */
static void print_event(json_object *ev, const char *label, const char *mesh, const char *detail) {
        _cleanup_free_ char *shown_mesh = NULL, *shown_detail = NULL;
        char when[CLOCK_MAX];

        if (arg.json) {
                json_print_line(ev);
                return;
        }
        /* The mesh slug, names and texts in the detail come from config files and peers. */
        shown_mesh = escape_line(mesh && mesh[0] ? mesh : "-");
        shown_detail = escape_line(strempty(detail));
        if (!shown_mesh || !shown_detail) {
                ctl_error_errno(-ENOMEM, "Cannot show an event: %m");
                return;
        }
        printf("%s  %s%-13s%s %-*s%s%s\n", format_clock(json_get_uint64(ev, "time"), when), ansi_bold(), label,
               ansi_normal(), detail ? 12 : 0, shown_mesh, detail ? " " : "", shown_detail);
        fflush(stdout);
}

static json_object *event_new(const char *name) {
        json_object *ev = json_object_new_object();

        if (!ev)
                return NULL;
        json_object_object_add(ev, "time", json_object_new_uint64(now_usec(CLOCK_REALTIME)));
        json_object_object_add(ev, "event", json_object_new_string(name));
        return ev;
}

static int on_properties_changed(sd_bus_message *m, json_object *ev) {
        _cleanup_(json_object_putp) json_object *changed = NULL, *invalidated = NULL;
        _cleanup_free_ char *slug = bus_mesh_slug_from_path(sd_bus_message_get_path(m)),
                            *session = bus_session_id_from_path(sd_bus_message_get_path(m)), *detail = NULL;
        const BusMap *map = NULL;
        BusMapError error = { .want = NULL };
        const char *interface;
        int r;

        r = sd_bus_message_read(m, "s", &interface);
        if (r < 0)
                return r;
        if (slug && streq(interface, MESH_INTERFACE))
                map = &bus_map_mesh_properties;
        else if (session && streq(interface, SESSION_INTERFACE))
                map = &bus_map_session_properties;
        else if (!slug && !session && streq(interface, DAEMON_INTERFACE))
                map = &bus_map_daemon_properties;
        /* Another interface's properties (a newer daemon's) are shown as they come. */
        r = map ? bus_map_changed(m, map, &changed, &error) : bus_message_read_json(m, &changed);
        if (r == 0)
                r = -EBADMSG;
        if (r < 0 && map) {
                (void) bus_map_report(r, &error, map, "show a PropertiesChanged signal");
                return 0;
        }
        if (r < 0)
                return r;
        r = bus_message_read_json(m, &invalidated);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        if (!mesh_wanted(slug))
                return 0;

        detail = format_changes(changed, invalidated);
        if (!detail)
                return -ENOMEM;
        json_object_object_add(ev, "object", json_object_new_string(slug ? "mesh" : session ? "session" : "daemon"));
        if (slug)
                json_object_object_add(ev, "mesh", json_object_new_string(slug));
        if (session)
                json_object_object_add(ev, "session", json_object_new_string(session));
        json_object_object_add(ev, "interface", json_object_new_string(interface));
        json_object_object_add(ev, "changed", TAKE_PTR(changed));
        json_object_object_add(ev, "invalidated", TAKE_PTR(invalidated));
        print_event(ev, "changed", slug ? slug : session ? session : "daemon", detail);
        return 0;
}

/* A session object coming or going: (path, interfaces) as on_interfaces() read them. */
static int on_session_interfaces(json_object *ev, const char *session, json_object *interfaces, bool added) {
        _cleanup_free_ char *detail = NULL;
        json_object *props = NULL;
        const char *mesh = NULL;

        /* InterfacesRemoved names only the interfaces: the mesh and the name are gone with them. */
        if (added) {
                if (!json_object_object_get_ex(interfaces, SESSION_INTERFACE, &props))
                        return 0;
                mesh = json_get_string(props, "Mesh");
                if (!mesh_wanted(mesh))
                        return 0;
                if (asprintf(&detail, "%s (%s)", json_get_string(props, "DisplayName"), session) < 0)
                        return -ENOMEM;
                json_object_object_add(ev, "mesh", json_object_new_string(mesh));
        }
        json_object_object_add(ev, "session", json_object_new_string(session));
        json_object_object_add(ev, "interfaces", json_object_get(interfaces));
        print_event(ev, added ? "session-added" : "session-removed", mesh, detail ? detail : session);
        return 0;
}

static int on_interfaces(sd_bus_message *m, json_object *ev, bool added) {
        _cleanup_(json_object_putp) json_object *interfaces = NULL;
        _cleanup_free_ char *slug = NULL, *session = NULL;
        const char *path;
        int r;

        r = sd_bus_message_read(m, "o", &path);
        if (r < 0)
                return r;
        r = bus_message_read_json(m, &interfaces);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;
        session = bus_session_id_from_path(path);
        if (session)
                return on_session_interfaces(ev, session, interfaces, added);
        slug = bus_mesh_slug_from_path(path);
        if (!slug || !mesh_wanted(slug))
                return 0;
        json_object_object_add(ev, "mesh", json_object_new_string(slug));
        json_object_object_add(ev, "interfaces", TAKE_PTR(interfaces));
        print_event(ev, added ? "mesh-added" : "mesh-removed", slug, NULL);
        return 0;
}

/* Delivered and SendFailed: (mesh, client_message_id, third) */
static int on_outbox_event(sd_bus_message *m, json_object *ev, const char *label, const char *third_key) {
        const char *mesh, *id, *third;
        _cleanup_free_ char *detail = NULL;
        int r;

        r = sd_bus_message_read(m, "sss", &mesh, &id, &third);
        if (r < 0)
                return r;
        if (!mesh_wanted(mesh))
                return 0;
        json_object_object_add(ev, "mesh", json_object_new_string(mesh));
        json_object_object_add(ev, "client_message_id", json_object_new_string(id));
        json_object_object_add(ev, third_key, json_object_new_string(third));
        if (asprintf(&detail, "%s%s%s", id, streq(third_key, "reason") ? ": " : " → ", third) < 0)
                return -ENOMEM;
        print_event(ev, label, mesh, detail);
        return 0;
}

/* Daemon1's MessageReceived, PeerJoined, PeerLeft, PeerChanged: (mesh, a{sv}); a session's
 * MessageReceived on its Session1 object: (a{sv}), whose "mesh" says the mesh. */
static int on_dict_event(sd_bus_message *m, json_object *ev, const char *label, const char *key) {
        _cleanup_(json_object_putp) json_object *dict = NULL;
        _cleanup_free_ char *detail = NULL, *body = NULL, *session = NULL;
        const BusMap *map = streq(key, "message") ? &bus_map_inbox_message : &bus_map_peer;
        BusMapError error = { .want = NULL };
        const char *mesh = NULL;
        int r;

        if (sd_bus_message_is_signal(m, SESSION_INTERFACE, NULL)) {
                session = bus_session_id_from_path(sd_bus_message_get_path(m));
                if (!session)
                        return -EBADMSG;
        } else {
                r = sd_bus_message_read(m, "s", &mesh);
                if (r < 0)
                        return r;
        }
        r = bus_map_dict(m, map, &dict, &error);
        if (r <= 0) {
                (void) bus_map_report(r < 0 ? r : -EBADMSG, &error, map, "show a signal");
                return 0;
        }
        if (!mesh)
                mesh = json_get_string(dict, "mesh");
        if (!mesh_wanted(mesh))
                return 0;
        if (streq(key, "message")) {
                const char *name = json_get_string(dict, "sender_name");

                body = ellipsize(json_get_string(dict, "body"), 80);
                if (!body || asprintf(&detail, "from %s%s%s: %s",
                                      name[0] ? name : json_get_string(dict, "sender_pubkey"),
                                      session ? " to session " : "", strempty(session), body) < 0)
                        return -ENOMEM;
        } else {
                _cleanup_free_ char *short_key = abbreviate_key(json_get_string(dict, "pubkey"), 16);

                if (!short_key || asprintf(&detail, "%s (%s)", json_get_string(dict, "display_name"), short_key) < 0)
                        return -ENOMEM;
                /* PeerChanged says the status or summary changed: the line shows the new ones. */
                if (streq(label, "peer-changed")) {
                        _cleanup_free_ char *who = TAKE_PTR(detail);
                        const char *status = json_get_string(dict, "status");

                        body = ellipsize(json_get_string(dict, "summary"), 80);
                        if (!body || asprintf(&detail, "%s %s: %s", who, status[0] ? status : "-", body) < 0)
                                return -ENOMEM;
                }
        }
        json_object_object_add(ev, "mesh", json_object_new_string(mesh));
        if (session)
                json_object_object_add(ev, "session", json_object_new_string(session));
        json_object_object_add(ev, key, TAKE_PTR(dict));
        print_event(ev, label, mesh, detail);
        return 0;
}

/* A signal this client does not know yet, from a newer daemon: shown with its raw arguments. */
static int on_other(sd_bus_message *m, json_object *ev) {
        _cleanup_(json_object_putp) json_object *args = NULL;
        int r;

        r = bus_message_read_json_args(m, &args);
        if (r < 0)
                return r;
        print_event(ev, sd_bus_message_get_member(m),  NULL,
                    json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_object_add(ev, "args", TAKE_PTR(args));
        return 0;
}

static int on_daemon_signal(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *member = sd_bus_message_get_member(m);
        _cleanup_(json_object_putp) json_object *ev = event_new(member);
        int r;

        if (!ev) {
                ctl_error_errno(-ENOMEM, "Cannot show an event: %m");
                return 0;
        }
        if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged"))
                r = on_properties_changed(m, ev);
        else if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded"))
                r = on_interfaces(m, ev, true);
        else if (sd_bus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved"))
                r = on_interfaces(m, ev, false);
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "Delivered"))
                r = on_outbox_event(m, ev, "delivered", "broker_message_id");
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "SendFailed"))
                r = on_outbox_event(m, ev, "send-failed", "reason");
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "MessageReceived"))
                r = on_dict_event(m, ev, "message", "message");
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "PeerJoined"))
                r = on_dict_event(m, ev, "peer-joined", "peer");
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "PeerLeft"))
                r = on_dict_event(m, ev, "peer-left", "peer");
        else if (sd_bus_message_is_signal(m, DAEMON_INTERFACE, "PeerChanged"))
                r = on_dict_event(m, ev, "peer-changed", "peer");
        else if (sd_bus_message_is_signal(m, SESSION_INTERFACE, "MessageReceived"))
                r = on_dict_event(m, ev, "message", "message");
        else
                r = on_other(m, ev);
        if (r < 0)
                ctl_error("Ignoring a malformed %s signal: %s", member, STRERROR(r));
        return 0;
}

static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;
        _cleanup_(json_object_putp) json_object *ev = NULL;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        ev = event_new(new_owner[0] ? "DaemonStarted" : "DaemonStopped");
        if (!ev)
                return 0;
        print_event(ev, new_owner[0] ? "daemon-started" : "daemon-stopped", NULL, new_owner[0] ? new_owner : old_owner);
        return 0;
}

static int resolve_mesh_filter(sd_bus *bus) {
        _cleanup_(json_object_putp) json_object *meshes = NULL;
        int r;

        /* Also makes sure the daemon is there (or activated) before waiting for it. */
        r = bus_get_meshes(bus, &meshes);
        if (r != CTL_EXIT_OK || !arg.mesh)
                return r;
        for (size_t i = 0; i < json_object_array_length(meshes); i++) {
                json_object *mesh = json_object_array_get_idx(meshes, i);

                if (!streq(arg.mesh, json_get_string(mesh, "Slug")) && !streq(arg.mesh, json_get_string(mesh, "Id")))
                        continue;
                filter_slug = strdup(json_get_string(mesh, "Slug"));
                filter_id = strdup(json_get_string(mesh, "Id"));
                if (!filter_slug || !filter_id)
                        return ctl_error_errno(-ENOMEM, "Cannot watch: %m");
                return CTL_EXIT_OK;
        }
        ctl_error("No mesh '%s' is configured: see 'claudemeshctl meshes'.", arg.mesh);
        return CTL_EXIT_NOT_FOUND;
}

int verb_watch(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *signals = NULL, *owner = NULL;
        int r;

        r = sd_bus_match_signal(bus, &signals, DAEMON_SERVICE, NULL, NULL, NULL, on_daemon_signal, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot subscribe to the daemon's signals: %m");
        r = sd_bus_add_match(bus, &owner,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                             "arg0='" DAEMON_SERVICE "'",
                             on_owner_changed, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot subscribe to the daemon's signals: %m");

        r = resolve_mesh_filter(bus);
        if (r == CTL_EXIT_OK) {
                if (!arg.json) {
                        printf("Watching claudemeshd; press Ctrl+C to stop.\n");
                        fflush(stdout);
                }
                r = bus_run_until_interrupted(bus);
        }
        filter_slug = mfree(filter_slug);
        filter_id = mfree(filter_id);
        return r;
}
