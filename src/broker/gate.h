/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The gate: the broker's listening socket and everything a connection goes through before
 * its hello is accepted. The broker owns accept() (lws polls the socket as a raw file) so
 * that it can:
 *  - pause accepting when the process or system runs out of descriptors (EMFILE, ENFILE,
 *    ENOBUFS, ENOMEM) instead of spinning on a socket that stays readable, log that at most
 *    once per interval with a count, and evict the oldest unauthenticated connection so a
 *    member can get a descriptor;
 *  - cap the connections that have not completed hello, in total and per source address
 *    (an IPv6 address counts by its /64): at a cap, the oldest unauthenticated connection
 *    (of that address, for the per-address cap) is dropped to admit the new one, so a flood
 *    cannot keep members out and never holds more than the cap;
 *  - close connections that do not complete hello within the hello deadline.
 * Authenticated connections are not counted: only max-connections-per-mesh bounds them.
 */

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Server Server;
typedef struct Pending Pending;

typedef struct Gate {
        Server *server;
        int fd;                          /* the listening socket; owned by wsi once adopted */
        int port;
        struct lws *wsi;
        Pending *head, *tail;            /* unauthenticated connections, oldest first */
        size_t n_active;                 /* of them, not yet being dropped */
        unsigned max_unauthenticated;    /* the option, bounded by the descriptor limit */
        lws_sorted_usec_list_t resume_sul;
        lws_sorted_usec_list_t sweep_sul;
        bool paused;
        unsigned pause_ms;               /* the last pause; 0 after a successful accept */
        uint64_t failures;               /* accept failures not yet logged */
        int last_errno;
        int64_t logged_ms;
        uint64_t evicted;                /* unauthenticated connections dropped at a cap */
} Gate;

/* Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force. */
unsigned gate_raise_nofile(void);

/* Binds and listens on the configured address; before the lws context exists. */
int gate_open(Gate *g, Server *s, unsigned nofile);
/* Hands the socket to lws' event loop and starts the hello deadline sweep. */
int gate_start(Gate *g, struct lws_vhost *vh);
/* Stops accepting (shutdown); the socket is closed with the context. */
void gate_stop(Gate *g);
void gate_done(Gate *g);

/* The listening socket is readable. */
void gate_accept(Gate *g);
/* Hello accepted on wsi: it no longer counts as unauthenticated. */
void gate_authenticated(Gate *g, struct lws *wsi);
/* lws is freeing wsi. */
void gate_wsi_destroyed(Gate *g, struct lws *wsi);
