/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libwebsockets.h>
#include <uv.h>

#include "config.h"
#include "hello.h"
#include "resolver.h"
#include "worker-channel.h"

/* Session connections closed by the daemon whose sockets are still shutting down (at most a
 * few seconds each): beyond this, session_open is refused until they are gone. */
#define CLOSING_MAX 32
/* Every connection's socket, the channel, the resolver's pipe, libuv's and lws's own: the
 * sandbox's RLIMIT_NOFILE, and the size of lws's descriptor table. */
#define WORKER_FD_MAX (1 + WORKER_SESSIONS_MAX + CLOSING_MAX + 64)

/* One text message waiting for the socket to become writable. */
typedef struct Outgoing {
        struct Outgoing *next;
        size_t size;
        unsigned char data[]; /* LWS_PRE bytes of headroom, then the message */
} Outgoing;

typedef enum Phase {
        PHASE_IDLE,        /* nothing yet, or between a close and the next step */
        PHASE_CONNECTING,  /* TCP, TLS and the upgrade */
        PHASE_HELLO,       /* upgraded; waiting for the signatures, then for hello_ack */
        PHASE_CONNECTED,   /* hello_ack seen */
        PHASE_BACKOFF,     /* waiting to reconnect */
        PHASE_FAILED,      /* no reconnect until the daemon says "reconnect" */
} Phase;

typedef struct Worker Worker;

/* One broker WebSocket: the member's (id 0) or a session's (id 1…WORKER_SESSIONS_MAX). Each
 * has its own phase, timers, backoff and queue; they share the worker's lws context, loop,
 * resolver and channel. */
typedef struct Conn {
        Worker *worker;
        unsigned id;
        SessionConfig *session;       /* NULL for the member's connection */
        char label[24];               /* log line prefix: "" for the member's, "conn N: " */

        uv_timer_t retry_timer, ping_timer, liveness_timer, hello_timer;
        unsigned open_timers;         /* initialized and not yet closed */
        bool released;                /* forgotten: freed once its timers are closed */
        struct Conn *closing_next;    /* on Worker.closing */

        struct lws *wsi;
        Phase phase;
        unsigned attempt;             /* backoff step, 0 after hello_ack */
        bool reconnect_now;           /* connect again without backoff once closed */
        bool forget;                  /* session_close: free it once the socket is gone */
        bool awaiting_turn;           /* a session connect waiting for fewer handshakes at once */

        char **addrs;                 /* the broker host's addresses, this round */
        size_t next_addr;

        uint64_t last_rx_ms;          /* monotonic: the last frame or pong */
        bool want_ping;
        bool kill;                    /* drop the connection at the next chance */
        bool close_sent;

        char sign_request_id[32];     /* the "sign" in flight, "" if none */
        HelloRound hello_round;       /* this connect's timestamps and signatures so far */
        Outgoing *hello;              /* signed hello, written before anything else */
        Outgoing *out_head, *out_tail;

        int close_code;               /* to send, when we close (0: none) */
        char close_reason[124];
        bool close_is_final;          /* the daemon asked: no reconnect */

        int peer_close_code;          /* what the broker sent, 0 if nothing */
        char peer_close_reason[124];
        char last_error_code[129];    /* the broker's last "error" before hello_ack */
        char end_reason[384];         /* why we are dropping the connection ourselves */

        char *rx;                     /* a fragmented message being reassembled, NULL if none */
        size_t rx_size;
        bool rx_skip;                 /* oversized: drop fragments until the final one */
} Conn;

struct Worker {
        WorkerConfig config;
        int channel_fd;
        Resolver resolver;
        const char *landlock;         /* what the sandbox got, for the first state detail */

        uv_loop_t loop;
        uv_poll_t channel_watch;
        struct lws_context *lws;
        bool ca_store_installed;      /* wss://: ca_store_install() gave lws's context its CAs */

        bool exiting;
        int exit_error;               /* < 0: exit with failure, the daemon restarts us */
        unsigned sign_serial;         /* request ids are unique across connections */

        Conn *conns[1 + WORKER_SESSIONS_MAX];  /* [0] the member's; NULL: slot free */
        Conn *closing;                /* closed by the daemon, socket still open */
        unsigned n_closing;
};

/* channel.c: packets to the daemon; conn 0 packets carry no "conn", as before sessions */
void worker_send_state(Worker *w, unsigned conn, const char *state, const char *detail, int64_t retry_in_ms,
                       int close_code);
int worker_send_packet(Worker *w, json_object *packet);
int worker_send_conn_packet(Worker *w, unsigned conn, json_object *packet);
int channel_watch_start(Worker *w);
void worker_exit(Worker *w);

/* conn.c: a connection's memory and timers */
int conn_new(Worker *w, unsigned id, SessionConfig *session, Conn **ret);
void conn_release(Conn *c);
#define conn_label(c) ((const char *) (c)->label)
void conn_state(Conn *c, const char *state, const char *detail, int64_t retry_in_ms, int close_code);
Conn *worker_find_sign_request(Worker *w, const char *request_id);

/* connection.c: a connection's life: resolve, connect, hello, liveness, backoff */
int connection_setup(Worker *w);
void connection_start(Conn *c);
/* Starts the session connects that wait for their turn, while fewer than the bound are in a
 * handshake. */
void connection_next_turn(Worker *w);
void connection_reconnect(Conn *c);
void connection_close(Conn *c, int code, const char *reason);
bool connection_is_live(const Conn *c);
void connection_teardown(Worker *w);
void connection_teardown_finish(Worker *w);
void connection_kill(Conn *c, const char *why);
void connection_start_timer(uv_timer_t *t, uint64_t timeout, uint64_t repeat, uv_timer_cb cb);

/* handshake.c: the hello for this connect, signed by the daemon */
void handshake_begin(Conn *c);
void handshake_signature(Conn *c, const char *signature, const char *error);

/* session.c: the daemon's session_open and session_close */
void session_open(Worker *w, json_object *msg);
void session_close(Worker *w, json_object *msg);
void session_socket_gone(Conn *c);

/* outbound.c */
Outgoing *outgoing_new(const char *text, size_t size);
size_t outbound_drop(Conn *c);
void connection_queue(Conn *c, json_object *frame);
int outbound_writable(Conn *c, struct lws *wsi);

/* receive.c */
void receive_data(Conn *c, struct lws *wsi, const void *in, size_t len);
