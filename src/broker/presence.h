/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Presence: the peer list, status/summary/visibility/profile updates, and the system pushes
 * (peer_joined, peer_left, peer_visible, peer_hidden) other members receive. */

#include "protocol.h"
#include "server.h"

/* Sends a system push about subject (event "peer_joined", "peer_visible", ...) to every live
 * connection of the other members of its mesh. */
void presence_announce(Conn *subject, const char *event);

/* Presence is a lease, not a socket: a peer whose socket closes stays announced for
 * --presence-grace seconds. If the same session (same session pubkey, or same sessionId
 * without one) says hello again within it, it reattaches silently; otherwise peer_left goes
 * out when the grace ends. A replaced connection (session_replaced) never leaves. */
void presence_conn_closed(Conn *c);
/* peer_left for a peer this node has no connection of (it was on a node that stopped). */
void presence_announce_left(Server *s, const char *mesh_id, const char *member_pubkey, const char *name,
                            const char *pubkey);
/* True (and the grace ended) when c's hello resumes a session still in its grace. A
 * session_hello connection takes back the session's presence id and state. A kicked or
 * banned connection (c->evicted) leaves at once. */
bool presence_reattach(Conn *c);
/* Another node took over the session (key, or member_pubkey's session_id) whose grace runs
 * here: its ghost goes, without peer_left. */
void presence_ghost_taken(Server *s, const char *mesh_id, const char *member_pubkey, const char *key,
                          const char *session_id);
void presence_ghosts_free(Server *s);
/* A session that replaces one of another node takes its status, summary, profile,
 * visibility and connection time from that presence's peers_list entry. */
void presence_adopt_details(Conn *c, json_object *peer, int64_t connected_at_ms);

void presence_handle_list_peers(Conn *c, const Frame *f);
/* The connection's entry in peers_list. */
json_object *presence_peer_summary(const Conn *p);
void presence_handle_set_status(Conn *c, const Frame *f);
void presence_handle_set_summary(Conn *c, const Frame *f);
void presence_handle_set_visible(Conn *c, const Frame *f);
void presence_handle_set_profile(Conn *c, const Frame *f);

/* {"type":"ack","id":_reqId??"","messageId":"","queued":false,"_reqId"?}: upstream's generic OK. */
int presence_send_generic_ack(Conn *c, const Frame *f);
