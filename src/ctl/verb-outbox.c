/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-json.h"
#include "bus-map.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"

static const char *status_color(const char *status) {
        if (streq(status, "done"))
                return ansi_green();
        if (streq(status, "dead"))
                return ansi_red();
        if (streq(status, "aborted"))
                return ansi_grey();
        return ansi_yellow();
}

/* What happened to the row, in a few words: its error, its successor or its broker id. */
static char *outcome_of(json_object *row) {
        const char *error = json_get_string(row, "last_error"), *successor = json_get_string(row, "superseded_by");
        char *s = NULL;

        if (error[0])
                return ellipsize(error, SIZE_MAX);
        if (successor[0])
                return asprintf(&s, "requeued as %s", successor) < 0 ? NULL : s;
        return strdup(json_get_string(row, "broker_message_id"));
}

static int add_outbox_row(Table *t, json_object *row) {
        _cleanup_free_ char *target = ellipsize(json_get_string(row, "target"), SIZE_MAX), *outcome = outcome_of(row);
        const char *status = json_get_string(row, "status");
        char when[RELATIVE_MAX], attempts[16];
        int r;

        if (!target || !outcome)
                return -ENOMEM;
        snprintf(attempts, sizeof attempts, "%llu", (unsigned long long) json_get_uint64(row, "attempts"));
        r = table_add_cell(t, json_get_string(row, "id"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(row, "client_message_id"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(row, "mesh"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, status, status_color(status));
        if (r < 0)
                return r;
        r = table_add_cell(t, target, NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, json_get_string(row, "priority"), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, attempts, NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, format_relative(json_get_uint64(row, "enqueued_at"), when), NULL);
        if (r < 0)
                return r;
        r = table_add_cell(t, outcome, NULL);
        return r;
}

int verb_outbox(sd_bus *bus, int argc, char **argv) {
        static const char *const headers[] = { "ROW", "ID", "MESH", "STATUS", "TO", "PRIORITY", "TRIES",
                                               "QUEUED", "OUTCOME" };
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(json_object_putp) json_object *rows = NULL;
        _cleanup_(table_freep) Table *t = NULL;
        BusMapError error = { .want = NULL };
        int r;

        r = bus_new_daemon_call(bus, "ListOutbox", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = sd_bus_message_append(m, "s", strempty(arg.mesh));
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = bus_append_string_option(m, "status", arg.status);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = bus_append_u32_option(m, "limit", arg.limit);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = bus_call(bus, m, "list the outbox", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict_array(reply, &bus_map_outbox_row, &rows, &error);
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_outbox_row, "read the outbox");

        if (arg.json) {
                json_print(rows);
                return CTL_EXIT_OK;
        }
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t)
                return ctl_error_errno(-ENOMEM, "Cannot list the outbox: %m");
        table_set_shrinkable(t, 1, 10);
        table_set_shrinkable(t, 4, 12);
        table_set_shrinkable(t, 8, 16);
        /* Newest first, as the daemon lists them: the rows one acts on are on top. */
        for (size_t i = 0; i < json_object_array_length(rows); i++) {
                r = add_outbox_row(t, json_object_array_get_idx(rows, i));
                if (r < 0)
                        return ctl_error_errno(r, "Cannot list the outbox: %m");
        }
        if (table_rows(t) == 0) {
                printf("The outbox is empty.\n");
                return CTL_EXIT_OK;
        }
        return table_print(t);
}

/* requeue takes what the outbox shows in its ROW or its ID column; Requeue takes the row id.
 * A message id is looked up among the rows ListOutbox lists by default (the newest). */
static int resolve_row(sd_bus *bus, const char *id, char **ret_row) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(json_object_putp) json_object *rows = NULL;
        _cleanup_free_ char *shown = escape_line(id);
        const char *found;
        unsigned matches = 0;
        BusMapError error = { .want = NULL };
        int r;

        if (!shown)
                return ctl_error_errno(-ENOMEM, "Cannot requeue the message: %m");
        r = bus_new_daemon_call(bus, "ListOutbox", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = sd_bus_message_append(m, "sa{sv}", strempty(arg.mesh), 0);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the ListOutbox call: %m");
        r = bus_call(bus, m, "find the outbox row", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_map_dict_array(reply, &bus_map_outbox_row, &rows, &error);
        if (r < 0)
                return bus_map_report(r, &error, &bus_map_outbox_row, "read the outbox");
        found = id; /* matching nothing listed: perhaps the row id of an older row */
        for (size_t i = 0; i < json_object_array_length(rows); i++) {
                json_object *row = json_object_array_get_idx(rows, i);

                if (streq(json_get_string(row, "id"), id)) {
                        *ret_row = strdup(id);
                        return *ret_row ? CTL_EXIT_OK : ctl_error_errno(-ENOMEM, "Cannot requeue the message: %m");
                }
                if (streq(json_get_string(row, "client_message_id"), id)) {
                        found = json_get_string(row, "id");
                        matches++;
                }
        }
        if (matches > 1) {
                ctl_error("Cannot requeue the message: %u outbox rows have the message id \"%s\".", matches, shown);
                ctl_hint("Give the row id (the ROW column of 'claudemeshctl outbox'), or --mesh.");
                return CTL_EXIT_USAGE;
        }
        *ret_row = strdup(found);
        return *ret_row ? CTL_EXIT_OK : ctl_error_errno(-ENOMEM, "Cannot requeue the message: %m");
}

int verb_requeue(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *shown_row = NULL, *shown_id = NULL, *row = NULL;
        const char *new_row, *new_id;
        int r;

        r = resolve_row(bus, argv[0], &row);
        if (r != CTL_EXIT_OK)
                return r;
        r = bus_new_daemon_call(bus, "Requeue", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Requeue call: %m");
        r = sd_bus_message_append(m, "s", row);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Requeue call: %m");
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Requeue call: %m");
        r = bus_append_string_option(m, "client_message_id", arg.new_id);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Requeue call: %m");
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Requeue call: %m");
        r = bus_call(bus, m, "requeue the message", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "ss", &new_row, &new_id);
        if (r < 0)
                return ctl_error_errno(r, "Cannot read the answer to Requeue: %m");

        if (arg.json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
                json_object_object_add(o, "new_row_id", json_object_new_string(new_row));
                json_object_object_add(o, "new_client_message_id", json_object_new_string(new_id));
                json_print(o);
                return CTL_EXIT_OK;
        }
        shown_row = escape_line(new_row);
        shown_id = escape_line(new_id);
        if (!shown_row || !shown_id)
                return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
        printf("Requeued as row %s with client message id %s.\n", shown_row, shown_id);
        return CTL_EXIT_OK;
}
