/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

/*
 * The channel between claudemeshd and one claudemesh-worker (one per attached mesh): a
 * SOCK_SEQPACKET socketpair, the worker's end on fd 3. Each packet is one JSON object (UTF-8,
 * at most WORKER_CHANNEL_MAX bytes) with a string "type". The worker holds no secret key; it
 * asks the daemon to sign the hello, and the daemon seals and opens every message.
 *
 * daemon → worker
 *   start      {broker_url, mesh_id, mesh_slug?, member_id, pubkey, session_pubkey, session_id, display_name?,
 *               hostname?, cwd?, pid, ping_interval_ms, liveness_timeout_ms, allow_self_signed}
 *              First packet. The worker sandboxes itself, then connects.
 *   signature  {request_id, signature: 128 hex} or {request_id, error}: the answer to "sign".
 *   send       {frame: object}: write this broker frame as one text message.
 *   close      {code, reason}: close the WebSocket with that code and reason, state "failed",
 *              no reconnect (required broker features missing, DECISIONS §11).
 *   reconnect  {}: drop the connection, connect again now, backoff reset.
 *
 * worker → daemon
 *   sign       {request_id, payload}: payload is "meshId|memberId|pubkey|timestamp"; the daemon
 *              signs only exactly that form with a timestamp within ±60 s of its clock.
 *   state      {state: connecting|connected|backoff|failed, detail, retry_in_ms?, close_code?}
 *   hello_ack  {features: object|null, presence_id?}: the broker accepted the hello.
 *   frame      {frame: object}: a broker frame that passed validation (ack, push, peers_list,
 *              error); anything else the broker sends is dropped by the worker.
 */

#define WORKER_CHANNEL_FD 3
#define WORKER_CHANNEL_MAX (256 * 1024)

/* -EMSGSIZE when the serialized object exceeds WORKER_CHANNEL_MAX, -EAGAIN when the socket is full. */
int worker_channel_send(int fd, json_object *msg);

/* One packet: 0 and *ret set; -EAGAIN when nothing is waiting; -ECONNRESET when the other end
 * closed; -EBADMSG when the packet is not a JSON object with a string "type" (it is consumed). */
int worker_channel_recv(int fd, json_object **ret);

/* The "type" of a packet, or "" */
const char *worker_channel_type(json_object *msg);
