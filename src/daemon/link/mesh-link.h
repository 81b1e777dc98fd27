/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cm-error.h"
#include "destination.h"
#include "macro.h"
#include "mesh-session.h"
#include "transition-queue.h"
#include "worker-process.h"

/*
 * A mesh's link to its broker, seen from the daemon: the claudemesh-worker that holds the
 * WebSocket (restarted with backoff when it dies), the signing oracle it asks for its hello,
 * the drain that hands outbox rows to it (sealed DMs, base64 posts) and moves them on by the
 * broker's acks, the receive path that opens pushes into the inbox, and the peer list.
 */

typedef struct Mesh Mesh;
typedef struct Session Session;

typedef enum LinkState {
        LINK_CONNECTING, /* worker starting, connecting or saying hello */
        LINK_CONNECTED,  /* hello_ack received */
        LINK_BACKOFF,    /* waiting to reconnect */
        LINK_FAILED,     /* stopped for good: revoked, kicked, replaced, required features missing */
        _LINK_STATE_MAX,
} LinkState;

typedef struct Peer {
        char *pubkey;          /* routing key: session or member ed25519 key, 64 hex */
        char *member_pubkey;
        char *display_name;
        char *status;
        char *summary;
        char *session_id;
        char *connected_at;    /* as the broker sent it, for /v1 */
        usec_t connected_at_usec; /* the same parsed, 0 when absent or not ISO 8601 */
        char *hostname;
        char *channel;         /* the hello's channel ("claudemesh-daemon" for a daemon), for /v1 */
        char *peer_role;       /* the broker's peerRole ("session", "control-plane"), for /v1 */
        char *groups_json;     /* the broker's groups array as JSON text, for /v1 */
        char **groups;         /* the same as "name" or "name:role" (upstream's notation), never NULL */
} Peer;

typedef struct MeshLink MeshLink;

int mesh_link_new(Mesh *mesh, MeshLink **ret);
MeshLink *mesh_link_free(MeshLink *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(MeshLink *, mesh_link_free);

LinkState mesh_link_state(const MeshLink *l);
const char *mesh_link_detail(const MeshLink *l);
const char *link_state_to_string(LinkState s);
/* The broker's features as JSON text: "" until connected, "{}" for a broker that offers none. */
const char *mesh_link_features(const MeshLink *l);
/* The names of the advertised features (NULL-terminated): NULL until connected, empty for a
 * broker that offers none. */
char *const *mesh_link_feature_names(const MeshLink *l);

const Peer *mesh_link_peers(const MeshLink *l, size_t *ret_n);
/* The peer is this daemon's own presence (its session key). */
bool mesh_link_peer_is_self(const MeshLink *l, const Peer *p);
Mesh *mesh_link_mesh(const MeshLink *l);
/* When the peer list was last current (CLOCK_REALTIME µs): the broker sent it, or a peer event
 * that changed it; 0 when it never did. */
usec_t mesh_link_peers_updated_at(const MeshLink *l);
/* The end of a peer query, exactly once. error set (NotConnected): the link was freed first, there
 * is no list. Otherwise mesh_link_peers() holds the list and result says how fresh it is: 0 the
 * broker just sent it; -ETIMEDOUT the broker did not answer in 5 s, -ENOTCONN it cannot be
 * reached (not connected): the list is the last one known. */
typedef void (*MeshLinkPeersDone)(const MeshLink *l, int result, const CmError *error, void *userdata);
/* Asks the broker for a fresh peer list. 0: done runs (maybe already ran); < 0: it never runs. */
int mesh_link_query_peers(MeshLink *l, MeshLinkPeersDone done, void *userdata);
/* The peers as the destination grammar resolves names against (valid until the list changes). */
int mesh_link_peer_names(const MeshLink *l, PeerName **ret, size_t *ret_n);

/* The end of a topic query, exactly once: mesh_link_topic_names() then holds the freshest list
 * there is (the broker's answer, or after 3 s or without a connection the last one known). */
typedef void (*MeshLinkTopicsDone)(void *userdata);
/* Asks the broker for its topics. 0: done runs (maybe already ran); < 0: it never runs. */
int mesh_link_query_topics(MeshLink *l, MeshLinkTopicsDone done, void *userdata);
/* The topics as "#name" resolves against (valid until the list changes). */
int mesh_link_topic_names(const MeshLink *l, TopicName **ret, size_t *ret_n);

/* Hands due outbox rows to the broker when connected; rows that can never go out go dead. */
void mesh_link_drain(MeshLink *l);
/* The TransitionLanded of the manager's queue (userdata: the Manager): Delivered or SendFailed. */
void link_transition_landed(const Transition *t, void *userdata);
/* Drops the connection and connects again now (also out of "failed"). */
int mesh_link_reconnect(MeshLink *l);
/* Gives session s (of this link's mesh) its own broker connection in the worker, with its own
 * presence (session_hello); the daemon signs its attestation and hello. No-op when it has one. */
void mesh_link_session_open(MeshLink *l, Session *s);
/* Closes the connection of s at once (its presence ends), and puts its sends in flight back. */
void mesh_link_session_close(MeshLink *l, Session *s);
/* Tells the broker the status and summary of s on its connection (when it is connected). */
void mesh_link_session_profile(MeshLink *l, Session *s);
/* Drops the link's pointer to s without a word to the worker (s is freed; the worker goes too). */
void mesh_link_session_forget(MeshLink *l, Session *s);
/* Writes a broker frame on the connection of s; -ENOTCONN when it is not connected. */
int mesh_link_session_send_frame(MeshLink *l, Session *s, json_object *frame);

/* Writes a broker frame (set_profile, set_status, …); -ENOTCONN when not connected. */
int mesh_link_send_frame(MeshLink *l, json_object *frame);
