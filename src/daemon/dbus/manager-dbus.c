/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.claudemesh.Daemon1 on /org/claudemesh/Daemon1: its properties, the method handlers beside
 * their vtable, and its signals from the core's events. A handler reads and type-checks its
 * arguments, runs the core's check, asks polkit, then calls the core; core errors (cm-error.h)
 * become D-Bus errors here. */
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-options.h"
#include "config-build.h"
#include "log.h"
#include "manager-dbus.h"
#include "manager-link.h"
#include "manager-send.h"
#include "manager-store.h"
#include "manager.h"
#include "mesh-dbus.h"
#include "mesh-link.h"
#include "session-dbus.h"
#include "strv.h"
#include "time-util.h"

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_host_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", host_fingerprint_state_to_string(m->host_state));
}

static int property_get_host_fingerprint(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", m->host.fingerprint);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        int r;

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_RELOAD, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_reload_config(m, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_accept_host(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        int r;

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_ACCEPT_HOST, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_accept_host(m, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}

static void reply_send(const SendRequest *req, const OutboxAcceptResult *res, int result, const CmError *error,
                       void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = userdata;
        static const char *const status[] = {
                [OUTBOX_ACCEPT_QUEUED] = "queued",
                [OUTBOX_ACCEPT_PENDING] = "queued",
                [OUTBOX_ACCEPT_INFLIGHT] = "inflight",
                [OUTBOX_ACCEPT_DONE] = "done",
        };
        int r;

        if (cm_error_is_set(error))
                r = bus_reply_cm_error(call, error);
        else if (result < 0)
                r = sd_bus_reply_method_errno(call, result, NULL);
        else if (res->outcome != OUTBOX_ACCEPT_CONFLICT)
                r = sd_bus_reply_method_return(call, "sss", req->client_message_id, status[res->outcome],
                                               strempty(res->broker_message_id));
        else
                /* conflict name first: callers can match on it; then what a person needs to decide. */
                r = sd_bus_reply_method_errorf(
                        call, cm_error_dbus_name(CM_ERR_IDEMPOTENCY_CONFLICT),
                        "%s: client_message_id \"%s\" was already used for %s (stored fingerprint %s)%s%s%s%s. "
                        "Send with a new id%s.",
                        res->conflict, req->client_message_id,
                        strstr(res->conflict, "mismatch") ? "a different message" : "this message",
                        res->fingerprint_prefix,
                        res->broker_message_id ? ", broker message id " : "", strempty(res->broker_message_id),
                        res->last_error ? ", last error: " : "", strempty(res->last_error),
                        strstr(res->conflict, "dead") ? ", or requeue the dead row (Requeue)" : "");
        if (r < 0)
                log_debug_errno(r, "Could not answer a Send call: %m");
}

int manager_dbus_send(sd_bus_message *msg, Manager *m, const char *mesh_name, const char *to, const char *message,
                      const char *sender_pubkey, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        const char *priority = NULL, *meta = NULL, *reply_to_id = NULL, *client_message_id = NULL;
        const BusOption options[] = {
                { "priority", "s", &priority },
                { "meta", "s", &meta },
                { "reply_to_id", "s", &reply_to_id },
                { "client_message_id", "s", &client_message_id },
        };
        Caller caller;
        int r;

        assert(msg);
        assert(m);

        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        r = polkit_message_caller(m->polkit, msg, &caller);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller: %s",
                                         STRERROR(r));
        r = manager_send(m,
                         &(SendCall) {
                                 .caller = &caller,
                                 .interactive = sd_bus_message_get_allow_interactive_authorization(msg) > 0,
                                 .mesh = mesh_name,
                                 .to = to,
                                 .message = message,
                                 .sender_pubkey = sender_pubkey,
                                 .options = {
                                         .priority = priority,
                                         .meta = meta,
                                         .reply_to_id = reply_to_id,
                                         .client_message_id = client_message_id,
                                 },
                         },
                         reply_send, sd_bus_message_ref(msg), &e);
        if (r < 0) {
                sd_bus_message_unref(msg);
                return bus_error_set_cm(error, r, &e);
        }
        return 1;
}

static int method_send(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *mesh_name, *to, *message;
        int r;

        r = sd_bus_message_read(msg, "sss", &mesh_name, &to, &message);
        if (r < 0)
                return r;
        return manager_dbus_send(msg, userdata, mesh_name, to, message, NULL, error);
}

/* Answers msg with an aa{sv}: one dictionary per item, written by append. */
int reply_dict_list(sd_bus_message *msg, Manager *m, const void *items, size_t n, size_t item_size,
                           int (*append)(sd_bus_message *reply, Manager *m, const void *item)) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r < 0)
                        return r;
                r = append(reply, m, (const char *) items + i * item_size);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
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

static int method_list_outbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
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

static int method_requeue(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
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

int bus_read_inbox_filter(sd_bus_message *msg, InboxListRequest *q, sd_bus_error *error) {
        uint64_t since = 0;
        uint32_t limit = 0;
        const BusOption filters[] = {
                { "since", "t", &since },
                { "from", "s", &q->from },
                { "topic", "s", &q->topic },
                { "limit", "u", &limit },
        };
        int r;

        assert(msg);
        assert(q);

        r = bus_read_options(msg, filters, ELEMENTSOF(filters), error);
        if (r < 0)
                return r;
        q->since = since;
        q->limit = limit;
        return 0;
}

int manager_dbus_list_inbox(sd_bus_message *msg, Manager *m, const InboxListRequest *q, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        InboxMessage *msgs = NULL;
        size_t n = 0;
        int r;

        assert(msg);
        assert(m);
        assert(q);

        r = manager_list_inbox_check(m, q, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_list_inbox(m, q, &msgs, &n, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);

        r = reply_dict_list(msg, m, msgs, n, sizeof(InboxMessage), bus_append_inbox_message);
        inbox_messages_free(msgs, n);
        return r;
}

static int method_list_inbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        InboxListRequest q = { .mesh = NULL };
        int r;

        r = sd_bus_message_read(msg, "s", &q.mesh);
        if (r < 0)
                return r;
        r = bus_read_inbox_filter(msg, &q, error);
        if (r < 0)
                return r;
        return manager_dbus_list_inbox(msg, userdata, &q, error);
}

static int method_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
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

static int bus_append_peer(sd_bus_message *m, const MeshLink *l, const Peer *p) {
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
        return sd_bus_message_append(m, "{sv}{sv}{sv}{sv}{sv}",
                                     "session_id", "s", strempty(p->session_id),
                                     "peer_role", "s", strempty(p->peer_role),
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

/* The peer rows, each with stale and updated_at. */
static int reply_peer_list(sd_bus_message *call, const MeshLink *l, const Peer *peers, size_t n, bool stale,
                           usec_t updated_at) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r < 0)
                        return r;
                r = bus_append_peer(reply, l, &peers[i]);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "{sv}{sv}", "stale", "b", stale, "updated_at", "t",
                                          (uint64_t) updated_at);
                if (r < 0)
                        return r;
                r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static void reply_peers(const MeshLink *l, int result, const CmError *error, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = userdata;
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
        r = reply_peer_list(call, l, peers, n, result < 0, updated_at);
finish:
        if (r < 0)
                log_debug_errno(r, "Cannot answer ListPeers: %m");
}

static int method_list_peers(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
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

static int method_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        _cleanup_(profile_update_done) ProfileUpdate update = { 0 };
        Manager *m = userdata;
        const char *name;
        Mesh *mesh;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
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

static int method_reconnect(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
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

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", NULL, offsetof(Manager, status), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostFingerprintState", "s", property_get_host_state, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostFingerprint", "s", property_get_host_fingerprint, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConfigFile", "s", NULL, offsetof(Manager, config_path), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ConfigError", "s", NULL, offsetof(Manager, config_error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateDirectory", "s", NULL, offsetof(Manager, state_dir), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Send",
                                SD_BUS_ARGS("s", mesh, "s", to, "s", message, "a{sv}", options),
                                SD_BUS_RESULT("s", client_message_id, "s", status, "s", broker_message_id),
                                method_send, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListOutbox", SD_BUS_ARGS("s", mesh, "a{sv}", filter),
                                SD_BUS_RESULT("aa{sv}", rows), method_list_outbox, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Requeue", SD_BUS_ARGS("s", row_id, "a{sv}", options),
                                SD_BUS_RESULT("s", new_row_id, "s", new_client_message_id), method_requeue,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListInbox", SD_BUS_ARGS("s", mesh, "a{sv}", filter),
                                SD_BUS_RESULT("aa{sv}", messages), method_list_inbox, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkRead", SD_BUS_ARGS("s", mesh), SD_BUS_NO_RESULT, method_mark_read,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPeers", SD_BUS_ARGS("s", mesh), SD_BUS_RESULT("aa{sv}", peers),
                                method_list_peers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetProfile", SD_BUS_ARGS("s", mesh, "a{sv}", profile), SD_BUS_NO_RESULT,
                                method_set_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reconnect", SD_BUS_ARGS("s", mesh), SD_BUS_NO_RESULT, method_reconnect,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RegisterSession", SD_BUS_ARGS("s", mesh, "a{sv}", options),
                                SD_BUS_RESULT("o", session), session_dbus_method_register,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AcceptHost", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_accept_host,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Delivered",
                                SD_BUS_ARGS("s", mesh, "s", client_message_id, "s", broker_message_id), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SendFailed", SD_BUS_ARGS("s", mesh, "s", client_message_id, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageReceived", SD_BUS_ARGS("s", mesh, "a{sv}", message), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PeerJoined", SD_BUS_ARGS("s", mesh, "a{sv}", peer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PeerLeft", SD_BUS_ARGS("s", mesh, "a{sv}", peer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PeerChanged", SD_BUS_ARGS("s", mesh, "a{sv}", peer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("ReplyRequested", SD_BUS_ARGS("s", mesh, "s", message_id, "s", sender), 0),
        SD_BUS_VTABLE_END,
};

int bus_emit_inbox_message(Manager *m, const char *path, const char *interface, const char *mesh_slug,
                           const InboxMessage *im) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r;

        assert(m);
        assert(path);
        assert(interface);
        assert(im);

        r = sd_bus_message_new_signal(m->bus, &s, path, interface, "MessageReceived");
        if (r < 0)
                return r;
        if (mesh_slug) {
                r = sd_bus_message_append(s, "s", mesh_slug);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_open_container(s, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_inbox_message(s, m, im);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(s);
        if (r < 0)
                return r;
        return sd_bus_send(m->bus, s, NULL);
}

static int emit_peer(Manager *m, const char *signal, Mesh *mesh, const MeshLink *l, const Peer *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &s, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, signal);
        if (r < 0)
                return r;
        r = sd_bus_message_append(s, "s", mesh->entry->slug);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(s, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_peer(s, l, p);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(s);
        if (r < 0)
                return r;
        return sd_bus_send(m->bus, s, NULL);
}

/* The core's events as signals and PropertiesChanged. Only a MessageReceived that did not go out
 * fails (the row is announced again at the next start); the rest are best effort, as D-Bus
 * signals are. */
static int bus_on_event(Manager *m, const Event *e, void *userdata) {
        int r = 0;

        if (!m->bus)
                return e->kind == EVENT_MESSAGE_RECEIVED ? -ENOTCONN : 0;

        switch (e->kind) {
        case EVENT_DELIVERED:
        case EVENT_SEND_FAILED:
                r = sd_bus_emit_signal(m->bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE,
                                       e->kind == EVENT_DELIVERED ? "Delivered" : "SendFailed", "sss",
                                       manager_mesh_slug(m, e->mesh_id), e->client_message_id, e->detail);
                break;
        case EVENT_MESSAGE_RECEIVED:
                /* A session's rows are its own: MessageReceived on its object, not the daemon's. */
                r = e->session ? session_dbus_emit_message(m, e->session, e->message)
                               : bus_emit_inbox_message(m, DAEMON_OBJECT_PATH, DAEMON_INTERFACE,
                                                         e->mesh->entry->slug, e->message);
                if (r < 0)
                        return log_warning_errno(r, "Mesh %s: cannot emit MessageReceived for %s: %m",
                                                 e->mesh->entry->slug, e->message->id);
                break;
        case EVENT_UNREAD_CHANGED:
                r = sd_bus_emit_properties_changed(m->bus, e->mesh->path, MESH_INTERFACE, "UnreadCount", NULL);
                break;
        case EVENT_PEER_JOINED:
        case EVENT_PEER_LEFT:
        case EVENT_PEER_CHANGED:
                r = emit_peer(m,
                              e->kind == EVENT_PEER_JOINED ? "PeerJoined"
                              : e->kind == EVENT_PEER_LEFT ? "PeerLeft"
                                                           : "PeerChanged",
                              e->mesh, e->link, e->peer);
                break;
        case EVENT_REPLY_REQUESTED:
                r = sd_bus_emit_signal(m->bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, "ReplyRequested", "sss",
                                       manager_mesh_slug(m, e->mesh_id), e->message_id, e->sender);
                break;
        case EVENT_MESH_ADDED:
                r = mesh_dbus_emit_added(e->mesh);
                break;
        case EVENT_MESH_REMOVED:
                r = mesh_dbus_emit_removed(e->mesh);
                break;
        case EVENT_MESH_CHANGED:
                r = mesh_dbus_emit_changed(e->mesh);
                break;
        case EVENT_STATUS_CHANGED:
                r = sd_bus_emit_properties_changed(m->bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, "Status",
                                                   "ConfigError", "HostFingerprintState", "HostFingerprint", NULL);
                break;
        case EVENT_SESSION_ADDED:
        case EVENT_SESSION_REMOVED:
        case EVENT_SESSION_CHANGED:
                r = session_dbus_on_event(m, e);
                break;
        case EVENT_MESH_STATE: /* PropertiesChanged of EVENT_MESH_CHANGED says it */
        default:
                break;
        }
        if (r < 0)
                log_debug_errno(r, "Cannot emit a D-Bus signal: %m");
        return 0;
}

int manager_dbus_register(Manager *m) {
        int r;

        assert(m);

        r = sd_bus_open_user_with_description(&m->bus, "claudemeshd");
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the session bus (is DBUS_SESSION_BUS_ADDRESS "
                                          "set?): %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s: %m", DAEMON_OBJECT_PATH);
        r = sd_bus_add_object_manager(m->bus, NULL, DAEMON_OBJECT_PATH);
        if (r < 0)
                return log_error_errno(r, "Cannot register the object manager: %m");
        r = mesh_dbus_register(m);
        if (r < 0)
                return r;
        r = session_dbus_register(m);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus to the event loop: %m");
        /* Losing the session bus ends the session; leave rather than run unreachable. */
        r = sd_bus_set_exit_on_disconnect(m->bus, true);
        if (r < 0)
                return r;

        r = manager_subscribe(m, bus_on_event, NULL);
        if (r < 0)
                return log_error_errno(r, "Cannot subscribe the bus to the daemon's events: %m");

        return 0;
}

int manager_dbus_request_name(Manager *m) {
        int r;

        assert(m);

        r = sd_bus_request_name(m->bus, DAEMON_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "%s is already owned on this bus: another claudemeshd runs for this "
                                          "session (systemctl --user status claudemesh)", DAEMON_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s: %m", DAEMON_BUS_NAME);
        return 0;
}
