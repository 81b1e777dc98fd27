/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "macro.h"

/* What the daemon's "start" packet says (worker-channel.h), checked. */
typedef struct WorkerConfig {
        char *broker_url;
        bool tls;
        char *host;             /* without the [] of an IPv6 literal */
        uint16_t port;
        char *path;             /* with the query string, if any */

        char *mesh_id;
        char *mesh_slug; /* for log lines; NULL from a daemon that does not send it */
        char *member_id;
        char *pubkey;
        char *session_pubkey;   /* NULL: none announced */
        char *session_id;
        char *display_name;     /* NULL: the member's */
        char *hostname;         /* NULL: not announced */
        char *cwd;
        int64_t pid;
        json_object *groups;    /* hello's initial groups: [{name, role?}], NULL: none */

        uint64_t ping_interval_ms;
        uint64_t liveness_timeout_ms;
        bool allow_self_signed;
} WorkerConfig;

#define PING_INTERVAL_MS_DEFAULT     30000
#define LIVENESS_TIMEOUT_MS_DEFAULT  75000

/* One session connection, from the daemon's "session_open" packet (worker-channel.h), checked. */
typedef struct SessionConfig {
        char *session_pubkey;   /* 64 lowercase hex */
        char *session_id;
        char *display_name;
        char *cwd;
        int64_t pid;
        json_object *groups;    /* [{name, role?}], NULL: none */
} SessionConfig;

void worker_config_done(WorkerConfig *c);
void session_config_free(SessionConfig *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(SessionConfig *, session_config_free);

/* ws://host[:port][/path] or wss://…: -EINVAL with *ret_error on anything else. */
int broker_url_parse(const char *url, WorkerConfig *c, char **ret_error);

/* Fills c from a "start" packet; -EINVAL with *ret_error naming the bad field. */
int worker_config_from_start(json_object *start, WorkerConfig *c, char **ret_error);

/* A new SessionConfig from a "session_open" packet; -EINVAL with *ret_error naming the bad field. */
int session_config_from_open(json_object *open, SessionConfig **ret, char **ret_error);
