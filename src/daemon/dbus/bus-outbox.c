/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "bus-options.h"
#include "log.h"
#include "manager-store.h"
#include "manager.h"

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

int method_list_outbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        const char *status_name = NULL;
        OutboxListRequest q = { .status = _OUTBOX_STATUS_INVALID };
        uint32_t limit = 0;
        const BusOption filters[] = {
                { "status", "s", &status_name },
                { "limit", "u", &limit },
        };
        OutboxRow *rows = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_read(msg, "s", &q.mesh);
        if (r < 0)
                return r;
        r = bus_read_options(msg, filters, ELEMENTSOF(filters), error);
        if (r < 0)
                return r;
        q.limit = limit;
        r = manager_list_outbox_check(m, &q, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        if (status_name) {
                q.status = outbox_status_from_string(status_name);
                if (q.status < 0)
                        return bus_error_setf(error, CM_ERR_INVALID_ARGUMENT, "Filter \"status\" must be "
                                              "pending, inflight, done, dead or aborted, not \"%s\".", status_name);
        }

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_list_outbox(m, &q, &rows, &n, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = reply_dict_list(msg, m, rows, n, sizeof(OutboxRow), append_outbox_row);
        outbox_rows_free(rows, n);
        return r;
}

int method_requeue(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        RequeueRequest q = { .row_id = NULL };
        const BusOption options[] = {
                { "client_message_id", "s", &q.new_client_message_id },
        };
        _cleanup_free_ char *new_client_message_id = NULL;
        char new_row_id[ULID_MAX];
        int r;

        r = sd_bus_message_read(msg, "s", &q.row_id);
        if (r < 0)
                return r;
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = manager_requeue_check(m, &q, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_MANAGE_OUTBOX, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_requeue(m, &q, new_row_id, &new_client_message_id, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
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
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        InboxListRequest q = { .mesh = NULL };
        uint64_t since = 0;
        uint32_t limit = 0;
        const BusOption filters[] = {
                { "since", "t", &since },
                { "from", "s", &q.from },
                { "topic", "s", &q.topic },
                { "limit", "u", &limit },
        };
        InboxMessage *msgs = NULL;
        size_t n = 0;
        int r;

        r = sd_bus_message_read(msg, "s", &q.mesh);
        if (r < 0)
                return r;
        r = bus_read_options(msg, filters, ELEMENTSOF(filters), error);
        if (r < 0)
                return r;
        q.since = since;
        q.limit = limit;
        r = manager_list_inbox_check(m, &q, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_list_inbox(m, &q, &msgs, &n, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = reply_dict_list(msg, m, msgs, n, sizeof(InboxMessage), bus_append_inbox_message);
        inbox_messages_free(msgs, n);
        return r;
}

int method_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = manager_mark_read_check(m, name, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_mark_read(m, name, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}
