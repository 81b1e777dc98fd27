/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "log.h"
#include "nodes.h"
#include "presence.h"
#include "time-util.h"

static void add_iso(json_object *o, const char *key, int64_t ms) {
        char buf[ISO8601_MAX];

        if (format_iso8601((usec_t) ms * USEC_PER_MSEC, buf) < 0)
                buf[0] = '\0';
        json_object_object_add(o, key, json_object_new_string(buf));
}

/* The fields of a system push about a peer; a Ghost keeps them after its socket is gone. */
typedef struct PeerRef {
        Server *server;
        const char *mesh_id;
        const char *member_pubkey;
        const char *name;
        const char *pubkey;
        json_object *groups;    /* NULL: not part of this event */
        const Conn *except;
        bool to_siblings;       /* also to the subject member's other connections */
} PeerRef;

/* A system push {type:"push", subtype:"system", event, eventData:{name, pubkey, …}} as upstream
 * writes them; NULL when out of memory. */
static json_object *system_push_new(const char *mesh_id, const char *event, const char *name, const char *pubkey) {
        char uuid[UUID_STR_LEN + 1];
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *data;

        uuid_generate_string(uuid);
        o = json_object_new_object();
        data = json_object_new_object();
        if (!o || !data) {
                json_object_put(data);
                return NULL;
        }
        json_object_object_add(data, "name", json_object_new_string(name));
        json_object_object_add(data, "pubkey", json_object_new_string(pubkey));

        json_object_object_add(o, "type", json_object_new_string("push"));
        json_object_object_add(o, "subtype", json_object_new_string("system"));
        json_object_object_add(o, "event", json_object_new_string(event));
        json_object_object_add(o, "eventData", data);
        json_object_object_add(o, "messageId", json_object_new_string(uuid));
        json_object_object_add(o, "meshId", json_object_new_string(mesh_id));
        json_object_object_add(o, "senderPubkey", json_object_new_string("system"));
        json_object_object_add(o, "priority", json_object_new_string("low"));
        json_object_object_add(o, "nonce", json_object_new_string(""));
        json_object_object_add(o, "ciphertext", json_object_new_string(""));
        add_iso(o, "createdAt", now_ms());
        return TAKE_PTR(o);
}

static void announce(const PeerRef *p, const char *event) {
        _cleanup_(json_object_putp) json_object *o = system_push_new(p->mesh_id, event, p->name, p->pubkey);

        if (!o)
                return;
        if (p->groups)
                json_object_object_add(json_object_object_get(o, "eventData"), "groups", json_object_get(p->groups));

        /* Not to the subject's own siblings (a member does not announce itself to itself),
         * except a session's peer_joined, which its member's daemon needs as upstream sends it. */
        for (Conn *c = p->server->conns; c; c = c->next)
                if (c != p->except && conn_is_live(c) && streq(c->mesh_id, p->mesh_id) &&
                    (p->to_siblings || !streq(c->member_pubkey, p->member_pubkey)))
                        (void) conn_send(c, o);
        nodes_announce(p->server, p->mesh_id, p->member_pubkey, p->to_siblings, o);
}

void presence_announce(Conn *subject, const char *event) {
        PeerRef p = {
                .server = subject->server,
                .mesh_id = subject->mesh_id,
                .member_pubkey = subject->member_pubkey,
                .name = subject->display_name,
                .pubkey = conn_routing_key(subject),
                .groups = streq(event, "peer_joined") ? subject->groups : NULL,
                .except = subject,
                .to_siblings = subject->is_session && streq(event, "peer_joined"),
        };
        announce(&p, event);
}

void presence_announce_left(Server *s, const char *mesh_id, const char *member_pubkey, const char *name,
                            const char *pubkey) {
        PeerRef p = {
                .server = s,
                .mesh_id = mesh_id,
                .member_pubkey = member_pubkey,
                .name = name,
                .pubkey = pubkey,
        };
        announce(&p, "peer_left");
}

/* A closed connection in its grace. A session's ghost keeps its presence for the session to
 * take back: id, connection time, status, summary, profile, visibility. */
struct Ghost {
        Ghost *next;
        Server *server;
        char *mesh_id;
        char *session_id;
        char *name;
        char member_pubkey[PUBKEY_HEX_LEN + 1];
        char session_pubkey[PUBKEY_HEX_LEN + 1];
        char presence_id[BROKER_ID_LEN + 1];
        bool is_session;
        bool visible;
        char status[8];
        char *summary;
        json_object *profile;
        int64_t connected_at_ms;
        int64_t deadline_ms;
        uint64_t serial;                 /* of its connection, whose presence row it keeps */
        bool row;
};

static void ghost_free(Ghost *g) {
        free(g->mesh_id);
        free(g->session_id);
        free(g->name);
        free(g->summary);
        json_object_put(g->profile);
        free(g);
}

static void arm_ghost_timer(Server *s);

/* Its grace is over: the presence row it kept goes too. */
static void ghost_end(Ghost *g) {
        if (g->row)
                nodes_presence_forget(g->server, g->serial);
        ghost_free(g);
}

static void ghost_leave(Ghost *e) {
        PeerRef p = {
                .server = e->server,
                .mesh_id = e->mesh_id,
                .member_pubkey = e->member_pubkey,
                .name = e->name,
                .pubkey = e->session_pubkey[0] ? e->session_pubkey : e->member_pubkey,
        };

        log_info("Peer %s (%s) did not come back; it left mesh %s.", e->name, p.pubkey, e->mesh_id);
        announce(&p, "peer_left");
}

/* A failed check announces the leave: a peer_left too many corrects itself with the next
 * peer_joined, a missing one never. */
static void ghost_checked(int r, StoreResult *res, void *userdata) {
        Ghost *e = userdata;

        if (r >= 0 && store_result_rows(res) > 0)
                log_info("Peer %s came back through another node.", e->name);
        else
                ghost_leave(e);
        ghost_end(e);
}

static void ghost_timer_fired(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, ghost_sul);
        int64_t now = mono_ms();

        for (Ghost **g = &s->ghosts; *g;) {
                Ghost *e = *g;
                if (e->deadline_ms > now) {
                        g = &e->next;
                        continue;
                }
                *g = e->next;
                /* It may have come back through another node: asked without waiting. */
                if (s->nodes_on && nodes_key_present(s, e->mesh_id, e->session_pubkey[0] ? e->session_pubkey
                                                                                          : e->member_pubkey,
                                                     ghost_checked, e) >= 0)
                        continue;
                ghost_leave(e);
                ghost_end(e);
        }
        arm_ghost_timer(s);
}

static void arm_ghost_timer(Server *s) {
        int64_t first = INT64_MAX;

        for (Ghost *g = s->ghosts; g; g = g->next)
                if (g->deadline_ms < first)
                        first = g->deadline_ms;
        if (first == INT64_MAX) {
                lws_sul_cancel(&s->ghost_sul);
                return;
        }
        int64_t delay = first - mono_ms();
        lws_sul_schedule(s->ctx, 0, &s->ghost_sul, ghost_timer_fired, (lws_usec_t) (delay > 0 ? delay : 0) * LWS_US_PER_MS);
}

void presence_conn_closed(Conn *c) {
        Server *s = c->server;
        Ghost *g;

        if (!c->hello_done || c->replaced)
                return;
        if (s->opts.presence_grace_sec == 0 || c->evicted) {
                presence_announce(c, "peer_left");
                return;
        }
        g = calloc(1, sizeof *g);
        if (g) {
                g->mesh_id = strdup(c->mesh_id);
                g->session_id = strdup(c->session_id);
                g->name = strdup(c->display_name);
        }
        if (!g || !g->mesh_id || !g->session_id || !g->name) {
                if (g)
                        ghost_free(g);
                presence_announce(c, "peer_left");
                return;
        }
        snprintf(g->member_pubkey, sizeof g->member_pubkey, "%s", c->member_pubkey);
        snprintf(g->session_pubkey, sizeof g->session_pubkey, "%s", c->session_pubkey);
        memcpy(g->presence_id, c->presence_id, sizeof g->presence_id);
        memcpy(g->status, c->status, sizeof g->status);
        g->server = s;
        g->is_session = c->is_session;
        g->visible = c->visible;
        g->summary = TAKE_PTR(c->summary);
        g->profile = TAKE_PTR(c->profile);
        g->connected_at_ms = c->connected_at_ms;
        g->deadline_ms = mono_ms() + (int64_t) s->opts.presence_grace_sec * 1000;
        g->serial = c->serial;
        g->row = c->ghost_row = s->nodes_on && c->is_session;
        g->next = s->ghosts;
        s->ghosts = g;
        arm_ghost_timer(s);
}

static bool ghost_matches(const Ghost *e, const Conn *c) {
        if (!streq(e->mesh_id, c->mesh_id) || e->is_session != c->is_session)
                return false;
        if (c->is_session)
                return streq(e->session_pubkey, c->session_pubkey) ||
                       (streq(e->member_pubkey, c->member_pubkey) && streq(e->session_id, c->session_id));
        if (!streq(e->member_pubkey, c->member_pubkey))
                return false;
        return c->session_pubkey[0] ? streq(e->session_pubkey, c->session_pubkey)
                                    : !e->session_pubkey[0] && streq(e->session_id, c->session_id);
}

bool presence_reattach(Conn *c) {
        Server *s = c->server;

        for (Ghost **g = &s->ghosts; *g; g = &(*g)->next) {
                Ghost *e = *g;
                if (!ghost_matches(e, c))
                        continue;
                if (e->is_session) {
                        memcpy(c->presence_id, e->presence_id, sizeof c->presence_id);
                        memcpy(c->status, e->status, sizeof c->status);
                        c->visible = e->visible;
                        c->connected_at_ms = e->connected_at_ms;
                        free(c->summary);
                        c->summary = TAKE_PTR(e->summary);
                        json_object_put(c->profile);
                        c->profile = TAKE_PTR(e->profile);
                }
                *g = e->next;
                ghost_end(e);
                arm_ghost_timer(s);
                return true;
        }
        return false;
}

void presence_ghost_taken(Server *s, const char *mesh_id, const char *member_pubkey, const char *key,
                          const char *session_id) {
        for (Ghost **g = &s->ghosts; *g;) {
                Ghost *e = *g;
                if (!e->is_session || !streq(e->mesh_id, mesh_id) ||
                    !(streq(e->session_pubkey, key) ||
                      (streq(e->member_pubkey, member_pubkey) && streq(e->session_id, session_id)))) {
                        g = &e->next;
                        continue;
                }
                log_info("Peer %s came back through another node.", e->name);
                *g = e->next;
                ghost_end(e);
        }
        arm_ghost_timer(s);
}

void presence_adopt_details(Conn *c, json_object *peer, int64_t connected_at_ms) {
        json_object *v;

        if (!json_object_is_type(peer, json_type_object))
                return;
        /* Another node wrote it, from a frame it checked; still, only well-formed values. */
        if (json_object_object_get_ex(peer, "status", &v) && json_object_is_type(v, json_type_string) &&
            (streq(json_object_get_string(v), "idle") || streq(json_object_get_string(v), "working") ||
             streq(json_object_get_string(v), "dnd")))
                snprintf(c->status, sizeof c->status, "%s", json_object_get_string(v));
        if (json_object_object_get_ex(peer, "summary", &v) && json_object_is_type(v, json_type_string) &&
            json_object_get_string_len(v) <= SUMMARY_MAX &&
            strlen(json_object_get_string(v)) == (size_t) json_object_get_string_len(v)) {
                char *copy = strdup(json_object_get_string(v));
                if (copy) {
                        free(c->summary);
                        c->summary = copy;
                }
        }
        if (json_object_object_get_ex(peer, "profile", &v) && json_object_is_type(v, json_type_object)) {
                json_object_put(c->profile);
                c->profile = json_object_get(v);
        }
        if (json_object_object_get_ex(peer, "visible", &v) && json_object_is_type(v, json_type_boolean))
                c->visible = json_object_get_boolean(v);
        if (connected_at_ms > 0)
                c->connected_at_ms = connected_at_ms;
}

void presence_ghosts_free(Server *s) {
        while (s->ghosts) {
                Ghost *g = s->ghosts;
                s->ghosts = g->next;
                ghost_free(g);
        }
        lws_sul_cancel(&s->ghost_sul);
}

json_object *presence_peer_summary(const Conn *p) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "pubkey", json_object_new_string(conn_routing_key(p)));
        json_object_object_add(o, "memberPubkey", json_object_new_string(p->member_pubkey));
        json_object_object_add(o, "displayName", json_object_new_string(p->display_name));
        json_object_object_add(o, "status", json_object_new_string(p->status));
        json_object_object_add(o, "summary", p->summary ? json_object_new_string(p->summary) : NULL);
        json_object_object_add(o, "groups", p->groups ? json_object_get(p->groups) : json_object_new_array());
        json_object_object_add(o, "sessionId", json_object_new_string(p->session_id));
        add_iso(o, "connectedAt", p->connected_at_ms);
        json_object_object_add(o, "cwd", json_object_new_string(p->cwd));
        json_object_object_add(o, "peerRole", json_object_new_string(p->is_session ? "session" : "control-plane"));
        if (p->hostname)
                json_object_object_add(o, "hostname", json_object_new_string(p->hostname));
        if (p->peer_type)
                json_object_object_add(o, "peerType", json_object_new_string(p->peer_type));
        if (p->channel)
                json_object_object_add(o, "channel", json_object_new_string(p->channel));
        if (p->model)
                json_object_object_add(o, "model", json_object_new_string(p->model));
        json_object_object_add(o, "visible", json_object_new_boolean(p->visible));
        if (p->profile && json_object_object_length(p->profile) > 0)
                json_object_object_add(o, "profile", json_object_get(p->profile));
        return o;
}

static int compare_connected_at(const void *a, const void *b) {
        const Conn *x = *(Conn *const *) a, *y = *(Conn *const *) b;

        if (x->connected_at_ms != y->connected_at_ms)
                return x->connected_at_ms < y->connected_at_ms ? -1 : 1;
        return x->serial < y->serial ? -1 : x->serial > y->serial;
}

/* This node's peers visible to c, oldest first. */
static json_object *local_peers(const Conn *c) {
        _cleanup_free_ Conn **list = NULL;
        size_t n = 0, max = 0;
        json_object *peers;

        for (Conn *p = c->server->conns; p; p = p->next)
                max++;
        list = calloc(max ? max : 1, sizeof *list);
        if (!list)
                return NULL;
        /* Hidden peers vanish from other members' lists, but never from their own. */
        for (Conn *p = c->server->conns; p; p = p->next)
                if (conn_is_live(p) && streq(p->mesh_id, c->mesh_id) &&
                    (p->visible || streq(p->member_pubkey, c->member_pubkey)))
                        list[n++] = p;
        qsort(list, n, sizeof *list, compare_connected_at);
        peers = json_object_new_array();
        if (!peers)
                return NULL;
        for (size_t i = 0; i < n; i++)
                json_object_array_add(peers, presence_peer_summary(list[i]));
        return peers;
}

static void send_peers(Conn *c, const char *req_id, json_object *peers) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o) {
                json_object_put(peers);
                return;
        }
        json_object_object_add(o, "type", json_object_new_string("peers_list"));
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        json_object_object_add(o, "peers", peers);
        (void) conn_send(c, o);
}

typedef struct ListJob {
        ConnRef conn;
        char *req_id;
} ListJob;

/* The other nodes' rows arrived: the list is this node's peers as they are now, then theirs. */
static void remote_peers_listed(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ ListJob *j = userdata;
        _cleanup_free_ char *req_id = j->req_id;
        Conn *c = conn_ref_get(&j->conn);
        json_object *peers;

        if (!c)
                return;
        if (r < 0)
                log_warning("Cannot list the other nodes' peers: %s", store_errmsg(c->server->store));
        if (!c->closing) {
                peers = local_peers(c);
                if (peers && r >= 0)
                        nodes_list_peers_add(res, peers);
                if (peers)
                        send_peers(c, req_id, peers);
        }
        conn_barrier_end(c);
}

void presence_handle_list_peers(Conn *c, const Frame *f) {
        json_object *peers;

        if (c->server->nodes_on) {
                _cleanup_free_ ListJob *j = calloc(1, sizeof *j);
                if (!j)
                        return;
                *j = (ListJob) { .conn = conn_ref(c), .req_id = f->req_id ? strdup(f->req_id) : NULL };
                if (f->req_id && !j->req_id)
                        return;
                if (nodes_list_peers(c, remote_peers_listed, j) < 0) {
                        free(j->req_id);
                        log_warning("Cannot send a peers_list query to the database.");
                        return;
                }
                TAKE_PTR(j);
                /* The reply keeps its place among c's replies. */
                conn_barrier_begin(c);
                return;
        }
        peers = local_peers(c);
        if (peers)
                send_peers(c, f->req_id, peers);
}

int presence_send_generic_ack(Conn *c, const Frame *f) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "type", json_object_new_string("ack"));
        json_object_object_add(o, "id", json_object_new_string(f->req_id ? f->req_id : ""));
        json_object_object_add(o, "messageId", json_object_new_string(""));
        json_object_object_add(o, "queued", json_object_new_boolean(false));
        if (f->req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(f->req_id));
        return conn_send(c, o);
}

/* peer_updated {name, pubkey, status, summary}: ours, not upstream's (whose peers see a new
 * status only in their next peers_list). Sent only to the connections that list "peer_updated"
 * in their hello's capabilities, so upstream clients never see an event they would print, and
 * like peers_list it leaves a hidden peer out except for its own member. On every node. */
static void announce_updated(Conn *subject) {
        _cleanup_(json_object_putp) json_object *o = system_push_new(subject->mesh_id, "peer_updated",
                                                                     subject->display_name,
                                                                     conn_routing_key(subject));
        json_object *data;

        if (!o)
                return;
        data = json_object_object_get(o, "eventData");
        json_object_object_add(data, "status", json_object_new_string(subject->status));
        json_object_object_add(data, "summary", subject->summary ? json_object_new_string(subject->summary) : NULL);
        for (Conn *c = subject->server->conns; c; c = c->next)
                if (c != subject && c->peer_updates && conn_is_live(c) && streq(c->mesh_id, subject->mesh_id) &&
                    (subject->visible || streq(c->member_pubkey, subject->member_pubkey)))
                        (void) conn_send(c, o);
        nodes_announce_updated(subject, o);
}

void presence_handle_set_status(Conn *c, const Frame *f) {
        ProtocolError e;
        const char *status;

        if (set_status_request_parse(f, &status, &e) < 0) {
                conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (streq(c->status, status))
                return;
        snprintf(c->status, sizeof c->status, "%s", status);
        nodes_presence_up(c);
        announce_updated(c);
}

void presence_handle_set_summary(Conn *c, const Frame *f) {
        ProtocolError e;
        const char *summary;

        if (set_summary_request_parse(f, &summary, &e) < 0) {
                conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (c->summary && streq(c->summary, summary))
                return;
        char *copy = strdup(summary);
        if (!copy)
                return;
        free(c->summary);
        c->summary = copy;
        nodes_presence_up(c);
        announce_updated(c);
}

void presence_handle_set_visible(Conn *c, const Frame *f) {
        ProtocolError e;
        bool visible;

        if (set_visible_request_parse(f, &visible, &e) < 0) {
                conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        bool changed = visible != c->visible;
        c->visible = visible;
        nodes_presence_up(c);
        (void) presence_send_generic_ack(c, f);
        if (changed)
                presence_announce(c, visible ? "peer_visible" : "peer_hidden");
}

void presence_handle_set_profile(Conn *c, const Frame *f) {
        ProtocolError e;
        json_object *profile;

        if (set_profile_request_parse(f, &profile, &e) < 0) {
                conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        /* Fields not named in this request keep their earlier values. */
        if (c->profile) {
                struct json_object_iterator it = json_object_iter_begin(profile);
                struct json_object_iterator end = json_object_iter_end(profile);
                for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
                        json_object_object_add(c->profile, json_object_iter_peek_name(&it),
                                               json_object_get(json_object_iter_peek_value(&it)));
                json_object_put(profile);
        } else
                c->profile = profile;
        nodes_presence_up(c);
        (void) presence_send_generic_ack(c, f);
}
