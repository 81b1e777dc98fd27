/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "log.h"
#include "manager-send.h"
#include "manager.h"
#include "mesh-link.h"

/* A send between validation and the commit: waiting for polkit, then for the group commit. */
typedef struct SendOp {
        Manager *manager;
        char *mesh_id;
        SendRequest req;
        ManagerSendDone done;
        void *userdata;
} SendOp;

static SendOp *send_op_free(SendOp *op) {
        if (!op)
                return NULL;
        free(op->mesh_id);
        send_request_done(&op->req);
        free(op);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SendOp *, send_op_free);

static int validation_error(int r, const char *why, sd_bus_error *error) {
        switch (r) {
        case -ENOENT:
                return sd_bus_error_set(error, CM_ERROR_UNKNOWN_PEER, why);
        case -ENOTUNIQ:
                return sd_bus_error_set(error, CM_ERROR_AMBIGUOUS_PEER, why);
        case -EMSGSIZE:
                return sd_bus_error_set(error, CM_ERROR_PAYLOAD_TOO_LARGE, why);
        case -EINVAL:
                return sd_bus_error_set(error, CM_ERROR_INVALID_ARGUMENT, why);
        default:
                return r;
        }
}

static void on_committed(const SendRequest *req, const OutboxAcceptResult *res, int error, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        _cleanup_(send_op_freep) SendOp *op = userdata;

        if (!res)
                sd_bus_error_setf(&e, error == -ENOSPC ? CM_ERROR_STORAGE_FULL : CM_ERROR_STORAGE,
                                  "The outbox could not store the message (%s); nothing was queued, the same "
                                  "call can be repeated.", STRERROR(error));
        op->done(req, res, res ? NULL : &e, op->userdata);
}

static int send_op_queue(SendOp *op, sd_bus_error *error) {
        Manager *m = op->manager;

        if (!m->send_queue)
                return sd_bus_error_setf(error, CM_ERROR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);
        return send_queue_add(m->send_queue, op->mesh_id, &op->req, on_committed, op);
}

static void on_authorized(int result, const sd_bus_error *error, void *userdata) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        SendOp *op = userdata;
        int r;

        if (result < 0) {
                op->done(&op->req, NULL, error, op->userdata);
                send_op_free(op);
                return;
        }
        r = send_op_queue(op, &e);
        if (r < 0) {
                if (!sd_bus_error_is_set(&e))
                        sd_bus_error_set_errno(&e, r);
                op->done(&op->req, NULL, &e, op->userdata);
                send_op_free(op);
        }
}

int manager_send(Manager *m, const SendCall *call, ManagerSendDone done, void *userdata, sd_bus_error *error) {
        _cleanup_(send_op_freep) SendOp *op = NULL;
        _cleanup_free_ PeerName *peers = NULL;
        _cleanup_free_ char *why = NULL;
        size_t n_peers = 0;
        Mesh *mesh;
        int r;

        r = manager_lookup_mesh(m, call->mesh, &mesh, error);
        if (r < 0)
                return r;
        if (mesh->state == MESH_INVALID)
                return sd_bus_error_setf(error, CM_ERROR_MESH_UNAVAILABLE, "Mesh \"%s\" cannot send: %s",
                                         mesh->entry->slug, mesh->last_error);
        if (!m->outbox)
                return sd_bus_error_setf(error, CM_ERROR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);

        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        *op = (SendOp) { .manager = m, .done = done, .userdata = userdata };
        op->mesh_id = strdup(mesh->entry->mesh_id);
        if (!op->mesh_id)
                return -ENOMEM;

        /* Validation writes nothing, so a refused request leaves its id free. */
        if (mesh->link) {
                r = mesh_link_peer_names(mesh->link, &peers, &n_peers);
                if (r < 0)
                        return r;
        }
        r = send_request_prepare(mesh->entry->slug, call->to, call->message, &call->options, peers, n_peers,
                                 now_usec(CLOCK_REALTIME), &op->req, &why);
        if (r < 0)
                return validation_error(r, why, error);

        r = polkit_check_async(m->polkit, call->caller, call->interactive, call->polkit_timeout, POLKIT_ACTION_SEND,
                               on_authorized, op, error);
        if (r == 0) {
                TAKE_PTR(op);
                return 0;
        }
        if (r < 0)
                return r;
        r = send_op_queue(op, error);
        if (r < 0)
                return r;
        TAKE_PTR(op);
        return 0;
}
