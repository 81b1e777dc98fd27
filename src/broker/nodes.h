/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Several broker nodes on one PostgreSQL database. A node that accepts a message for a key
 * none of its own connections holds notifies the others (NOTIFY at the commit); a node that
 * hears it drains its connections that own the key. The delivery rows stay the truth: a
 * periodic catch-up drains every connection, so a lost notification, a dropped LISTEN
 * connection or a node that died mid-stream delays a message by at most one period.
 *
 * Presence across nodes: each node keeps a row per live connection in table presence
 * (rewritten whenever its details change) and a heartbeat in broker_node; peers_list and
 * multicast recipients (in the accept's statement) add the other nodes' rows; peer_joined/left/visible/hidden go to the other
 * nodes as a notification carrying the frame. A node that stops beating for the presence
 * grace is dead: the first node to notice deletes its rows and announces their peer_left.
 *
 * Nothing here runs on SQLite (one process owns that file), and nothing here waits for the
 * database but start-up and the LISTEN connection's reconnect: statements go to the pool.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "server.h"

int nodes_start(Server *s);
void nodes_stop(Server *s);

/* The LISTEN connection's descriptor became readable, or its wsi went away. */
/* Whether the database answered this node's last heartbeats (within three catch-ups, at
 * least 3 s): the HTTP health check's answer, without a query. */
bool nodes_db_up(const Server *s);
bool nodes_owns(const Server *s, const struct lws *wsi);
int nodes_readable(Server *s);
void nodes_wsi_destroyed(Server *s, struct lws *wsi);

/* Within the accepting transaction: wakes the other nodes for recipient_key in mesh_id. */
void nodes_wake(Server *s, const char *mesh_id, const char *recipient_key);

/* The connection's presence row: written when its hello is accepted and when its status,
 * summary, profile or visibility change, removed when it closes (not at shutdown: then the
 * heartbeat stops and the grace runs out on the other nodes). Sent without waiting. */
void nodes_presence_up(Conn *c);
void nodes_presence_down(Conn *c);
/* The row of a session whose grace ended (it left, or came back as another connection). */
void nodes_presence_forget(Server *s, uint64_t serial);

/* A presence frame sent to this node's connections goes to the other nodes' too. */
void nodes_announce(Server *s, const char *mesh_id, const char *member_pubkey, bool to_siblings,
                    json_object *frame);
/* A peer_updated frame about subject goes to the other nodes' connections that asked for it. */
void nodes_announce_updated(Conn *subject, json_object *frame);

/* A state_change frame from setter's set_state goes to every connection of its mesh on the
 * other nodes; a frame too large for a NOTIFY goes as the key, whose row they read. */
void nodes_announce_state(Conn *setter, const char *key, json_object *frame);

/* c's hello replaces a live connection of another node (found by hello.c's checks): that
 * node closes it with session_replaced. */
void nodes_take_over(Conn *c);

/* Whether a live connection of any node routes key in mesh_id (a row in the result): a peer
 * that came back through another node has not left. 0, or a negative errno and cb will not
 * run. */
int nodes_key_present(Server *s, const char *mesh_id, const char *key, StoreAsyncCallback cb, void *userdata);

/* The other nodes' peers visible to asker, as rows nodes_list_peers_add() appends. */
int nodes_list_peers(const Conn *asker, StoreAsyncCallback cb, void *userdata);
void nodes_list_peers_add(const StoreResult *res, json_object *peers);
