/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * At-least-once delivery. A delivery row (message, recipient key) exists until the recipient
 * sends client_ack. A push leases the row to one connection for lease_seconds; leases live in
 * a TEMP table (they mean nothing once the process or the socket is gone). Unacknowledged rows
 * are pushed again when the lease runs out, when the holder's socket closes (to a sibling
 * session of the same member), and on the recipient's next hello. Connections that never
 * announce (hello capabilities ["client_ack"]) or send a client_ack are upstream clients:
 * for them a lease that runs out means delivered, as upstream's at-most-once drain.
 */

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
 * A recipient with no live connection keeps its row for its next hello. */
void delivery_push_new(Server *s, const char *mesh_id, const char *recipient_key, const PushMessage *m,
                       const Conn *sender);

/* Pushes (and leases) every unleased row owed to c. */
void delivery_drain(Conn *c);

void delivery_handle_client_ack(Conn *c, const Frame *f);

/* The connection is going away: its leases end and its rows go to sibling sessions. */
void delivery_conn_closed(Conn *c);

json_object *push_frame_new(const char *mesh_id, const PushMessage *m);
