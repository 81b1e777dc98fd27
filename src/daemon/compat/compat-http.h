/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <assert.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "caller.h"
#include "config-build.h"
#include "macro.h"
#include "time-util.h"

/*
 * HTTP/1.1 for the upstream-compatible /v1 API, served by libmicrohttpd on the daemon's sd-event
 * loop (MHD's epoll fd is one more io source, its timeout one more timer).
 *
 * Every request runs the pipeline of the reference §2.2 (query token, Host, Origin, exact
 * routing), then the limits: at most COMPAT_INFLIGHT_MAX requests at once (429 daemon_busy),
 * the route's body size (413), at most COMPAT_STREAMS_MAX event streams (429 too_many_streams).
 * The handler runs once the whole body is in.
 *
 * Connections are bounded so that no number of them starves the rest of the daemon of file
 * descriptors: at most COMPAT_CONNECTIONS_MAX, and never more than RLIMIT_NOFILE less a reserve
 * of half the limit (at least COMPAT_FD_RESERVE) for the bus, polkit's system bus connection and
 * /proc reads, the stores (SQLite's databases and journals), and each mesh's worker socket pair
 * and pidfd. Connections beyond wait in the socket's backlog, holding none of the daemon's
 * descriptors, until a slot frees. A connection that sends and receives nothing for
 * COMPAT_IDLE_TIMEOUT_SEC (in its headers, its body, or between requests) is closed; suspended
 * ones (a request waiting for its answer, an event stream between writes) are not timed.
 */

#define COMPAT_INFLIGHT_MAX 64u
#define COMPAT_STREAMS_MAX 32u
#define COMPAT_KEEPALIVE_USEC (15 * USEC_PER_SEC)
#define COMPAT_CONNECTIONS_MAX 1024u
#define COMPAT_CONNECTIONS_MIN 4u
#define COMPAT_FD_RESERVE 128u
#define COMPAT_IDLE_TIMEOUT_SEC 10u

typedef struct CompatHttp CompatHttp;
typedef struct CompatRequest CompatRequest;

/* Answers with compat_reply*() before returning, or returns 0 without answering to answer later:
 * the request then waits, off the loop's hot path, until compat_reply*() is called for it exactly
 * once. A negative return answers 500 {"error":"internal"} unless already answered. */
typedef int (*CompatRouteHandler)(CompatRequest *req, void *userdata);

typedef struct CompatRoute {
        const char *method;
        const char *path;
        CompatRouteHandler handler;
        size_t body_max;             /* larger bodies get 413; 0: no body */
        bool prefix;                 /* path is a prefix ("/v1/inbox/"): the rest is the tail */
} CompatRoute;

/* routes ends with a NULL method. listen_fd stays the caller's. */
int compat_http_new(sd_event *event, int listen_fd, const CompatRoute *routes, void *userdata, CompatHttp **ret);
#if ENABLE_COMPAT
CompatHttp *compat_http_free(CompatHttp *h);
#else
/* Built with -Dcompat=disabled: nothing ever creates one. */
static inline CompatHttp *compat_http_free(CompatHttp *h) {
        assert(!h);
        return NULL;
}
#endif
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatHttp *, compat_http_free);

const char *compat_request_query(CompatRequest *req, const char *key);
const char *compat_request_header(CompatRequest *req, const char *name);
/* For a prefix route, the (unescaped) path after its prefix, maybe ""; NULL for the others. */
const char *compat_request_tail(CompatRequest *req);
/* The request body, NUL-terminated (size excludes the NUL); "" when there was none. */
const char *compat_request_body(CompatRequest *req, size_t *ret_size);
/* false once the daemon stopped serving it: a late reply only frees it. */
bool compat_request_alive(const CompatRequest *req);
/* Who is on the other end of the connection (SO_PEERCRED). */
int compat_request_caller(CompatRequest *req, Caller *ret);

/* What a parser returns after answering with one of the replies below: 1, or the reply's error. */
static inline int compat_answered(int r) {
        return r < 0 ? r : 1;
}

/* The reply: body serialized as compact JSON with Content-Type application/json. After the
 * daemon stopped serving, a late reply only frees the request (-ECONNRESET). */
int compat_reply(CompatRequest *req, unsigned status, json_object *body);
int compat_reply_error(CompatRequest *req, unsigned status, const char *error);

/* Turns the request into a server-sent event stream (reference §2.5): ": connected" now, a
 * keepalive comment every 15 s, the events compat_http_broadcast() sends. */
int compat_reply_stream(CompatRequest *req, const void *scope);
/* One event to every stream: "id: <n>\nevent: <kind>\ndata: <data>\n\n", n counting per stream. */
/* scope (given to compat_reply_stream()) is what a stream is for, NULL for everything; want (NULL:
 * every stream) says whether a stream of that scope gets the event. */
typedef bool (*CompatStreamWant)(const void *scope, void *userdata);
void compat_http_broadcast(CompatHttp *h, const char *kind, json_object *data, CompatStreamWant want, void *userdata);
/* Ends the streams of scope (what they were for is gone); NULL ends none. */
void compat_http_end_streams(CompatHttp *h, const void *scope);
unsigned compat_http_n_streams(const CompatHttp *h);
