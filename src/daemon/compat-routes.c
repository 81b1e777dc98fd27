/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <microhttpd.h>
#include <unistd.h>

#include "compat-routes.h"
#include "config-build.h"
#include "json-util.h"
#include "log.h"

/* Only what is served here: clients check the list before using a route. */
static const char *const ipc_features[] = { "version", "health" };

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

static int route_health(CompatRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        if (!body ||
            json_object_object_add(body, "ok", json_object_new_boolean(true)) < 0 ||
            json_object_object_add(body, "pid", json_object_new_int((int) getpid())) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, body);
}

static const CompatRoute compat_routes[] = {
        { "GET", "/v1/version", route_version },
        { "GET", "/v1/health", route_health },
        { NULL, NULL, NULL },
};

int manager_compat_start(Manager *m) {
        int r;

        r = compat_socket_open(m->config_dir, &m->compat_socket);
        if (r < 0)
                return r;
        r = compat_http_new(m->event, m->compat_socket->fd, compat_routes, m, &m->compat_http);
        if (r < 0) {
                log_error_errno(r, "Cannot serve the /v1 API on %s: %s", m->compat_socket->path, STRERROR(r));
                m->compat_socket = compat_socket_free(m->compat_socket);
                return r;
        }
        log_info("Serving the upstream /v1 API on %s", m->compat_socket->path);
        return 0;
}
