/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "bus-json.h"
#include "bus-map.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"
#include "time-util.h"

#define ERROR_PREFIX "org.claudemesh.Daemon1.Error."
#define POLKIT_ACTION_PREFIX "org.claudemesh.daemon1."
/* AcceptHost waits for the user's password: the daemon gives polkit 300 s for that. */
#define INTERACTIVE_CALL_TIMEOUT_USEC (330 * USEC_PER_SEC)

int bus_connect(sd_bus **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_user(&bus);
        if (r < 0) {
                ctl_error("Cannot connect to the session bus: %s", STRERROR(r));
                ctl_hint("claudemeshd runs on your session bus: run claudemeshctl inside your login session "
                         "(DBUS_SESSION_BUS_ADDRESS or $XDG_RUNTIME_DIR/bus).");
                return CTL_EXIT_NOT_RUNNING;
        }
        /* Like systemd's tools: let polkit ask for a password unless told not to. */
        r = sd_bus_set_allow_interactive_authorization(bus, arg.ask_password);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the bus connection: %m");
        *ret = TAKE_PTR(bus);
        return CTL_EXIT_OK;
}

int bus_new_daemon_call(sd_bus *bus, const char *method, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(bus, ret, DAEMON_SERVICE, DAEMON_PATH, DAEMON_INTERFACE, method);
}

int bus_append_string_option(sd_bus_message *m, const char *key, const char *value) {
        return value ? sd_bus_message_append(m, "{sv}", key, "s", value) : 0;
}

int bus_append_strv_option(sd_bus_message *m, const char *key, char **value) {
        int r;

        assert(m);
        assert(key);

        if (!value)
                return 0;
        /* No fixed-signature append takes a strv: the entry and variant are opened by hand. */
        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", key);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'v', "as");
        if (r < 0)
                return r;
        r = sd_bus_message_append_strv(m, value);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

int bus_append_u32_option(sd_bus_message *m, const char *key, const char *value) {
        unsigned long v;

        if (!value)
                return 0;
        errno = 0;
        v = strtoul(value, NULL, 10);
        if (errno != 0 || v > UINT32_MAX)
                return -ERANGE;
        return sd_bus_message_append(m, "{sv}", key, "u", (uint32_t) v);
}

int time_option_parse(const char *s, uint64_t *ret) {
        unsigned long long v;
        usec_t t;
        char *end;

        if (parse_iso8601(s, &t) >= 0) {
                *ret = t;
                return 0;
        }
        if (s[0] < '0' || s[0] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int bus_append_time_option(sd_bus_message *m, const char *key, const char *value) {
        uint64_t t;
        int r;

        if (!value)
                return 0;
        r = time_option_parse(value, &t);
        if (r < 0)
                return r;
        return sd_bus_message_append(m, "{sv}", key, "t", t);
}

/* "No meshes are configured" is often a config.json the daemon refuses (a chmod away), and a
 * mesh that was named needs no advice to name one. */
static void hint_no_such_mesh(sd_bus *bus) {
        _cleanup_free_ char *config_error = NULL;

        if (sd_bus_get_property_string(bus, DAEMON_SERVICE, DAEMON_PATH, DAEMON_INTERFACE, "ConfigError", NULL,
                                       &config_error) >= 0 && config_error[0]) {
                _cleanup_free_ char *shown = escape_line(config_error);
                ctl_hint("claudemeshd cannot use its config: %s", shown ? shown : "(out of memory)");
        } else if (arg.mesh)
                ctl_hint("'claudemeshctl meshes' lists the configured meshes.");
        else
                ctl_hint("Name the mesh with --mesh; 'claudemeshctl meshes' lists them.");
}

int bus_call(sd_bus *bus, sd_bus_message *m, const char *what, sd_bus_message **ret_reply) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call(bus, m, arg.ask_password ? INTERACTIVE_CALL_TIMEOUT_USEC : 0, &error, ret_reply);
        if (r >= 0)
                return CTL_EXIT_OK;
        r = bus_report_error(&error, r, what);
        if (sd_bus_error_has_name(&error, ERROR_PREFIX "NoSuchMesh"))
                hint_no_such_mesh(bus);
        else if (sd_bus_error_has_name(&error, ERROR_PREFIX "NoSuchMessage"))
                ctl_hint("'claudemeshctl outbox' lists the rows: requeue takes the ROW or the ID column.");
        return r;
}

/* The polkit action an authorization error names: the daemon always puts it in the message. */
static char *polkit_action_of(const char *message) {
        const char *p = message ? strstr(message, POLKIT_ACTION_PREFIX) : NULL;
        size_t n;

        if (!p)
                return NULL;
        n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789.-");
        while (n > 0 && p[n - 1] == '.')        /* the end of a sentence */
                n--;
        return strndup(p, n);
}

static bool error_is_daemon_absent(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_NO_SERVER) ||
               (e->name && strneq(e->name, "org.freedesktop.DBus.Error.Spawn.", 33));
}

static int report_access_denied(const sd_bus_error *e, const char *what) {
        _cleanup_free_ char *action = polkit_action_of(e->message);

        ctl_error("Cannot %s: access denied%s%s%s: %s", what, action ? " (polkit action " : "", strempty(action),
                  action ? ")" : "", strna(e->message));
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                ctl_hint("The action needs your password: run claudemeshctl without --no-ask-password, "
                         "in a session with a polkit agent.");
        else if (sd_bus_error_has_name(e, ERROR_PREFIX "AuthorizationUnavailable"))
                ctl_hint("polkit is not reachable on the system bus: start polkitd ('systemctl start polkit').");
        else if (action)
                ctl_hint("A polkit rule refuses it: see 'pkaction --verbose --action-id %s' and "
                         "/etc/polkit-1/rules.d.", action);
        return CTL_EXIT_ACCESS_DENIED;
}

int bus_report_error(const sd_bus_error *e, int r, const char *what) {
        if (!sd_bus_error_is_set(e)) {
                if (r == -ETIMEDOUT) {
                        ctl_error("Cannot %s: claudemeshd did not answer in time.", what);
                        ctl_hint("Check it with 'systemctl --user status claudemesh'.");
                        return CTL_EXIT_FAILURE;
                }
                return ctl_error_errno(r, "Cannot %s: %m", what);
        }

        if (error_is_daemon_absent(e)) {
                ctl_error("Cannot %s: claudemeshd is not running: start it with "
                          "'systemctl --user start claudemesh' (%s).", what, strna(e->message));
                ctl_hint("'systemctl --user status claudemesh' and 'journalctl --user -u claudemesh' show "
                         "why it stopped.");
                return CTL_EXIT_NOT_RUNNING;
        }
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_ACCESS_DENIED, SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                   ERROR_PREFIX "AuthorizationUnavailable"))
                return report_access_denied(e, what);
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                   SD_BUS_ERROR_UNKNOWN_PROPERTY, SD_BUS_ERROR_UNKNOWN_OBJECT)) {
                ctl_error("Cannot %s: the running claudemeshd does not offer it (%s).", what, strna(e->message));
                ctl_hint("claudemeshctl is newer than the daemon: restart it with "
                         "'systemctl --user restart claudemesh' after upgrading.");
                return CTL_EXIT_FAILURE;
        }
        if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY)) {
                ctl_error("Cannot %s: claudemeshd did not answer (%s).", what, strna(e->message));
                ctl_hint("Check it with 'systemctl --user status claudemesh'.");
                return CTL_EXIT_FAILURE;
        }

        ctl_error("Cannot %s: %s", what, strna(e->message));
        if (sd_bus_error_has_names(e, ERROR_PREFIX "IdempotencyConflict", ERROR_PREFIX "ClientMessageIdInUse",
                                   ERROR_PREFIX "NotRequeueable"))
                return CTL_EXIT_CONFLICT;
        if (sd_bus_error_has_name(e, ERROR_PREFIX "NotConnected"))
                ctl_hint("'claudemeshctl status' shows why; 'claudemeshctl reconnect' tries again.");
        if (sd_bus_error_has_names(e, ERROR_PREFIX "NoSuchMesh", ERROR_PREFIX "NoSuchMessage",
                                   ERROR_PREFIX "UnknownPeer"))
                return CTL_EXIT_NOT_FOUND;
        if (sd_bus_error_has_names(e, ERROR_PREFIX "InvalidArgument", ERROR_PREFIX "AmbiguousPeer",
                                   SD_BUS_ERROR_INVALID_ARGS)) {
                ctl_hint("See 'claudemeshctl --help'.");
                return CTL_EXIT_USAGE;
        }
        return CTL_EXIT_FAILURE;
}

static int get_all(sd_bus *bus, const char *path, const char *interface, const BusMap *map, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        BusMapError error = { .want = NULL };
        int r;

        r = sd_bus_message_new_method_call(bus, &m, DAEMON_SERVICE, path, "org.freedesktop.DBus.Properties",
                                           "GetAll");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build a bus call: %m");
        r = sd_bus_message_append(m, "s", interface);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build a bus call: %m");
        r = bus_call(bus, m, "read the daemon's properties", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict(reply, map, ret, &error);
        if (r <= 0)
                return bus_map_report(r < 0 ? r : -EBADMSG, &error, map, "read the daemon's properties");
        return CTL_EXIT_OK;
}

int bus_get_daemon_properties(sd_bus *bus, json_object **ret) {
        return get_all(bus, DAEMON_PATH, DAEMON_INTERFACE, &bus_map_daemon_properties, ret);
}

static int compare_slug(const void *a, const void *b) {
        json_object *const *x = a, *const *y = b;
        return strcmp(json_get_string(*x, "Slug"), json_get_string(*y, "Slug"));
}

/* One object of GetManagedObjects: its Mesh1 properties when it is a mesh, else nothing. */
static int read_managed_object(sd_bus_message *reply, json_object *meshes, BusMapError *error) {
        const char *path, *interface;
        bool is_mesh;
        int r;

        r = sd_bus_message_read_basic(reply, 'o', &path);
        if (r < 0)
                return r;
        is_mesh = strneq(path, MESH_PATH_PREFIX "/", strlen(MESH_PATH_PREFIX "/"));
        r = sd_bus_message_enter_container(reply, 'a', "{sa{sv}}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sa{sv}")) > 0) {
                r = sd_bus_message_read_basic(reply, 's', &interface);
                if (r < 0)
                        return r;
                if (is_mesh && streq(interface, MESH_INTERFACE)) {
                        json_object *props = NULL;

                        r = bus_map_dict(reply, &bus_map_mesh_properties, &props, error);
                        if (r == 0)
                                r = -EBADMSG;
                        if (r < 0)
                                return r;
                        if (json_object_array_add(meshes, props) < 0) {
                                json_object_put(props);
                                return -ENOMEM;
                        }
                } else {
                        r = sd_bus_message_skip(reply, "a{sv}");
                        if (r < 0)
                                return r;
                }
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

int bus_get_meshes(sd_bus *bus, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(json_object_putp) json_object *meshes = json_object_new_array();
        BusMapError error = { .want = NULL };
        int r;

        if (!meshes)
                return ctl_error_errno(-ENOMEM, "Cannot list the meshes: %m");
        r = sd_bus_message_new_method_call(bus, &m, DAEMON_SERVICE, DAEMON_PATH,
                                           "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build a bus call: %m");
        r = bus_call(bus, m, "list the meshes", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = sd_bus_message_enter_container(reply, 'a', "{oa{sa{sv}}}");
        while (r > 0) {
                r = sd_bus_message_enter_container(reply, 'e', "oa{sa{sv}}");
                if (r <= 0)
                        break;
                r = read_managed_object(reply, meshes, &error);
                if (r < 0)
                        break;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        break;
                r = 1;
        }
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_mesh_properties, "read the mesh list");
        json_object_array_sort(meshes, compare_slug);
        *ret = TAKE_PTR(meshes);
        return CTL_EXIT_OK;
}

char *bus_mesh_slug_from_path(const char *path) {
        char *slug = NULL;

        if (sd_bus_path_decode(path, MESH_PATH_PREFIX, &slug) <= 0)
                return NULL;
        return slug;
}

char *bus_session_id_from_path(const char *path) {
        char *id = NULL;

        if (sd_bus_path_decode(path, SESSION_PATH_PREFIX, &id) <= 0)
                return NULL;
        return id;
}

static int on_interrupt(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), CTL_EXIT_OK);
}

int bus_run_until_interrupted(sd_bus *bus) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        sigset_t mask;
        int r;

        /* sd-event takes signals through a signalfd, which needs them blocked. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return ctl_error_errno(negative_errno(), "Cannot block signals: %m");

        r = sd_event_default(&event);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGINT, on_interrupt, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_event_add_signal(event, NULL, SIGTERM, on_interrupt, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");

        /* Exits with 0 on a signal; exit-on-disconnect makes it exit with EXIT_FAILURE. Leaving the
         * loop closes the bus (sd-bus's exit handler), so the code is all that tells them apart. */
        r = sd_event_loop(event);
        if (r < 0)
                return ctl_error_errno(r, "Event loop failed: %m");
        if (r != 0) {
                ctl_error("The session bus went away.");
                return CTL_EXIT_NOT_RUNNING;
        }
        return CTL_EXIT_OK;
}
