/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Queries of a mesh's shared state on its broker, matched to their answers by _reqId. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "json-util.h"
#include "link-state.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "wire-send.h"

/* The broker answers from its database at once; upstream's client waits 5 s as well. */
#define LINK_STATE_TIMEOUT_USEC (5 * USEC_PER_SEC)
#define REQ_ID_MAX 32

typedef struct StateQuery {
        const MeshLink *link;      /* only compared: an answer counts from the link asked */
        char req_id[REQ_ID_MAX];
        sd_event_source *timer;
        LinkStateDone done;
        void *userdata;
} StateQuery;

/* The queries out, in the daemon: they outlive nothing but their timers, so a link that goes away
 * needs no hook here; its queries time out. */
static StateQuery queries[LINK_STATE_QUERIES_MAX];
static size_t n_queries;
static uint64_t next_id;

/* Takes query i out of the table before calling its done, which may ask again. */
static void query_finish(size_t i, int result, json_object *answer) {
        StateQuery q = queries[i];

        memmove(queries + i, queries + i + 1, (n_queries - i - 1) * sizeof(StateQuery));
        n_queries--;
        sd_event_source_disable_unref(q.timer);
        q.done(result, answer, q.userdata);
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        for (size_t i = 0; i < n_queries; i++)
                if (queries[i].timer == s) {
                        query_finish(i, -ETIMEDOUT, NULL);
                        break;
                }
        return 0;
}

bool link_state_key_ok(const char *key) {
        assert(key);

        size_t n = strlen(key);

        return n > 0 && n <= LINK_STATE_KEY_MAX && !string_has_cc(key);
}

static int query_start(MeshLink *l, const char *type, const char *key, LinkStateDone done, void *userdata) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();
        StateQuery *q;
        int r;

        assert(l);
        assert(done);

        if (key && !link_state_key_ok(key))
                return -EINVAL;
        if (l->state != LINK_CONNECTED) {
                done(-ENOTCONN, NULL, userdata);
                return 0;
        }
        if (n_queries >= LINK_STATE_QUERIES_MAX)
                return -EBUSY;
        if (!f)
                return -ENOMEM;

        q = &queries[n_queries];
        *q = (StateQuery) { .link = l, .done = done, .userdata = userdata };
        (void) snprintf(q->req_id, sizeof q->req_id, "cm-state-%" PRIu64, next_id++);
        r = json_object_object_add(f, "type", json_object_new_string(type));
        if (r < 0)
                return -ENOMEM;
        if (key) {
                r = json_object_object_add(f, "key", json_object_new_string(key));
                if (r < 0)
                        return -ENOMEM;
        }
        r = json_object_object_add(f, "_reqId", json_object_new_string(q->req_id));
        if (r < 0)
                return -ENOMEM;
        r = sd_event_add_time_relative(l->mesh->manager->event, &q->timer, CLOCK_MONOTONIC, LINK_STATE_TIMEOUT_USEC,
                                       0, on_timeout, NULL);
        if (r < 0)
                return r;
        n_queries++;
        r = mesh_link_send_frame(l, f);
        if (r < 0)
                query_finish(n_queries - 1, -ENOTCONN, NULL);
        return 0;
}

int link_state_get(MeshLink *l, const char *key, LinkStateDone done, void *userdata) {
        assert(key);

        return query_start(l, "get_state", key, done, userdata);
}

int link_state_list(MeshLink *l, LinkStateDone done, void *userdata) {
        return query_start(l, "list_state", NULL, done, userdata);
}

int link_state_set(MeshLink *l, const char *key, json_object *value) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();
        size_t size;
        int r;

        assert(l);
        assert(key);

        if (!link_state_key_ok(key))
                return -EINVAL;
        if (!f)
                return -ENOMEM;
        r = json_object_object_add(f, "type", json_object_new_string("set_state"));
        if (r < 0)
                return -ENOMEM;
        r = json_object_object_add(f, "key", json_object_new_string(key));
        if (r < 0)
                return -ENOMEM;
        r = json_object_object_add(f, "value", json_object_get(value));
        if (r < 0)
                return -ENOMEM;
        /* The worker would drop a larger frame without a word. */
        if (!json_object_to_json_string_length(f, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size))
                return -ENOMEM;
        if (size > WIRE_FRAME_MAX)
                return -EMSGSIZE;
        return mesh_link_send_frame(l, f);
}

bool link_state_receive(MeshLink *l, json_object *frame) {
        const char *type = json_string_member(frame, "type"), *req_id = json_string_member(frame, "_reqId");

        assert(l);

        if (!type || !req_id ||
            (!streq(type, "state_result") && !streq(type, "state_list") && !streq(type, "error")))
                return false;
        for (size_t i = 0; i < n_queries; i++)
                if (queries[i].link == l && streq(queries[i].req_id, req_id)) {
                        query_finish(i, streq(type, "error") ? -EPROTO : 0, frame);
                        return true;
                }
        return false;
}

void link_state_cancel_all(void) {
        while (n_queries > 0)
                query_finish(n_queries - 1, -ECANCELED, NULL);
}
