/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What the pieces of the broker link (mesh-link.c, link-drain.c, link-receive.c,
 * link-peers.c) share. Nothing outside them includes this. */

#include <sodium.h>

#include "mesh-link.h"
#include "outbox.h"
#include "session.h"
#include "time-util.h"
#include "worker-channel.h"

#define LINK_INFLIGHT_MAX 32

typedef struct PeersWaiter {
        MeshLinkPeersDone done;
        void *userdata;
} PeersWaiter;

typedef struct TopicsWaiter {
        MeshLinkTopicsDone done;
        void *userdata;
} TopicsWaiter;

typedef struct TopicEntry {
        char *id;
        char *name;
} TopicEntry;

typedef struct InflightSend {
        unsigned conn;      /* the connection it went out on: 0 the member's, else a session's */
        char *client_message_id;
        char *row_id;
        unsigned attempts;  /* after this attempt */
        usec_t deadline;    /* CLOCK_MONOTONIC: no ack by then means a retry */
} InflightSend;

struct MeshLink {
        Mesh *mesh;
        WorkerProcess *worker;
        MeshSession session;
        LinkState state;
        char *detail;
        char *features_json;
        char **feature_names;       /* the keys of features_json; NULL until connected */
        bool legacy_said;
        bool client_ack;            /* the broker leases pushes until we acknowledge them */
        unsigned restarts;
        sd_event_source *restart_timer;

        InflightSend inflight[LINK_INFLIGHT_MAX];
        size_t n_inflight;
        sd_event_source *ack_timer;
        sd_event_source *drain_more; /* continues a drain that gave up a long run of rows */

        Peer *peers;
        size_t n_peers;
        PeersWaiter *peer_waiters;  /* peer queries waiting for a fresh peers_list */
        size_t n_peer_waiters;
        sd_event_source *peers_timer;
        usec_t peers_updated_at;    /* CLOCK_REALTIME: the broker last sent the list or an event; 0 never */
        unsigned unopenable;        /* DMs no key of ours opened since start */

        TopicEntry *topics;         /* the broker's last topic_list: "#name" resolves to "#id" */
        size_t n_topics;
        TopicsWaiter *topic_waiters; /* sends waiting for a fresh topic_list */
        size_t n_topic_waiters;
        sd_event_source *topics_timer;

        Session *conns[SESSIONS_MAX + 1]; /* the session on each connection of the worker; [0] unused */
        unsigned last_conn;               /* the connection number given out last */
};

const char *json_string_member(json_object *o, const char *key);
void mesh_link_set_state(MeshLink *l, LinkState state, const char *detail);
/* Answers the worker's "sign" request with signature, or with refusal (logged, naming whose
 * connection asked) when signature is NULL. */
void link_reply_signature(MeshLink *l, json_object *request, const char *signature, const char *refusal,
                          const char *whose);

/* Hands a packet to the worker. */
int link_send_packet(MeshLink *l, json_object *packet);
/* Writes a broker frame on connection conn (0: the member's) when it is connected; -ENOTCONN else. */
int link_send_frame_conn(MeshLink *l, unsigned conn, json_object *frame);

/* link-drain.c */
void link_handle_ack(MeshLink *l, unsigned conn, json_object *ack);
/* Every send still waiting for an ack goes back to pending, to be sent again. */
void link_requeue_inflight(MeshLink *l, const char *why);
/* The same for the sends that went out on connection conn only. */
void link_requeue_inflight_conn(MeshLink *l, unsigned conn, const char *why);

/* link-sessions.c */
/* Opens every session's connection again in a worker that just started. */
void link_sessions_reopen(MeshLink *l);
/* The link goes away: its sessions have no connection any more. */
void link_sessions_detach(MeshLink *l);
/* A worker packet about session connection conn (1..SESSIONS_MAX). */
void link_session_packet(MeshLink *l, unsigned conn, json_object *packet);

/* link-topics.c */
/* Asks the broker for its topics (the answer replaces the cache). */
int link_topics_request(MeshLink *l);
void link_topics_replace(MeshLink *l, json_object *topics);
/* Answers every waiting topic query (the link goes away). */
void link_topics_cancel(MeshLink *l);
void link_topics_clear(MeshLink *l);

/* link-peers.c */
/* Answers every waiting peer query with NotConnected: the link goes away. */
void link_peers_cancel(MeshLink *l);
void link_peers_replace(MeshLink *l, json_object *peers);
void link_peer_event(MeshLink *l, const char *event, json_object *data);
void link_peers_clear(MeshLink *l);
const char *link_peer_name(const MeshLink *l, const char *pubkey);
