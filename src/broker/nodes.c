/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accept.h"
#include "delivery.h"
#include "ids.h"
#include "log.h"
#include "nodes.h"
#include "presence.h"

#define CHANNEL "claudemesh_delivery"
#define PRESENCE_CHANNEL "claudemesh_presence"
/* NOTIFY takes payloads under 8000 bytes; a larger frame reaches the other nodes' members
 * only through peers_list. */
#define PAYLOAD_MAX 7900

static void catch_up(lws_sorted_usec_list_t *sul);

static void schedule_catch_up(Server *s) {
        lws_sul_schedule(s->ctx, 0, &s->catch_up_sul, catch_up,
                         (lws_usec_t) s->opts.catch_up_interval_ms * LWS_US_PER_MS);
}

static int listen_open(Server *s) {
        lws_sock_file_fd_type desc;
        struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
        int fd, r;

        static const char *const channels[] = { CHANNEL, PRESENCE_CHANNEL, NULL };

        r = store_listen_open(s->store, channels, &fd);
        if (r < 0)
                return r;
        desc.filefd = fd;
        s->listen_wsi = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, NULL, NULL) : NULL;
        if (!s->listen_wsi) {
                /* lws closes what it fails to adopt. */
                store_listen_close(s->store);
                return log_warning_errno(-ENOMEM, "Cannot add the LISTEN connection to the event loop.");
        }
        log_info("Listening for the other nodes' deliveries.");
        return 0;
}

static int heartbeat(Server *s) {
        StoreStmt *st = store_stmt(s->store, "INSERT INTO broker_node (id, seen_at) VALUES (?1, ?2)"
                                             " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, s->node_id);
        store_bind_int64(st, 2, now_ms());
        return store_step_done(s->store, st);
}

int nodes_start(Server *s) {
        if (store_engine(s->store) != STORE_POSTGRESQL)
                return 0;
        broker_id_generate(s->node_id);
        s->nodes_on = true;
        if (heartbeat(s) < 0)
                log_warning("Cannot record this node (%s) in the database: %s", s->node_id, store_errmsg(s->store));
        /* Without LISTEN the catch-up still delivers; it retries the connection. */
        (void) listen_open(s);
        schedule_catch_up(s);
        return 0;
}

void nodes_stop(Server *s) {
        if (!s->nodes_on)
                return;
        lws_sul_cancel(&s->catch_up_sul);
        s->nodes_on = false;
}

bool nodes_owns(const Server *s, const struct lws *wsi) {
        return s->listen_wsi && wsi == s->listen_wsi;
}

static bool conn_owns(const Conn *c, const char *mesh_id, const char *key) {
        return conn_is_live(c) && c->hello_done && streq(c->mesh_id, mesh_id) &&
               (streq(conn_routing_key(c), key) || streq(c->member_pubkey, key));
}

/* hello.c's rules for a newer connection replacing an older one, across nodes: a session
 * takes over a session of the same key, or of the same member and sessionId; a control-plane
 * hello replaces a control-plane connection of its member with the same sessionId or session
 * key. */
static bool replaced_by(const Conn *p, const char *mesh_id, const char *member_pubkey, bool session,
                        const char *key, const char *session_id) {
        if (!conn_is_live(p) || !p->hello_done || p->is_session != session || !streq(p->mesh_id, mesh_id))
                return false;
        if (session && streq(p->session_pubkey, key))
                return true;
        return streq(p->member_pubkey, member_pubkey) &&
               (streq(p->session_id, session_id) || (key[0] && streq(p->session_pubkey, key)));
}

/* {"node","mesh","member","takeover":{"session","key","sessionId"}} from nodes_take_over(). */
static void on_takeover(Server *s, const char *mesh_id, const char *member_pubkey, json_object *t) {
        json_object *session, *key, *session_id;

        if (!json_object_is_type(t, json_type_object) || !json_object_object_get_ex(t, "session", &session) ||
            !json_object_object_get_ex(t, "key", &key) || !json_object_object_get_ex(t, "sessionId", &session_id) ||
            !json_object_is_type(key, json_type_string) || !json_object_is_type(session_id, json_type_string))
                return;
        for (Conn *p = s->conns; p; p = p->next) {
                if (!replaced_by(p, mesh_id, member_pubkey, json_object_get_boolean(session),
                                 json_object_get_string(key), json_object_get_string(session_id)))
                        continue;
                log_info("Session %s (%s) in mesh %s replaced by a newer connection on another node.",
                         p->session_id, conn_routing_key(p), p->mesh_id);
                p->replaced = true;
                conn_close(p, 1000, "session_replaced");
        }
}

/* {"node","mesh","member","siblings","frame"} from nodes_announce() on another node. */
static void on_presence(Server *s, const char *payload) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(payload);
        json_object *node, *mesh, *member, *siblings, *frame, *takeover;

        if (!o || !json_object_object_get_ex(o, "node", &node) || !json_object_object_get_ex(o, "mesh", &mesh) ||
            !json_object_object_get_ex(o, "member", &member))
                return;
        if (streq(json_object_get_string(node), s->node_id))
                return;
        if (json_object_object_get_ex(o, "takeover", &takeover)) {
                on_takeover(s, json_object_get_string(mesh), json_object_get_string(member), takeover);
                return;
        }
        if (!json_object_object_get_ex(o, "frame", &frame) || !json_object_is_type(frame, json_type_object))
                return;
        bool to_siblings = json_object_object_get_ex(o, "siblings", &siblings) && json_object_get_boolean(siblings);
        const char *mesh_id = json_object_get_string(mesh), *member_pubkey = json_object_get_string(member);
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_is_live(c) && c->hello_done && streq(c->mesh_id, mesh_id) &&
                    (to_siblings || !streq(c->member_pubkey, member_pubkey)))
                        (void) conn_send(c, frame);
}

static void on_notification(const char *channel, const char *payload, void *userdata) {
        Server *s = userdata;
        const char *space = strchr(payload, ' ');
        char mesh_id[256];

        if (streq(channel, PRESENCE_CHANNEL)) {
                on_presence(s, payload);
                return;
        }

        /* "<mesh id> <recipient key>", as nodes_wake() writes it; anything else is ignored. */
        if (!space || (size_t) (space - payload) >= sizeof mesh_id)
                return;
        memcpy(mesh_id, payload, (size_t) (space - payload));
        mesh_id[space - payload] = '\0';
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_owns(c, mesh_id, space + 1))
                        c->wake_pending = true;
}

int nodes_readable(Server *s) {
        int r = store_listen_read(s->store, on_notification, s);

        /* One drain per woken connection for all the notifications read at once: a flood
         * across nodes brings one per message, and each drain is a query. */
        for (Conn *c = s->conns; c; c = c->next)
                if (c->wake_pending) {
                        c->wake_pending = false;
                        delivery_drain(c);
                }
        if (r < 0) {
                log_warning("The LISTEN connection was lost (%s); the catch-up delivers until it is back.",
                            store_errmsg(s->store));
                return -1;     /* lws closes the wsi; nodes_wsi_destroyed() drops the connection */
        }
        return 0;
}

void nodes_wsi_destroyed(Server *s, struct lws *wsi) {
        if (!nodes_owns(s, wsi))
                return;
        s->listen_wsi = NULL;
        store_listen_close(s->store);
}

void nodes_wake(Server *s, const char *mesh_id, const char *recipient_key) {
        char payload[512];

        if (!s->nodes_on)
                return;
        if (snprintf(payload, sizeof payload, "%s %s", mesh_id, recipient_key) >= (int) sizeof payload)
                return;
        if (store_notify(s->store, CHANNEL, payload) < 0)
                log_debug("Could not notify the other nodes of a delivery for %s; the catch-up will.", recipient_key);
}

void nodes_presence_up(Conn *c) {
        Server *s = c->server;
        _cleanup_(json_object_putp) json_object *peer = NULL;
        StoreStmt *st;

        if (!s->nodes_on)
                return;
        peer = presence_peer_summary(c);
        st = store_stmt(s->store,
                "INSERT INTO presence (node_id, serial, mesh_id, member_pubkey, routing_key, name, visible, groups,"
                "  connected_at, peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                " ON CONFLICT (node_id, serial) DO UPDATE SET visible = excluded.visible,"
                "  groups = excluded.groups, peer = excluded.peer");
        if (!peer || !st)
                return;
        store_bind_text(st, 1, s->node_id);
        store_bind_int64(st, 2, (int64_t) c->serial);
        store_bind_text(st, 3, c->mesh_id);
        store_bind_text(st, 4, c->member_pubkey);
        store_bind_text(st, 5, conn_routing_key(c));
        store_bind_text(st, 6, c->display_name);
        store_bind_int64(st, 7, c->visible);
        store_bind_text(st, 8, c->groups ? json_object_to_json_string_ext(c->groups, JSON_C_TO_STRING_PLAIN) : NULL);
        store_bind_int64(st, 9, c->connected_at_ms);
        store_bind_text(st, 10, json_object_to_json_string_ext(peer, JSON_C_TO_STRING_PLAIN));
        if (store_step_done(s->store, st) < 0)
                log_warning("Cannot record the presence of %s: %s", c->presence_id, store_errmsg(s->store));
}

void nodes_presence_down(Conn *c) {
        Server *s = c->server;
        StoreStmt *st;

        if (!s->nodes_on || !c->hello_done || s->shutting_down)
                return;
        st = store_stmt(s->store, "DELETE FROM presence WHERE node_id = ?1 AND serial = ?2");
        if (!st)
                return;
        store_bind_text(st, 1, s->node_id);
        store_bind_int64(st, 2, (int64_t) c->serial);
        (void) store_step_done(s->store, st);
}

void nodes_announce(Server *s, const char *mesh_id, const char *member_pubkey, bool to_siblings,
                    json_object *frame) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *payload;

        if (!s->nodes_on)
                return;
        o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "node", json_object_new_string(s->node_id));
        json_object_object_add(o, "mesh", json_object_new_string(mesh_id));
        json_object_object_add(o, "member", json_object_new_string(member_pubkey));
        json_object_object_add(o, "siblings", json_object_new_boolean(to_siblings));
        json_object_object_add(o, "frame", json_object_get(frame));
        payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!payload || strlen(payload) > PAYLOAD_MAX) {
                log_debug("A presence frame for mesh %s is too large to notify the other nodes.", mesh_id);
                return;
        }
        if (store_notify(s->store, PRESENCE_CHANNEL, payload) < 0)
                log_debug("Could not notify the other nodes of a presence change in mesh %s.", mesh_id);
}

bool nodes_take_over(Conn *c) {
        Server *s = c->server;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *t;
        const char *payload;
        StoreStmt *st;
        bool live;

        if (!s->nodes_on)
                return false;
        /* replaced_by() in SQL, over the other nodes' presence rows. */
        st = store_stmt(s->store,
                "SELECT 1 FROM presence WHERE mesh_id = ?1 AND node_id <> ?2"
                "   AND peer::json->>'peerRole' = ?3"
                "   AND ((?3 = 'session' AND routing_key = ?4)"
                "        OR (member_pubkey = ?5 AND (peer::json->>'sessionId' = ?6 OR (?4 <> '' AND routing_key = ?4))))"
                " LIMIT 1");
        if (!st)
                return false;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, s->node_id);
        store_bind_text(st, 3, c->is_session ? "session" : "control-plane");
        store_bind_text(st, 4, c->session_pubkey);
        store_bind_text(st, 5, c->member_pubkey);
        store_bind_text(st, 6, c->session_id);
        live = store_step(st) == STORE_ROW;
        store_reset(st);
        if (!live)
                return false;

        o = json_object_new_object();
        t = json_object_new_object();
        if (!o || !t) {
                json_object_put(t);
                return true;
        }
        json_object_object_add(t, "session", json_object_new_boolean(c->is_session));
        json_object_object_add(t, "key", json_object_new_string(c->session_pubkey));
        json_object_object_add(t, "sessionId", json_object_new_string(c->session_id));
        json_object_object_add(o, "node", json_object_new_string(s->node_id));
        json_object_object_add(o, "mesh", json_object_new_string(c->mesh_id));
        json_object_object_add(o, "member", json_object_new_string(c->member_pubkey));
        json_object_object_add(o, "takeover", t);
        payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!payload || strlen(payload) > PAYLOAD_MAX || store_notify(s->store, PRESENCE_CHANNEL, payload) < 0)
                log_warning("Could not ask the other nodes to close the session %s that %s replaces.", c->session_id,
                            c->display_name);
        return true;
}

bool nodes_key_present(Server *s, const char *mesh_id, const char *key) {
        StoreStmt *st;
        bool present;

        if (!s->nodes_on)
                return false;
        st = store_stmt(s->store, "SELECT 1 FROM presence WHERE mesh_id = ?1 AND routing_key = ?2 LIMIT 1");
        if (!st)
                return false;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, key);
        present = store_step(st) == STORE_ROW;
        store_reset(st);
        return present;
}

void nodes_list_peers(const Conn *asker, json_object *peers) {
        Server *s = asker->server;
        StoreStmt *st;
        int rc;

        if (!s->nodes_on)
                return;
        /* Hidden peers vanish from other members' lists, but never from their own. */
        st = store_stmt(s->store, "SELECT peer FROM presence WHERE mesh_id = ?1 AND node_id <> ?2"
                                  " AND (visible = 1 OR member_pubkey = ?3) ORDER BY connected_at, node_id, serial");
        if (!st)
                return;
        store_bind_text(st, 1, asker->mesh_id);
        store_bind_text(st, 2, s->node_id);
        store_bind_text(st, 3, asker->member_pubkey);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *peer = json_tokener_parse(store_col_text(st, 0));
                if (peer)
                        json_object_array_add(peers, peer);
        }
        store_reset(st);
        if (rc < 0)
                log_warning("Cannot list the other nodes' peers: %s", store_errmsg(s->store));
}

int nodes_remote_recipients(const Conn *sender, const char *group, char ***ret, size_t *ret_n) {
        Server *s = sender->server;
        char **keys = NULL;
        size_t n = 0;
        StoreStmt *st;
        int rc;

        *ret = NULL;
        *ret_n = 0;
        if (!s->nodes_on)
                return 0;
        st = store_stmt(s->store, "SELECT DISTINCT routing_key, groups FROM presence WHERE mesh_id = ?1"
                                  " AND node_id <> ?2 AND visible = 1 AND member_pubkey <> ?3");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, sender->mesh_id);
        store_bind_text(st, 2, s->node_id);
        store_bind_text(st, 3, sender->member_pubkey);
        while ((rc = store_step(st)) == STORE_ROW) {
                if (group) {
                        _cleanup_(json_object_putp) json_object *groups =
                                store_col_text(st, 1) ? json_tokener_parse(store_col_text(st, 1)) : NULL;
                        if (!groups_include(groups, group))
                                continue;
                }
                char **k = realloc(keys, (n + 2) * sizeof *keys);
                if (!k) {
                        rc = -ENOMEM;
                        break;
                }
                keys = k;
                keys[n] = strdup(store_col_text(st, 0));
                if (!keys[n]) {
                        rc = -ENOMEM;
                        break;
                }
                keys[++n] = NULL;
        }
        store_reset(st);
        if (rc < 0) {
                for (size_t i = 0; i < n; i++)
                        free(keys[i]);
                free(keys);
                return rc;
        }
        *ret = keys;
        *ret_n = n;
        return 0;
}

/* The nodes that stopped beating for the grace (at least three catch-ups): their rows go,
 * and whoever deletes them announces the peer_left the dead node could not. */
static void reap_dead_nodes(Server *s) {
        int64_t grace_ms = (int64_t) s->opts.presence_grace_sec * 1000;
        int64_t floor_ms = 3 * (int64_t) s->opts.catch_up_interval_ms;
        int64_t cutoff = now_ms() - (grace_ms > floor_ms ? grace_ms : floor_ms);
        StoreStmt *st;
        int rc;

        st = store_stmt(s->store, "DELETE FROM presence"
                                  " WHERE node_id IN (SELECT id FROM broker_node WHERE seen_at < ?1)"
                                  " RETURNING mesh_id, member_pubkey, routing_key, name");
        if (!st)
                return;
        store_bind_int64(st, 1, cutoff);
        /* Collected first: the announcement's checks use the same connection. */
        typedef struct Left {
                char *mesh_id, *member_pubkey, *name, *pubkey;
        } Left;
        Left *left = NULL;
        size_t n = 0;
        while ((rc = store_step(st)) == STORE_ROW) {
                Left *l = realloc(left, (n + 1) * sizeof *left);
                if (!l)
                        break;
                left = l;
                left[n++] = (Left) {
                        .mesh_id = strdup(store_col_text(st, 0)),
                        .member_pubkey = strdup(store_col_text(st, 1)),
                        .pubkey = strdup(store_col_text(st, 2)),
                        .name = strdup(store_col_text(st, 3)),
                };
        }
        store_reset(st);
        for (size_t i = 0; i < n; i++) {
                Left *l = &left[i];
                bool complete = l->mesh_id && l->member_pubkey && l->pubkey && l->name;
                if (complete && !nodes_key_present(s, l->mesh_id, l->pubkey)) {
                        log_info("Peer %s (%s) was on a node that stopped; it left mesh %s.", l->name, l->pubkey,
                                 l->mesh_id);
                        presence_announce_left(s, l->mesh_id, l->member_pubkey, l->name, l->pubkey);
                }
                free(l->mesh_id);
                free(l->member_pubkey);
                free(l->pubkey);
                free(l->name);
        }
        free(left);
        if (rc < 0)
                return;
        st = store_stmt(s->store, "DELETE FROM broker_node WHERE seen_at < ?1");
        if (!st)
                return;
        store_bind_int64(st, 1, cutoff);
        (void) store_step_done(s->store, st);
}

static void catch_up(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, catch_up_sul);

        /* Leases, statements and scratch tables lived in the lost session: a fresh process is
         * the clean way back, and its clients reconnect to any node meanwhile. As on a failed
         * commit, nothing unconfirmed has been sent. */
        if (!store_connected(s->store)) {
                log_error("The database connection was lost (%s); exiting for a restart.", store_errmsg(s->store));
                _exit(EXIT_FAILURE);
        }
        if (!s->listen_wsi)
                (void) listen_open(s);
        (void) heartbeat(s);
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_is_live(c) && c->hello_done) {
                        /* Refreshed: status, summary and profile change without an event. */
                        nodes_presence_up(c);
                        delivery_drain(c);
                }
        reap_dead_nodes(s);
        schedule_catch_up(s);
}
