/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libwebsockets.h>
#include <uv.h>

#include "config.h"
#include "resolver.h"

/* One text message waiting for the socket to become writable. */
typedef struct Outgoing {
        struct Outgoing *next;
        size_t size;
        unsigned char data[]; /* LWS_PRE bytes of headroom, then the message */
} Outgoing;

typedef enum Phase {
        PHASE_IDLE,        /* nothing yet, or between a close and the next step */
        PHASE_CONNECTING,  /* TCP, TLS and the upgrade */
        PHASE_HELLO,       /* upgraded; waiting for the signature, then for hello_ack */
        PHASE_CONNECTED,   /* hello_ack seen */
        PHASE_BACKOFF,     /* waiting to reconnect */
        PHASE_FAILED,      /* no reconnect until the daemon says "reconnect" */
} Phase;

typedef struct Worker {
        WorkerConfig config;
        int channel_fd;
        Resolver resolver;
        const char *landlock;         /* what the sandbox got, for the first state detail */

        uv_loop_t loop;
        uv_poll_t channel_watch;
        uv_timer_t retry_timer, ping_timer, liveness_timer, hello_timer;
        struct lws_context *lws;
        struct lws *wsi;

        Phase phase;
        unsigned attempt;             /* backoff step, 0 after hello_ack */
        bool reconnect_now;           /* connect again without backoff once closed */
        bool exiting;
        int exit_error;               /* < 0: exit with failure, the daemon restarts us */

        char **addrs;                 /* the broker host's addresses, this round */
        size_t next_addr;

        uint64_t last_rx_ms;          /* monotonic: the last frame or pong */
        bool want_ping;
        bool kill;                    /* drop the connection at the next chance */
        bool close_sent;

        unsigned sign_serial;
        char sign_request_id[32];     /* the "sign" in flight, "" if none */
        Outgoing *hello;              /* signed hello, written before anything else */
        Outgoing *out_head, *out_tail;

        int close_code;               /* to send, when we close (0: none) */
        char close_reason[124];
        bool close_is_final;          /* the daemon asked: no reconnect */

        int peer_close_code;          /* what the broker sent, 0 if nothing */
        char peer_close_reason[124];
        char last_error_code[129];    /* the broker's last "error" before hello_ack */
        char end_reason[384];         /* why we are dropping the connection ourselves */
        int64_t hello_timestamp;      /* the one the pending signature is for */

        char *rx;                     /* one message being reassembled */
        size_t rx_size;
        bool rx_skip;                 /* oversized: drop fragments until the final one */
} Worker;

/* channel.c */
void worker_send_state(Worker *w, const char *state, const char *detail, int64_t retry_in_ms, int close_code);
int worker_send_packet(Worker *w, json_object *packet);
int channel_watch_start(Worker *w);
void worker_exit(Worker *w);

/* connection.c: the connection's life: resolve, connect, hello, liveness, backoff */
int connection_setup(Worker *w);
void connection_start(Worker *w);
void connection_reconnect(Worker *w);
void connection_close(Worker *w, int code, const char *reason);
void connection_signature(Worker *w, const char *request_id, const char *signature, const char *error);
void connection_teardown(Worker *w);
void connection_teardown_finish(Worker *w);
void connection_kill(Worker *w, const char *why);

/* outbound.c */
Outgoing *outgoing_new(const char *text, size_t size);
size_t outbound_drop(Worker *w);
void connection_queue(Worker *w, json_object *frame);
int outbound_writable(Worker *w, struct lws *wsi);

/* receive.c */
void receive_data(Worker *w, struct lws *wsi, const void *in, size_t len);
