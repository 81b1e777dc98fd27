/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <microhttpd.h>

#include "compat-http.h"
#include "compat-routes.h"
#include "compat-socket.h"
#include "manager.h"

/* A session registered through POST /v1/sessions/register: the token its process presents in
 * "Authorization: ClaudeMesh-Session <64 hex>". One per session, so at most SESSIONS_MAX; it ends
 * with the session. The token is a credential: compared in constant time, never logged. */
typedef struct CompatSessionToken {
        uint8_t hash[32];         /* BLAKE2b of the token: what is kept, in memory and on disk */
        char prefix[9];           /* its first 8 hex digits, which upstream lists */
        Session *session;
        char *role;               /* upstream's free-form role, given back as it came; NULL */
        usec_t registered_at;     /* CLOCK_REALTIME */
} CompatSessionToken;

struct CompatServer {
        Manager *manager;
        CompatSocket *socket;
        CompatHttp *http;
        CompatSessionToken *tokens;
        size_t n_tokens;
};

/* NULL or "". */
static inline bool isempty(const char *s) {
        return !s || !s[0];
}

/* The route handlers' userdata. */
static inline Manager *compat_server_manager(void *userdata) {
        return ((CompatServer *) userdata)->manager;
}

/*
 * The /v1 routes. Each mirrors a bus method and goes through the same code: the same polkit
 * action for the caller on the other end of the socket (SO_PEERCRED), the same store and link
 * functions, the same errors, mapped to HTTP statuses by compat_reply_cm_error().
 */

/* Upstream clients give up after 3 s (the send path then falls back and sends again): polkit
 * must have answered well before, or the request is refused (503) rather than carried out for
 * a client that is gone. */
#define COMPAT_POLKIT_TIMEOUT_USEC (2 * USEC_PER_SEC)

/* Runs then(req, m, request) once polkit allows action for the peer of req; answers the refusal
 * otherwise (403, with polkit's reason). request is what the route parsed before asking, carried
 * through so nothing is parsed twice; free_request (may be NULL) frees it after then ran, or when
 * the request is refused. Returns what then returned, or 0 while polkit is asked (the request
 * waits). then may itself answer later. */
typedef int (*CompatAuthorized)(CompatRequest *req, Manager *m, void *request);
int compat_authorize(CompatRequest *req, Manager *m, const char *action, CompatAuthorized then, void *request,
                     void (*free_request)(void *request));

/* A core error as HTTP, with the status of its code in cm-error.c's table (400 bad input, 403
 * refused, 404, 409 conflicts, 413, 503 unavailable). The body is {"error": sentence,
 * "dbus_error": the code's D-Bus name}. */
int compat_reply_cm_error(CompatRequest *req, const CmError *error);

/* r < 0 from a core call: answers the error it set, as compat_reply_cm_error(); when it set none
 * (-ENOMEM, say), returns r for the 500. */
int compat_reply_failure(CompatRequest *req, int r, const CmError *error);

/* The peer of req as polkit's subject; AccessDenied with a sentence when it cannot be told. */
int compat_identify_caller(CompatRequest *req, Caller *ret, CmError *error);

/* The body as a JSON object. 0 with *ret set, or 1 after answering 400 "invalid JSON",
 * "expected JSON object" or, for a member name holding U+0000, "a member name contains NUL". */
int compat_read_json_object(CompatRequest *req, json_object **ret);

/* NUL (U+0000) in a string field, the query or a header would be cut where C strings and D-Bus
 * take over: such requests are refused, never shortened. 400 "'field' must not contain NUL
 * (U+0000)". */
int compat_reply_nul(CompatRequest *req, const char *field);

/* The string member key of o: 0 with *ret set (NULL when absent or null), or 1 after answering
 * 400: wrong_type when it is another type, compat_reply_nul() when it holds a NUL. */
int compat_json_string(CompatRequest *req, json_object *o, const char *key, const char *wrong_type, const char **ret);

/* key: value, or key: null when value is NULL. -ENOMEM when out of memory. */
int compat_json_add_string(json_object *o, const char *key, const char *value);

/* ISO 8601 UTC with milliseconds, as upstream writes timestamps ("2026-11-29T10:50:23.123Z");
 * a JSON null for 0. */
json_object *compat_json_time(usec_t t);

/* Upstream's WebSocket status for a mesh state ("open", "connecting", "reconnecting", "closed");
 * NULL for a state out of range. */
const char *compat_upstream_status(MeshState s);

/* The core's events (event.h) onto the open /v1 event streams: "message", "peer_join",
 * "peer_leave", "broker_status" (only when upstream's status changes with the state). */
int compat_on_event(Manager *m, const Event *e, void *userdata); /* userdata: the CompatServer */

/* The session whose token the request's Authorization header carries (upstream:
 * /^ClaudeMesh-Session\s+([0-9a-f]{64})$/i); NULL without one, for a malformed or unknown one (the
 * request is then served unscoped, as upstream serves it), or when the peer is not of the session's
 * uid. */
Session *compat_request_session(CompatServer *s, CompatRequest *req);

/* compat-route-sessions.c: a session that ended takes its token along. */
void compat_sessions_on_event(CompatServer *s, const Event *e);
void compat_sessions_free(CompatServer *s);
/* Brings back the sessions registered before a restart whose processes still live. */
void compat_sessions_restore(CompatServer *s);

/* The route handlers, by file. */
int compat_route_send(CompatRequest *req, void *userdata);          /* compat-route-send.c */
int compat_route_inbox(CompatRequest *req, void *userdata);         /* compat-route-store.c */
int compat_route_inbox_seen(CompatRequest *req, void *userdata);    /* compat-route-store.c */
int compat_route_inbox_flush(CompatRequest *req, void *userdata);   /* compat-route-store.c */
int compat_route_inbox_delete(CompatRequest *req, void *userdata);  /* compat-route-store.c */
int compat_route_outbox(CompatRequest *req, void *userdata);        /* compat-route-store.c */
int compat_route_requeue(CompatRequest *req, void *userdata);       /* compat-route-store.c */
int compat_route_events(CompatRequest *req, void *userdata);        /* compat-route-events.c */
int compat_route_peers(CompatRequest *req, void *userdata);         /* compat-route-link.c */
int compat_route_profile(CompatRequest *req, void *userdata);       /* compat-route-link.c */
int compat_route_session_register(CompatRequest *req, void *userdata); /* compat-route-sessions.c */
int compat_route_session_me(CompatRequest *req, void *userdata);    /* compat-route-sessions.c */
int compat_route_sessions(CompatRequest *req, void *userdata);      /* compat-route-sessions.c */
int compat_route_session_delete(CompatRequest *req, void *userdata); /* compat-route-sessions.c */
int compat_route_state_get(CompatRequest *req, void *userdata);     /* compat-route-state.c */
int compat_route_state_set(CompatRequest *req, void *userdata);     /* compat-route-state.c */
