/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The broker server: one libwebsockets context on lws' own default event loop (single
 * thread). Every connection is a Conn; handlers queue frames on it and never block on the
 * socket. SQLite is local and synchronous: a committed accept is a few microseconds. On
 * PostgreSQL every handler and timer sends its statements through pool.h without waiting
 * (the hot path, accept, push and client_ack, and the others, whose replies keep their
 * order behind a barrier); only start-up, the health check and a LISTEN reconnect wait.
 */

#include <json-c/json.h>
#include <libwebsockets.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "gate.h"
#include "ids.h"
#include "log-limit.h"
#include "store.h"

/* The presence frames remembered to be sent once (Server.presence_seen): those of a gap's
 * margin and of a catch-up (at most 1024 rows). */
#define PRESENCE_SEEN_MAX 2048

#define container_of(ptr, type, member) ((type *) ((char *) (ptr) - offsetof(type, member)))

typedef struct BrokerOptions {
        char listen_host[256];
        int listen_port;
        const char *db_path;
        const char *tls_cert;
        const char *tls_key;
        unsigned ping_interval_sec;
        unsigned liveness_timeout_sec;
        unsigned lease_seconds;
        unsigned max_connections_per_mesh;
        unsigned rate_limit;             /* sends per member and window; 0 = off */
        unsigned rate_window_sec;
        unsigned dedupe_retention_days;
        unsigned message_retention_days;
        unsigned purge_interval_sec;
        unsigned presence_grace_sec;     /* 0: peer_left as soon as the socket closes */
        unsigned hello_timeout_sec;      /* a connection without an accepted hello is closed */
        unsigned max_unauthenticated;    /* connections waiting for their hello, in total */
        unsigned max_unauthenticated_per_address;
        unsigned catch_up_interval_ms;   /* PostgreSQL: drain every connection this often */
        unsigned db_pool;                /* PostgreSQL: connections for the hot path */
        unsigned lane0_high;             /* PostgreSQL: results owed on the main connection past
                                          * which the clients are not read (pool.c); resumed
                                          * below a quarter. Tests lower it. */
        bool legacy;                     /* no features on hello_ack, no client_ack leases */
} BrokerOptions;

void broker_options_init(BrokerOptions *o);

typedef struct OutFrame OutFrame;
typedef struct HeldFrame HeldFrame;
typedef struct Handed Handed;
typedef struct Ghost Ghost;
typedef struct Server Server;

typedef struct Conn {
        struct lws *wsi;
        Server *server;
        struct Conn *prev, *next;
        uint64_t serial;                 /* unique per process: the lease owner key */
        bool is_ws;
        bool hello_done;
        bool closing;                    /* close queued: no longer routable */
        bool replaced;                   /* closed by session_replaced: no peer_left */
        bool drain_more;                 /* pending rows were left for the next drain */
        bool drain_inflight;             /* PostgreSQL: its drain's query is in flight */
        bool drain_again;                /* and another was asked for meanwhile */
        bool wake_pending;               /* another node woke it: drain after reading them all */
        bool presence_dirty;             /* its presence row is to be written again (nodes.c) */
        bool ghost_row;                  /* closed into its grace: the row stays, marked (nodes.c) */
        bool ack_aware;                  /* announced or sent client_ack: leases are redelivered */
        bool peer_updates;               /* announced peer_updated: told of others' status and summary */
        bool is_session;                 /* session_hello: peerRole "session", else "control-plane" */
        bool evicted;                    /* kicked or banned: peer_left at once, no grace */
        int64_t last_rx_ms;              /* monotonic, for the liveness cut */

        char *rx;                        /* message being reassembled from fragments */
        size_t rx_len, rx_alloc;

        OutFrame *out_head, *out_tail;
        size_t out_bytes;
        bool ping_pending;
        int close_code;
        char close_reason[124];          /* a WS close reason is at most 123 bytes */

        /* Identity and presence, valid once hello_done. */
        char presence_id[BROKER_ID_LEN + 1];
        char *mesh_id;
        char *member_id;
        char member_pubkey[PUBKEY_HEX_LEN + 1];
        char session_pubkey[PUBKEY_HEX_LEN + 1];   /* "" when the hello had none */
        char *display_name;
        char *session_id;
        char *cwd, *hostname, *peer_type, *channel, *model;
        json_object *groups;
        json_object *profile;
        char *summary;
        char status[8];
        bool visible;
        int64_t connected_at_ms;

        /* PostgreSQL: sends whose statements are in flight (pool.h); other frames wait
         * behind them, in order, so a reply never overtakes an earlier send's ack. */
        unsigned inflight;
        unsigned barrier;                /* of those, handlers every later frame waits for */
        bool rx_paused;                  /* too many in flight: its socket is not read */
        HeldFrame *held_head, *held_tail;
        size_t n_held, held_bytes;
} Conn;

struct Server {
        BrokerOptions opts;
        Store *store;
        struct lws_context *ctx;
        Gate gate;
        Conn *conns;
        uint64_t next_serial;
        lws_sorted_usec_list_t ping_sul;
        lws_sorted_usec_list_t lease_sul;
        lws_sorted_usec_list_t purge_sul;
        lws_sorted_usec_list_t ghost_sul;
        lws_sorted_usec_list_t catch_up_sul;
        lws_sorted_usec_list_t pool_sul;      /* runs lane 0's deferred callbacks (pool.c) */
        struct lws *listen_wsi;          /* the other nodes' notifications (PostgreSQL) */
        lws_sorted_usec_list_t listen_sul;    /* drives its (re)connect (nodes.c) */
        int64_t listen_deadline_ms;      /* mono_ms(); 0 when no connect is under way */
        int64_t state_gap_ms;            /* now_ms() from which state_change frames may be
                                          * missed (LISTEN down); 0 when none (nodes.c) */
        int64_t presence_gap_ms;         /* the same, for the presence frames (nodes.c) */
        /* The messageIds of the other nodes' presence frames sent here last, live or caught
         * up, so that a catch-up sends none twice (nodes.c); allocated by nodes_start(), as
         * a single node has no use for it. */
        char (*presence_seen)[UUID_STR_LEN + 1];
        unsigned presence_seen_next;
        int64_t db_answered_ms;          /* mono_ms() of the last heartbeat answered (nodes.c) */
        int64_t listen_down_ms;          /* mono_ms() since the LISTEN connection was lost or
                                          * failed to open; 0 while it listens (nodes.c) */
        /* Failures retried every catch-up, logged as log-limit.h says (nodes.c). */
        struct {
                LogLimit listen, heartbeat, reap, prune, state_gap, presence_gap;
        } nodes_log;
        bool nodes_on;
        char node_id[BROKER_ID_LEN + 1]; /* this process among the nodes */
        Ghost *ghosts;                   /* closed sessions in their presence grace */
        size_t hello_seen_n;             /* rows in temp.hello_seen */
        bool hello_seen_warned;
        bool lease_sul_armed;
        bool shutting_down;
        bool throttled;                  /* the clients are not read: lane 0 is behind (pool.c) */
        struct lws *lane_wsi[1 + STORE_POOL_MAX];  /* PostgreSQL: the store's lanes (pool.h) */
        unsigned n_lanes;                /* 0: no pool, the handlers block (SQLite) */
        Handed **handed;                 /* pushes whose lease is in flight (delivery.c) */
};

int server_run(const BrokerOptions *opts);

/* The key the mesh routes to this connection by: its session pubkey, else its member's. */
const char *conn_routing_key(const Conn *c);
/* Whose client_message_ids a send is deduplicated among (DECISIONS rule 16): the sending
 * member. Valid once hello_done. */
const char *conn_sender_scope(const Conn *c);
bool conn_is_live(const Conn *c);

/* Serialises o and queues it as one text frame. Does not take o's reference. */
int conn_send(Conn *c, json_object *o);
/* {"type":"error","code","message","_reqId"?} */
int conn_send_error(Conn *c, const char *code, const char *message, const char *req_id);
/* Queues a close with code and reason after the frames already queued. */
void conn_close(Conn *c, int code, const char *reason);
/* Drops the TCP connection now, without a close frame (the client sees 1006). */
void conn_kill(Conn *c);

/* What an asynchronous completion holds of a connection, which may go before it runs: a
 * serial is never reused, so the reference finds that connection or none. server serves a
 * completion whose connection has gone. */
typedef struct ConnRef {
        Server *server;
        uint64_t serial;
} ConnRef;

static inline ConnRef conn_ref(const Conn *c) {
        return (ConnRef) { .server = c->server, .serial = c->serial };
}
/* The live connection r names, or NULL when it has gone. */
Conn *conn_ref_get(const ConnRef *r);

/* A send of c's was sent to the database, or completed: frames held behind it run then. */
void conn_async_started(Conn *c);
void conn_async_done(Conn *c);
/* A handler's statements were sent (a hello, a peers_list, ...): every later frame of c,
 * a send too, waits until it ends, since it may change what they see (c's identity). */
void conn_barrier_begin(Conn *c);
void conn_barrier_end(Conn *c);
/* Stops (or resumes) reading every client: the database is behind. A connection paused for
 * its own sends in flight stays paused until they are done. */
void server_throttle(Server *s, bool on);
/* Commits the loop iteration's batch; a failure ends the process before any reply leaves. */
void server_commit_batch(Server *s);
