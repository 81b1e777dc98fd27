/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>
#include <unistd.h>

#include "bus-json.h"
#include "bus-util.h"
#include "ctl.h"
#include "fileio.h"
#include "json-util.h"
#include "mcp.h"
#include "output.h"

/* Tool calls wait this long; polkit may ask the user first. */
#define MCP_CALL_TIMEOUT_USEC (120 * USEC_PER_SEC)
#define CONFIG_FILE_MAX (4 * 1024 * 1024)

void mesh_api_done(MeshApi *a) {
        a->slug = mfree(a->slug);
        a->id = mfree(a->id);
        a->session = mfree(a->session);
        a->public_key = mfree(a->public_key);
        a->bus = NULL;
}

/* config.json's defaultMesh, from the file the daemon reads. Only that member is kept. */
static char *default_mesh(sd_bus *bus) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_(json_object_putp) json_object *config = NULL;
        const char *name;
        size_t size;

        if (sd_bus_get_property_string(bus, DAEMON_SERVICE, DAEMON_PATH, DAEMON_INTERFACE, "ConfigFile", NULL,
                                       &path) < 0 || !path[0])
                return NULL;
        if (read_full_file(path, CONFIG_FILE_MAX, &text, &size, NULL) < 0)
                return NULL;
        if (json_parse_strict(text, size, &config) < 0)
                return NULL;
        if (json_member_string_strict(config, "defaultMesh", &name) <= 0)
                return NULL;
        return strdup(name);
}

static int take_mesh(json_object *mesh, MeshApi *a) {
        a->slug = strdup(json_get_string(mesh, "Slug"));
        a->id = strdup(json_get_string(mesh, "Id"));
        if (!a->slug || !a->id)
                return ctl_error_errno(-ENOMEM, "Cannot choose the mesh: %m");
        return CTL_EXIT_OK;
}

int mesh_api_resolve(sd_bus *bus, const char *name, MeshApi *a) {
        _cleanup_(json_object_putp) json_object *meshes = NULL;
        _cleanup_free_ char *fallback = NULL, *list = NULL;
        size_t n, list_size = 0;
        FILE *f;
        int r;

        assert(bus);
        assert(a);

        r = bus_get_meshes(bus, &meshes);
        if (r != CTL_EXIT_OK)
                return r;
        a->bus = bus;
        n = json_object_array_length(meshes);
        if (!name && n == 1)
                return take_mesh(json_object_array_get_idx(meshes, 0), a);
        if (!name)
                name = fallback = default_mesh(bus);
        for (size_t i = 0; name && i < n; i++) {
                json_object *mesh = json_object_array_get_idx(meshes, i);

                if (streq(name, json_get_string(mesh, "Slug")) || streq(name, json_get_string(mesh, "Id")))
                        return take_mesh(mesh, a);
        }

        f = open_memstream(&list, &list_size);
        if (!f)
                return ctl_error_errno(-ENOMEM, "Cannot choose the mesh: %m");
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%s%s", i ? ", " : "", json_get_string(json_object_array_get_idx(meshes, i), "Slug"));
        if (fclose(f) != 0)
                return ctl_error_errno(-ENOMEM, "Cannot choose the mesh: %m");
        {
                _cleanup_free_ char *shown = escape_line(list), *shown_name = name ? escape_line(name) : NULL;

                if (n == 0)
                        ctl_error("No meshes are configured: join one first.");
                else if (fallback)
                        ctl_error("defaultMesh \"%s\" names no configured mesh; configured: %s.", strna(shown_name),
                                  strna(shown));
                else if (name)
                        ctl_error("No mesh \"%s\" is configured; configured: %s.", strna(shown_name), strna(shown));
                else
                        ctl_error("Several meshes are configured; name one with --mesh, or set \"defaultMesh\" in "
                                  "config.json: %s.", strna(shown));
        }
        return CTL_EXIT_NOT_FOUND;
}

bool mesh_api_is_ours(const MeshApi *a, const char *mesh) {
        assert(a);
        return mesh && (streq(mesh, a->slug) || streq(mesh, a->id));
}

static int call(MeshApi *a, sd_bus_message *m, sd_bus_error *error, sd_bus_message **ret_reply) {
        return sd_bus_call(a->bus, m, MCP_CALL_TIMEOUT_USEC, error, ret_reply);
}

bool mesh_api_is_self(const MeshApi *a, const char *pubkey) {
        assert(a);
        return pubkey && a->public_key && streq(pubkey, a->public_key);
}

bool mesh_api_is_session(const MeshApi *a, sd_bus_message *m) {
        const char *path = sd_bus_message_get_path(m);

        assert(a);
        return path && a->session && streq(path, a->session);
}

int mesh_api_register(MeshApi *a, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *cwd = NULL, *session = NULL, *key = NULL;
        const char *path;
        int r;

        assert(a);

        /* The daemon takes only an absolute path; without one the session has no cwd. */
        cwd = getcwd(NULL, 0);
        r = bus_new_daemon_call(a->bus, "RegisterSession", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", a->slug);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "display_name", a->name);
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "session_id", a->session_id);
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "cwd", cwd && cwd[0] == '/' ? cwd : NULL);
        if (r < 0)
                return r;
        r = bus_append_strv_option(m, "groups", a->groups && a->groups[0] ? a->groups : NULL);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = call(a, m, error, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return r;
        session = strdup(path);
        if (!session)
                return -ENOMEM;
        r = sd_bus_get_property_string(a->bus, DAEMON_SERVICE, session, SESSION_INTERFACE, "PublicKey", error, &key);
        if (r < 0)
                return r;
        free(a->session);
        a->session = TAKE_PTR(session);
        free(a->public_key);
        a->public_key = TAKE_PTR(key);
        return 0;
}

/* A new Session1 call on our session. */
static int new_session_call(MeshApi *a, const char *method, sd_bus_message **ret) {
        assert(a->session);
        return sd_bus_message_new_method_call(a->bus, ret, DAEMON_SERVICE, a->session, SESSION_INTERFACE, method);
}

/* A new Daemon1 call whose first argument is the mesh. */
static int new_mesh_call(MeshApi *a, const char *method, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_new_daemon_call(a->bus, method, &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", a->slug);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

int mesh_api_send(MeshApi *a, const char *to, const char *message, const char *priority, const char *reply_to,
                  sd_bus_error *error, char **ret_id, char **ret_status) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *id, *status, *broker_id;
        int r;

        assert(a && to && message && ret_id && ret_status);

        r = new_session_call(a, "Send", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", to, message);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "priority", priority);
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "reply_to_id", reply_to);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = call(a, m, error, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "sss", &id, &status, &broker_id);
        if (r < 0)
                return r;
        *ret_id = strdup(id);
        *ret_status = strdup(status);
        if (!*ret_id || !*ret_status) {
                *ret_id = mfree(*ret_id);
                *ret_status = mfree(*ret_status);
                return -ENOMEM;
        }
        return 0;
}

static int read_rows(sd_bus_message *reply, json_object **ret) {
        int r;

        r = bus_message_read_json(reply, ret);
        if (r < 0)
                return r;
        if (r == 0 || !json_object_is_type(*ret, json_type_array))
                return -EBADMSG;
        return 0;
}

int mesh_api_list_peers(MeshApi *a, sd_bus_error *error, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        assert(a && ret);
        r = new_mesh_call(a, "ListPeers", &m);
        if (r < 0)
                return r;
        r = call(a, m, error, &reply);
        if (r < 0)
                return r;
        return read_rows(reply, ret);
}

int mesh_api_list_inbox(MeshApi *a, sd_bus_error *error, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        assert(a && ret);
        r = new_session_call(a, "ListInbox", &m);
        if (r < 0)
                return r;
        /* No filter: the types of since and limit change between daemon versions. */
        r = sd_bus_message_append(m, "a{sv}", 0);
        if (r < 0)
                return r;
        r = call(a, m, error, &reply);
        if (r < 0)
                return r;
        return read_rows(reply, ret);
}

int mesh_api_unread_count(MeshApi *a, sd_bus_error *error, unsigned *ret) {
        uint32_t n;
        int r;

        assert(a && ret && a->session);
        r = sd_bus_get_property_trivial(a->bus, DAEMON_SERVICE, a->session, SESSION_INTERFACE, "UnreadCount", error,
                                        'u', &n);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

int mesh_api_mark_read(MeshApi *a, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert(a);
        r = new_session_call(a, "MarkRead", &m);
        if (r < 0)
                return r;
        return call(a, m, error, NULL);
}

int mesh_api_set_profile(MeshApi *a, const char *status, const char *summary, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        assert(a);
        r = new_session_call(a, "SetProfile", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "status", status);
        if (r < 0)
                return r;
        r = bus_append_string_option(m, "summary", summary);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return call(a, m, error, NULL);
}

int mesh_api_match_events(MeshApi *a, sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_daemon,
                          sd_bus_slot **ret_session) {
        int r;

        assert(a && callback && ret_daemon && ret_session);
        /* The handler sorts them by interface and member. Every session's MessageReceived: the
         * object changes when the daemon restarts and this server registers again. */
        r = sd_bus_match_signal(a->bus, ret_daemon, DAEMON_SERVICE, DAEMON_PATH, DAEMON_INTERFACE, NULL, callback,
                                userdata);
        if (r < 0)
                return r;
        return sd_bus_match_signal(a->bus, ret_session, DAEMON_SERVICE, NULL, SESSION_INTERFACE, "MessageReceived",
                                   callback, userdata);
}
