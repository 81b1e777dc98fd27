/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <string.h>

#include "compat-routes-internal.h"
#include "json-util.h"
#include "log.h"
#include "manager-send.h"

/* POST /v1/send (reference §2.3, §2.4): the JSON body checked with upstream's exact 400 texts,
 * then the Send method's own path (manager_send), so both surfaces share one duplicate table. */

/* The body of a send's answer (upstream's shapes for a conflict, a duplicate, a new send) and
 * its status. */
static int sent_body(json_object *body, const SendRequest *req, const OutboxAcceptResult *res, unsigned *ret_status) {
        int r;

        if (res->outcome == OUTBOX_ACCEPT_CONFLICT) {
                *ret_status = MHD_HTTP_CONFLICT;
                r = json_object_object_add(body, "error",
                                           json_object_new_string(cm_error_upstream(CM_ERR_IDEMPOTENCY_CONFLICT)));
                if (r < 0)
                        return r;
                r = json_object_object_add(body, "conflict", json_object_new_string(res->conflict));
                if (r < 0)
                        return r;
                r = json_object_object_add(body, "daemon_fingerprint_prefix",
                                           json_object_new_string(res->fingerprint_prefix));
                if (r < 0)
                        return r;
                r = compat_json_add_string(body, "broker_message_id", res->broker_message_id);
                if (r < 0)
                        return r;
                if (res->last_error) {
                        r = json_object_object_add(body, "reason", json_object_new_string(res->last_error));
                        if (r < 0)
                                return r;
                }
                return json_object_object_add(body, "client_message_id", json_object_new_string(req->client_message_id));
        }
        if (res->outcome == OUTBOX_ACCEPT_DONE) {
                *ret_status = MHD_HTTP_OK;
                r = json_object_object_add(body, "client_message_id", json_object_new_string(req->client_message_id));
                if (r < 0)
                        return r;
                r = compat_json_add_string(body, "broker_message_id", res->broker_message_id);
                if (r < 0)
                        return r;
                return json_object_object_add(body, "duplicate", json_object_new_boolean(true));
        }
        *ret_status = MHD_HTTP_ACCEPTED;
        r = json_object_object_add(body, "client_message_id", json_object_new_string(req->client_message_id));
        if (r < 0)
                return r;
        return json_object_object_add(body, "status", json_object_new_string(
                                              res->outcome == OUTBOX_ACCEPT_INFLIGHT ? "inflight" : "queued"));
}

static void reply_sent(const SendRequest *req, const OutboxAcceptResult *res, int result, const CmError *error,
                       void *userdata) {
        _cleanup_(json_object_putp) json_object *body = NULL;
        CompatRequest *http = userdata;
        unsigned status;

        if (result < 0) {
                if (compat_reply_failure(http, result, error) < 0)
                        (void) compat_reply_error(http, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
                return;
        }
        body = json_object_new_object();
        if (!body || sent_body(body, req, res, &status) < 0) {
                log_warning("ipc_send_failed: could not build the reply for %s", req->client_message_id);
                (void) compat_reply_error(http, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
                return;
        }
        (void) compat_reply(http, status, body);
}

#define PRIORITY_ERROR "priority must be 'now' | 'next' | 'low'"

/* The mesh of the send in upstream's terms (apps/cli/src/daemon/ipc/server.ts:790-812): a name
 * that is no mesh here is 404 mesh_not_attached; none named when several are, and no defaultMesh
 * picks one, is 400 mesh_required with their slugs. 0 when the mesh is known (the core checks it
 * again), 1 after answering, or the core's other errors answered as such. */
static int check_mesh(CompatRequest *req, Manager *m, const char *mesh) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *body = NULL, *attached = NULL;
        _cleanup_free_ char *detail = NULL;
        Mesh *found;
        int r;

        r = manager_lookup_mesh(m, strempty(mesh), &found, &error);
        if (r >= 0)
                return 0;
        /* A defaultMesh naming no mesh is the configuration's fault: its own sentence says so. */
        if (error.code != CM_ERR_NO_SUCH_MESH ||
            (!mesh && (m->n_meshes < 2 || (m->config && m->config->default_mesh))))
                return compat_answered(compat_reply_failure(req, r, &error));
        body = json_object_new_object();
        if (!body)
                return -ENOMEM;
        if (mesh) {
                if (compat_json_add_string(body, "error", "mesh_not_attached") < 0 ||
                    compat_json_add_string(body, "mesh", mesh) < 0)
                        return -ENOMEM;
                return compat_answered(compat_reply(req, MHD_HTTP_NOT_FOUND, body));
        }
        attached = json_object_new_array();
        if (!attached || asprintf(&detail, "daemon attached to %zu meshes; pass 'mesh' in request body", m->n_meshes) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_meshes; i++)
                if (json_object_array_add(attached, json_object_new_string(m->meshes[i]->entry->slug)) < 0)
                        return -ENOMEM;
        if (compat_json_add_string(body, "error", "mesh_required") < 0 ||
            compat_json_add_string(body, "detail", detail) < 0 ||
            json_object_object_add(body, "attached", TAKE_PTR(attached)) < 0)
                return -ENOMEM;
        return compat_answered(compat_reply(req, MHD_HTTP_BAD_REQUEST, body));
}

/* Upstream trims "to" and the ids (JavaScript's trim()); the copy lives in buf. */
static char *trim(const char *s, char **buf) {
        size_t n;

        if (!s)
                return NULL;
        while (isspace((unsigned char) *s))
                s++;
        n = strlen(s);
        while (n > 0 && isspace((unsigned char) s[n - 1]))
                n--;
        *buf = strndup(s, n);
        return *buf;
}

int compat_route_send(CompatRequest *req, void *userdata) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *body = NULL;
        _cleanup_free_ char *to_buf = NULL, *id_buf = NULL, *key_buf = NULL;
        const char *to, *message, *priority, *reply_to_id, *id, *mesh, *meta_text = NULL, *key;
        Manager *m = compat_server_manager(userdata);
        Session *session;
        json_object *meta;
        Caller caller;
        int r;

        assert(req);

        r = compat_read_json_object(req, &body);
        if (r != 0)
                return r < 0 ? r : 0;

        /* Upstream's texts for a missing or mistyped field; a NUL anywhere is refused (the message
         * too: a D-Bus string cannot carry one either, so both front-ends take the same bodies). */
        r = compat_json_string(req, body, "to", "missing 'to'", &to);
        if (r == 0 && (!trim(to, &to_buf) || !to_buf[0]))
                r = compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'to'"));
        if (r == 0)
                r = compat_json_string(req, body, "message", "missing 'message'", &message);
        if (r == 0 && (!message || !message[0]))
                r = compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'message'"));
        if (r == 0)
                r = compat_json_string(req, body, "priority", PRIORITY_ERROR, &priority);
        if (r == 0 && priority && !streq(priority, "now") && !streq(priority, "next") && !streq(priority, "low"))
                r = compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, PRIORITY_ERROR));
        if (r == 0 && json_object_object_get_ex(body, "meta", &meta) && meta) {
                if (!json_object_is_type(meta, json_type_object))
                        r = compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "'meta' must be an object"));
                else
                        /* Written with each string's length: a "\u0000" in a value stays one, as it
                         * does in the Send method's meta text. */
                        meta_text = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN);
        }
        if (r == 0)
                r = compat_json_string(req, body, "reply_to_id", "'reply_to_id' must be a string", &reply_to_id);
        if (r == 0)
                r = compat_json_string(req, body, "mesh", "'mesh' must be a string", &mesh);
        if (r == 0)
                r = compat_json_string(req, body, "client_message_id", "'client_message_id' must be a string", &id);
        if (r != 0)
                return r < 0 ? r : 0;
        key = compat_request_header(req, "Idempotency-Key");
        if ((id && !trim(id, &id_buf)) || (key && !trim(key, &key_buf)))
                return -ENOMEM;
        id = id_buf;
        key = key_buf;
        if (id && key && !streq(id, key))
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "client_message_id and Idempotency-Key differ; send one id, or the same "
                                          "in both");

        /* A session's request sends as the session (its key, its dedupe scope), on its mesh unless
         * another is named; on another mesh it is the member's, as the session has no key there. */
        session = compat_request_session(userdata, req);
        if (session && !(mesh && mesh[0]))
                mesh = session->mesh_slug;
        if (session && !streq(mesh, session->mesh_slug) && !streq(mesh, session->mesh_id))
                session = NULL;
        r = check_mesh(req, m, mesh && mesh[0] ? mesh : NULL);
        if (r != 0)
                return r < 0 ? r : 0;
        r = compat_identify_caller(req, &caller, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        r = manager_send(m,
                         &(SendCall) {
                                 .caller = &caller,
                                 .polkit_timeout = COMPAT_POLKIT_TIMEOUT_USEC,
                                 .mesh = mesh ? mesh : "",
                                 .to = to_buf,
                                 .message = message,
                                 .sender_pubkey = session ? session->public_key_hex : NULL,
                                 .options = {
                                         .priority = priority,
                                         .meta = meta_text,
                                         .reply_to_id = reply_to_id,
                                         .client_message_id = id ? id : key,
                                 },
                         },
                         reply_sent, req, &error);
        return r < 0 ? compat_reply_failure(req, r, &error) : r;
}
