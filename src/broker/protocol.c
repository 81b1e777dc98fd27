/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "protocol.h"

#define JSON_DEPTH_MAX 32

static const struct {
        const char *name;
        FrameType type;
} frame_types[] = {
        { "hello",       FRAME_HELLO },
        { "send",        FRAME_SEND },
        { "client_ack",  FRAME_CLIENT_ACK },
        { "list_peers",  FRAME_LIST_PEERS },
        { "set_status",  FRAME_SET_STATUS },
        { "set_summary", FRAME_SET_SUMMARY },
        { "set_visible", FRAME_SET_VISIBLE },
        { "set_profile", FRAME_SET_PROFILE },
        { "topic_list",  FRAME_TOPIC_LIST },
        { "session_hello", FRAME_SESSION_HELLO },
        { "message_status", FRAME_MESSAGE_STATUS },
        { "topic_create", FRAME_TOPIC_CREATE },
        { "set_state",   FRAME_SET_STATE },
        { "get_state",   FRAME_GET_STATE },
        { "list_state",  FRAME_LIST_STATE },
        { "disconnect",  FRAME_DISCONNECT },
        { "kick",        FRAME_KICK },
        { "ban",         FRAME_BAN },
        { "unban",       FRAME_UNBAN },
        { "list_bans",   FRAME_LIST_BANS },
        { "remember",    FRAME_NOT_SUPPORTED },
        { "recall",      FRAME_NOT_SUPPORTED },
        { "forget",      FRAME_NOT_SUPPORTED },
        { "apikey_create", FRAME_NOT_SUPPORTED },
};

static void set_error(ProtocolError *e, const char *code, const char *message) {
        if (e) {
                e->code = code;
                e->message = message;
        }
}

void frame_done(Frame *f) {
        json_object_put(f->root);
        *f = (Frame) { .type = FRAME_UNKNOWN };
}

/* A JSON string as a C string; NULL when missing, not a string, or holding a NUL byte (which
 * would silently truncate it in C). */
static const char *get_string(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        const char *s = json_object_get_string(v);
        if (strlen(s) != (size_t) json_object_get_string_len(v))
                return NULL;
        return s;
}

static bool has_key(json_object *o, const char *key) {
        json_object *v;
        return json_object_object_get_ex(o, key, &v) && v;
}

int frame_parse(const void *data, size_t size, Frame *ret, ProtocolError *ret_error) {
        json_tokener *tok;
        json_object *root;

        *ret = (Frame) { .type = FRAME_UNKNOWN };
        if (size > FRAME_MAX_BYTES) {
                set_error(ret_error, "frame_too_large", "frame exceeds 65536 bytes");
                return -EBADMSG;
        }
        if (size > INT32_MAX)
                return -EBADMSG;

        tok = json_tokener_new_ex(JSON_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        /* Strict like JavaScript's JSON.parse, and only valid UTF-8. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        root = json_tokener_parse_ex(tok, data, (int) size);
        bool ok = root && json_tokener_get_error(tok) == json_tokener_success &&
                  json_tokener_get_parse_end(tok) == size;
        json_tokener_free(tok);
        if (!ok) {
                json_object_put(root);
                set_error(ret_error, "invalid_json", "frame is not valid JSON");
                return -EBADMSG;
        }
        if (!json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                set_error(ret_error, "invalid_frame", "frame must be a JSON object");
                return -EBADMSG;
        }

        const char *type = get_string(root, "type");
        if (!type) {
                json_object_put(root);
                set_error(ret_error, "invalid_frame", "frame has no string \"type\"");
                return -EBADMSG;
        }

        ret->root = root;
        ret->type_name = type;
        ret->req_id = get_string(root, "_reqId");
        for (size_t i = 0; i < ELEMENTSOF(frame_types); i++)
                if (streq(type, frame_types[i].name)) {
                        ret->type = frame_types[i].type;
                        break;
                }
        return 0;
}

static json_object *validated_groups(json_object *o) {
        json_object *groups;

        if (!json_object_object_get_ex(o, "groups", &groups) || !json_object_is_type(groups, json_type_array))
                return NULL;
        size_t n = json_object_array_length(groups);
        if (n > 64)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(groups, i), *role;
                if (!json_object_is_type(g, json_type_object))
                        return NULL;
                const char *name = get_string(g, "name");
                if (!name || !*name)
                        return NULL;
                if (json_object_object_get_ex(g, "role", &role) && role && !get_string(g, "role"))
                        return NULL;
        }
        return groups;
}

/* A millisecond time: a JSON number. The signed strings hold JavaScript's rendering of the
 * number; only integers render the same way in C, so anything else is not an integer here. */
static void parse_ms(json_object *o, const char *key, bool *ret_number, bool *ret_integer, int64_t *ret) {
        json_object *v;

        *ret_number = *ret_integer = false;
        *ret = 0;
        if (!json_object_object_get_ex(o, key, &v))
                return;
        if (json_object_is_type(v, json_type_int)) {
                *ret_number = *ret_integer = true;
                *ret = json_object_get_int64(v);
        } else if (json_object_is_type(v, json_type_double)) {
                double d = json_object_get_double(v);
                *ret_number = isfinite(d);
                if (isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0) {
                        *ret_integer = true;
                        *ret = (int64_t) d;
                }
        }
}

void hello_request_parse(const Frame *f, HelloRequest *ret) {
        json_object *o = f->root, *v;

        *ret = (HelloRequest) {
                .mesh_id = get_string(o, "meshId"),
                .member_id = get_string(o, "memberId"),
                .pubkey = get_string(o, "pubkey"),
                .signature = get_string(o, "signature"),
                .display_name = get_string(o, "displayName"),
                .session_id = get_string(o, "sessionId"),
                .cwd = get_string(o, "cwd"),
                .hostname = get_string(o, "hostname"),
                .peer_type = get_string(o, "peerType"),
                .channel = get_string(o, "channel"),
                .model = get_string(o, "model"),
                .groups = validated_groups(o),
        };

        /* Upstream: `if (sessionPubkey && !/^[0-9a-f]{64}$/.test(sessionPubkey))`, so null,
         * false and "" mean "none", anything else truthy must be 64 lowercase hex. */
        if (json_object_object_get_ex(o, "sessionPubkey", &v) && v) {
                const char *s = get_string(o, "sessionPubkey");
                bool falsy = (s && !*s) ||
                             (json_object_is_type(v, json_type_boolean) && !json_object_get_boolean(v));
                if (s && hex_string(s, PUBKEY_HEX_LEN, HEX_LOWER))
                        ret->session_pubkey = s;
                else if (!falsy)
                        ret->session_pubkey_invalid = true;
        }

        if (json_object_object_get_ex(o, "capabilities", &v) && json_object_is_type(v, json_type_array))
                for (size_t i = 0; i < json_object_array_length(v); i++) {
                        json_object *e = json_object_array_get_idx(v, i);
                        if (!json_object_is_type(e, json_type_string))
                                continue;
                        if (streq(json_object_get_string(e), "client_ack"))
                                ret->capability_client_ack = true;
                        else if (streq(json_object_get_string(e), "peer_updated"))
                                ret->capability_peer_updated = true;
                }

        if (json_object_object_get_ex(o, "pid", &v) && json_object_is_type(v, json_type_int))
                ret->pid = json_object_get_int64(v);

        parse_ms(o, "timestamp", &ret->timestamp_is_number, &ret->timestamp_is_integer, &ret->timestamp);
}

const char *hello_verify(const HelloRequest *h, int64_t now) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
        char *signed_text = NULL;
        int n;

        if (!h->timestamp_is_number)
                return "timestamp_skew";
        if (h->timestamp_is_integer && (h->timestamp > now + HELLO_SKEW_MS || h->timestamp < now - HELLO_SKEW_MS))
                return "timestamp_skew";
        if (!h->timestamp_is_integer || !h->mesh_id || !h->member_id ||
            !hex_string(h->pubkey, PUBKEY_HEX_LEN, HEX_ANY_CASE) ||
            !hex_string(h->signature, SIGNATURE_HEX_LEN, HEX_ANY_CASE))
                return "malformed";

        if (hex_decode(h->pubkey, pk, sizeof pk) < 0 || hex_decode(h->signature, sig, sizeof sig) < 0)
                return "malformed";
        n = asprintf(&signed_text, "%s|%s|%s|%" PRId64, h->mesh_id, h->member_id, h->pubkey, h->timestamp);
        if (n < 0)
                return "malformed";
        int r = crypto_sign_verify_detached(sig, (const uint8_t *) signed_text, (size_t) n, pk);
        free(signed_text);
        return r == 0 ? NULL : "bad_signature";
}

void session_hello_request_parse(const Frame *f, SessionHelloRequest *ret) {
        json_object *o = f->root, *att;

        *ret = (SessionHelloRequest) {
                .session_pubkey = get_string(o, "sessionPubkey"),
                .parent_member_pubkey = get_string(o, "parentMemberPubkey"),
                .parent_member_id = get_string(o, "parentMemberId"),
                .signature = get_string(o, "signature"),
        };
        hello_request_parse(f, &ret->common);
        /* hello's own fields mean nothing here: the keys are the ones above. */
        ret->common.pubkey = ret->parent_member_pubkey;
        ret->common.member_id = NULL;
        ret->common.signature = NULL;
        ret->common.session_pubkey = NULL;
        ret->common.session_pubkey_invalid = false;

        if (json_object_object_get_ex(o, "parentAttestation", &att) && json_object_is_type(att, json_type_object)) {
                ret->has_attestation = true;
                ret->att_session_pubkey = get_string(att, "sessionPubkey");
                ret->att_parent_member_pubkey = get_string(att, "parentMemberPubkey");
                ret->att_signature = get_string(att, "signature");
                parse_ms(att, "expiresAt", &ret->att_expires_is_number, &ret->att_expires_is_integer,
                         &ret->att_expires_at);
        }
}

const char *session_hello_check_shape(const SessionHelloRequest *h, const char **ret_message) {
        if (!h->session_pubkey || !hex_string(h->session_pubkey, PUBKEY_HEX_LEN, HEX_LOWER)) {
                *ret_message = "sessionPubkey must be 64 lowercase hex chars";
                return "bad_session_pubkey";
        }
        if (!h->parent_member_pubkey || !hex_string(h->parent_member_pubkey, PUBKEY_HEX_LEN, HEX_LOWER)) {
                *ret_message = "parentMemberPubkey must be 64 lowercase hex chars";
                return "bad_parent_pubkey";
        }
        if (!h->has_attestation || !h->att_session_pubkey || !h->att_parent_member_pubkey ||
            !streq(h->att_session_pubkey, h->session_pubkey) ||
            !streq(h->att_parent_member_pubkey, h->parent_member_pubkey)) {
                *ret_message = "parentAttestation does not bind the claimed session+parent pubkeys";
                return "attestation_mismatch";
        }
        *ret_message = NULL;
        return NULL;
}

static const char *verify_signed(const char *signature_hex, const char *pubkey_hex, const char *format, ...)
        _printf_(3, 4);

static const char *verify_signed(const char *signature_hex, const char *pubkey_hex, const char *format, ...) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
        char *text = NULL;
        va_list ap;
        int n;

        /* Upstream's verifier takes either case of hex for the signature. */
        if (!signature_hex || !hex_string(signature_hex, SIGNATURE_HEX_LEN, HEX_ANY_CASE) ||
            hex_decode(signature_hex, sig, sizeof sig) < 0 || hex_decode(pubkey_hex, pk, sizeof pk) < 0)
                return "malformed";
        va_start(ap, format);
        n = vasprintf(&text, format, ap);
        va_end(ap);
        if (n < 0)
                return "malformed";
        int r = crypto_sign_verify_detached(sig, (const uint8_t *) text, (size_t) n, pk);
        free(text);
        return r == 0 ? NULL : "bad_signature";
}

const char *session_attestation_verify(const SessionHelloRequest *h, int64_t now) {
        if (!h->att_expires_is_number || !h->att_expires_is_integer)
                return "malformed";
        if (h->att_expires_at <= now)
                return "expired";
        if (h->att_expires_at > now + ATTESTATION_MAX_TTL_MS)
                return "ttl_too_long";
        return verify_signed(h->att_signature, h->parent_member_pubkey, "claudemesh-session-attest|%s|%s|%" PRId64,
                             h->parent_member_pubkey, h->session_pubkey, h->att_expires_at);
}

const char *session_hello_verify(const SessionHelloRequest *h, int64_t now) {
        const HelloRequest *c = &h->common;

        if (!c->timestamp_is_number)
                return "timestamp_skew";
        if (c->timestamp_is_integer && (c->timestamp > now + HELLO_SKEW_MS || c->timestamp < now - HELLO_SKEW_MS))
                return "timestamp_skew";
        if (!c->timestamp_is_integer || !c->mesh_id)
                return "malformed";
        return verify_signed(h->signature, h->session_pubkey, "claudemesh-session-hello|%s|%s|%s|%" PRId64,
                             c->mesh_id, h->parent_member_pubkey, h->session_pubkey, c->timestamp);
}

const char *target_kind_destination(TargetKind k) {
        return k == TARGET_DIRECT ? "dm" : "topic";
}

static bool is_printable_ascii(const char *s, size_t max) {
        size_t n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

static int parse_target(SendRequest *s, ProtocolError *ret_error) {
        const char *t = s->target_spec;

        if (strlen(t) == PUBKEY_HEX_LEN && hex_string(t, PUBKEY_HEX_LEN, HEX_ANY_CASE)) {
                for (size_t i = 0; i <= PUBKEY_HEX_LEN; i++)
                        s->direct_key[i] = (char) (t[i] >= 'A' && t[i] <= 'F' ? t[i] - 'A' + 'a' : t[i]);
                s->target_kind = TARGET_DIRECT;
                s->target_ref = s->direct_key;
                return 0;
        }
        if (streq(t, "*") || streq(t, "@all")) {
                s->target_kind = TARGET_BROADCAST;
                s->target_ref = t;
                return 0;
        }
        if (t[0] == '@' && t[1]) {
                s->target_kind = TARGET_GROUP;
                s->target_ref = t + 1;
                return 0;
        }
        if (t[0] == '#' && t[1]) {
                s->target_kind = TARGET_TOPIC;
                s->target_ref = t + 1;
                return 0;
        }
        set_error(ret_error, "invalid_target",
                  "targetSpec must be a 64-hex pubkey, \"*\", \"@all\", \"@<group>\" or \"#<topicId>\"");
        return -EINVAL;
}

static int parse_mentions(json_object *o, SendRequest *s, ProtocolError *ret_error) {
        json_object *m;

        if (!json_object_object_get_ex(o, "mentions", &m) || !m)
                return 0;
        if (!json_object_is_type(m, json_type_array) || json_object_array_length(m) > MENTIONS_MAX) {
                set_error(ret_error, "invalid_args", "mentions must be an array of at most 16 names");
                return -EINVAL;
        }
        s->has_mentions = true;
        for (size_t i = 0; i < json_object_array_length(m); i++) {
                json_object *e = json_object_array_get_idx(m, i);
                const char *name = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : NULL;
                if (!name || !*name || strlen(name) != (size_t) json_object_get_string_len(e) || strlen(name) > 64) {
                        set_error(ret_error, "invalid_args", "mentions must hold non-empty names of at most 64 bytes");
                        return -EINVAL;
                }
                s->mentions[s->n_mentions++] = name;
        }
        return 0;
}

int send_request_parse(const Frame *f, SendRequest *ret, ProtocolError *ret_error) {
        json_object *o = f->root, *v;
        const char *s;

        *ret = (SendRequest) { .id = get_string(o, "id"), .body_version = 1 };
        if (!ret->id)
                ret->id = "";
        if (has_key(o, "id") && !get_string(o, "id")) {
                set_error(ret_error, "invalid_args", "send: \"id\" must be a string");
                return -EINVAL;
        }

        ret->target_spec = get_string(o, "targetSpec");
        if (!ret->target_spec || !*ret->target_spec) {
                set_error(ret_error, "invalid_args", "send: missing string field \"targetSpec\"");
                return -EINVAL;
        }
        ret->nonce = get_string(o, "nonce");
        if (!ret->nonce) {
                set_error(ret_error, "invalid_args", "send: missing string field \"nonce\" (may be empty)");
                return -EINVAL;
        }
        ret->ciphertext = get_string(o, "ciphertext");
        if (!ret->ciphertext) {
                set_error(ret_error, "invalid_args", "send: missing string field \"ciphertext\"");
                return -EINVAL;
        }

        ret->priority = "next";
        if (has_key(o, "priority")) {
                s = get_string(o, "priority");
                if (!s || (!streq(s, "now") && !streq(s, "next") && !streq(s, "low"))) {
                        set_error(ret_error, "invalid_args", "send: \"priority\" must be \"now\", \"next\" or \"low\"");
                        return -EINVAL;
                }
                ret->priority = s;
        }

        if (strlen(ret->ciphertext) + strlen(ret->nonce) + strlen(ret->target_spec) > FRAME_MAX_BYTES) {
                set_error(ret_error, "payload_too_large", "payload too large: more than MAX_MESSAGE_BYTES=65536");
                return -EINVAL;
        }

        if (has_key(o, "client_message_id")) {
                s = get_string(o, "client_message_id");
                if (!s) {
                        set_error(ret_error, "invalid_args", "send: \"client_message_id\" must be a string");
                        return -EINVAL;
                }
                if (*s && !is_printable_ascii(s, CLIENT_MESSAGE_ID_MAX)) {
                        set_error(ret_error, "invalid_args",
                                  "send: \"client_message_id\" must be 1-128 printable ASCII characters");
                        return -EINVAL;
                }
                ret->client_message_id = *s ? s : NULL;
        }

        if (has_key(o, "request_fingerprint")) {
                s = get_string(o, "request_fingerprint");
                if (!s || (*s && hex_decode(s, ret->fingerprint, FINGERPRINT_BYTES) < 0)) {
                        set_error(ret_error, "invalid_args", "send: \"request_fingerprint\" must be 64 hex digits");
                        return -EINVAL;
                }
                ret->has_fingerprint = *s;
        }

        if (has_key(o, "replyToId")) {
                ret->reply_to_id = get_string(o, "replyToId");
                if (!ret->reply_to_id) {
                        set_error(ret_error, "invalid_args", "send: \"replyToId\" must be a string");
                        return -EINVAL;
                }
        }

        if (json_object_object_get_ex(o, "bodyVersion", &v) && v) {
                int64_t bv = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
                if (bv != 1 && bv != 2) {
                        set_error(ret_error, "invalid_args", "send: \"bodyVersion\" must be 1 or 2");
                        return -EINVAL;
                }
                ret->body_version = (int) bv;
        }

        if (parse_mentions(o, ret, ret_error) < 0)
                return -EINVAL;

        return parse_target(ret, ret_error);
}

int client_ack_request_parse(const Frame *f, ClientAckRequest *ret, ProtocolError *ret_error) {
        *ret = (ClientAckRequest) {
                .client_message_id = get_string(f->root, "clientMessageId"),
                .broker_message_id = get_string(f->root, "brokerMessageId"),
        };
        if (ret->client_message_id && !*ret->client_message_id)
                ret->client_message_id = NULL;
        if (ret->broker_message_id && !*ret->broker_message_id)
                ret->broker_message_id = NULL;
        if (!ret->client_message_id && !ret->broker_message_id) {
                set_error(ret_error, "invalid_args", "client_ack needs \"clientMessageId\" or \"brokerMessageId\"");
                return -EINVAL;
        }
        return 0;
}

int set_status_request_parse(const Frame *f, const char **ret_status, ProtocolError *ret_error) {
        const char *s = get_string(f->root, "status");

        if (!s || (!streq(s, "idle") && !streq(s, "working") && !streq(s, "dnd"))) {
                set_error(ret_error, "invalid_args", "set_status: \"status\" must be \"idle\", \"working\" or \"dnd\"");
                return -EINVAL;
        }
        *ret_status = s;
        return 0;
}

int set_summary_request_parse(const Frame *f, const char **ret_summary, ProtocolError *ret_error) {
        const char *s = get_string(f->root, "summary");

        if (!s || strlen(s) > SUMMARY_MAX) {
                set_error(ret_error, "invalid_args", "set_summary: \"summary\" must be a string of at most 4096 bytes");
                return -EINVAL;
        }
        *ret_summary = s;
        return 0;
}

int set_visible_request_parse(const Frame *f, bool *ret_visible, ProtocolError *ret_error) {
        json_object *v;

        if (!json_object_object_get_ex(f->root, "visible", &v) || !json_object_is_type(v, json_type_boolean)) {
                set_error(ret_error, "invalid_args", "set_visible: \"visible\" must be a boolean");
                return -EINVAL;
        }
        *ret_visible = json_object_get_boolean(v);
        return 0;
}

int message_status_request_parse(const Frame *f, const char **ret_id, ProtocolError *ret_error) {
        const char *id = get_string(f->root, "messageId");
        size_t n = id ? strlen(id) : 0;

        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char) id[i]))
                        n = 0;
        if (n < 8 || n > BROKER_ID_LEN) {
                set_error(ret_error, "invalid_argument", "messageId must be 8-32 base62 chars");
                return -EINVAL;
        }
        *ret_id = id;
        return 0;
}

/* Names and keys people type: no control characters, bounded. */
static bool is_name(const char *s, size_t max) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

int topic_create_request_parse(const Frame *f, TopicCreateRequest *ret, ProtocolError *ret_error) {
        *ret = (TopicCreateRequest) {
                .name = get_string(f->root, "name"),
                .description = get_string(f->root, "description"),
                .visibility = get_string(f->root, "visibility"),
        };
        if (!is_name(ret->name, TOPIC_NAME_MAX)) {
                set_error(ret_error, "invalid_args", "topic_create: \"name\" must be 1-200 bytes without control characters");
                return -EINVAL;
        }
        if ((has_key(f->root, "description") && !ret->description) ||
            (ret->description && strlen(ret->description) > SUMMARY_MAX)) {
                set_error(ret_error, "invalid_args", "topic_create: \"description\" must be a string of at most 4096 bytes");
                return -EINVAL;
        }
        if (has_key(f->root, "visibility") && !ret->visibility) {
                set_error(ret_error, "invalid_args", "topic_create: \"visibility\" must be a string");
                return -EINVAL;
        }
        if (!ret->visibility)
                ret->visibility = "public";
        if (!streq(ret->visibility, "public") && !streq(ret->visibility, "private") && !streq(ret->visibility, "dm")) {
                set_error(ret_error, "invalid_args", "topic_create: \"visibility\" must be \"public\", \"private\" or \"dm\"");
                return -EINVAL;
        }
        return 0;
}

int get_state_request_parse(const Frame *f, const char **ret_key, ProtocolError *ret_error) {
        const char *key = get_string(f->root, "key");

        if (!is_name(key, STATE_KEY_MAX)) {
                set_error(ret_error, "invalid_args", "state: \"key\" must be 1-256 bytes without control characters");
                return -EINVAL;
        }
        *ret_key = key;
        return 0;
}

int set_state_request_parse(const Frame *f, const char **ret_key, char **ret_value, ProtocolError *ret_error) {
        json_object *v;
        size_t len;

        if (get_state_request_parse(f, ret_key, ret_error) < 0)
                return -EINVAL;
        /* An absent value is upstream's undefined, stored as null. */
        if (!json_object_object_get_ex(f->root, "value", &v))
                v = NULL;
        const char *text = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                             &len);
        if (!text)
                return -ENOMEM;
        if (len > STATE_VALUE_MAX) {
                set_error(ret_error, "value_too_large", "set_state: \"value\" is over 16384 bytes as JSON");
                return -EINVAL;
        }
        *ret_value = strndup(text, len);
        return *ret_value ? 0 : -ENOMEM;
}

int kick_request_parse(const Frame *f, KickRequest *ret, ProtocolError *ret_error) {
        json_object *v;

        *ret = (KickRequest) { .target = get_string(f->root, "target") };
        if (json_object_object_get_ex(f->root, "all", &v) && json_object_is_type(v, json_type_boolean))
                ret->all = json_object_get_boolean(v);
        if (json_object_object_get_ex(f->root, "stale", &v) &&
            (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))) {
                double d = json_object_get_double(v);
                /* Upstream takes any truthy number; a negative one would name everyone. */
                if (isfinite(d) && d > 0 && d < 9007199254740992.0) {
                        ret->has_stale = true;
                        ret->stale_ms = (int64_t) d;
                }
        }
        if (ret->target && !*ret->target)
                ret->target = NULL;
        if (!ret->all && !ret->has_stale && !ret->target) {
                set_error(ret_error, "invalid", "give \"target\", a positive \"stale\" (ms) or \"all\": true");
                return -EINVAL;
        }
        return 0;
}

int ban_request_parse(const Frame *f, const char **ret_target, ProtocolError *ret_error) {
        const char *t = get_string(f->root, "target");

        if (!t || !*t) {
                set_error(ret_error, "invalid", "target required");
                return -EINVAL;
        }
        *ret_target = t;
        return 0;
}

int set_profile_request_parse(const Frame *f, json_object **ret_profile, ProtocolError *ret_error) {
        static const char *const text_fields[] = { "avatar", "title", "bio" };
        json_object *profile, *v;

        profile = json_object_new_object();
        if (!profile)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(text_fields); i++) {
                if (!has_key(f->root, text_fields[i]))
                        continue;
                const char *s = get_string(f->root, text_fields[i]);
                if (!s || strlen(s) > SUMMARY_MAX) {
                        json_object_put(profile);
                        set_error(ret_error, "invalid_args",
                                  "set_profile: avatar, title and bio must be strings of at most 4096 bytes");
                        return -EINVAL;
                }
                json_object_object_add(profile, text_fields[i], json_object_new_string(s));
        }
        if (json_object_object_get_ex(f->root, "capabilities", &v) && v) {
                bool ok = json_object_is_type(v, json_type_array) && json_object_array_length(v) <= 64;
                for (size_t i = 0; ok && i < json_object_array_length(v); i++)
                        ok = json_object_is_type(json_object_array_get_idx(v, i), json_type_string);
                if (!ok) {
                        json_object_put(profile);
                        set_error(ret_error, "invalid_args", "set_profile: \"capabilities\" must be an array of strings");
                        return -EINVAL;
                }
                json_object_object_add(profile, "capabilities", json_object_get(v));
        }
        *ret_profile = profile;
        return 0;
}
