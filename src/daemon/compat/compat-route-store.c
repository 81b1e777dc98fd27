/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "compat-routes-internal.h"
#include "hex-util.h"
#include "json-util.h"
#include "manager-store.h"

/* GET /v1/inbox, GET /v1/outbox and POST /v1/outbox/requeue (reference §2.3): upstream's query and
 * body rules, then the core of ListInbox, ListOutbox and Requeue (manager-store.c) under the same
 * polkit actions. Upstream's per-row read state (seen_at, POST /v1/inbox/seen) and inbox pruning
 * (DELETE /v1/inbox[/<id>]) have no bus method; they run under the read action, as MarkRead. Each route parses its request once, checks it before asking polkit, and hands
 * the parsed request to the core call once allowed (which checks it again). */

#define REQUEUE_CONFLICT "row not found, already aborted, or already done"

/* Upstream's JavaScript treats an empty parameter like a missing one. */
static const char *query(CompatRequest *req, const char *key) {
        const char *v = compat_request_query(req, key);
        return v && v[0] ? v : NULL;
}

/* ?limit=: a whole number clamped to 1..max, def when absent. 0, or 1 after answering 400. */
static int query_limit(CompatRequest *req, unsigned def, unsigned max, unsigned *ret) {
        const char *s = query(req, "limit");
        long long v;
        char *end;

        if (!s) {
                *ret = def;
                return 0;
        }
        /* Out of range saturates, and the clamp takes it from there. */
        v = strtoll(s, &end, 10);
        if (end == s || *end)
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "'limit' must be a whole number"));
        *ret = v < 1 ? 1 : v > max ? max : (unsigned) v;
        return 0;
}

static int add_time(json_object *o, const char *key, usec_t t) {
        json_object *v = NULL;

        if (t != 0 && !(v = compat_json_time(t)))
                return -ENOMEM;
        return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

static int add_uint(json_object *o, const char *key, uint64_t n) {
        json_object *v = json_object_new_int64((int64_t) n);

        if (!v)
                return -ENOMEM;
        return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

/* ?key=true|false (upstream's spelling; empty is absent): 0 with *ret set (def when absent), or 1
 * after answering 400. */
static int query_bool(CompatRequest *req, const char *key, bool def, bool *ret) {
        const char *s = query(req, key);
        _cleanup_free_ char *text = NULL;

        if (!s)
                *ret = def;
        else if (streq(s, "true") || streq(s, "false"))
                *ret = streq(s, "true");
        else if (asprintf(&text, "'%s' must be true or false", key) < 0)
                return -ENOMEM;
        else
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, text));
        return 0;
}

/* ?key= as an ISO 8601 time (0 when absent): 0, or 1 after answering 400. */
static int query_time(CompatRequest *req, const char *key, usec_t *ret) {
        const char *s = query(req, key);
        _cleanup_free_ char *text = NULL;

        *ret = 0;
        if (!s || parse_iso8601(s, ret) >= 0)
                return 0;
        if (asprintf(&text, "'%s' must be an ISO 8601 time, such as 2026-05-03T19:24:32.123Z", key) < 0)
                return -ENOMEM;
        return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, text));
}

/* 200 {"items": [...]} (and extra's members), one object per item, filled by fill. */
static int reply_items(CompatRequest *req, Manager *m, const void *items, size_t n, size_t item_size,
                       int (*fill)(json_object *o, Manager *m, const void *item), json_object *extra) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *list = json_object_new_array();
        int r;

        if (!body || !list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return -ENOMEM;
                r = fill(o, m, (const char *) items + i * item_size);
                if (r < 0)
                        return r;
                if (json_object_array_add(list, o) < 0)
                        return -ENOMEM;
                TAKE_PTR(o);
        }
        if (json_object_object_add(body, "items", list) < 0)
                return -ENOMEM;
        TAKE_PTR(list);
        if (extra) {
                json_object_object_foreach(extra, key, value)
                        if (json_object_object_add(body, key, json_object_get(value)) < 0)
                                return -ENOMEM;
        }
        return compat_reply(req, MHD_HTTP_OK, body);
}

typedef struct InboxQuery {
        CompatServer *server;
        InboxListRequest list;
        const char *recipient_kind;  /* "member", "session" or NULL: req's */
        bool mark_seen;          /* upstream's default: a listing stamps what it returned as seen */
} InboxQuery;

/* 0 with *q set, or 1 after answering 400 (bad since, limit, mesh, unread_only or mark_seen) or
 * 503. The strings stay req's. */
static int inbox_query(CompatRequest *req, Manager *m, InboxQuery *iq) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        InboxListRequest *q = &iq->list;
        int r;

        *q = (InboxListRequest) { .mesh = query(req, "mesh"), .from = query(req, "from"), .topic = query(req, "topic") };
        r = query_time(req, "since", &q->since);
        if (r != 0)
                return r;
        r = query_bool(req, "unread_only", false, &q->unread_only);
        if (r != 0)
                return r;
        r = query_bool(req, "mark_seen", true, &iq->mark_seen);
        if (r != 0)
                return r;
        r = query_limit(req, INBOX_LIST_DEFAULT, INBOX_LIST_MAX, &q->limit);
        if (r != 0)
                return r;
        q->recipient_pubkey = query(req, "recipient_pubkey");
        if (q->recipient_pubkey && !hex_string(q->recipient_pubkey, 64, HEX_LOWER))
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                                          "'recipient_pubkey' must be 64 lowercase hex"));
        iq->recipient_kind = query(req, "recipient_kind");
        if (iq->recipient_kind && !streq(iq->recipient_kind, "member") && !streq(iq->recipient_kind, "session"))
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                                          "'recipient_kind' must be member or session"));
        r = manager_list_inbox_check(m, q, &error);
        if (r < 0)
                return compat_answered(compat_reply_failure(req, r, &error));
        return 0;
}

static int fill_inbox_item(json_object *o, Manager *m, const void *item) {
        const InboxMessage *im = item;
        const char *slug = manager_mesh_slug(m, im->mesh_id);
        int r;

        r = compat_json_add_string(o, "id", im->id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "client_message_id", im->client_message_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "broker_message_id", im->broker_message_id);
        if (r < 0)
                return r;
        /* Upstream's mesh is never empty: the id stands in for a mesh no longer configured. */
        r = compat_json_add_string(o, "mesh", slug[0] ? slug : im->mesh_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "topic", im->topic);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "sender_pubkey", im->sender_pubkey);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "sender_name", im->sender_name);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "body", im->body);
        if (r < 0)
                return r;
        r = add_time(o, "received_at", im->received_at);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "reply_to_id", im->reply_to_id);
        if (r < 0)
                return r;
        /* As before this listing stamped it, so a caller still tells which rows were unread. */
        r = add_time(o, "seen_at", im->seen_at);
        if (r < 0)
                return r;
        /* upstream 1.34.11: who received it, the member or one of its sessions */
        r = compat_json_add_string(o, "recipient_pubkey", isempty(im->recipient_pubkey) ? NULL : im->recipient_pubkey);
        if (r < 0)
                return r;
        return compat_json_add_string(o, "recipient_kind", im->recipient_kind ? im->recipient_kind : "member");
}

/* Stamps the unseen rows of msgs seen; *ret_flipped counts them. */
static int mark_listed_seen(Manager *m, const InboxMessage *msgs, size_t n, unsigned *ret_flipped, CmError *error) {
        _cleanup_free_ const char **ids = calloc(n + 1, sizeof(char *));
        size_t k = 0;

        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (msgs[i].seen_at == 0)
                        ids[k++] = msgs[i].id;
        *ret_flipped = 0;
        return k == 0 ? 0 : manager_mark_inbox_seen(m, ids, k, ret_flipped, error);
}

static int inbox_reply(CompatRequest *req, Manager *m, const InboxQuery *q, const InboxMessage *msgs, size_t n) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *extra = json_object_new_object();
        unsigned flipped = 0;
        int r;

        if (!extra)
                return -ENOMEM;
        if (q->mark_seen) {
                r = mark_listed_seen(m, msgs, n, &flipped, &error);
                if (r < 0)
                        return compat_reply_failure(req, r, &error);
        }
        if (json_object_object_add(extra, "marked_seen", json_object_new_int64(flipped)) < 0)
                return -ENOMEM;
        return reply_items(req, m, msgs, n, sizeof(InboxMessage), fill_inbox_item, extra);
}

/* upstream's meshFromCtx(): without ?mesh=, a session's request reads its own mesh. Asked once
 * polkit allowed it: the session may have ended meanwhile. */
static const char *session_mesh(CompatServer *s, CompatRequest *req, const char *named) {
        Session *session;

        if (named)
                return named;
        session = compat_request_session(s, req);
        return session ? session->mesh_slug : NULL;
}

static int inbox_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        const InboxQuery *q = request;
        InboxListRequest list = q->list;
        Session *session;
        InboxMessage *msgs = NULL;
        size_t n = 0;
        int r;

        session = compat_request_session(q->server, req);
        /* A session's listing is what it received (upstream 1.34.11's recipient scope). */
        if (session && !list.mesh)
                list.mesh = session->mesh_slug;
        if (session)
                list.recipient_pubkey = session->public_key_hex;
        r = manager_list_inbox(m, &list, &msgs, &n, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        /* The store filters by identity, not by kind: the rows listed are narrowed here, so the
         * limit counts rows of both kinds. */
        if (q->recipient_kind) {
                size_t k = 0;

                for (size_t i = 0; i < n; i++) {
                        if (streq(msgs[i].recipient_kind ? msgs[i].recipient_kind : "member", q->recipient_kind))
                                msgs[k++] = msgs[i];
                        else
                                inbox_message_done(&msgs[i]);
                }
                n = k;
        }
        r = inbox_reply(req, m, q, msgs, n);
        inbox_messages_free(msgs, n);
        return r;
}

int compat_route_inbox(CompatRequest *req, void *userdata) {
        _cleanup_free_ InboxQuery *q = malloc(sizeof(InboxQuery));
        Manager *m = compat_server_manager(userdata);
        int r;

        assert(req);

        if (!q)
                return -ENOMEM;
        q->server = userdata;
        r = inbox_query(req, m, q);
        if (r != 0)
                return r < 0 ? r : 0;
        return compat_authorize(req, m, POLKIT_ACTION_READ, inbox_authorized, TAKE_PTR(q), free);
}

/* 0 with *q set, or 1 after answering 400 (bad limit) or 503. */
static int outbox_query(CompatRequest *req, Manager *m, OutboxListRequest *q) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        int r;

        /* Every mesh; an unknown status filters nothing, as upstream does. */
        *q = (OutboxListRequest) { .status = outbox_status_from_string(query(req, "status")) };
        r = query_limit(req, OUTBOX_LIST_DEFAULT, OUTBOX_LIST_MAX, &q->limit);
        if (r != 0)
                return r;
        r = manager_list_outbox_check(m, q, &error);
        if (r < 0)
                return compat_answered(compat_reply_failure(req, r, &error));
        return 0;
}

static int fill_outbox_item(json_object *o, Manager *m, const void *item) {
        const OutboxRow *row = item;
        int r;

        r = compat_json_add_string(o, "id", row->id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "client_message_id", row->client_message_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "status", outbox_status_to_string(row->status));
        if (r < 0)
                return r;
        r = add_uint(o, "attempts", row->attempts);
        if (r < 0)
                return r;
        r = add_time(o, "enqueued_at", row->enqueued_at);
        if (r < 0)
                return r;
        r = add_time(o, "next_attempt_at", row->next_attempt_at);
        if (r < 0)
                return r;
        r = add_time(o, "delivered_at", row->delivered_at);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "broker_message_id", row->broker_message_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "last_error", row->last_error);
        if (r < 0)
                return r;
        r = add_time(o, "aborted_at", row->aborted_at);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "aborted_by", row->aborted_by);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "superseded_by", row->superseded_by);
        if (r < 0)
                return r;
        r = add_uint(o, "payload_bytes", row->body_size);
        return r;
}

static int outbox_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        OutboxRow *rows = NULL;
        size_t n = 0;
        int r;

        r = manager_list_outbox(m, request, &rows, &n, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        r = reply_items(req, m, rows, n, sizeof(OutboxRow), fill_outbox_item, NULL);
        outbox_rows_free(rows, n);
        return r;
}

int compat_route_outbox(CompatRequest *req, void *userdata) {
        _cleanup_free_ OutboxListRequest *q = malloc(sizeof(OutboxListRequest));
        Manager *m = compat_server_manager(userdata);
        int r;

        assert(req);

        if (!q)
                return -ENOMEM;
        r = outbox_query(req, m, q);
        if (r != 0)
                return r < 0 ? r : 0;
        return compat_authorize(req, m, POLKIT_ACTION_READ, outbox_authorized, TAKE_PTR(q), free);
}

typedef struct RequeueBody {
        json_object *json;       /* holds the strings of q */
        RequeueRequest q;
} RequeueBody;

static void requeue_body_free(void *p) {
        RequeueBody *b = p;

        if (!b)
                return;
        json_object_put(b->json);
        free(b);
}

static void requeue_body_freep(RequeueBody **b) {
        requeue_body_free(*b);
}

/* 0 with *b set, or 1 after answering 400 (bad body, missing id, invalid new id or aborted_by)
 * or 503. */
static int requeue_body(CompatRequest *req, Manager *m, RequeueBody *b) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        int r;

        r = compat_read_json_object(req, &b->json);
        if (r != 0)
                return r;
        r = compat_json_string(req, b->json, "id", "missing 'id'", &b->q.row_id);
        if (r == 0 && (!b->q.row_id || !b->q.row_id[0]))
                r = compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'id'"));
        if (r == 0)
                r = compat_json_string(req, b->json, "new_client_message_id", "'new_client_message_id' must be a string",
                                 &b->q.new_client_message_id);
        if (r == 0)
                r = compat_json_string(req, b->json, "aborted_by", "'aborted_by' must be a string", &b->q.aborted_by);
        if (r == 0 && manager_requeue_check(m, &b->q, &error) < 0)
                r = compat_answered(compat_reply_cm_error(req, &error));
        return r;
}

/* Upstream answers 409 with one sentence whether the row is missing or final, and 400 with the
 * store's own message when the new id is taken; the core's sentence goes along as detail. */
static int reply_requeue_refused(CompatRequest *req, const CmError *error) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        bool conflict = error->code == CM_ERR_NO_SUCH_MESSAGE || error->code == CM_ERR_NOT_REQUEUEABLE;
        int r;

        if (!conflict && error->code != CM_ERR_CLIENT_MESSAGE_ID_IN_USE)
                return compat_reply_cm_error(req, error);
        if (!body)
                return -ENOMEM;
        r = compat_json_add_string(body, "error", conflict ? REQUEUE_CONFLICT : cm_error_message(error));
        if (r < 0)
                return r;
        if (conflict) {
                r = compat_json_add_string(body, "detail", cm_error_message(error));
                if (r < 0)
                        return r;
        }
        r = compat_json_add_string(body, "dbus_error", cm_error_dbus_name(error->code));
        if (r < 0)
                return r;
        return compat_reply(req, conflict ? MHD_HTTP_CONFLICT : MHD_HTTP_BAD_REQUEST, body);
}

static int requeue_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        _cleanup_free_ char *new_client_message_id = NULL;
        const RequeueBody *b = request;
        char new_row_id[ULID_MAX];
        int r;

        r = manager_requeue(m, &b->q, new_row_id, &new_client_message_id, &error);
        if (r < 0)
                return cm_error_is_set(&error) ? reply_requeue_refused(req, &error) : r;

        reply = json_object_new_object();
        if (!reply)
                return -ENOMEM;
        r = compat_json_add_string(reply, "aborted_row_id", b->q.row_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(reply, "new_row_id", new_row_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(reply, "new_client_message_id", new_client_message_id);
        if (r < 0)
                return r;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_requeue(CompatRequest *req, void *userdata) {
        _cleanup_(requeue_body_freep) RequeueBody *b = calloc(1, sizeof(RequeueBody));
        Manager *m = compat_server_manager(userdata);
        int r;

        assert(req);

        if (!b)
                return -ENOMEM;
        r = requeue_body(req, m, b);
        if (r != 0)
                return r < 0 ? r : 0;
        return compat_authorize(req, m, POLKIT_ACTION_MANAGE_OUTBOX, requeue_authorized, TAKE_PTR(b),
                                requeue_body_free);
}

/* POST /v1/inbox/seen {"ids": [...]}: upstream keeps the strings of the list and ignores the rest;
 * none is a 400. */
static int seen_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        json_object *body = request, *list;
        _cleanup_free_ const char **ids = NULL;
        size_t n, k = 0;
        unsigned flipped;
        int r;

        list = json_object_object_get(body, "ids");
        n = json_object_array_length(list);
        ids = calloc(n + 1, sizeof(char *));
        if (!ids)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(list, i);
                const char *id;

                r = json_string_get_strict(v, &id);
                if (r == -EILSEQ)
                        return compat_reply_nul(req, "ids");
                if (r >= 0)
                        ids[k++] = id;
        }
        if (k == 0)
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'ids' (string[])");
        r = manager_mark_inbox_seen(m, ids, k, &flipped, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        reply = json_object_new_object();
        if (!reply || json_object_object_add(reply, "marked_seen", json_object_new_int64(flipped)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

static void json_free(void *p) {
        json_object_put(p);
}

int compat_route_inbox_seen(CompatRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = NULL;
        json_object *ids;
        int r;

        assert(req);

        r = compat_read_json_object(req, &body);
        if (r != 0)
                return r < 0 ? r : 0;
        if (!json_object_object_get_ex(body, "ids", &ids) || !json_object_is_type(ids, json_type_array))
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'ids' (string[])");
        return compat_authorize(req, compat_server_manager(userdata),
                                POLKIT_ACTION_READ, seen_authorized, TAKE_PTR(body), json_free);
}

typedef struct FlushQuery {
        CompatServer *server;
        const char *mesh;        /* req's */
        usec_t before;
} FlushQuery;

static int flush_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        const FlushQuery *q = request;
        unsigned removed;
        int r;

        r = manager_flush_inbox(m, session_mesh(q->server, req, q->mesh), q->before, &removed, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        reply = json_object_new_object();
        if (!reply || json_object_object_add(reply, "removed", json_object_new_int64(removed)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_inbox_flush(CompatRequest *req, void *userdata) {
        _cleanup_free_ FlushQuery *q = malloc(sizeof(FlushQuery));
        int r;

        assert(req);

        if (!q)
                return -ENOMEM;
        *q = (FlushQuery) { .server = userdata, .mesh = query(req, "mesh") };
        r = query_time(req, "before", &q->before);
        if (r != 0)
                return r < 0 ? r : 0;
        return compat_authorize(req, compat_server_manager(userdata),
                                POLKIT_ACTION_READ, flush_authorized, TAKE_PTR(q), free);
}

static int delete_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = json_object_new_object();
        const char *id = compat_request_tail(req);
        int r;

        if (!reply)
                return -ENOMEM;
        r = manager_delete_inbox_row(m, id, &error);
        if (r < 0 && error.code == CM_ERR_NO_SUCH_MESSAGE) {
                /* Upstream's shape: {"error": "not found", "id": id}. */
                if (compat_json_add_string(reply, "error", "not found") < 0 || compat_json_add_string(reply, "id", id) < 0)
                        return -ENOMEM;
                return compat_reply(req, MHD_HTTP_NOT_FOUND, reply);
        }
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        if (json_object_object_add(reply, "removed", json_object_new_int(1)) < 0 ||
            compat_json_add_string(reply, "id", id) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_inbox_delete(CompatRequest *req, void *userdata) {
        const char *id = compat_request_tail(req);

        assert(req);
        assert(id);

        if (!id[0])
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing id");
        return compat_authorize(req, compat_server_manager(userdata),
                                POLKIT_ACTION_READ, delete_authorized, NULL, NULL);
}
