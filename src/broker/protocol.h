/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Frame parsing and validation: turns one WebSocket text message into a typed request or a
 * machine-readable error. Pure functions (no database, no sockets), so the fuzzer drives them
 * directly. Strings in the parsed requests point into Frame.root and live as long as it.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "json-util.h"

#define FRAME_MAX_BYTES      65536  /* the upstream MAX_MESSAGE_BYTES, for the whole message */
#define MENTIONS_MAX         16
#define CLIENT_MESSAGE_ID_MAX 128
#define SUMMARY_MAX          4096
#define FINGERPRINT_BYTES    32
#define HELLO_SKEW_MS        60000  /* a hello's timestamp may be this far from now */
#define ATTESTATION_MAX_TTL_MS (24 * 3600 * 1000LL) /* a parent attestation's longest lifetime */
#define STATE_KEY_MAX        256    /* bytes of a set_state key */
#define STATE_VALUE_MAX      16384  /* bytes of a set_state value, as compact JSON */
#define TOPIC_NAME_MAX       200

typedef enum FrameType {
        FRAME_HELLO,
        FRAME_SEND,
        FRAME_CLIENT_ACK,
        FRAME_LIST_PEERS,
        FRAME_SET_STATUS,
        FRAME_SET_SUMMARY,
        FRAME_SET_VISIBLE,
        FRAME_SET_PROFILE,
        FRAME_TOPIC_LIST,
        FRAME_SESSION_HELLO,
        FRAME_MESSAGE_STATUS,
        FRAME_TOPIC_CREATE,
        FRAME_SET_STATE,
        FRAME_GET_STATE,
        FRAME_LIST_STATE,
        FRAME_DISCONNECT,
        FRAME_KICK,
        FRAME_BAN,
        FRAME_UNBAN,
        FRAME_LIST_BANS,
        FRAME_NOT_SUPPORTED,    /* upstream types this broker refuses by name */
        FRAME_UNKNOWN,
} FrameType;

/* code is machine-readable (the wire's error.code / ack error_code), message is for humans.
 * Both are static strings. */
typedef struct ProtocolError {
        const char *code;
        const char *message;
} ProtocolError;

typedef struct Frame {
        json_object *root;
        FrameType type;
        const char *type_name;
        const char *req_id;     /* "_reqId" when it is a string, else NULL */
} Frame;

void frame_done(Frame *f);

/* Parses one message. -EBADMSG with ret_error set when it is not a JSON object with a string
 * "type" (or is too large); the frame is then empty. */
int frame_parse(const void *data, size_t size, Frame *ret, ProtocolError *ret_error);

typedef struct HelloRequest {
        const char *mesh_id;
        const char *member_id;
        const char *pubkey;
        const char *signature;
        const char *session_pubkey;     /* NULL when absent, null or "" */
        bool session_pubkey_invalid;    /* present, truthy and not 64 lowercase hex */
        const char *display_name;
        const char *session_id;
        const char *cwd;
        const char *hostname;
        const char *peer_type;
        const char *channel;
        const char *model;
        int64_t pid;
        json_object *groups;            /* validated [{name, role?}] or NULL */
        bool capability_client_ack;     /* "client_ack" in capabilities[] */
        bool capability_peer_updated;   /* "peer_updated" in capabilities[] */
        bool timestamp_is_number;
        bool timestamp_is_integer;
        int64_t timestamp;
} HelloRequest;

/* Extracts the hello fields; wrong-typed optional fields read as absent. Never fails: the
 * checks below decide, in the upstream order. */
void hello_request_parse(const Frame *f, HelloRequest *ret);

/* Check 3 of the handshake: skew (±60 s), shape, then the ed25519 signature over
 * "meshId|memberId|pubkey|timestamp". Returns NULL when it passes, else the error code
 * ("timestamp_skew", "malformed" or "bad_signature"). */
const char *hello_verify(const HelloRequest *h, int64_t now);

typedef struct SessionHelloRequest {
        /* The fields a session_hello shares with hello; .pubkey and .signature are unused. */
        HelloRequest common;
        const char *session_pubkey;             /* as sent, only if a string */
        const char *parent_member_pubkey;
        const char *parent_member_id;           /* optional: compared only when present */
        const char *signature;
        bool has_attestation;                   /* parentAttestation is an object */
        const char *att_session_pubkey;
        const char *att_parent_member_pubkey;
        const char *att_signature;
        bool att_expires_is_number;
        bool att_expires_is_integer;
        int64_t att_expires_at;
} SessionHelloRequest;

void session_hello_request_parse(const Frame *f, SessionHelloRequest *ret);

/* Checks 1-3 of session_hello (upstream order): session key shape, parent key shape, the
 * attestation binds both. NULL when they pass, else the code, with *ret_message. */
const char *session_hello_check_shape(const SessionHelloRequest *h, const char **ret_message);

/* Check 5: the parent's attestation over "claudemesh-session-attest|parent|session|expiresAt":
 * lifetime (0 < expiresAt - now <= 24 h), shape, signature. NULL or "malformed", "expired",
 * "ttl_too_long", "bad_signature". */
const char *session_attestation_verify(const SessionHelloRequest *h, int64_t now);

/* Check 6: the session's own signature over
 * "claudemesh-session-hello|meshId|parent|session|timestamp": skew first, then shape and
 * signature. NULL or "timestamp_skew", "malformed", "bad_signature". */
const char *session_hello_verify(const SessionHelloRequest *h, int64_t now);

typedef enum TargetKind {
        TARGET_DIRECT,
        TARGET_BROADCAST,
        TARGET_GROUP,
        TARGET_TOPIC,
} TargetKind;

typedef struct SendRequest {
        const char *id;                 /* "" when absent, as upstream */
        const char *target_spec;
        TargetKind target_kind;
        const char *target_ref;         /* lowercased pubkey, group name, or topic id */
        char direct_key[PUBKEY_HEX_LEN + 1];
        const char *priority;
        const char *nonce;
        const char *ciphertext;
        const char *client_message_id;  /* NULL when absent or "" */
        bool has_fingerprint;
        uint8_t fingerprint[FINGERPRINT_BYTES];
        const char *mentions[MENTIONS_MAX];
        size_t n_mentions;
        bool has_mentions;
        const char *reply_to_id;
        int body_version;
} SendRequest;

/* Validates a send. On -EINVAL ret_error says why; ret->id is set even then, for the ack. */
int send_request_parse(const Frame *f, SendRequest *ret, ProtocolError *ret_error);

/* Upstream's fingerprint destination: "dm" for a pubkey, "topic" for everything else. */
const char *target_kind_destination(TargetKind k);

typedef struct ClientAckRequest {
        const char *client_message_id;
        const char *broker_message_id;
} ClientAckRequest;

int client_ack_request_parse(const Frame *f, ClientAckRequest *ret, ProtocolError *ret_error);

/* set_status: "idle" | "working" | "dnd". */
int set_status_request_parse(const Frame *f, const char **ret_status, ProtocolError *ret_error);
int set_summary_request_parse(const Frame *f, const char **ret_summary, ProtocolError *ret_error);
int set_visible_request_parse(const Frame *f, bool *ret_visible, ProtocolError *ret_error);
/* message_status: "messageId", 8-32 base62 characters (fewer than 32: a prefix). */
int message_status_request_parse(const Frame *f, const char **ret_id, ProtocolError *ret_error);

typedef struct TopicCreateRequest {
        const char *name;
        const char *description;        /* NULL when absent */
        const char *visibility;         /* "public" when absent */
} TopicCreateRequest;

int topic_create_request_parse(const Frame *f, TopicCreateRequest *ret, ProtocolError *ret_error);

/* set_state: a key of 1-256 bytes without control characters and any JSON value, at most
 * STATE_VALUE_MAX bytes as compact JSON. *ret_value is a new string. */
int set_state_request_parse(const Frame *f, const char **ret_key, char **ret_value, ProtocolError *ret_error);
int get_state_request_parse(const Frame *f, const char **ret_key, ProtocolError *ret_error);

typedef struct KickRequest {
        const char *target;             /* display name, member pubkey or its prefix */
        bool all;
        bool has_stale;
        int64_t stale_ms;               /* silent for longer than this */
} KickRequest;

/* kick / disconnect: one of target, stale, all. */
int kick_request_parse(const Frame *f, KickRequest *ret, ProtocolError *ret_error);
/* ban / unban: a non-empty "target". */
int ban_request_parse(const Frame *f, const char **ret_target, ProtocolError *ret_error);

/* Returns a new object holding only the validated profile fields. */
int set_profile_request_parse(const Frame *f, json_object **ret_profile, ProtocolError *ret_error);
