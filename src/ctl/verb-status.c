/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-json.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"

static const char *state_color(const char *state) {
        /* first-run: this host's fingerprint was just recorded, nothing to fix */
        if (streq(state, "online") || streq(state, "connected") || streq(state, "match") || streq(state, "first-run"))
                return ansi_green();
        if (streq(state, "invalid") || streq(state, "detached") || streq(state, "mismatch"))
                return ansi_red();
        return ansi_yellow();
}

/* Features: the names of the broker's features (the map made them an array), comma-separated. */
static char *features_summary(json_object *features) {
        _cleanup_free_ char *s = NULL;
        size_t n = 0;
        FILE *f;

        f = open_memstream(&s, &n);
        if (!f)
                return NULL;
        for (size_t i = 0; i < json_object_array_length(features); i++)
                fprintf(f, "%s%s", i ? "," : "", json_object_get_string(json_object_array_get_idx(features, i)));
        if (fclose(f) != 0)
                return NULL;
        return TAKE_PTR(s);
}

static int add_count_cell(Table *t, json_object *mesh, const char *key) {
        json_object *v;

        /* Properties of newer daemons: a missing one shows as "-". */
        if (!json_object_object_get_ex(mesh, key, &v))
                return table_add_cell(t, NULL, NULL);
        return table_add_cell(t, json_object_get_string(v), NULL);
}

static int add_mesh_row(Table *t, json_object *mesh, bool details) {
        const char *state = json_get_string(mesh, "State"), *last_error = json_get_string(mesh, "LastError");
        _cleanup_free_ char *features = NULL;
        json_object *list;
        int r;

        r = table_add_cell(t, json_get_string(mesh, "Slug"), ansi_bold());
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(mesh, "Name"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, state, state_color(state));
        if (r < 0)
                return r;
        if (!details) {
                r = table_add_cell(t, json_get_string(mesh, "BrokerUrl"), NULL);
                if (r < 0)
                        return r;
                return table_add_cell(t, json_get_string(mesh, "MemberId"), NULL);
        }
        /* Features is required by the map: always an array here. */
        if (!json_object_object_get_ex(mesh, "Features", &list))
                return -EBADMSG;
        features = features_summary(list);
        if (!features)
                return -ENOMEM;
        r = add_count_cell(t, mesh, "OutboxDepth");
        if (r < 0)
                return r;
        r = add_count_cell(t, mesh, "UnreadCount");
        if (r < 0)
                return r;
        r = table_add_cell(t, features, NULL);
        if (r < 0)
                return r;
        return table_add_cell(t, last_error, last_error[0] ? ansi_red() : NULL);
}

static int print_mesh_table(json_object *meshes, bool details) {
        static const char *const headers[] = { "MESH", "NAME", "STATE", "OUTBOX", "UNREAD", "FEATURES", "LAST ERROR" };
        static const char *const short_headers[] = { "MESH", "NAME", "STATE", "BROKER", "MEMBER" };
        _cleanup_(table_freep) Table *t = details ? table_new(ELEMENTSOF(headers), headers)
                                                  : table_new(ELEMENTSOF(short_headers), short_headers);
        int r = 0;

        if (!t)
                return ctl_error_errno(-ENOMEM, "Cannot list the meshes: %m");
        if (details) {
                table_set_shrinkable(t, 1, 10);
                table_set_shrinkable(t, 5, 12);
                table_set_shrinkable(t, 6, 16);
        } else {
                table_set_shrinkable(t, 1, 10);
                table_set_shrinkable(t, 3, 16);
        }
        for (size_t i = 0; i < json_object_array_length(meshes); i++) {
                r = add_mesh_row(t, json_object_array_get_idx(meshes, i), details);
                if (r < 0)
                        break;
        }
        if (r < 0)
                return ctl_error_errno(r, "Cannot list the meshes: %m");
        if (table_rows(t) == 0) {
                printf("No meshes are configured.\n");
                return CTL_EXIT_OK;
        }
        return table_print(t);
}

int verb_status(sd_bus *bus, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *props = NULL, *meshes = NULL;
        _cleanup_free_ char *fingerprint = NULL, *version = NULL, *status = NULL, *short_fp = NULL;
        const char *host_state, *fp, *config_error;
        int r;

        r = bus_get_daemon_properties(bus, &props);
        if (r == CTL_EXIT_OK)
                r = bus_get_meshes(bus, &meshes);
        if (r != CTL_EXIT_OK)
                return r;

        if (arg.json) {
                json_object_object_add(props, "Meshes", TAKE_PTR(meshes));
                json_print(props);
                return CTL_EXIT_OK;
        }

        host_state = json_get_string(props, "HostFingerprintState");
        fp = json_get_string(props, "HostFingerprint");
        config_error = json_get_string(props, "ConfigError");
        short_fp = abbreviate_key(fp, 16);
        if (!short_fp || asprintf(&version, "claudemeshd %s", json_get_string(props, "Version")) < 0 ||
            asprintf(&fingerprint, "%s%s%s%s", host_state, fp[0] ? " (" : "", short_fp, fp[0] ? ")" : "") < 0)
                return ctl_error_errno(-ENOMEM, "Cannot show the status: %m");

        print_field(12, "Daemon", NULL, version);
        /* The daemon's Status line ends with the config error, which has a line of its own here. */
        status = strdup(json_get_string(props, "Status"));
        if (!status)
                return ctl_error_errno(-ENOMEM, "Cannot show the status: %m");
        char *cut = config_error[0] ? strstr(status, "; config error: ") : NULL;
        if (cut)
                *cut = '\0';
        print_field(12, "Status", NULL, status);
        print_field(12, "Host", state_color(host_state), fingerprint);
        print_field(12, "Config", NULL, json_get_string(props, "ConfigFile"));
        if (config_error[0])
                print_field(12, "Config error", ansi_red(), config_error);
        print_field(12, "State", NULL, json_get_string(props, "StateDirectory"));
        if (streq(host_state, "mismatch"))
                printf("\nThis host's fingerprint changed: meshes stay detached until you run "
                       "'claudemeshctl accept-host'.\n");
        putchar('\n');
        if (json_object_array_length(meshes) == 0 && config_error[0]) {
                printf("No meshes: claudemeshd cannot use its config (Config error above).\n");
                return CTL_EXIT_OK;
        }
        return print_mesh_table(meshes, true);
}

int verb_meshes(sd_bus *bus, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *meshes = NULL;
        int r;

        r = bus_get_meshes(bus, &meshes);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg.json) {
                json_print(meshes);
                return CTL_EXIT_OK;
        }
        return print_mesh_table(meshes, false);
}

int verb_accept_host(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_(json_object_putp) json_object *props = NULL, *o = NULL;
        _cleanup_free_ char *fingerprint = NULL;
        int r;

        r = bus_new_daemon_call(bus, "AcceptHost", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build a bus call: %m");
        r = bus_call(bus, m, "accept the host fingerprint", NULL);
        if (r == CTL_EXIT_OK)
                r = bus_get_daemon_properties(bus, &props);
        if (r != CTL_EXIT_OK)
                return r;

        if (arg.json) {
                o = json_object_new_object();
                if (!o)
                        return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
                json_object_object_add(o, "HostFingerprintState",
                                       json_object_new_string(json_get_string(props, "HostFingerprintState")));
                json_object_object_add(o, "HostFingerprint",
                                       json_object_new_string(json_get_string(props, "HostFingerprint")));
                json_print(o);
                return CTL_EXIT_OK;
        }
        fingerprint = escape_line(json_get_string(props, "HostFingerprint"));
        if (!fingerprint)
                return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
        printf("Accepted host fingerprint %s; detached meshes attach.\n", fingerprint);
        return CTL_EXIT_OK;
}
