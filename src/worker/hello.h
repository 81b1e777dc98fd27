/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

#include "config.h"

/* The parent attestation of a session_hello lives this long (upstream's
 * DEFAULT_ATTESTATION_TTL_MS); a fresh one is signed on every connect. */
#define ATTESTATION_TTL_MS (12LL * 3600 * 1000)

/* One connect's hello: its times, fixed when the WebSocket is up, and the daemon's signatures
 * so far. The member's hello takes one signature; a session's (session is not NULL) two, the
 * parent attestation first. */
typedef struct HelloRound {
        int64_t timestamp_ms;
        int64_t expires_at_ms;          /* the attestation's: timestamp + ATTESTATION_TTL_MS */
        unsigned n_signatures;
        char signatures[2][129];        /* lowercase hex */
} HelloRound;

void hello_round_start(HelloRound *h, int64_t now_ms);
bool hello_round_complete(const HelloRound *h, const SessionConfig *s);

/* What the next signature is for, for log lines and state details. */
const char *hello_round_next_name(const HelloRound *h, const SessionConfig *s);

/* The string the daemon signs next (wire-protocol §2.1, wire-protocol-head §2):
 *   member:                "meshId|memberId|pubkey|timestamp" (member key)
 *   session, attestation:  "claudemesh-session-attest|memberPubkey|sessionPubkey|expiresAt" (member key)
 *   session, hello:        "claudemesh-session-hello|meshId|memberPubkey|sessionPubkey|timestamp" (session key)
 * Times are written with the same digits as the frame's JSON numbers. */
int hello_sign_payload(const WorkerConfig *c, const SessionConfig *s, const HelloRound *h, char **ret);

/* Stores the daemon's answer for the next signature: -EINVAL unless 128 hex characters. */
int hello_round_add_signature(HelloRound *h, const SessionConfig *s, const char *signature);

/* The hello (member) or session_hello frame of a complete round, fields in upstream's order. */
int hello_frame_new(const WorkerConfig *c, const SessionConfig *s, const HelloRound *h, json_object **ret);
