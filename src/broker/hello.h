/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The handshake, with upstream's checks in upstream's order (wire-protocol §2.1): session
 * pubkey shape, mesh capacity, skew/shape/signature, revoked member (4002), unknown member.
 * Each failure sends an error frame, then closes. One check is ours: a sessionPubkey that
 * routes another member's messages is refused (session_pubkey_in_use, 1008). On success:
 * close the connection it replaces (1000 "session_replaced"), hello_ack with the feature
 * bits, drain queued deliveries, announce peer_joined.
 * Also ours: a hello whose signature was already used within its skew window is refused
 * ("replayed", 1008), so a hello captured on plain ws:// cannot be played back.
 */

#include "protocol.h"
#include "server.h"

/* Creates the in-memory table of recently used hello signatures. */
int hello_init(Store *s);

/* 0 on success, -EACCES when rejected (the close is queued), other negative errno on failure. */
int hello_handle(Conn *c, const Frame *f);

/* session_hello (wire-protocol-head §2): a per-session presence vouched for by its parent
 * member. Checks in upstream's order: session key shape (bad_session_pubkey), parent key
 * shape (bad_parent_pubkey), attestation binding (attestation_mismatch), capacity,
 * attestation lifetime and signature (malformed, expired, ttl_too_long, bad_signature),
 * session signature (timestamp_skew, malformed, bad_signature), ours: replayed, parent
 * member (revoked: 4002 "banned"; unauthorized), parentMemberId (parent_member_id_mismatch),
 * ours: session_pubkey_in_use. Each failure: one error frame, close 1008 with the code (nothing
 * of a presence is left). A second connection with the same key, or the same parent and
 * sessionId, takes over the presence: same presenceId, no peer_joined, the old socket closed
 * with 1000 "session_replaced". */
int session_hello_handle(Conn *c, const Frame *f);
