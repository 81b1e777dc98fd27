/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "log.h"
#include "manager-send.h"
#include "manager.h"
#include "mesh-link.h"

/* A send between validation and the commit: waiting for the topic list, polkit, then the group
 * commit. While it waits for the topic list it keeps its own copy of the call. */
typedef struct SendOp {
        Manager *manager;
        char *mesh_id;
        char *sender_pubkey;   /* a session's key, NULL for the member */
        SendRequest req;
        ManagerSendDone done;
        void *userdata;

        Caller caller;
        bool interactive;
        usec_t polkit_timeout;
        char *to, *message, *priority, *meta, *reply_to_id, *client_message_id;
} SendOp;

static SendOp *send_op_free(SendOp *op) {
        if (!op)
                return NULL;
        free(op->mesh_id);
        free(op->sender_pubkey);
        send_request_done(&op->req);
        free(op->to);
        free(op->message);
        free(op->priority);
        free(op->meta);
        free(op->reply_to_id);
        free(op->client_message_id);
        free(op);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SendOp *, send_op_free);

static int validation_error(int r, const char *why, CmError *error) {
        switch (r) {
        case -ENOENT:
                return cm_error_setf(error, CM_ERR_UNKNOWN_PEER, "%s", why);
        case -ENOTUNIQ:
                return cm_error_setf(error, CM_ERR_AMBIGUOUS_PEER, "%s", why);
        case -EMSGSIZE:
                return cm_error_setf(error, CM_ERR_PAYLOAD_TOO_LARGE, "%s", why);
        case -EINVAL:
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "%s", why);
        default:
                return r;
        }
}

static void on_committed(const SendRequest *req, const OutboxAcceptResult *res, int error, void *userdata) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        _cleanup_(send_op_freep) SendOp *op = userdata;
        int r = 0;

        if (!res)
                r = cm_error_setf(&e, error == -ENOSPC ? CM_ERR_STORAGE_FULL : CM_ERR_STORAGE,
                                  "The outbox could not store the message (%s); nothing was queued, the same "
                                  "call can be repeated.", STRERROR(error));
        op->done(req, res, r, &e, op->userdata);
}

static int send_op_queue(SendOp *op, CmError *error) {
        Manager *m = op->manager;

        if (!m->send_queue)
                return cm_error_setf(error, CM_ERR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);
        return send_queue_add(m->send_queue, op->mesh_id, &op->req, on_committed, op);
}

/* Ends an op that failed after manager_send() returned: done hears why, exactly once. */
static void send_op_fail(SendOp *op, int r, const CmError *e) {
        op->done(&op->req, NULL, r, e, op->userdata);
        send_op_free(op);
}

static void on_authorized(int result, const CmError *error, void *userdata) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        SendOp *op = userdata;
        int r;

        if (result < 0) {
                send_op_fail(op, result, error);
                return;
        }
        r = send_op_queue(op, &e);
        if (r < 0)
                send_op_fail(op, r, &e);
}

/* Validation (writing nothing, so a refused request leaves its id free), polkit, the queue.
 * < 0: refused, op still the caller's; 0: op handed on, done runs later. */
static int send_op_start(SendOp *op, Mesh *mesh, const SendCall *call, CmError *error) {
        _cleanup_free_ PeerName *peers = NULL;
        _cleanup_free_ TopicName *topics = NULL;
        _cleanup_free_ char *why = NULL;
        size_t n_peers = 0, n_topics = 0;
        Manager *m = op->manager;
        int r;

        if (mesh->link) {
                r = mesh_link_peer_names(mesh->link, &peers, &n_peers);
                if (r < 0)
                        return r;
                r = mesh_link_topic_names(mesh->link, &topics, &n_topics);
                if (r < 0)
                        return r;
        }
        r = send_request_prepare(mesh->entry->slug, call->to, call->message, &call->options, peers, n_peers, topics,
                                 n_topics, now_usec(CLOCK_REALTIME), &op->req, &why);
        if (r < 0)
                return validation_error(r, why, error);
        if (op->sender_pubkey) {
                op->req.sender_pubkey = strdup(op->sender_pubkey);
                if (!op->req.sender_pubkey)
                        return -ENOMEM;
        }

        r = polkit_check_async(m->polkit, call->caller, call->interactive, call->polkit_timeout, POLKIT_ACTION_SEND,
                               on_authorized, op, error);
        if (r == 0)
                return 0;
        if (r < 0)
                return r;
        return send_op_queue(op, error);
}

/* "#x" where x is neither an id nor a name of the topics known, on a connected mesh: the topic
 * may be new, so the list is asked for again before x is taken as given. */
static bool topic_needs_refresh(Mesh *mesh, const char *to) {
        _cleanup_free_ TopicName *topics = NULL;
        size_t n = 0;

        if (to[0] != '#' || !mesh->link || mesh_link_state(mesh->link) != LINK_CONNECTED)
                return false;
        if (mesh_link_topic_names(mesh->link, &topics, &n) < 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (streq(topics[i].id, to + 1) || streq(topics[i].name, to + 1))
                        return false;
        return true;
}

static void on_topics(void *userdata) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        SendOp *op = userdata;
        Mesh *mesh;
        int r;

        /* The mesh may have gone meanwhile: looked up again by id. */
        r = manager_lookup_mesh(op->manager, op->mesh_id, &mesh, &e);
        if (r < 0) {
                send_op_fail(op, r, &e);
                return;
        }
        r = send_op_start(op, mesh,
                          &(SendCall) {
                                  .caller = &op->caller,
                                  .interactive = op->interactive,
                                  .polkit_timeout = op->polkit_timeout,
                                  .to = op->to,
                                  .message = op->message,
                                  .options = {
                                          .priority = op->priority,
                                          .meta = op->meta,
                                          .reply_to_id = op->reply_to_id,
                                          .client_message_id = op->client_message_id,
                                  },
                          },
                          &e);
        if (r < 0)
                send_op_fail(op, r, &e);
}

static int strdup_opt(const char *s, char **ret) {
        if (!s)
                return 0;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* Keeps a copy of the call in op and waits for the mesh's topic list. */
static int send_op_wait_topics(SendOp *op, Mesh *mesh, const SendCall *call) {
        int r;

        op->caller = *call->caller;
        op->interactive = call->interactive;
        op->polkit_timeout = call->polkit_timeout;
        r = strdup_opt(call->to, &op->to);
        if (r < 0)
                return r;
        r = strdup_opt(call->message, &op->message);
        if (r < 0)
                return r;
        r = strdup_opt(call->options.priority, &op->priority);
        if (r < 0)
                return r;
        r = strdup_opt(call->options.meta, &op->meta);
        if (r < 0)
                return r;
        r = strdup_opt(call->options.reply_to_id, &op->reply_to_id);
        if (r < 0)
                return r;
        r = strdup_opt(call->options.client_message_id, &op->client_message_id);
        if (r < 0)
                return r;
        return mesh_link_query_topics(mesh->link, on_topics, op);
}

int manager_send(Manager *m, const SendCall *call, ManagerSendDone done, void *userdata, CmError *error) {
        _cleanup_(send_op_freep) SendOp *op = NULL;
        Mesh *mesh;
        int r;

        assert(m);

        r = manager_lookup_mesh(m, call->mesh, &mesh, error);
        if (r < 0)
                return r;
        if (mesh->state == MESH_INVALID)
                return cm_error_setf(error, CM_ERR_MESH_UNAVAILABLE, "Mesh \"%s\" cannot send: %s",
                                     mesh->entry->slug, mesh->last_error);
        if (!m->outbox)
                return cm_error_setf(error, CM_ERR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);

        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        *op = (SendOp) { .manager = m, .done = done, .userdata = userdata };
        op->mesh_id = strdup(mesh->entry->mesh_id);
        if (!op->mesh_id)
                return -ENOMEM;
        if (call->sender_pubkey) {
                op->sender_pubkey = strdup(call->sender_pubkey);
                if (!op->sender_pubkey)
                        return -ENOMEM;
        }

        if (topic_needs_refresh(mesh, call->to))
                r = send_op_wait_topics(op, mesh, call);
        else
                r = send_op_start(op, mesh, call, error);
        if (r < 0)
                return r;
        TAKE_PTR(op);
        return 0;
}
