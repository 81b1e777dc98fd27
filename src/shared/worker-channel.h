/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

/*
 * The channel between claudemeshd and one claudemesh-worker (one per attached mesh): a
 * SOCK_SEQPACKET socketpair, the worker's end on fd 3. Each packet is one JSON object (UTF-8,
 * at most WORKER_CHANNEL_MAX bytes) with a string "type". The worker holds no secret key; it
 * asks the daemon to sign every hello, and the daemon seals and opens every message.
 *
 * The worker holds the member's broker connection and up to WORKER_SESSIONS_MAX session
 * connections (one per session registered on the daemon, each its own presence). Packets about
 * one connection carry "conn": an integer, absent or 0 for the member's, 1…WORKER_SESSIONS_MAX
 * for a session's. The worker leaves "conn" out of its packets for the member's connection.
 *
 * daemon → worker
 *   start      {broker_url, mesh_id, mesh_slug?, member_id, pubkey, session_pubkey, session_id, display_name?,
 *               hostname?, cwd?, pid, ping_interval_ms, liveness_timeout_ms, allow_self_signed}
 *              First packet. The worker sandboxes itself, then connects the member's connection.
 *   session_open  {conn: 1…WORKER_SESSIONS_MAX, session_pubkey: 64 lowercase hex, session_id,
 *               display_name, pid, cwd?, groups?: [{name, role?}]}
 *              Open a session connection to the same broker (same rules as the member's, its own
 *              backoff). Refused with state {conn, state: "failed", detail} when conn is out of
 *              range (conn 0 or a non-integer: only logged) or already open, or a field is bad.
 *   session_close {conn}: close that session connection (1000 "session closed") and forget it;
 *              no further packets for it; the conn may be opened again at once.
 *   signature  {request_id, signature: 128 hex} or {request_id, error}: the answer to "sign";
 *              request ids are unique across connections.
 *   send       {conn?, frame: object}: write this broker frame as one text message.
 *   close      {conn?, code, reason}: close that WebSocket with that code and reason, state
 *              "failed", no reconnect (required broker features missing, DECISIONS §11).
 *   reconnect  {conn?}: drop that connection, connect again now, backoff reset.
 *
 * worker → daemon
 *   sign       {request_id, conn?, payload}: for the member's hello, "meshId|memberId|pubkey|timestamp"
 *              (member key). For a session's session_hello, two on every connect, in this order:
 *              "claudemesh-session-attest|memberPubkey|sessionPubkey|expiresAt" (member key,
 *              expiresAt = now + 12 h in ms), then, once that is answered,
 *              "claudemesh-session-hello|meshId|memberPubkey|sessionPubkey|timestamp" (that session's
 *              key). The daemon signs only exactly these forms, with times within ±60 s of its clock.
 *   state      {conn?, state: connecting|connected|backoff|failed, detail, retry_in_ms?, close_code?}
 *   hello_ack  {conn?, features: object|null, presence_id?}: the broker accepted the hello.
 *   frame      {conn?, frame: object}: a broker frame that passed validation (ack, push, peers_list,
 *              error, topic_list_response); anything else the broker sends is dropped by the worker.
 */

#define WORKER_CHANNEL_FD 3
#define WORKER_CHANNEL_MAX (256 * 1024)
#define WORKER_SESSIONS_MAX 256

/* -EMSGSIZE when the serialized object exceeds WORKER_CHANNEL_MAX, -EAGAIN when the socket is full. */
int worker_channel_send(int fd, json_object *msg);

/* One packet: 0 and *ret set; -EAGAIN when nothing is waiting; -ECONNRESET when the other end
 * closed; -EBADMSG when the packet is not a JSON object with a string "type" (it is consumed). */
int worker_channel_recv(int fd, json_object **ret);

/* The "type" of a packet, or "" */
const char *worker_channel_type(json_object *msg);
