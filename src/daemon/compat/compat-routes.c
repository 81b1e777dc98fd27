/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compat-routes-internal.h"
#include "compat-routes.h"
#include "config-build.h"
#include "json-util.h"
#include "link-state.h"
#include "log.h"

#define SEND_BODY_MAX    (256 * 1024)
#define REQUEUE_BODY_MAX (4 * 1024)
#define PROFILE_BODY_MAX (16 * 1024)
#define SEEN_BODY_MAX    (64 * 1024)   /* upstream's limit */
#define MEMORY_BODY_MAX  (64 * 1024)   /* read and dropped: answered 501 */
#define STATE_BODY_MAX   (256 * 1024)  /* upstream's limits */
#define SESSION_BODY_MAX (64 * 1024)

/* Only what is served here: clients check the list before using a route. */
static const char *const ipc_features[] = { "version", "health", "send", "inbox", "outbox", "events", "peers",
                                            "profile", "state", "sessions" };

typedef struct CompatAuthorization {
        CompatRequest *req;
        Manager *manager;
        CompatAuthorized then;
        void *request;
        void (*free_request)(void *request);
} CompatAuthorization;

static CompatAuthorization *authorization_free(CompatAuthorization *a) {
        if (!a)
                return NULL;
        if (a->free_request)
                a->free_request(a->request);
        free(a);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatAuthorization *, authorization_free);

int compat_reply_cm_error(CompatRequest *req, const CmError *error) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        assert(req);
        assert(cm_error_is_set(error));

        if (!body ||
            json_object_object_add(body, "error", json_object_new_string(cm_error_message(error))) < 0 ||
            json_object_object_add(body, "dbus_error", json_object_new_string(cm_error_dbus_name(error->code))) < 0)
                return -ENOMEM;
        return compat_reply(req, cm_error_http_status(error->code), body);
}

int compat_reply_failure(CompatRequest *req, int r, const CmError *error) {
        assert(req);

        return cm_error_is_set(error) ? compat_reply_cm_error(req, error) : r;
}

int compat_identify_caller(CompatRequest *req, Caller *ret, CmError *error) {
        assert(req);

        int r = compat_request_caller(req, ret);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED, "Cannot identify the caller: %s", STRERROR(r));
        return 0;
}

static int run_authorized(CompatAuthorization *a) {
        int r = a->then(a->req, a->manager, a->request);
        if (r < 0)
                log_warning_errno(r, "A /v1 request failed after polkit allowed it: %m");
        return r;
}

static void on_authorized(int result, const CmError *error, void *userdata) {
        _cleanup_(authorization_freep) CompatAuthorization *a = userdata;

        if (!compat_request_alive(a->req))
                (void) compat_reply_error(a->req, MHD_HTTP_SERVICE_UNAVAILABLE, "daemon stopping");
        else if (result < 0)
                (void) compat_reply_failure(a->req, result, error);
        else if (run_authorized(a) < 0)
                (void) compat_reply_error(a->req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
}

int compat_authorize(CompatRequest *req, Manager *m, const char *action, CompatAuthorized then, void *request,
                     void (*free_request)(void *request)) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(authorization_freep) CompatAuthorization *a = NULL;
        Caller caller;
        int r;

        assert(req);
        assert(m);
        assert(action);
        assert(then);

        a = malloc(sizeof(*a));
        if (!a) {
                if (free_request)
                        free_request(request);
                return -ENOMEM;
        }
        *a = (CompatAuthorization) { .req = req, .manager = m, .then = then, .request = request,
                                     .free_request = free_request };
        r = compat_identify_caller(req, &caller, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        /* Upstream clients cannot show an authentication dialog: never interactive. */
        r = polkit_check_async(m->polkit, &caller, false, COMPAT_POLKIT_TIMEOUT_USEC, action, on_authorized, a,
                               &error);
        if (r == 0) {
                TAKE_PTR(a);
                return 0;
        }
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        return run_authorized(a);
}

int compat_read_json_object(CompatRequest *req, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *text;
        size_t size;
        int r;

        assert(req);

        text = compat_request_body(req, &size);
        r = json_parse_strict(text, size, &o);
        if (r == -EBADMSG)
                r = compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid JSON");
        else if (r == -EILSEQ)
                r = compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "a member name contains NUL (U+0000)");
        else if (r >= 0 && !json_object_is_type(o, json_type_object))
                r = compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "expected JSON object");
        else if (r >= 0) {
                *ret = TAKE_PTR(o);
                return 0;
        }
        return compat_answered(r);
}

int compat_reply_nul(CompatRequest *req, const char *field) {
        _cleanup_free_ char *text = NULL;

        assert(req);

        if (asprintf(&text, "'%s' must not contain NUL (U+0000)", field) < 0)
                return -ENOMEM;
        return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, text);
}

int compat_json_string(CompatRequest *req, json_object *o, const char *key, const char *wrong_type, const char **ret) {
        int r = json_member_string_strict(o, key, ret);

        assert(req);

        if (r == -EINVAL)
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, wrong_type));
        if (r == -EILSEQ)
                return compat_answered(compat_reply_nul(req, key));
        return r < 0 ? r : 0;
}

int compat_json_add_string(json_object *o, const char *key, const char *value) {
        json_object *v = NULL;

        if (value && !(v = json_object_new_string(value)))
                return -ENOMEM;
        return json_object_object_add(o, key, v) < 0 ? -ENOMEM : 0;
}

json_object *compat_json_time(usec_t t) {
        char buf[ISO8601_MAX];

        if (t == 0 || format_iso8601(t, buf) < 0)
                return NULL;
        return json_object_new_string(buf);
}

static int route_version(CompatRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *features = json_object_new_array();

        if (!body || !features)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(ipc_features); i++)
                if (json_object_array_add(features, json_object_new_string(ipc_features[i])) < 0)
                        return -ENOMEM;
        if (json_object_object_add(body, "daemon_version", json_object_new_string(PACKAGE_VERSION)) < 0 ||
            json_object_object_add(body, "ipc_api", json_object_new_string("v1")) < 0 ||
            json_object_object_add(body, "ipc_features", TAKE_PTR(features)) < 0 ||
            json_object_object_add(body, "schema_version", json_object_new_int(1)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, body);
}

/* Upstream (apps/cli/src/daemon/ipc/server.ts:206-218) adds each mesh's broker status, so that
 * its installer can wait for one to be "open". */
static int route_health(CompatRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *brokers = json_object_new_object();
        Manager *m = compat_server_manager(userdata);

        if (!body || !brokers)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_meshes; i++)
                if (compat_json_add_string(brokers, m->meshes[i]->entry->slug,
                                           compat_upstream_status(m->meshes[i]->state)) < 0)
                        return -ENOMEM;
        if (json_object_object_add(body, "ok", json_object_new_boolean(true)) < 0 ||
            json_object_object_add(body, "pid", json_object_new_int((int) getpid())) < 0 ||
            json_object_object_add(body, "brokers", TAKE_PTR(brokers)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, body);
}

/* Upstream's skills and memory live on its broker, which ours does not offer: a client is told
 * which feature it asked for rather than "not found". */
static int reply_not_implemented(CompatRequest *req, const char *feature) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        if (!body || compat_json_add_string(body, "error", "not_implemented") < 0 ||
            compat_json_add_string(body, "feature", feature) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_NOT_IMPLEMENTED, body);
}

static int route_skills(CompatRequest *req, void *userdata) {
        return reply_not_implemented(req, "skills");
}

static int route_memory(CompatRequest *req, void *userdata) {
        return reply_not_implemented(req, "memory");
}

static const CompatRoute compat_routes[] = {
        { "GET", "/v1/version", route_version, 0, false },
        { "GET", "/v1/health", route_health, 0, false },
        { "POST", "/v1/send", compat_route_send, SEND_BODY_MAX, false },
        { "GET", "/v1/inbox", compat_route_inbox, 0, false },
        { "POST", "/v1/inbox/seen", compat_route_inbox_seen, SEEN_BODY_MAX, false },
        { "DELETE", "/v1/inbox", compat_route_inbox_flush, 0, false },
        { "DELETE", "/v1/inbox/", compat_route_inbox_delete, 0, true },
        { "GET", "/v1/outbox", compat_route_outbox, 0, false },
        { "POST", "/v1/outbox/requeue", compat_route_requeue, REQUEUE_BODY_MAX, false },
        { "GET", "/v1/events", compat_route_events, 0, false },
        { "GET", "/v1/peers", compat_route_peers, 0, false },
        { "POST", "/v1/profile", compat_route_profile, PROFILE_BODY_MAX, false },
        { "GET", "/v1/state", compat_route_state_get, 0, false },
        { "POST", "/v1/state", compat_route_state_set, STATE_BODY_MAX, false },
        { "POST", "/v1/sessions/register", compat_route_session_register, SESSION_BODY_MAX, false },
        { "GET", "/v1/sessions/me", compat_route_session_me, 0, false },
        { "GET", "/v1/sessions", compat_route_sessions, 0, false },
        { "DELETE", "/v1/sessions/", compat_route_session_delete, 0, true },
        { "GET", "/v1/skills", route_skills, 0, false },
        { "GET", "/v1/skills/", route_skills, 0, true },
        { "GET", "/v1/memory", route_memory, 0, false },
        { "POST", "/v1/memory", route_memory, MEMORY_BODY_MAX, false },
        { "DELETE", "/v1/memory/", route_memory, 0, true },
        { NULL, NULL, NULL, 0, false },
};

CompatServer *compat_server_free(CompatServer *s) {
        if (!s)
                return NULL;
        manager_unsubscribe(s->manager, compat_on_event, s);
        /* answered while their requests are still there to answer */
        link_state_cancel_all();
        compat_http_free(s->http);
        compat_sessions_free(s);
        compat_socket_free(s->socket);
        free(s);
        return NULL;
}

int compat_server_start(Manager *m, CompatServer **ret) {
        _cleanup_(compat_server_freep) CompatServer *s = NULL;
        int r;

        assert(m);
        assert(ret);

        s = calloc(1, sizeof(CompatServer));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        r = compat_socket_open(m->config_dir, &s->socket);
        if (r < 0)
                return r;
        r = compat_http_new(m->event, s->socket->fd, compat_routes, s, &s->http);
        if (r < 0)
                return log_error_errno(r, "Cannot serve the /v1 API on %s: %m", s->socket->path);
        r = manager_subscribe(m, compat_on_event, s);
        if (r < 0)
                return log_error_errno(r, "Cannot subscribe /v1 to the daemon's events: %m");
        compat_sessions_restore(s);
        log_info("Serving the upstream /v1 API on %s", s->socket->path);
        *ret = TAKE_PTR(s);
        return 0;
}
