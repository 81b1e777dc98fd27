/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "hello.h"
#include "hex-util.h"
#include "json-util.h"
#include "macro.h"

static unsigned signatures_needed(const SessionConfig *s) {
        return s ? 2 : 1;
}

void hello_round_start(HelloRound *h, int64_t now_ms) {
        assert(h);
        *h = (HelloRound) {
                .timestamp_ms = now_ms,
                .expires_at_ms = now_ms + ATTESTATION_TTL_MS,
        };
}

bool hello_round_complete(const HelloRound *h, const SessionConfig *s) {
        return h->n_signatures >= signatures_needed(s);
}

const char *hello_round_next_name(const HelloRound *h, const SessionConfig *s) {
        if (!s)
                return "hello";
        return h->n_signatures == 0 ? "session attestation" : "session hello";
}

int hello_sign_payload(const WorkerConfig *c, const SessionConfig *s, const HelloRound *h, char **ret) {
        int k;

        assert(c);
        assert(h);
        assert(ret);
        assert(!hello_round_complete(h, s));

        if (!s)
                k = asprintf(ret, "%s|%s|%s|%lld", c->mesh_id, c->member_id, c->pubkey, (long long) h->timestamp_ms);
        else if (h->n_signatures == 0)
                k = asprintf(ret, "claudemesh-session-attest|%s|%s|%lld", c->pubkey, s->session_pubkey,
                             (long long) h->expires_at_ms);
        else
                k = asprintf(ret, "claudemesh-session-hello|%s|%s|%s|%lld", c->mesh_id, c->pubkey, s->session_pubkey,
                             (long long) h->timestamp_ms);
        if (k < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int hello_round_add_signature(HelloRound *h, const SessionConfig *s, const char *signature) {
        char *dst;

        assert(h);
        assert(!hello_round_complete(h, s));

        if (!signature || !hex_string(signature, 128, HEX_ANY_CASE))
                return -EINVAL;
        /* The broker checks hex loosely but upstream writes lowercase: do too. */
        dst = h->signatures[h->n_signatures++];
        for (size_t i = 0; i <= 128; i++)
                dst[i] = signature[i] >= 'A' && signature[i] <= 'F' ? (char) (signature[i] - 'A' + 'a') : signature[i];
        return 0;
}

static int add_string(json_object *o, const char *key, const char *value) {
        json_object *v;

        if (!value)
                return 0;
        v = json_object_new_string(value);
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int add_value(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int member_hello(const WorkerConfig *c, const HelloRound *h, json_object *o) {
        _cleanup_(json_object_putp) json_object *caps = json_object_new_array();
        int r;

        if (!caps || json_object_array_add(caps, json_object_new_string("client_ack")) < 0)
                return -ENOMEM;
        if ((r = add_string(o, "type", "hello")) < 0 ||
            (r = add_string(o, "meshId", c->mesh_id)) < 0 ||
            (r = add_string(o, "memberId", c->member_id)) < 0 ||
            (r = add_string(o, "pubkey", c->pubkey)) < 0 ||
            (r = add_string(o, "sessionPubkey", c->session_pubkey)) < 0 ||
            (r = add_string(o, "displayName", c->display_name)) < 0 ||
            (r = add_string(o, "sessionId", c->session_id)) < 0 ||
            (r = add_value(o, "pid", json_object_new_int64(c->pid))) < 0 ||
            (r = add_string(o, "cwd", c->cwd)) < 0 ||
            (r = add_string(o, "hostname", c->hostname)) < 0 ||
            (r = add_string(o, "peerType", "ai")) < 0 ||
            (r = add_string(o, "channel", "claudemesh-daemon")) < 0 ||
            (c->groups && (r = add_value(o, "groups", json_object_get(c->groups))) < 0) ||
            (r = add_value(o, "capabilities", TAKE_PTR(caps))) < 0 ||
            (r = add_value(o, "timestamp", json_object_new_int64(h->timestamp_ms))) < 0)
                return r;
        return add_string(o, "signature", h->signatures[0]);
}

/* Exactly as upstream's CLI 1.37 builds it (wire-protocol-head §2), field for field. */
static int session_hello(const WorkerConfig *c, const SessionConfig *s, const HelloRound *h, json_object *o) {
        _cleanup_(json_object_putp) json_object *att = json_object_new_object();
        int r;

        if (!att)
                return -ENOMEM;
        if ((r = add_string(att, "sessionPubkey", s->session_pubkey)) < 0 ||
            (r = add_string(att, "parentMemberPubkey", c->pubkey)) < 0 ||
            (r = add_value(att, "expiresAt", json_object_new_int64(h->expires_at_ms))) < 0 ||
            (r = add_string(att, "signature", h->signatures[0])) < 0)
                return r;
        if ((r = add_string(o, "type", "session_hello")) < 0 ||
            (r = add_string(o, "meshId", c->mesh_id)) < 0 ||
            (r = add_string(o, "parentMemberId", c->member_id)) < 0 ||
            (r = add_string(o, "parentMemberPubkey", c->pubkey)) < 0 ||
            (r = add_string(o, "sessionPubkey", s->session_pubkey)) < 0 ||
            (r = add_value(o, "parentAttestation", TAKE_PTR(att))) < 0 ||
            (r = add_string(o, "displayName", s->display_name)) < 0 ||
            (r = add_string(o, "sessionId", s->session_id)) < 0 ||
            (r = add_value(o, "pid", json_object_new_int64(s->pid))) < 0 ||
            (r = add_string(o, "cwd", s->cwd)) < 0 ||
            (r = add_string(o, "hostname", c->hostname)) < 0 ||
            (r = add_string(o, "peerType", "ai")) < 0 ||
            (r = add_string(o, "channel", "claudemesh-session")) < 0 ||
            /* upstream: groups only when there are any */
            (s->groups && json_object_array_length(s->groups) > 0 &&
             (r = add_value(o, "groups", json_object_get(s->groups))) < 0) ||
            (r = add_value(o, "timestamp", json_object_new_int64(h->timestamp_ms))) < 0)
                return r;
        return add_string(o, "signature", h->signatures[1]);
}

int hello_frame_new(const WorkerConfig *c, const SessionConfig *s, const HelloRound *h, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        assert(c);
        assert(h);
        assert(ret);
        assert(hello_round_complete(h, s));

        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        r = s ? session_hello(c, s, h, o) : member_hello(c, h, o);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}
