/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "compat-http-internal.h"
#include "log.h"

/* A stream's unsent text beyond this means its reader stopped reading: it is cut off rather than
 * let the daemon's memory grow. */
#define STREAM_BACKLOG_MAX (1024 * 1024)

struct CompatStream {
        CompatHttp *http;
        struct MHD_Connection *connection;
        CompatStream *prev, *next;
        sd_event_source *hangup;
        char *buf;
        size_t len;
        unsigned long next_id;
        const void *scope;      /* only compared and handed to the filter while the stream lives */
        bool suspended;
        bool ended;
};

static void stream_wake(CompatStream *s) {
        if (s->suspended) {
                s->suspended = false;
                compat_http_resume(s->http, s->connection);
        }
}

static void stream_append(CompatStream *s, const char *text) {
        size_t n = strlen(text);
        char *buf;

        if (s->ended)
                return;
        if (s->len + n > STREAM_BACKLOG_MAX) {
                log_warning("Ending a /v1/events stream whose reader fell %zu bytes behind", s->len);
                s->ended = true;
                stream_wake(s);
                return;
        }
        buf = realloc(s->buf, s->len + n);
        if (!buf) {
                s->ended = true;
                stream_wake(s);
                return;
        }
        memcpy(buf + s->len, text, n);
        s->buf = buf;
        s->len += n;
        stream_wake(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max) {
        CompatStream *s = cls;
        size_t n;

        if (s->len == 0) {
                if (s->ended)
                        return MHD_CONTENT_READER_END_OF_STREAM;
                /* Nothing to say: off MHD's loop until an event or a keepalive arrives. */
                s->suspended = true;
                MHD_suspend_connection(s->connection);
                return 0;
        }
        n = s->len < max ? s->len : max;
        memcpy(out, s->buf, n);
        memmove(s->buf, s->buf + n, s->len - n);
        s->len -= n;
        return (ssize_t) n;
}

static void stream_free(void *cls) {
        CompatStream *s = cls;
        CompatHttp *h = s->http;

        if (s->prev)
                s->prev->next = s->next;
        else
                h->streams = s->next;
        if (s->next)
                s->next->prev = s->prev;
        h->n_streams--;
        if (h->n_streams == 0)
                (void) sd_event_source_set_enabled(h->keepalive, SD_EVENT_OFF);
        sd_event_source_disable_unref(s->hangup);
        free(s->buf);
        free(s);
}

/* MHD does not watch a suspended connection, so a reader that went away would hold its slot until
 * the next keepalive write failed: end its stream as soon as the socket says so. */
static int on_hangup(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        CompatStream *s = userdata;

        s->ended = true;
        stream_wake(s);
        return sd_event_source_set_enabled(source, SD_EVENT_OFF);
}

static int stream_watch_hangup(CompatStream *s) {
        const union MHD_ConnectionInfo *info;

        info = MHD_get_connection_info(s->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!info)
                return -EBADF;
        return sd_event_add_io(s->http->event, &s->hangup, info->connect_fd, EPOLLRDHUP, on_hangup, s);
}

static int on_keepalive(sd_event_source *source, uint64_t usec, void *userdata) {
        CompatHttp *h = userdata;

        for (CompatStream *s = h->streams; s; s = s->next)
                stream_append(s, ": keepalive\n\n");
        return sd_event_source_set_time_relative(source, COMPAT_KEEPALIVE_USEC);
}

static int keepalive_start(CompatHttp *h) {
        int r;

        if (!h->keepalive) {
                r = sd_event_add_time_relative(h->event, &h->keepalive, CLOCK_MONOTONIC, COMPAT_KEEPALIVE_USEC, 0,
                                               on_keepalive, h);
                if (r < 0)
                        return r;
        }
        if (h->n_streams > 0)
                return 0;
        r = sd_event_source_set_time_relative(h->keepalive, COMPAT_KEEPALIVE_USEC);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(h->keepalive, SD_EVENT_ON);
}

int compat_reply_stream(CompatRequest *req, const void *scope) {
        CompatHttp *h = req->http;
        struct MHD_Response *resp;
        CompatStream *s;
        int r;

        assert(req);

        if (h->n_streams >= COMPAT_STREAMS_MAX)
                return compat_reply_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_streams");
        r = keepalive_start(h);
        if (r < 0)
                return r;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        *s = (CompatStream) { .http = h, .connection = req->connection, .next_id = 1, .scope = scope };
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
        if (!resp) {
                free(s);
                return -ENOMEM;
        }
        s->next = h->streams;
        if (h->streams)
                h->streams->prev = s;
        h->streams = s;
        h->n_streams++;
        r = stream_watch_hangup(s);
        if (r < 0) {
                MHD_destroy_response(resp); /* frees s */
                return r;
        }
        stream_append(s, ": connected\n\n");

        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache, no-transform");
        (void) MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        /* A stream is long-lived by design: it no longer counts as a request in flight. */
        if (req->counted) {
                req->counted = false;
                h->n_inflight--;
        }
        return compat_request_respond(req, MHD_HTTP_OK, resp);
}

void compat_http_end_streams(CompatHttp *h, const void *scope) {
        if (!h || !scope)
                return;
        for (CompatStream *s = h->streams; s; s = s->next)
                if (s->scope == scope && !s->ended) {
                        s->ended = true;
                        stream_wake(s);
                }
}

void compat_http_broadcast(CompatHttp *h, const char *kind, json_object *data, CompatStreamWant want, void *userdata) {
        const char *json;

        if (!h || !h->streams)
                return;
        json = json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        for (CompatStream *s = h->streams; s; s = s->next) {
                _cleanup_free_ char *frame = NULL;

                /* an ended stream's scope may be gone */
                if (s->ended || (want && !want(s->scope, userdata)))
                        continue;

                if (asprintf(&frame, "id: %lu\nevent: %s\ndata: %s\n\n", s->next_id++, kind, json) < 0)
                        continue;
                stream_append(s, frame);
        }
}

unsigned compat_http_n_streams(const CompatHttp *h) {
        return h ? h->n_streams : 0;
}

void compat_streams_stop(CompatHttp *h) {
        assert(h);

        for (CompatStream *s = h->streams; s; s = s->next) {
                s->ended = true;
                stream_wake(s);
        }
        h->keepalive = sd_event_source_disable_unref(h->keepalive);
}
