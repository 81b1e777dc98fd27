/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "compat-http-internal.h"
#include "json-util.h"
#include "log.h"

/* Bodies up to this size are read to the end before a 413, so that the client sees it. */
#define COMPAT_DRAIN_MAX (16u * 1024 * 1024)

static void compat_http_rearm(CompatHttp *h) {
        MHD_UNSIGNED_LONG_LONG ms;

        if (MHD_get_timeout(h->mhd, &ms) != MHD_YES) {
                (void) sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);
                return;
        }
        if (ms == 0) {
                /* MHD has work at hand (a resumed connection, a pipelined request): not a timer's
                 * coarse wakeup, but the next loop iteration. */
                (void) sd_event_source_set_enabled(h->pending, SD_EVENT_ONESHOT);
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

static int on_pending(sd_event_source *s, void *userdata) {
        compat_http_run(userdata);
        return 0;
}

void compat_http_resume(CompatHttp *h, struct MHD_Connection *c) {
        assert(h);

        MHD_resume_connection(c);
        /* With external polling MHD picks resumed connections up only in its next MHD_run(). */
        (void) sd_event_source_set_enabled(h->pending, SD_EVENT_ONESHOT);
}

static CompatRequest *compat_request_free(CompatRequest *req) {
        if (!req)
                return NULL;
        if (req->late)
                MHD_destroy_response(req->late);
        free(req->body);
        free(req->tail);
        free(req);
        return NULL;
}

static void compat_request_unlink(CompatRequest *req) {
        CompatHttp *h = req->http;

        if (req->counted)
                h->n_inflight--;
        req->counted = false;
        if (req->prev)
                req->prev->next = req->next;
        else if (h->requests == req)
                h->requests = req->next;
        if (req->next)
                req->next->prev = req->prev;
        req->prev = req->next = NULL;
}

const char *compat_request_query(CompatRequest *req, const char *key) {
        assert(req);

        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *compat_request_tail(CompatRequest *req) {
        assert(req);

        return req->tail;
}

const char *compat_request_header(CompatRequest *req, const char *name) {
        assert(req);

        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *compat_request_body(CompatRequest *req, size_t *ret_size) {
        assert(req);

        if (ret_size)
                *ret_size = req->body_size;
        return req->body ? req->body : "";
}

bool compat_request_alive(const CompatRequest *req) {
        assert(req);

        return req->connection;
}

int compat_request_caller(CompatRequest *req, Caller *ret) {
        const union MHD_ConnectionInfo *info;

        assert(req);

        info = MHD_get_connection_info(req->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return -EBADF;
        return caller_from_socket(info->connect_fd, ret);
}

int compat_request_respond(CompatRequest *req, unsigned status, struct MHD_Response *resp) {
        assert(req);

        if (req->answered) {
                MHD_destroy_response(resp);
                return -EALREADY;
        }
        req->answered = true;
        if (!req->connection) {
                /* The daemon stopped serving while this waited: nobody is left to answer. */
                MHD_destroy_response(resp);
                compat_request_free(req);
                return -ECONNRESET;
        }
        if (req->suspended) {
                req->late = resp;
                req->late_status = status;
                req->suspended = false;
                compat_http_resume(req->http, req->connection);
                return 0;
        }
        if (MHD_queue_response(req->connection, status, resp) != MHD_YES) {
                MHD_destroy_response(resp);
                return -EIO;
        }
        MHD_destroy_response(resp);
        return 0;
}

int compat_reply(CompatRequest *req, unsigned status, json_object *body) {
        const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        struct MHD_Response *resp;

        assert(req);

        resp = MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return -ENOMEM;
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        return compat_request_respond(req, status, resp);
}

int compat_reply_error(CompatRequest *req, unsigned status, const char *error) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        assert(req);

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

/* libmicrohttpd's own complaints (bad requests, resource limits) go through our log module. Most
 * are about what a client did, one line per connection: a flood of connections must not become
 * a flood of log lines, so at most COMPAT_LOG_BURST of them per COMPAT_LOG_INTERVAL. */
#define COMPAT_LOG_BURST 10u
#define COMPAT_LOG_INTERVAL (10 * USEC_PER_SEC)

static void on_mhd_log(void *cls, const char *format, va_list ap) {
        CompatHttp *h = cls;
        usec_t now = now_usec(CLOCK_MONOTONIC);
        char text[512];
        size_t n;

        if (now >= h->log_window_start + COMPAT_LOG_INTERVAL) {
                if (h->log_suppressed > 0)
                        log_warning("libmicrohttpd: %u more messages suppressed", h->log_suppressed);
                h->log_window_start = now;
                h->log_count = h->log_suppressed = 0;
        }
        if (h->log_count >= COMPAT_LOG_BURST) {
                h->log_suppressed++;
                return;
        }
        h->log_count++;
        (void) vsnprintf(text, sizeof(text), format, ap);
        n = strlen(text);
        while (n > 0 && text[n - 1] == '\n')
                text[--n] = '\0';
        log_warning("libmicrohttpd: %s", text);
}

static int reply_too_large(CompatRequest *req) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        if (!body || json_object_object_add(body, "error", json_object_new_string("payload too large")) < 0 ||
            json_object_object_add(body, "limit_bytes", json_object_new_uint64(req->route->body_max)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_CONTENT_TOO_LARGE, body);
}

/* The first *con_cls of a request whose raw URI holds "%00": MHD unescapes the path and the query
 * into C strings, which end there, and routes and answers on what is left. */
static char uri_has_nul;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
        return strcasestr(uri, "%00") ? &uri_has_nul : NULL;
}

static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                const char *value, size_t value_size) {
        const char **field = cls;

        if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
                *field = key;
                return MHD_NO;
        }
        return MHD_YES;
}

/* The query parameter or header that holds a NUL ("path" for the path), or NULL when none does:
 * it would be cut where C strings take over. (libmicrohttpd 0.9.75 reports a header's length up
 * to a raw NUL byte, so there it is cut before this sees it.) */
static const char *request_nul_field(CompatRequest *req) {
        const char *field = NULL;

        (void) MHD_get_connection_values_n(req->connection, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, find_nul,
                                           &field);
        if (!field && req->uri_nul)
                field = "path";
        return field;
}

/* What can be decided from the request line and headers alone (reference §2.2, then the limits):
 * answers and returns 1, or returns 0 with the route set. */
static int screen(CompatRequest *req, const char *url, const char *method) {
        CompatHttp *h = req->http;
        unsigned long long announced;
        const char *length, *nul_field;

        if (h->n_inflight >= COMPAT_INFLIGHT_MAX) {
                log_debug("Refused a /v1 request: %u already in flight", h->n_inflight);
                return compat_answered(compat_reply_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "daemon_busy"));
        }
        req->counted = true;
        h->n_inflight++;

        nul_field = request_nul_field(req);
        if (nul_field) {
                _cleanup_free_ char *text = NULL;
                if (asprintf(&text, "'%s' must not contain NUL (U+0000)", nul_field) < 0)
                        return -ENOMEM;
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, text));
        }

        if (compat_request_query(req, "token")) {
                log_warning("Rejected a /v1 request with a token in its query string");
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                          "token must be in Authorization header, not query string"));
        }
        if (!host_allowed(compat_request_header(req, MHD_HTTP_HEADER_HOST)))
                return compat_answered(compat_reply_error(req, MHD_HTTP_FORBIDDEN, "forbidden host"));
        if (compat_request_header(req, "Origin"))
                return compat_answered(compat_reply_error(req, MHD_HTTP_FORBIDDEN, "forbidden origin"));

        /* Exact method and path, or a path under a prefix route; a wrong method is "not found" too,
         * as upstream answers. */
        for (const CompatRoute *r = h->routes; r->method && !req->route; r++)
                if (streq(r->method, method) && (r->prefix ? strncmp(url, r->path, strlen(r->path)) == 0 : streq(r->path, url)))
                        req->route = r;
        if (!req->route)
                return compat_answered(compat_reply_error(req, MHD_HTTP_NOT_FOUND, "not found"));
        if (req->route->prefix) {
                req->tail = strdup(url + strlen(req->route->path));
                if (!req->tail)
                        return -ENOMEM;
        }

        /* A client that waits for "100 Continue", or announces an absurd size, is answered before it
         * sends the body. Others are answered once their body is read (and dropped): one that is
         * still sending when the connection closes sees a broken pipe, not the 413. */
        length = compat_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
        announced = length ? strtoull(length, NULL, 10) : 0;
        if (announced > req->route->body_max) {
                const char *expect = compat_request_header(req, MHD_HTTP_HEADER_EXPECT);
                if ((expect && strcasecmp(expect, "100-continue") == 0) || announced > COMPAT_DRAIN_MAX)
                        return compat_answered(reply_too_large(req));
                req->too_large = true;
        }
        return 0;
}

static int receive_body(CompatRequest *req, const char *data, size_t size) {
        char *body;

        req->body_seen += size;
        if (req->too_large || size > req->route->body_max - req->body_size) {
                /* Chunked bodies announce no length: drop what exceeds the limit, answer at the end,
                 * unless the client goes on and on. */
                req->too_large = true;
                req->body = mfree(req->body);
                req->body_size = 0;
                return req->body_seen > COMPAT_DRAIN_MAX ? reply_too_large(req) : 0;
        }
        body = realloc(req->body, req->body_size + size + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body + req->body_size, data, size);
        req->body_size += size;
        body[req->body_size] = '\0';
        req->body = body;
        return 0;
}

static int dispatch(CompatRequest *req, const char *url, const char *method) {
        int r;

        if (req->too_large)
                return reply_too_large(req);
        req->dispatched = true;
        r = req->route->handler(req, req->http->userdata);
        if (r < 0 && !req->answered) {
                log_warning_errno(r, "/v1 %s %s failed: %m", method, url);
                return compat_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
        }
        if (!req->answered) {
                /* The handler answers later (polkit, the group commit, the broker). */
                req->suspended = true;
                MHD_suspend_connection(req->connection);
        }
        return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        CompatHttp *h = cls;
        CompatRequest *req = *con_cls;
        int r;

        if (!req || req == (void *) &uri_has_nul) {
                bool uri_nul = req != NULL;

                req = calloc(1, sizeof(*req));
                if (!req)
                        return MHD_NO;
                *req = (CompatRequest) { .http = h, .connection = c, .next = h->requests, .uri_nul = uri_nul };
                if (h->requests)
                        h->requests->prev = req;
                h->requests = req;
                *con_cls = req;
                r = screen(req, url, method);
                return r < 0 ? MHD_NO : MHD_YES;
        }
        if (!req->connection)
                return MHD_NO;
        if (req->late) {
                enum MHD_Result ok = MHD_queue_response(c, req->late_status, req->late);
                MHD_destroy_response(req->late);
                req->late = NULL;
                return ok;
        }
        if (req->answered) {
                *upload_data_size = 0; /* answered early: the rest of the body is dropped */
                return MHD_YES;
        }
        if (*upload_data_size > 0) {
                r = receive_body(req, upload_data, *upload_data_size);
                *upload_data_size = 0;
                return r < 0 ? MHD_NO : MHD_YES;
        }
        if (req->dispatched)
                return MHD_YES;
        r = dispatch(req, url, method);
        return r < 0 ? MHD_NO : MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        CompatRequest *req = *con_cls;

        *con_cls = NULL;
        if (!req || req == (void *) &uri_has_nul)
                return;
        compat_request_unlink(req);
        /* Orphaned while waiting: whoever holds it answers (and so frees) it later. */
        if (req->dispatched && !req->answered)
                req->connection = NULL;
        else
                compat_request_free(req);
}

/* The connection cap for a soft RLIMIT_NOFILE of nofile, as compat-http.h describes it (at least
 * COMPAT_CONNECTIONS_MIN, so that /v1 serves at all under a tiny limit). */
static unsigned compat_connection_limit(uint64_t nofile) {
        uint64_t reserve = nofile / 2 > COMPAT_FD_RESERVE ? nofile / 2 : COMPAT_FD_RESERVE;

        if (nofile <= reserve + COMPAT_CONNECTIONS_MIN)
                return COMPAT_CONNECTIONS_MIN;
        if (nofile - reserve > COMPAT_CONNECTIONS_MAX)
                return COMPAT_CONNECTIONS_MAX;
        return (unsigned) (nofile - reserve);
}

int compat_http_new(sd_event *event, int listen_fd, const CompatRoute *routes, void *userdata, CompatHttp **ret) {
        _cleanup_(compat_http_freep) CompatHttp *h = NULL;
        const union MHD_DaemonInfo *info;
        struct rlimit rl;
        unsigned limit;
        int fd, r;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return negative_errno();
        limit = compat_connection_limit(rl.rlim_cur);

        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->event = sd_event_ref(event);
        h->routes = routes;
        h->userdata = userdata;

        /* MHD closes its listening socket on stop; the caller keeps (and closes) its own. */
        fd = fcntl(listen_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return negative_errno();
        h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
                                  on_request, h,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_LIMIT, limit,
                                  MHD_OPTION_CONNECTION_TIMEOUT, COMPAT_IDLE_TIMEOUT_SEC,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                                  MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
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
        r = sd_event_add_defer(event, &h->pending, on_pending, h);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(h->pending, SD_EVENT_OFF);
        if (r < 0)
                return r;
        compat_http_rearm(h);
        log_debug("/v1: at most %u connections (RLIMIT_NOFILE %llu), idle timeout %us", limit,
                  (unsigned long long) rl.rlim_cur, COMPAT_IDLE_TIMEOUT_SEC);
        *ret = TAKE_PTR(h);
        return 0;
}

CompatHttp *compat_http_free(CompatHttp *h) {
        if (!h)
                return NULL;
        compat_streams_stop(h);
        sd_event_source_disable_unref(h->io);
        sd_event_source_disable_unref(h->timer);
        sd_event_source_disable_unref(h->pending);
        /* Requests still waiting for an answer are orphaned: their late reply only frees them. */
        for (CompatRequest *req = h->requests; req; req = req->next)
                if (req->suspended) {
                        req->suspended = false;
                        MHD_resume_connection(req->connection);
                }
        if (h->mhd)
                MHD_stop_daemon(h->mhd);
        sd_event_unref(h->event);
        free(h);
        return NULL;
}
