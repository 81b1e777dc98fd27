/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>

#include "compat-http.h"

typedef struct CompatStream CompatStream;

struct CompatHttp {
        sd_event *event;
        struct MHD_Daemon *mhd;
        sd_event_source *io;
        sd_event_source *timer;
        sd_event_source *keepalive;
        sd_event_source *pending;  /* runs MHD once more: connections resumed, or work at hand */
        const CompatRoute *routes;
        void *userdata;
        CompatRequest *requests;   /* every request not yet completed */
        unsigned n_inflight;
        CompatStream *streams;
        unsigned n_streams;
        usec_t log_window_start;   /* libmicrohttpd's messages, rate-limited */
        unsigned log_count;
        unsigned log_suppressed;
};

struct CompatRequest {
        CompatHttp *http;
        struct MHD_Connection *connection; /* NULL once the daemon stopped serving it */
        CompatRequest *prev, *next;
        const CompatRoute *route;
        char *body;
        size_t body_size;
        char *tail;                /* the path after a prefix route's path */
        uint64_t body_seen;        /* bytes received, kept or not */
        bool counted;              /* in n_inflight */
        bool too_large;
        bool uri_nul;              /* the raw URI held a "%00" */
        bool dispatched;
        bool suspended;
        bool answered;
        struct MHD_Response *late; /* a reply made while suspended, queued when resumed */
        unsigned late_status;
};

/* Queues resp now inside MHD's callback, or keeps it until the suspended request resumes. */
int compat_request_respond(CompatRequest *req, unsigned status, struct MHD_Response *resp);

/* Resumes a suspended connection and makes sure MHD runs to pick it up. */
void compat_http_resume(CompatHttp *h, struct MHD_Connection *c);

/* compat-stream.c */
void compat_streams_stop(CompatHttp *h);
