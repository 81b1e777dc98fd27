/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "hello.h"
#include "hex-util.h"
#include "json-util.h"
#include "macro.h"

int hello_sign_payload(const WorkerConfig *c, int64_t timestamp_ms, char **ret) {
        if (asprintf(ret, "%s|%s|%s|%lld", c->mesh_id, c->member_id, c->pubkey, (long long) timestamp_ms) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
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

int hello_frame_new(const WorkerConfig *c, int64_t timestamp_ms, const char *signature, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL, *caps = NULL;
        int r;

        if (!signature || !hex_string(signature, 128, HEX_ANY_CASE))
                return -EINVAL;

        caps = json_object_new_array();
        o = json_object_new_object();
        /* peer_updated: our broker then tells of other peers' status and summary changes;
         * brokers that do not know it ignore it. */
        if (!o || !caps || json_object_array_add(caps, json_object_new_string("client_ack")) < 0 ||
            json_object_array_add(caps, json_object_new_string("peer_updated")) < 0)
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
            (r = add_value(o, "timestamp", json_object_new_int64(timestamp_ms))) < 0)
                return r;

        /* The broker checks lowercase hex loosely but upstream writes lowercase: do too. */
        _cleanup_free_ char *sig = strdup(signature);
        if (!sig)
                return -ENOMEM;
        for (char *s = sig; *s; s++)
                if (*s >= 'A' && *s <= 'F')
                        *s = (char) (*s - 'A' + 'a');
        if ((r = add_string(o, "signature", sig)) < 0)
                return r;

        *ret = TAKE_PTR(o);
        return 0;
}
