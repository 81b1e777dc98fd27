/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* HTTP/1.1 for the upstream-compatible /v1 API, served by libmicrohttpd on the daemon's
 * sd-event loop (MHD's epoll fd is one more io source, its timeout one more timer). */
typedef struct CompatHttp CompatHttp;
typedef struct CompatRequest CompatRequest;

/* A route answers with compat_reply() before returning; a negative return answers 500. */
typedef int (*CompatRouteHandler)(CompatRequest *req, void *userdata);

typedef struct CompatRoute {
        const char *method;
        const char *path;
        CompatRouteHandler handler;
} CompatRoute;

/* routes ends with a NULL method. listen_fd stays the caller's. */
int compat_http_new(sd_event *event, int listen_fd, const CompatRoute *routes, void *userdata, CompatHttp **ret);
CompatHttp *compat_http_free(CompatHttp *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(CompatHttp *, compat_http_free);

/* Queues the reply: body serialized as compact JSON with Content-Type application/json. */
int compat_reply(CompatRequest *req, unsigned status, json_object *body);
int compat_reply_error(CompatRequest *req, unsigned status, const char *error);
