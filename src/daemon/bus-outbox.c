/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "bus-options.h"
#include "log.h"
#include "manager.h"

int manager_mesh_filter(Manager *m, const char *name, const char **ret_mesh_id, sd_bus_error *error) {
        Mesh *mesh;
        int r;

        if (!name[0]) {
                *ret_mesh_id = NULL;
                return 0;
        }
        r = manager_lookup_mesh(m, name, &mesh, error);
        if (r < 0)
                return r;
        *ret_mesh_id = mesh->entry->mesh_id;
        return 0;
}

const char *manager_mesh_slug(Manager *m, const char *mesh_id) {
        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->entry->mesh_id && streq(m->meshes[i]->entry->mesh_id, mesh_id))
                        return m->meshes[i]->entry->slug;
        return "";
}

int manager_outbox_check(Manager *m, sd_bus_error *error) {
        if (!m->outbox)
                return sd_bus_error_setf(error, CM_ERROR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);
        return 0;
}

int manager_inbox_check(Manager *m, sd_bus_error *error) {
        if (!m->inbox)
                return sd_bus_error_setf(error, CM_ERROR_STORAGE, "%s", m->inbox_error);
        return 0;
}

int manager_list_outbox(Manager *m, const char *mesh_id, OutboxStatus status, unsigned limit, OutboxRow **ret,
                        size_t *ret_n, sd_bus_error *error) {
        int r = outbox_list(m->outbox, mesh_id, status, limit, ret, ret_n);
        if (r < 0)
                return sd_bus_error_setf(error, CM_ERROR_STORAGE, "Cannot read the outbox: %s", STRERROR(r));
        return 0;
}

int manager_list_inbox(Manager *m, const char *mesh_id, usec_t since, const char *from, const char *topic,
                       unsigned limit, InboxMessage **ret, size_t *ret_n, sd_bus_error *error) {
        int r = inbox_list(m->inbox, mesh_id, since, from, topic, limit, ret, ret_n);
        if (r < 0)
                return sd_bus_error_setf(error, CM_ERROR_STORAGE, "Cannot read the inbox: %s", STRERROR(r));
        return 0;
}

int manager_requeue_check(Manager *m, const char *new_client_message_id, const char *aborted_by,
                          sd_bus_error *error) {
        if (new_client_message_id && !outbox_client_message_id_is_valid(new_client_message_id))
                return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "The new client_message_id must be 1 to "
                                         "%d printable ASCII characters.", OUTBOX_CLIENT_MESSAGE_ID_MAX);
        if (aborted_by && !streq(aborted_by, "operator") && !streq(aborted_by, "auto"))
                return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "aborted_by must be \"operator\" or "
                                         "\"auto\", not \"%s\".", aborted_by);
        return manager_outbox_check(m, error);
}

int manager_requeue(Manager *m, const char *row_id, const char *new_client_message_id, const char *aborted_by,
                    char ret_new_row_id[static ULID_MAX], char **ret_new_client_message_id, sd_bus_error *error) {
        int r;

        r = outbox_requeue(m->outbox, row_id, new_client_message_id, aborted_by, now_usec(CLOCK_REALTIME),
                           ret_new_row_id, ret_new_client_message_id);
        switch (r) {
        case -ENOENT:
                return sd_bus_error_setf(error, CM_ERROR_NO_SUCH_MESSAGE, "No outbox row \"%s\".",
                                         row_id);
        case -EBUSY:
                return sd_bus_error_setf(error, CM_ERROR_NOT_REQUEUEABLE, "Outbox row \"%s\" is neither pending nor "
                                         "dead; only those can be requeued.", row_id);
        case -EEXIST:
                return sd_bus_error_setf(error, CM_ERROR_CLIENT_MESSAGE_ID_IN_USE, "client_message_id \"%s\" is "
                                         "already used by another outbox row; ids are never reused.",
                                         strna(new_client_message_id));
        default:
                if (r < 0)
                        return sd_bus_error_setf(error, CM_ERROR_STORAGE, "Cannot requeue: %s", STRERROR(r));
        }
        /* The new row is due now: send it, rather than wait for some unrelated send to wake the drain. */
        transition_queue_kick(m->transitions);
        manager_drain_all(m);
        return 0;
}

/* Answers msg with an aa{sv}: one dictionary per item, written by append. */
static int reply_dict_list(sd_bus_message *msg, Manager *m, const void *items, size_t n, size_t item_size,
                           int (*append)(sd_bus_message *reply, Manager *m, const void *item)) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = append(reply, m, (const char *) items + i * item_size);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int append_outbox_row(sd_bus_message *reply, Manager *m, const void *item) {
        const OutboxRow *row = item;
        return sd_bus_message_append(
                reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                "id", "s", row->id,
                "client_message_id", "s", row->client_message_id,
                "mesh_id", "s", row->mesh_id,
                "mesh", "s", manager_mesh_slug(m, row->mesh_id),
                "status", "s", outbox_status_to_string(row->status),
                "target", "s", row->target_spec,
                "priority", "s", row->priority,
                "attempts", "u", (uint32_t) row->attempts,
                "enqueued_at", "t", (uint64_t) row->enqueued_at,
                "next_attempt_at", "t", (uint64_t) row->next_attempt_at,
                "delivered_at", "t", (uint64_t) row->delivered_at,
                "broker_message_id", "s", strempty(row->broker_message_id),
                "last_error", "s", strempty(row->last_error),
                "aborted_at", "t", (uint64_t) row->aborted_at,
                "aborted_by", "s", strempty(row->aborted_by),
                "superseded_by", "s", strempty(row->superseded_by),
                "reply_to_id", "s", strempty(row->reply_to),
                "payload_bytes", "t", (uint64_t) row->body_size);
}

/* The arguments of ListOutbox and ListInbox: a mesh ("" for all) and typed filters. */
static int read_list_call(sd_bus_message *msg, Manager *m, const BusOption *filters, size_t n_filters,
                          const char **ret_mesh_id, sd_bus_error *error) {
        const char *mesh_name;
        int r;

        r = sd_bus_message_read(msg, "s", &mesh_name);
        if (r < 0)
                return r;
        r = bus_read_options(msg, filters, n_filters, error);
        if (r < 0)
                return r;
        return manager_mesh_filter(m, mesh_name, ret_mesh_id, error);
}

int method_list_outbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *mesh_id, *status_name = NULL;
        OutboxStatus status = _OUTBOX_STATUS_INVALID;
        uint32_t limit = 0;
        const BusOption filters[] = {
                { "status", "s", &status_name },
                { "limit", "u", &limit },
        };
        OutboxRow *rows = NULL;
        size_t n = 0;
        int r;

        r = read_list_call(msg, m, filters, ELEMENTSOF(filters), &mesh_id, error);
        if (r < 0)
                return r;
        if (status_name) {
                status = outbox_status_from_string(status_name);
                if (status < 0)
                        return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "Filter \"status\" must be "
                                                 "pending, inflight, done, dead or aborted, not \"%s\".", status_name);
        }
        r = manager_outbox_check(m, error);
        if (r < 0)
                return r;

        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_list_outbox(m, mesh_id, status, limit, &rows, &n, error);
        if (r < 0)
                return r;

        r = reply_dict_list(msg, m, rows, n, sizeof(OutboxRow), append_outbox_row);
        outbox_rows_free(rows, n);
        return r;
}

int method_requeue(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *row_id, *client_message_id = NULL;
        const BusOption options[] = {
                { "client_message_id", "s", &client_message_id },
        };
        _cleanup_free_ char *new_client_message_id = NULL;
        char new_row_id[ULID_MAX];
        int r;

        r = sd_bus_message_read(msg, "s", &row_id);
        if (r < 0)
                return r;
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = manager_requeue_check(m, client_message_id, NULL, error);
        if (r < 0)
                return r;

        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_MANAGE_OUTBOX, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_requeue(m, row_id, client_message_id, NULL, new_row_id, &new_client_message_id, error);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "ss", new_row_id, new_client_message_id);
}

int bus_append_inbox_message(sd_bus_message *reply, Manager *m, const void *item) {
        const InboxMessage *im = item;
        return sd_bus_message_append(
                reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                "id", "s", im->id,
                "client_message_id", "s", im->client_message_id,
                "broker_message_id", "s", strempty(im->broker_message_id),
                "mesh_id", "s", im->mesh_id,
                "mesh", "s", manager_mesh_slug(m, im->mesh_id),
                "topic", "s", strempty(im->topic),
                "sender_pubkey", "s", im->sender_pubkey,
                "sender_name", "s", im->sender_name,
                "body", "s", strempty(im->body),
                "meta", "s", strempty(im->meta_json),
                "received_at", "t", (uint64_t) im->received_at,
                "reply_to_id", "s", strempty(im->reply_to_id));
}

int method_list_inbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *mesh_id, *from = NULL, *topic = NULL;
        uint64_t since = 0;
        uint32_t limit = 0;
        const BusOption filters[] = {
                { "since", "t", &since },
                { "from", "s", &from },
                { "topic", "s", &topic },
                { "limit", "u", &limit },
        };
        InboxMessage *msgs = NULL;
        size_t n = 0;
        int r;

        r = read_list_call(msg, m, filters, ELEMENTSOF(filters), &mesh_id, error);
        if (r < 0)
                return r;
        r = manager_inbox_check(m, error);
        if (r < 0)
                return r;

        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_list_inbox(m, mesh_id, since, from, topic, limit, &msgs, &n, error);
        if (r < 0)
                return r;

        r = reply_dict_list(msg, m, msgs, n, sizeof(InboxMessage), bus_append_inbox_message);
        inbox_messages_free(msgs, n);
        return r;
}

int method_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *name;
        Mesh *mesh;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r >= 0)
                r = manager_lookup_mesh(m, name, &mesh, error);
        if (r >= 0)
                r = manager_inbox_check(m, error);
        if (r < 0)
                return r;
        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = inbox_mark_read(m->inbox, mesh->entry->mesh_id, now_usec(CLOCK_REALTIME));
        if (r < 0)
                return sd_bus_error_setf(error, CM_ERROR_STORAGE, "Cannot store the read mark: %s", STRERROR(r));
        mesh->unread = 0;
        (void) sd_bus_emit_properties_changed(m->bus, mesh->path, MESH_INTERFACE, "UnreadCount", NULL);
        return sd_bus_reply_method_return(msg, NULL);
}
