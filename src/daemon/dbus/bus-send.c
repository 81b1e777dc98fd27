/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "bus-options.h"
#include "log.h"
#include "manager.h"
#include "manager-send.h"

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
                log_debug_errno(r, "Could not answer a Send call: %s", STRERROR(r));
}

int method_send(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        const char *mesh_name, *to, *message, *priority = NULL, *meta = NULL, *reply_to_id = NULL,
                   *client_message_id = NULL;
        const BusOption options[] = {
                { "priority", "s", &priority },
                { "meta", "s", &meta },
                { "reply_to_id", "s", &reply_to_id },
                { "client_message_id", "s", &client_message_id },
        };
        Caller caller;
        int r;

        r = sd_bus_message_read(msg, "sss", &mesh_name, &to, &message);
        if (r < 0)
                return r;
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
