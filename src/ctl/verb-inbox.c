/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-json.h"
#include "bus-map.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"

#define MESSAGE_COLUMNS 60

/* The sender as people know it: the display name, else the start of the public key. */
static char *sender_of(json_object *message) {
        const char *name = json_get_string(message, "sender_name");

        if (name[0])
                return strdup(name);
        return abbreviate_key(json_get_string(message, "sender_pubkey"), 12);
}

static int add_inbox_row(Table *t, json_object *message) {
        _cleanup_free_ char *sender = sender_of(message), *body = ellipsize(json_get_string(message, "body"),
                                                                           SIZE_MAX);
        char when[RELATIVE_MAX];
        int r;

        if (!sender || !body)
                return -ENOMEM;
        r = table_add_cell(t, format_relative(json_get_uint64(message, "received_at"), when), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(message, "mesh"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, sender, ansi_bold());
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(message, "topic"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, body, NULL);
        return r;
}

/* One line per message for --follow, where a table cannot be aligned ahead of time. */
static int print_message_line(json_object *message) {
        _cleanup_free_ char *raw_sender = NULL, *sender = NULL, *mesh = NULL, *topic = NULL, *body = NULL;
        char when[CLOCK_MAX];

        if (arg.json) {
                json_print_line(message);
                return 0;
        }
        raw_sender = sender_of(message);
        sender = raw_sender ? escape_line(raw_sender) : NULL;
        mesh = escape_line(json_get_string(message, "mesh"));
        topic = escape_line(json_get_string(message, "topic"));
        body = ellipsize(json_get_string(message, "body"), 200);
        if (!sender || !mesh || !topic || !body)
                return -ENOMEM;
        printf("%s  %s  %s%s%s%s%s: %s\n", format_clock(json_get_uint64(message, "received_at"), when), mesh,
               ansi_bold(), sender, ansi_normal(), topic[0] ? " #" : "", topic, body);
        fflush(stdout);
        return 0;
}

static bool message_matches(const char *signal_mesh, json_object *message) {
        if (arg.mesh && !streq(arg.mesh, signal_mesh) && !streq(arg.mesh, json_get_string(message, "mesh")) &&
            !streq(arg.mesh, json_get_string(message, "mesh_id")))
                return false;
        if (arg.from && !streq(arg.from, json_get_string(message, "sender_pubkey")))
                return false;
        return !arg.topic || streq(arg.topic, json_get_string(message, "topic"));
}

/* Ids already printed from the list, so a message arriving while it was read is not shown twice. */
static json_object *listed_ids;

static int on_message_received(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *message = NULL;
        BusMapError map_error = { .want = NULL };
        const char *mesh;
        int r;

        r = sd_bus_message_read(m, "s", &mesh);
        if (r < 0) {
                ctl_error("Ignoring a malformed MessageReceived signal: %s", STRERROR(r));
                return 0;
        }
        r = bus_map_dict(m, &bus_map_inbox_message, &message, &map_error);
        if (r <= 0) {
                (void) bus_map_report(r < 0 ? r : -EBADMSG, &map_error, &bus_map_inbox_message,
                                      "show a MessageReceived signal");
                return 0;
        }
        if (!message_matches(mesh, message) ||
            json_object_object_get_ex(listed_ids, json_get_string(message, "id"), NULL))
                return 0;
        r = print_message_line(message);
        if (r < 0)
                ctl_error_errno(r, "Cannot print a message: %m");
        return 0;
}

static int list_inbox(sd_bus *bus, json_object **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        BusMapError error = { .want = NULL };
        int r;

        r = bus_new_daemon_call(bus, "ListInbox", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = bus_append_time_option(m, "since", arg.since);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = bus_append_string_option(m, "from", arg.from);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = bus_append_string_option(m, "topic", arg.topic);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = bus_append_u32_option(m, "limit", arg.limit);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListInbox call: %m");
        r = bus_call(bus, m, "list the inbox", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict_array(reply, &bus_map_inbox_message, ret, &error);
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_inbox_message, "read the inbox");
        return CTL_EXIT_OK;
}

static int follow(sd_bus *bus, json_object *messages) {
        _cleanup_(json_object_putp) json_object *ids = json_object_new_object();
        size_t n = json_object_array_length(messages);
        int r;

        if (!ids)
                return ctl_error_errno(-ENOMEM, "Cannot follow the inbox: %m");
        /* The daemon lists newest first; a stream reads oldest first. */
        for (size_t i = n; i > 0; i--) {
                json_object *message = json_object_array_get_idx(messages, i - 1);

                json_object_object_add(ids, json_get_string(message, "id"), NULL);
                r = print_message_line(message);
                if (r < 0)
                        return ctl_error_errno(r, "Cannot print a message: %m");
        }
        fflush(stdout);
        listed_ids = ids;
        r = bus_run_until_interrupted(bus);
        listed_ids = NULL;
        return r;
}

int verb_inbox(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_(json_object_putp) json_object *messages = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        static const char *const headers[] = { "RECEIVED", "MESH", "FROM", "TOPIC", "MESSAGE" };
        int r;

        /* Subscribe before listing, so that nothing arriving in between is missed. */
        if (arg.follow) {
                r = sd_bus_match_signal(bus, &slot, DAEMON_SERVICE, DAEMON_PATH, DAEMON_INTERFACE, "MessageReceived",
                                        on_message_received, NULL);
                if (r < 0)
                        return ctl_error_errno(r, "Cannot subscribe to MessageReceived: %m");
        }
        r = list_inbox(bus, &messages);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg.follow)
                return follow(bus, messages);
        if (arg.json) {
                json_print(messages);
                return CTL_EXIT_OK;
        }

        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return ctl_error_errno(-ENOMEM, "Cannot list the inbox: %m");
        table_set_shrinkable(t, 2, 12);
        table_set_shrinkable(t, 3, 8);
        table_set_shrinkable(t, 4, MESSAGE_COLUMNS / 3);
        for (size_t i = json_object_array_length(messages); i > 0; i--) {
                r = add_inbox_row(t, json_object_array_get_idx(messages, i - 1));
                if (r < 0)
                        return ctl_error_errno(r, "Cannot list the inbox: %m");
        }
        if (table_rows(t) == 0) {
                printf("No messages.\n");
                return CTL_EXIT_OK;
        }
        return table_print(t);
}

int verb_mark_read(sd_bus *bus, int argc, char **argv) {
        char done[256];

        snprintf(done, sizeof done, "Marked the messages of %s as read.", arg.mesh ? arg.mesh : "the mesh");
        return mesh_method_call(bus, "MarkRead", "mark the messages as read", done);
}
