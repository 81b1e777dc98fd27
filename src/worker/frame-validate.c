/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "frame-validate.h"
#include "hex-util.h"
#include "json-util.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_tokener *, json_tokener_free);

/* Allowed JSON types of a field, as a bit mask. */
#define T_NULL   (1U << json_type_null)
#define T_BOOL   (1U << json_type_boolean)
#define T_DOUBLE (1U << json_type_double)
#define T_INT    (1U << json_type_int)
#define T_OBJECT (1U << json_type_object)
#define T_ARRAY  (1U << json_type_array)
#define T_STRING (1U << json_type_string)
#define T_NUMBER (T_INT | T_DOUBLE)
#define T_ANY    (T_NULL | T_BOOL | T_NUMBER | T_OBJECT | T_ARRAY | T_STRING)

#define TEXT_MAX FRAME_MAX_BYTES

typedef enum Shape {
        SHAPE_TEXT,       /* any UTF-8 without NUL */
        SHAPE_PRINTABLE,  /* ids: printable ASCII */
        SHAPE_HEX64,      /* a key: 64 lowercase hex */
        SHAPE_HEX64_ANY,  /* a fingerprint: 64 hex of either case */
        SHAPE_BASE64,     /* standard alphabet, '=' padding only at the end */
        SHAPE_SENDER,     /* a key, "system" or "webhook:<name>" */
        SHAPE_PRIORITY,   /* now | next | low */
        SHAPE_TOKEN,      /* printable ASCII without spaces */
} Shape;

typedef struct FieldRule {
        const char *name;
        unsigned types;
        bool required;
        Shape shape;      /* for strings */
        size_t min_len, max_len;
} FieldRule;

#define REQ(n, t, s, lo, hi) { n, t, true, s, lo, hi }
#define OPT(n, t, s, lo, hi) { n, t, false, s, lo, hi }
#define OPT_ANY(n, t)        { n, t, false, SHAPE_TEXT, 0, TEXT_MAX }

static const FieldRule hello_ack_rules[] = {
        OPT("presenceId", T_STRING, SHAPE_PRINTABLE, 1, 128),
        OPT("memberDisplayName", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT_ANY("memberProfile", T_OBJECT | T_NULL),
        OPT_ANY("meshPolicy", T_OBJECT | T_NULL),
        OPT_ANY("restored", T_BOOL),
        OPT("lastSummary", T_STRING | T_NULL, SHAPE_TEXT, 0, TEXT_MAX),
        OPT("lastSeenAt", T_STRING | T_NULL, SHAPE_PRINTABLE, 0, 64),
        OPT_ANY("restoredGroups", T_ARRAY),
        OPT_ANY("restoredStats", T_OBJECT),
        OPT_ANY("services", T_ARRAY),
        /* What the features mean (and whether a required one is good enough) is the
         * daemon's call, DECISIONS §11: it must see even malformed parameters. */
        OPT_ANY("features", T_OBJECT | T_NULL),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule ack_rules[] = {
        REQ("id", T_STRING, SHAPE_PRINTABLE, 0, 256),
        REQ("messageId", T_STRING, SHAPE_PRINTABLE, 0, 64),
        REQ("queued", T_BOOL, SHAPE_TEXT, 0, 0),
        OPT("error", T_STRING, SHAPE_TEXT, 0, 4096),
        OPT("error_code", T_STRING, SHAPE_PRINTABLE, 1, 128),
        OPT_ANY("retry_after_ms", T_NUMBER),
        OPT("client_message_id", T_STRING, SHAPE_PRINTABLE, 1, 128),
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule push_rules[] = {
        REQ("messageId", T_STRING, SHAPE_PRINTABLE, 1, 64),
        OPT("meshId", T_STRING, SHAPE_PRINTABLE, 0, 128),
        REQ("senderPubkey", T_STRING, SHAPE_SENDER, 1, 256),
        OPT("senderMemberPubkey", T_STRING, SHAPE_HEX64, 64, 64),
        OPT("senderMemberId", T_STRING, SHAPE_PRINTABLE, 0, 128),
        OPT("senderName", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT("priority", T_STRING, SHAPE_PRIORITY, 3, 4),
        REQ("nonce", T_STRING, SHAPE_BASE64, 0, 128),
        REQ("ciphertext", T_STRING, SHAPE_BASE64, 0, TEXT_MAX),
        OPT("createdAt", T_STRING, SHAPE_PRINTABLE, 0, 64),
        OPT("client_message_id", T_STRING, SHAPE_PRINTABLE, 1, 128),
        OPT("request_fingerprint", T_STRING, SHAPE_HEX64_ANY, 64, 64),
        OPT("subtype", T_STRING, SHAPE_PRINTABLE, 0, 128),
        OPT("event", T_STRING, SHAPE_PRINTABLE, 0, 128),
        OPT_ANY("eventData", T_ANY),
        OPT("topic", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT("replyToId", T_STRING, SHAPE_PRINTABLE, 0, 128),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule peers_list_rules[] = {
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        REQ("peers", T_ARRAY, SHAPE_TEXT, 0, 0),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule peer_rules[] = {
        REQ("pubkey", T_STRING, SHAPE_HEX64, 64, 64),
        OPT("memberPubkey", T_STRING, SHAPE_HEX64, 64, 64),
        OPT("displayName", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT("status", T_STRING, SHAPE_PRINTABLE, 0, 32),
        OPT("summary", T_STRING | T_NULL, SHAPE_TEXT, 0, TEXT_MAX),
        OPT_ANY("groups", T_ARRAY),
        OPT("sessionId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        OPT("connectedAt", T_STRING, SHAPE_PRINTABLE, 0, 64),
        OPT("cwd", T_STRING, SHAPE_TEXT, 0, 4096),
        OPT("hostname", T_STRING | T_NULL, SHAPE_TEXT, 0, 256),
        OPT("peerType", T_STRING | T_NULL, SHAPE_PRINTABLE, 0, 32),
        OPT("channel", T_STRING | T_NULL, SHAPE_TEXT, 0, 256),
        OPT("model", T_STRING | T_NULL, SHAPE_TEXT, 0, 256),
        OPT_ANY("stats", T_OBJECT | T_NULL),
        OPT_ANY("visible", T_BOOL),
        OPT_ANY("profile", T_OBJECT | T_NULL),
        OPT("peerRole", T_STRING, SHAPE_PRINTABLE, 0, 32),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule error_rules[] = {
        REQ("code", T_STRING, SHAPE_PRINTABLE, 1, 128),
        OPT("message", T_STRING, SHAPE_TEXT, 0, 4096),
        OPT("id", T_STRING, SHAPE_PRINTABLE, 0, 256),
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule topic_list_rules[] = {
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        REQ("topics", T_ARRAY, SHAPE_TEXT, 0, 0),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

/* The daemon sends to "#<id>" and resolves "#<name>" to it: an id goes on the wire as is, so it
 * is a printable token; a name is only compared. */
static const FieldRule topic_rules[] = {
        REQ("id", T_STRING, SHAPE_TOKEN, 1, 128),
        REQ("name", T_STRING, SHAPE_TEXT, 1, 1024),
        OPT("description", T_STRING | T_NULL, SHAPE_TEXT, 0, TEXT_MAX),
        OPT("visibility", T_STRING, SHAPE_PRINTABLE, 0, 32),
        OPT_ANY("memberCount", T_NUMBER),
        OPT("createdAt", T_STRING, SHAPE_PRINTABLE, 0, 64),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

/* The mesh's shared state (wire protocol §3.6), for the daemon's /v1/state. */
static const FieldRule state_result_rules[] = {
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        REQ("key", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT_ANY("value", T_ANY),
        OPT("updatedBy", T_STRING | T_NULL, SHAPE_TEXT, 0, 1024),
        OPT("updatedAt", T_STRING | T_NULL, SHAPE_PRINTABLE, 0, 64),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule state_list_rules[] = {
        OPT("_reqId", T_STRING, SHAPE_PRINTABLE, 0, 256),
        REQ("entries", T_ARRAY, SHAPE_TEXT, 0, 0),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const FieldRule state_entry_rules[] = {
        REQ("key", T_STRING, SHAPE_TEXT, 0, 1024),
        OPT_ANY("value", T_ANY),
        OPT("updatedBy", T_STRING | T_NULL, SHAPE_TEXT, 0, 1024),
        OPT("updatedAt", T_STRING | T_NULL, SHAPE_PRINTABLE, 0, 64),
        { NULL, 0, false, SHAPE_TEXT, 0, 0 },
};

static const struct {
        const char *type;
        const FieldRule *rules;
} frame_table[_FRAME_KIND_MAX] = {
        [FRAME_HELLO_ACK] = { "hello_ack", hello_ack_rules },
        [FRAME_ACK] = { "ack", ack_rules },
        [FRAME_PUSH] = { "push", push_rules },
        [FRAME_PEERS_LIST] = { "peers_list", peers_list_rules },
        [FRAME_ERROR] = { "error", error_rules },
        [FRAME_TOPIC_LIST_RESPONSE] = { "topic_list_response", topic_list_rules },
        [FRAME_STATE_RESULT] = { "state_result", state_result_rules },
        [FRAME_STATE_LIST] = { "state_list", state_list_rules },
};

const char *frame_kind_to_string(FrameKind k) {
        return (unsigned) k < _FRAME_KIND_MAX ? frame_table[k].type : NULL;
}

static int fail(char **ret_error, int r, const char *format, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return r;
}

static bool is_hex64(const char *s, size_t n, HexCase c) {
        return n == 64 && hex_digits(s, n, c);
}

static bool is_printable(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e)
                        return false;
        return true;
}

static bool is_base64(const char *s, size_t n) {
        size_t pad = 0;

        while (pad < n && pad < 2 && s[n - 1 - pad] == '=')
                pad++;
        for (size_t i = 0; i < n - pad; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '+' || s[i] == '/'))
                        return false;
        return true;
}

static bool shape_ok(Shape shape, const char *s, size_t n) {
        switch (shape) {
        case SHAPE_TEXT:
                return true;
        case SHAPE_PRINTABLE:
                return is_printable(s, n);
        case SHAPE_HEX64:
                return is_hex64(s, n, HEX_LOWER);
        case SHAPE_HEX64_ANY:
                return is_hex64(s, n, HEX_ANY_CASE);
        case SHAPE_BASE64:
                return is_base64(s, n);
        case SHAPE_SENDER:
                /* Broker events come from "system", webhooks from "webhook:<name>". */
                return is_hex64(s, n, HEX_LOWER) || streq(s, "system") ||
                       (n > 8 && strneq(s, "webhook:", 8) && is_printable(s, n));
        case SHAPE_PRIORITY:
                return streq(s, "now") || streq(s, "next") || streq(s, "low");
        case SHAPE_TOKEN:
                return is_printable(s, n) && !memchr(s, ' ', n);
        }
        return false;
}

static const char *json_type_name(json_object *v) {
        return json_type_to_name(json_object_get_type(v));
}

static int check_fields(json_object *o, const FieldRule *rules, const char *where, char **ret_error) {
        for (const FieldRule *f = rules; f->name; f++) {
                json_object *v;

                if (!json_object_object_get_ex(o, f->name, &v)) {
                        if (f->required)
                                return fail(ret_error, -EBADMSG, "%s: field \"%s\" is missing", where, f->name);
                        continue;
                }
                if (!(f->types & (1U << json_object_get_type(v))))
                        return fail(ret_error, -EBADMSG, "%s: field \"%s\" has the wrong type (%s)", where, f->name,
                                    json_type_name(v));
                if (!json_object_is_type(v, json_type_string))
                        continue;

                const char *s = json_object_get_string(v);
                size_t n = (size_t) json_object_get_string_len(v);
                if (strlen(s) != n)
                        return fail(ret_error, -EBADMSG, "%s: field \"%s\" contains a NUL character", where, f->name);
                if (n < f->min_len || n > f->max_len)
                        return fail(ret_error, -EBADMSG, "%s: field \"%s\" has %zu bytes, outside %zu…%zu", where,
                                    f->name, n, f->min_len, f->max_len);
                if (!shape_ok(f->shape, s, n))
                        return fail(ret_error, -EBADMSG, "%s: field \"%s\" is not of the expected form", where,
                                    f->name);
        }
        return 0;
}

/* Every element of the array o[key] is an object that passes rules. */
static int check_items(json_object *o, const char *key, const FieldRule *rules, const char *what, char **ret_error) {
        json_object *items = json_object_object_get(o, key);
        size_t n = json_object_array_length(items);

        for (size_t i = 0; i < n; i++) {
                json_object *p = json_object_array_get_idx(items, i);
                char where[64];
                int r;

                snprintf(where, sizeof where, "%s %zu", what, i);
                if (!json_object_is_type(p, json_type_object))
                        return fail(ret_error, -EBADMSG, "%s is not an object", where);
                r = check_fields(p, rules, where, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int frame_validate(const void *data, size_t size, json_object **ret, char **ret_error) {
        _cleanup_(json_tokener_freep) json_tokener *tok = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *p = data, *type;
        enum json_tokener_error e;
        json_object *t;
        size_t end;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (size == 0)
                return fail(ret_error, -EBADMSG, "empty message");
        if (size > FRAME_MAX_BYTES)
                return fail(ret_error, -EBADMSG, "message of %zu bytes exceeds %d", size, FRAME_MAX_BYTES);
        if (memchr(p, '\0', size))
                return fail(ret_error, -EBADMSG, "message contains a NUL byte");

        tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
        if (!tok)
                return -ENOMEM;
        /* Trailing bytes are checked below: whitespace is fine, anything else is not. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
        o = json_tokener_parse_ex(tok, p, (int) size);
        e = json_tokener_get_error(tok);
        if (!o || e != json_tokener_success)
                return fail(ret_error, -EBADMSG, "not JSON: %s",
                            e == json_tokener_success || e == json_tokener_continue ? "unexpected end"
                                                                                    : json_tokener_error_desc(e));
        for (end = json_tokener_get_parse_end(tok); end < size; end++)
                if (!strchr(" \t\r\n", p[end]))
                        return fail(ret_error, -EBADMSG, "trailing bytes after the JSON value");

        if (!json_object_is_type(o, json_type_object))
                return fail(ret_error, -EBADMSG, "not a JSON object");
        if (!json_object_object_get_ex(o, "type", &t) || !json_object_is_type(t, json_type_string))
                return fail(ret_error, -EBADMSG, "no string \"type\"");
        type = json_object_get_string(t);

        for (FrameKind k = 0; k < _FRAME_KIND_MAX; k++) {
                if (!streq(type, frame_table[k].type))
                        continue;
                r = check_fields(o, frame_table[k].rules, type, ret_error);
                if (r >= 0 && k == FRAME_PEERS_LIST)
                        r = check_items(o, "peers", peer_rules, "peers_list: peer", ret_error);
                if (r >= 0 && k == FRAME_TOPIC_LIST_RESPONSE)
                        r = check_items(o, "topics", topic_rules, "topic_list_response: topic", ret_error);
                if (r >= 0 && k == FRAME_STATE_LIST)
                        r = check_items(o, "entries", state_entry_rules, "state_list: entry", ret_error);
                if (r < 0)
                        return r;
                if (ret)
                        *ret = TAKE_PTR(o);
                return (int) k;
        }
        return fail(ret_error, -EOPNOTSUPP, "type \"%.64s\" is not passed on", type);
}
