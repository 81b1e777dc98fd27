/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "compat-http.h"
#include "json-util.h"
#include "log.h"

struct CompatHttp {
        struct MHD_Daemon *mhd;
        sd_event_source *io;
        sd_event_source *timer;
        const CompatRoute *routes;
        void *userdata;
};

struct CompatRequest {
        struct MHD_Connection *connection;
        bool answered;
};

static void compat_http_rearm(CompatHttp *h) {
        MHD_UNSIGNED_LONG_LONG ms;

        if (MHD_get_timeout(h->mhd, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time_relative(h->timer, (uint64_t) ms * 1000);
        (void) sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
}

static void compat_http_run(CompatHttp *h) {
        (void) MHD_run(h->mhd);
        compat_http_rearm(h);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        compat_http_run(userdata);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        compat_http_run(userdata);
        return 0;
}

int compat_reply(CompatRequest *req, unsigned status, json_object *body) {
        const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        struct MHD_Response *resp;
        enum MHD_Result ok;

        resp = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return -ENOMEM;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        ok = MHD_queue_response(req->connection, status, resp);
        MHD_destroy_response(resp);
        if (ok != MHD_YES)
                return -EIO;
        req->answered = true;
        return 0;
}

int compat_reply_error(CompatRequest *req, unsigned status, const char *error) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        if (!body || json_object_object_add(body, "error", json_object_new_string(error)) < 0)
                return -ENOMEM;
        return compat_reply(req, status, body);
}

/* DNS rebinding guard: only loopback names, with or without a port; "[::1]:port" included. */
static bool host_allowed(const char *host) {
        char name[64];
        size_t n;

        if (!host || !*host)
                return true;
        if (host[0] == '[') {
                const char *end = strchr(host, ']');
                n = end ? (size_t) (end - host) + 1 : strlen(host);
        } else
                n = strcspn(host, ":");
        if (n >= sizeof(name))
                return false;
        for (size_t i = 0; i < n; i++)
                name[i] = (char) tolower((unsigned char) host[i]);
        name[n] = '\0';
        return streq(name, "localhost") || streq(name, "127.0.0.1") || streq(name, "[::1]");
}

/* libmicrohttpd's own complaints (bad requests, resource limits) go through our log module. */
static void on_mhd_log(void *cls, const char *format, va_list ap) {
        char text[512];
        size_t n;

        (void) vsnprintf(text, sizeof(text), format, ap);
        n = strlen(text);
        while (n > 0 && text[n - 1] == '\n')
                text[--n] = '\0';
        log_warning("libmicrohttpd: %s", text);
}

static int dispatch(CompatHttp *h, CompatRequest *req, const char *url, const char *method) {
        struct MHD_Connection *c = req->connection;

        if (MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token")) {
                log_warning("Rejected a /v1 request with a token in its query string");
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "token must be in Authorization header, not query string");
        }
        if (!host_allowed(MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
                return compat_reply_error(req, MHD_HTTP_FORBIDDEN, "forbidden host");
        if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin"))
                return compat_reply_error(req, MHD_HTTP_FORBIDDEN, "forbidden origin");

        /* Exact method and path; a wrong method is "not found" too, as upstream answers. */
        for (const CompatRoute *r = h->routes; r->method; r++)
                if (streq(r->path, url) && streq(r->method, method))
                        return r->handler(req, h->userdata);
        return compat_reply_error(req, MHD_HTTP_NOT_FOUND, "not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        CompatHttp *h = cls;
        CompatRequest req = { .connection = c };
        int r;

        /* Bodies are not read yet: drain them and answer once the request is complete. */
        if (*upload_data_size > 0) {
                *upload_data_size = 0;
                return MHD_YES;
        }
        if (!*con_cls) {
                *con_cls = h;
                return MHD_YES;
        }

        r = dispatch(h, &req, url, method);
        if (r < 0 && !req.answered) {
                log_warning_errno(r, "/v1 %s %s failed: %s", method, url, STRERROR(r));
                r = compat_reply_error(&req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
        }
        return r < 0 ? MHD_NO : MHD_YES;
}

int compat_http_new(sd_event *event, int listen_fd, const CompatRoute *routes, void *userdata, CompatHttp **ret) {
        _cleanup_(compat_http_freep) CompatHttp *h = NULL;
        const union MHD_DaemonInfo *info;
        int fd, r;

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->routes = routes;
        h->userdata = userdata;

        /* MHD closes its listening socket on stop; the caller keeps (and closes) its own. */
        fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 60,
                                  MHD_OPTION_END);
        if (!h->mhd) {
                close(fd);
                return log_error_errno(-EIO, "libmicrohttpd could not start on the compat socket");
        }
        info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return -EIO;

        r = sd_event_add_io(event, &h->io, info->epoll_fd, EPOLLIN, on_io, h);
        if (r < 0)
                return r;
        r = sd_event_add_time(event, &h->timer, CLOCK_MONOTONIC, 0, 0, on_timer, h);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        compat_http_rearm(h);
        *ret = TAKE_PTR(h);
        return 0;
}

CompatHttp *compat_http_free(CompatHttp *h) {
        if (!h)
                return NULL;
        sd_event_source_disable_unref(h->io);
        sd_event_source_disable_unref(h->timer);
        if (h->mhd)
                MHD_stop_daemon(h->mhd);
        free(h);
        return NULL;
}
