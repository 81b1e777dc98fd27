/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Each session's own broker connection, multiplexed in its mesh's worker: opened when the session
 * registers (and again in every new worker), closed the moment the session ends. */
#include <string.h>

#include "json-util.h"
#include "link-receive.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "session-oracle.h"

/* [{name, role?}] from "name" or "name:role" (the notation Groups uses). */
static json_object *groups_new(char **groups) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();

        for (char **g = groups; a && g && *g; g++) {
                json_object *o = json_object_new_object();
                const char *colon = strchr(*g, ':');

                if (!o)
                        return NULL;
                json_object_object_add(o, "name", colon ? json_object_new_string_len(*g, (int) (colon - *g))
                                                        : json_object_new_string(*g));
                if (colon && colon[1])
                        json_object_object_add(o, "role", json_object_new_string(colon + 1));
                json_object_array_add(a, o);
        }
        return TAKE_PTR(a);
}

static void send_session_open(MeshLink *l, unsigned conn) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        Session *s = l->conns[conn];

        if (!p)
                return;
        json_object_object_add(p, "type", json_object_new_string("session_open"));
        json_object_object_add(p, "conn", json_object_new_int((int) conn));
        json_object_object_add(p, "session_pubkey", json_object_new_string(s->public_key_hex));
        json_object_object_add(p, "session_id", json_object_new_string(s->id));
        json_object_object_add(p, "display_name", json_object_new_string(s->display_name));
        json_object_object_add(p, "pid", json_object_new_int((int) s->owner.pid));
        if (s->cwd[0])
                json_object_object_add(p, "cwd", json_object_new_string(s->cwd));
        if (s->groups && s->groups[0])
                json_object_object_add(p, "groups", groups_new(s->groups));
        if (link_send_packet(l, p) < 0) {
                log_warning("Mesh %s: cannot ask the worker to connect session %s", l->mesh->entry->slug, s->id);
                session_set_state(s, "failed");
                return;
        }
        session_set_state(s, "connecting");
}

void mesh_link_session_open(MeshLink *l, Session *s) {
        unsigned conn;

        assert(l);
        assert(s);

        if (s->conn > 0)
                return;
        /* Round robin, not the lowest free number: packets the worker sent for a connection just
         * closed may still be on their way, and must not be taken for a new session's. */
        conn = 0;
        for (unsigned k = 1; k <= SESSIONS_MAX && conn == 0; k++) {
                unsigned c = (l->last_conn + k - 1) % SESSIONS_MAX + 1;

                if (!l->conns[c])
                        conn = c;
        }
        if (conn == 0) {
                log_warning("Mesh %s: no free connection for session %s", l->mesh->entry->slug, s->id);
                session_set_state(s, "failed");
                return;
        }
        l->conns[conn] = s;
        l->last_conn = conn;
        s->conn = conn;
        if (l->worker && l->state != LINK_FAILED)
                send_session_open(l, conn);
        else
                /* No worker now: the next one opens it; the member's link failed for good: so does it. */
                session_set_state(s, l->state == LINK_FAILED ? "failed" : "backoff");
}

void mesh_link_session_close(MeshLink *l, Session *s) {
        _cleanup_(json_object_putp) json_object *p = NULL;
        unsigned conn;

        assert(l);
        assert(s);

        conn = s->conn;
        if (conn == 0 || conn > SESSIONS_MAX || l->conns[conn] != s)
                return;
        p = json_object_new_object();
        if (p) {
                json_object_object_add(p, "type", json_object_new_string("session_close"));
                json_object_object_add(p, "conn", json_object_new_int((int) conn));
                if (link_send_packet(l, p) < 0)
                        log_warning("Mesh %s: cannot ask the worker to close the connection of session %s",
                                    l->mesh->entry->slug, s->id);
        }
        link_requeue_inflight_conn(l, conn, "session closed");
        l->conns[conn] = NULL;
        s->conn = 0;
        session_set_state(s, "closed");
}

void mesh_link_session_forget(MeshLink *l, Session *s) {
        assert(l);
        assert(s);

        if (s->conn > 0 && s->conn <= SESSIONS_MAX && l->conns[s->conn] == s)
                l->conns[s->conn] = NULL;
        s->conn = 0;
}

int mesh_link_session_send_frame(MeshLink *l, Session *s, json_object *frame) {
        assert(l);
        assert(s);

        if (s->conn == 0 || l->conns[s->conn] != s)
                return -ENOTCONN;
        return link_send_frame_conn(l, s->conn, frame);
}

static int send_simple(MeshLink *l, Session *s, const char *type, const char *key, const char *value) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();

        if (!f || json_object_object_add(f, "type", json_object_new_string(type)) < 0 ||
            json_object_object_add(f, key, json_object_new_string(value)) < 0)
                return -ENOMEM;
        return mesh_link_session_send_frame(l, s, f);
}

void mesh_link_session_profile(MeshLink *l, Session *s) {
        int r;

        assert(l);
        assert(s);

        if (!streq(s->state, "connected"))
                return; /* the next hello_ack sends it */
        /* The broker forgets both with the connection: sent again on every connect. */
        r = send_simple(l, s, "set_status", "status", s->status);
        if (r >= 0 && s->summary[0])
                r = send_simple(l, s, "set_summary", "summary", s->summary);
        if (r < 0)
                log_warning_errno(r, "Mesh %s: cannot send the profile of session %s: %m", l->mesh->entry->slug, s->id);
}

void link_sessions_reopen(MeshLink *l) {
        for (unsigned conn = 1; conn <= SESSIONS_MAX; conn++)
                if (l->conns[conn])
                        send_session_open(l, conn);
}

void link_sessions_detach(MeshLink *l) {
        for (unsigned conn = 1; conn <= SESSIONS_MAX; conn++) {
                Session *s = l->conns[conn];

                if (!s)
                        continue;
                l->conns[conn] = NULL;
                s->conn = 0;
                session_set_state(s, "closed");
        }
}

static void answer_sign(MeshLink *l, Session *s, json_object *packet) {
        const MeshEntry *e = l->mesh->entry;
        const char *payload = json_string_member(packet, "payload");
        _cleanup_free_ char *why = NULL, *whose = NULL;
        char signature[129];
        int r;

        r = session_oracle_sign(payload, e->mesh_id, e->pubkey_hex, e->secret_key, s->public_key_hex, s->secret_key,
                                now_usec(CLOCK_REALTIME), signature, &why);
        if (r < 0 && asprintf(&whose, "the connection of session %s", s->id) < 0)
                whose = NULL;
        link_reply_signature(l, packet, r < 0 ? NULL : signature, why ? why : "no payload",
                             whose ? whose : "a session's connection");
}

/* Refuses a signature for a connection that has no session (any more). */
static void refuse_sign(MeshLink *l, unsigned conn, json_object *packet) {
        char whose[48];

        snprintf(whose, sizeof whose, "connection %u, which has no session", conn);
        link_reply_signature(l, packet, NULL, "No session is open on that connection.", whose);
}

static void session_state(MeshLink *l, Session *s, json_object *packet) {
        const char *state = json_string_member(packet, "state"), *detail = json_string_member(packet, "detail");
        const char *next;

        if (!state || streq(state, "connected"))
                return; /* hello_ack says it */
        next = streq(state, "backoff") ? "backoff" : streq(state, "failed") ? "failed" : "connecting";
        if (streq(s->state, "connected"))
                link_requeue_inflight_conn(l, s->conn, "broker connection lost");
        if (!streq(s->state, next))
                log_info("Mesh %s: session %s: %s%s%s", l->mesh->entry->slug, s->id, next, detail ? ": " : "",
                         strempty(detail));
        session_set_state(s, next);
}

void link_session_packet(MeshLink *l, unsigned conn, json_object *packet) {
        const char *type = worker_channel_type(packet);
        Session *s;

        assert(l);
        assert(conn >= 1 && conn <= SESSIONS_MAX);

        s = l->conns[conn];
        if (!s) {
                /* Late packets of a connection just closed: only a signature needs an answer. */
                if (streq(type, "sign"))
                        refuse_sign(l, conn, packet);
                return;
        }
        if (streq(type, "sign"))
                answer_sign(l, s, packet);
        else if (streq(type, "state"))
                session_state(l, s, packet);
        else if (streq(type, "hello_ack")) {
                session_set_state(s, "connected");
                if (!streq(s->status, "idle") || s->summary[0])
                        mesh_link_session_profile(l, s);
                mesh_link_drain(l);
        } else if (streq(type, "frame"))
                link_receive_frame(l, conn, json_object_object_get(packet, "frame"));
        else
                log_debug("Mesh %s: unknown worker packet \"%s\" for session %s", l->mesh->entry->slug, type, s->id);
}
