/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * At-least-once delivery. A delivery row (message, recipient key) exists until the recipient
 * sends client_ack. A push leases the row to one connection for lease_seconds; leases live in
 * a TEMP table (they mean nothing once the process or the socket is gone). Unacknowledged rows
 * are pushed again by a timer when the lease runs out, when the holder's socket closes (to a
 * sibling session of the same member, or the session that takes over its presence), and on
 * the recipient's next hello. A connection is ack-aware when its hello announces
 * capabilities ["client_ack"], when it is a session_hello (upstream CLIs since 1.33
 * acknowledge), when its key has acknowledged before (table ack_seen), or from its first
 * client_ack. Any other connection is an upstream client that never acknowledges: a push
 * handed to it counts as delivered at once, as upstream's at-most-once drain did. When the
 * last delivery row of a message goes, message.delivered_at is set.
 */

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"
#include "server.h"

typedef struct PushMessage {
        const char *message_id;
        const char *sender_pubkey;
        const char *sender_member_pubkey;
        const char *sender_member_id;
        const char *sender_name;
        const char *priority;
        const char *nonce;
        const char *ciphertext;
        int64_t created_at_ms;
        const char *client_message_id;          /* NULL: not sent */
        const uint8_t *request_fingerprint;     /* NULL: not sent */
        const char *topic_name;                 /* NULL: not a topic post */
        const char *reply_to_id;
} PushMessage;

int delivery_init(Server *s);

/* Pushes a just-committed message to the live connection holding recipient_key and leases it.
 * A recipient with no live connection keeps its row for its next hello; with wake_others, the
 * other nodes are woken for it (the PostgreSQL accept statement does that itself). */
void delivery_push_new(Server *s, const char *mesh_id, const char *recipient_key, const PushMessage *m,
                       const Conn *sender, bool wake_others);

/* Pushes (and leases) every unleased row owed to c. */
void delivery_drain(Conn *c);

void delivery_handle_client_ack(Conn *c, const Frame *f);

/* True when c's key has sent a client_ack on an earlier connection. */
bool delivery_acked_before(const Conn *c);

/* message_status: the delivery state of one of the asker's member's messages. */
void delivery_handle_message_status(Conn *c, const Frame *f);

/* The connection is going away: its leases end and its rows go to sibling sessions. */
void delivery_conn_closed(Conn *c);

json_object *push_frame_new(const char *mesh_id, const PushMessage *m);
