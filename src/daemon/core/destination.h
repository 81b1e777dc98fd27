/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* The "to" of a send, per DECISIONS §1 and §2:
 *   64 hex chars   → direct message to that pubkey (lowercased)     kind "dm",    ref = pubkey
 *                    (refused, -EINVAL, when it is no valid ed25519 key: it could never be sealed)
 *   "*" or "@all"  → broadcast, sent as "*"                          kind "topic", ref = "*"
 *   "@name"        → group                                            kind "topic", ref = "@name"
 *   "#id", "#name" → topic by id, or by a name the mesh's topics know
 *                    (sent as its id)                                 kind "topic", ref = "#id"
 *   anything else  → a peer display name, resolved against the mesh's current peers to a dm;
 *                    a member's daemon presence (peerRole "control-plane") gives way to its
 *                    own sessions of the same name (ignoring case), as upstream's send skips
 *                    daemon rows. */
typedef struct Destination {
        const char *kind;  /* "dm" | "topic" (static) */
        char *ref;         /* the fingerprint's destination_ref */
        char *target_spec; /* what goes on the wire as targetSpec */
} Destination;

typedef struct TopicName {
        const char *id;
        const char *name;
} TopicName;

typedef struct PeerName {
        const char *pubkey;        /* 64 lowercase hex */
        const char *display_name;
        const char *member_pubkey; /* the member the presence belongs to, NULL when unknown */
        const char *peer_role;     /* the broker's peerRole, NULL when unknown */
} PeerName;

void destination_done(Destination *d);

/* -EINVAL: malformed; -ENOENT: no peer has that name; -ENOTUNIQ: several do. Each with a
 * sentence in *ret_error naming the candidates and what to use instead. */
int destination_parse(const char *to, const char *mesh_slug, const PeerName *peers, size_t n_peers,
                      const TopicName *topics, size_t n_topics, Destination *ret, char **ret_error);
