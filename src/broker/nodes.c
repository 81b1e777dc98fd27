/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accept.h"
#include "delivery.h"
#include "ids.h"
#include "log.h"
#include "message-ids.h"
#include "nodes.h"
#include "pool.h"
#include "presence.h"

#define CHANNEL "claudemesh_delivery"
#define PRESENCE_CHANNEL "claudemesh_presence"
/* NOTIFY takes payloads under 8000 bytes; a larger frame reaches the other nodes' members
 * only through peers_list. */
#define PAYLOAD_MAX 7900

static void catch_up(lws_sorted_usec_list_t *sul);
static void on_state_key(Server *s, const char *mesh_id, json_object *key);
static void state_catch_up(Server *s);
static void presence_catch_up(Server *s);

static void schedule_catch_up(Server *s) {
        lws_sul_schedule(s->ctx, 0, &s->catch_up_sul, catch_up,
                         (lws_usec_t) s->opts.catch_up_interval_ms * LWS_US_PER_MS);
}

/* A failure that recurs at every catch-up (or reconnect) while its cause lasts, logged as
 * log-limit.h says: "Cannot <what>: <why> (<hint>)." when it begins, "Still cannot <what>
 * after <span>, <n> attempts: <why>" at most once a minute while it lasts. why is the
 * database's message, or NULL to say error's. */
static void failed(LogLimit *l, const char *message_id, int error, const char *why, const char *what,
                   const char *hint) {
        char span[LOG_LIMIT_SPAN_MAX];

        assert(why || error < 0);
        switch (log_limit_failure(l, mono_ms())) {
        case LOG_LIMIT_BEGINS:
                if (why)
                        log_event(LOG_WARNING, message_id, NULL, "Cannot %s: %s (%s).", what, why, hint);
                else
                        log_event_errno(LOG_WARNING, error, message_id, NULL, "Cannot %s: %m (%s).", what, hint);
                break;
        case LOG_LIMIT_LASTS:
                log_limit_span(mono_ms() - l->since_ms, span);
                if (why)
                        log_warning("Still cannot %s after %s, %" PRIu64 " attempts: %s", what, span, l->failures,
                                    why);
                else
                        log_warning_errno(error, "Still cannot %s after %s, %" PRIu64 " attempts: %m", what, span,
                                          l->failures);
                break;
        case LOG_LIMIT_QUIET:
                break;
        }
}

/* The end of such a failure, logged once. */
static void succeeded(LogLimit *l, const char *what) {
        char span[LOG_LIMIT_SPAN_MAX];
        int64_t span_ms;
        uint64_t n;

        if (log_limit_success(l, mono_ms(), &span_ms, &n))
                log_info("Can %s again, after %s and %" PRIu64 " failed attempts.", what, log_limit_span(span_ms, span),
                         n);
}

/* Sent on lane 0 at the end of the loop iteration: a NOTIFY leaves at its group's commit,
 * after the rows written before it on that lane. */
static int notify(Server *s, const char *channel, const char *payload) {
        const char *values[] = { channel, payload };

        return pool_submit(s, 0, "SELECT pg_notify(?1, ?2)", ELEMENTSOF(values), values, NULL, NULL);
}

/* While the LISTEN connection is down, state_change frames from the other nodes are lost
 * (rows are read by the catch-up, frames are not): once it listens again, the state rows
 * updated since the gap began are sent as state_change. The gap starts this much before
 * the loss was seen, for notifications that were in flight and for the nodes' clocks;
 * a frame sent twice carries the row's current value again, which is harmless. */
#define STATE_GAP_MARGIN_MS 60000
/* The rows sent at most per catch-up of state; the oldest changes first. */
#define STATE_CATCH_UP_MAX 1024
/* Presence frames (peer_joined, peer_left, peer_updated, ...) are kept as notified, in
 * presence_event, this long: a frame is an event, not a row's current value, and a peer that
 * left has no row. After a gap the frames since its start are sent as they would have been
 * live, in order (a peer that joined and left within it: both), except those already sent
 * here (the margin's, remembered by messageId in Server.presence_seen). */
#define PRESENCE_EVENT_KEEP_MS (3600 * 1000)
/* The frames sent at most per catch-up of presence; the oldest first. */
#define PRESENCE_CATCH_UP_MAX 1024

static void state_gap_begin(Server *s) {
        int64_t since = now_ms() - STATE_GAP_MARGIN_MS;

        if (since <= 0)
                since = 1;
        if (s->state_gap_ms == 0)
                s->state_gap_ms = since;
        if (s->presence_gap_ms == 0)
                s->presence_gap_ms = since;
}

/* The same bound as the other connections' connect_timeout. */
#define LISTEN_CONNECT_MS 5000
#define LISTEN_POLL_MS 20

#define LISTEN_WHAT "open the LISTEN connection"

/* A failed attempt to listen; the first since the node listened (or at start) is the moment
 * it stops hearing the other nodes. */
static void listen_failed(Server *s, int error, const char *why) {
        const char *message_id = NULL;

        if (s->listen_down_ms == 0) {
                s->listen_down_ms = mono_ms();
                message_id = CM_MESSAGE_BROKER_LISTEN_LOST;
        }
        failed(&s->nodes_log.listen, message_id, error, why, LISTEN_WHAT,
               "the catch-up delivers meanwhile and retries it; check that the --db URI reaches the server"
               " and that the server accepts connections");
}

static void listen_listening(Server *s) {
        char span[LOG_LIMIT_SPAN_MAX];
        uint64_t n = 0;

        if (s->listen_down_ms == 0) {
                log_info("Listening for the other nodes' deliveries.");
                return;
        }
        (void) log_limit_success(&s->nodes_log.listen, mono_ms(), NULL, &n);
        log_event(LOG_INFO, CM_MESSAGE_BROKER_LISTEN_BACK, NULL,
                  "Listening for the other nodes' deliveries again after %s (%" PRIu64 " failed attempts to reopen).",
                  log_limit_span(mono_ms() - s->listen_down_ms, span), n);
        s->listen_down_ms = 0;
}

static void listen_poll(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, listen_sul);
        lws_sock_file_fd_type desc;
        struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
        int fd, r;

        r = store_listen_poll(s->store, &fd);
        if (r == 0 && mono_ms() >= s->listen_deadline_ms) {
                store_listen_close(s->store);
                r = -ETIMEDOUT;
        }
        if (r == 0) {
                lws_sul_schedule(s->ctx, 0, &s->listen_sul, listen_poll, (lws_usec_t) LISTEN_POLL_MS * LWS_US_PER_MS);
                return;
        }
        s->listen_deadline_ms = 0;
        if (r < 0) {
                listen_failed(s, r, r == -ECONNREFUSED ? store_errmsg(s->store) : NULL);
                state_gap_begin(s);
                return;        /* the next catch-up tries again */
        }
        desc.filefd = fd;
        s->listen_wsi = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, NULL, NULL) : NULL;
        if (!s->listen_wsi) {
                /* lws closes what it fails to adopt. */
                store_listen_close(s->store);
                listen_failed(s, -ENOMEM, "the event loop did not take it");
                return;
        }
        listen_listening(s);
        /* What was notified while it was down is delivered by the catch-up; state changes
         * and presence frames are read here, now that later ones are notified. */
        state_catch_up(s);
        presence_catch_up(s);
}

/* Started here, completed by listen_poll() on the loop: libpq connects in a thread (see
 * store-pg.c), so a database that does not answer or a slow name lookup holds it, not the loop. */
static void listen_open(Server *s) {
        static const char *const channels[] = { CHANNEL, PRESENCE_CHANNEL, NULL };
        int r;

        if (s->listen_wsi || s->listen_deadline_ms > 0)
                return;
        /* Once per outage: its retries are not news. */
        log_full_errno(s->nodes_log.listen.failures > 0 ? LOG_DEBUG : LOG_INFO, 0, "Opening the LISTEN connection.");
        r = store_listen_open(s->store, channels);
        if (r < 0) {
                listen_failed(s, r, NULL);
                return;
        }
        s->listen_deadline_ms = mono_ms() + LISTEN_CONNECT_MS;
        lws_sul_schedule(s->ctx, 0, &s->listen_sul, listen_poll, 0);
}

static const char heartbeat_sql[] = "INSERT INTO broker_node (id, seen_at) VALUES (?1, ?2)"
                                   " ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at";

/* At start, before the loop serves anyone: it may wait. */
static int heartbeat(Server *s) {
        StoreStmt *st = store_stmt(s->store, heartbeat_sql);
        if (!st)
                return -EIO;
        store_bind_text(st, 1, s->node_id);
        store_bind_int64(st, 2, now_ms());
        return store_step_done(s->store, st);
}

/* Its answer is what the HTTP health check reports of the database (nodes_db_up()). */
static void heartbeat_answered(int r, StoreResult *res, void *userdata) {
        Server *s = userdata;

        if (r >= 0)
                s->db_answered_ms = mono_ms();
}

#define HEARTBEAT_WHAT "send this node's heartbeat to the database"

static void heartbeat_async(Server *s) {
        char now[24];
        int r;

        snprintf(now, sizeof now, "%" PRId64, now_ms());
        const char *values[] = { s->node_id, now };
        r = pool_submit(s, 0, heartbeat_sql, ELEMENTSOF(values), values, heartbeat_answered, s);
        if (r < 0) {
                failed(&s->nodes_log.heartbeat, NULL, r, NULL, HEARTBEAT_WHAT,
                       "retried every catch-up; without it the other nodes take this node for dead after"
                       " --presence-grace");
                return;
        }
        succeeded(&s->nodes_log.heartbeat, HEARTBEAT_WHAT);
}

int nodes_start(Server *s) {
        if (store_engine(s->store) != STORE_POSTGRESQL)
                return 0;
        s->presence_seen = calloc(PRESENCE_SEEN_MAX, sizeof *s->presence_seen);
        if (!s->presence_seen)
                return -ENOMEM;
        broker_id_generate(s->node_id);
        s->nodes_on = true;
        if (heartbeat(s) < 0)
                log_warning("Cannot record this node (%s) in the database: %s", s->node_id, store_errmsg(s->store));
        else
                s->db_answered_ms = mono_ms();
        /* Without LISTEN the catch-up still delivers; it retries the connection. */
        listen_open(s);
        schedule_catch_up(s);
        return 0;
}

void nodes_stop(Server *s) {
        if (!s->nodes_on)
                return;
        lws_sul_cancel(&s->catch_up_sul);
        lws_sul_cancel(&s->listen_sul);
        if (s->listen_deadline_ms > 0)
                store_listen_close(s->store);
        s->listen_deadline_ms = 0;
        s->presence_seen = mfree(s->presence_seen);
        s->presence_seen_next = 0;
        s->nodes_on = false;
}

bool nodes_db_up(const Server *s) {
        int64_t window = 3 * (int64_t) s->opts.catch_up_interval_ms;

        if (window < 3000)
                window = 3000;
        return s->db_answered_ms > 0 && mono_ms() - s->db_answered_ms <= window && store_connected(s->store);
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
        /* A session in its grace here came back through another node, which took its row. */
        if (json_object_get_boolean(session))
                presence_ghost_taken(s, mesh_id, member_pubkey, json_object_get_string(key),
                                     json_object_get_string(session_id));
}

/* True when the presence frame of this messageId was sent here already; else it is now
 * remembered. A frame without a well-formed id is never taken for one sent. */
static bool presence_seen(Server *s, json_object *frame) {
        json_object *id;
        const char *text;

        if (!json_object_object_get_ex(frame, "messageId", &id) || !json_object_is_type(id, json_type_string) ||
            json_object_get_string_len(id) != UUID_STR_LEN)
                return false;
        text = json_object_get_string(id);
        for (size_t i = 0; i < PRESENCE_SEEN_MAX; i++)
                if (streq(s->presence_seen[i], text))
                        return true;
        memcpy(s->presence_seen[s->presence_seen_next], text, UUID_STR_LEN + 1);
        s->presence_seen_next = (s->presence_seen_next + 1) % PRESENCE_SEEN_MAX;
        return false;
}

/* A presence frame of another node, {"node","mesh","member","siblings","frame"} from
 * announce() there, to the members here as that node sends it to its own: live (at_ms 0), or
 * caught up (at_ms when it was notified), then not to a connection that came after it. */
static void presence_frame_send(Server *s, json_object *o, int64_t at_ms) {
        json_object *mesh, *member, *siblings, *frame, *updated_flag, *visible_flag;

        if (!json_object_object_get_ex(o, "mesh", &mesh) || !json_object_object_get_ex(o, "member", &member) ||
            !json_object_object_get_ex(o, "frame", &frame) || !json_object_is_type(frame, json_type_object))
                return;
        if (presence_seen(s, frame))
                return;
        bool to_siblings = json_object_object_get_ex(o, "siblings", &siblings) && json_object_get_boolean(siblings);
        bool updated = json_object_object_get_ex(o, "updated", &updated_flag) && json_object_get_boolean(updated_flag);
        bool visible = !json_object_object_get_ex(o, "visible", &visible_flag) || json_object_get_boolean(visible_flag);
        const char *mesh_id = json_object_get_string(mesh), *member_pubkey = json_object_get_string(member);
        for (Conn *c = s->conns; c; c = c->next) {
                bool sibling = streq(c->member_pubkey, member_pubkey);

                if (!conn_is_live(c) || !c->hello_done || !streq(c->mesh_id, mesh_id) || (sibling && !to_siblings))
                        continue;
                /* As announce_updated() does on the subject's node. */
                if (updated && (!c->peer_updates || (!visible && !sibling)))
                        continue;
                if (at_ms > 0 && c->connected_at_ms > at_ms)
                        continue;
                (void) conn_send(c, frame);
        }
}

/* {"node","mesh","member", then "takeover", "stateKey" or a presence frame} from another node. */
static void on_presence(Server *s, const char *payload) {
        _cleanup_(json_object_putp) json_object *o = json_tokener_parse(payload);
        json_object *node, *mesh, *member, *takeover, *state_key;

        if (!o || !json_object_object_get_ex(o, "node", &node) || !json_object_object_get_ex(o, "mesh", &mesh) ||
            !json_object_object_get_ex(o, "member", &member))
                return;
        if (streq(json_object_get_string(node), s->node_id))
                return;
        if (json_object_object_get_ex(o, "takeover", &takeover)) {
                on_takeover(s, json_object_get_string(mesh), json_object_get_string(member), takeover);
                return;
        }
        if (json_object_object_get_ex(o, "stateKey", &state_key)) {
                on_state_key(s, json_object_get_string(mesh), state_key);
                return;
        }
        presence_frame_send(s, o, 0);
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
                log_event(LOG_WARNING, CM_MESSAGE_BROKER_LISTEN_LOST, NULL,
                          "The LISTEN connection was lost (%s); the catch-up delivers until it is back.",
                          store_errmsg(s->store));
                s->listen_down_ms = mono_ms();
                state_gap_begin(s);
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
        if (notify(s, CHANNEL, payload) < 0)
                log_debug("Could not notify the other nodes of a delivery for %s; the catch-up will.", recipient_key);
}

/* A row that failed (its group failed with another statement) is written again at the next
 * catch-up, or the other nodes would not see the peer until its details change. */
static void presence_written(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ ConnRef *ref = userdata;
        Conn *c;

        if (r >= 0)
                return;
        c = conn_ref_get(ref);
        if (c)
                c->presence_dirty = true;
}

void nodes_presence_up(Conn *c) {
        Server *s = c->server;
        _cleanup_(json_object_putp) json_object *peer = NULL;
        char serial[24], visible[4], connected_at[24];

        if (!s->nodes_on)
                return;
        c->presence_dirty = true;
        peer = presence_peer_summary(c);
        if (!peer)
                return;
        ConnRef *ref = malloc(sizeof *ref);
        if (!ref)
                return;
        *ref = conn_ref(c);
        snprintf(serial, sizeof serial, "%" PRIu64, c->serial);
        snprintf(visible, sizeof visible, "%d", c->visible);
        snprintf(connected_at, sizeof connected_at, "%" PRId64, c->connected_at_ms);
        const char *values[] = {
                s->node_id, serial, c->mesh_id, c->member_pubkey, conn_routing_key(c), c->display_name, visible,
                c->groups ? json_object_to_json_string_ext(c->groups, JSON_C_TO_STRING_PLAIN) : NULL, connected_at,
                json_object_to_json_string_ext(peer, JSON_C_TO_STRING_PLAIN),
        };
        /* Lane 0, in order with the row's removal at close. */
        if (pool_submit(s, 0,
                        "INSERT INTO presence (node_id, serial, mesh_id, member_pubkey, routing_key, name, visible, groups,"
                        "  connected_at, peer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                        " ON CONFLICT (node_id, serial) DO UPDATE SET visible = excluded.visible,"
                        "  groups = excluded.groups, connected_at = excluded.connected_at, peer = excluded.peer",
                        ELEMENTSOF(values), values, presence_written, ref) < 0) {
                free(ref);
                log_warning("Cannot record the presence of %s.", c->presence_id);
                return;
        }
        c->presence_dirty = false;
}

void nodes_presence_down(Conn *c) {
        Server *s = c->server;
        char serial[24];

        if (!s->nodes_on || !c->hello_done || s->shutting_down)
                return;
        snprintf(serial, sizeof serial, "%" PRIu64, c->serial);
        const char *values[] = { s->node_id, serial };
        /* A session in its grace keeps its row, marked visible -1: no list, multicast or
         * presence check counts it, but a hello through another node finds its status,
         * summary, profile and visibility there, as in a live takeover. */
        if (pool_submit(s, 0,
                        c->ghost_row ? "UPDATE presence SET visible = -1 WHERE node_id = ?1 AND serial = ?2"
                                     : "DELETE FROM presence WHERE node_id = ?1 AND serial = ?2",
                        ELEMENTSOF(values), values, NULL, NULL) < 0)
                log_warning("Cannot remove the presence of %s.", c->presence_id);
}

void nodes_presence_forget(Server *s, uint64_t serial) {
        char text[24];

        if (!s->nodes_on || s->shutting_down)
                return;
        snprintf(text, sizeof text, "%" PRIu64, serial);
        const char *values[] = { s->node_id, text };
        if (pool_submit(s, 0, "DELETE FROM presence WHERE node_id = ?1 AND serial = ?2", ELEMENTSOF(values), values,
                        NULL, NULL) < 0)
                log_warning("Cannot remove the presence row of a session whose grace ended.");
}

/* updated: a peer_updated frame, for the connections that asked for it, about a peer hidden
 * (visible false) from all but its own member. kept: a presence frame, also written to
 * presence_event for a node whose LISTEN connection is down, in the NOTIFY's statement. */
static int announce(Server *s, const char *mesh_id, const char *member_pubkey, bool to_siblings, bool updated,
                    bool visible, bool kept, json_object *frame) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *payload;
        char at[24];
        int r;

        if (!s->nodes_on)
                return 0;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "node", json_object_new_string(s->node_id));
        json_object_object_add(o, "mesh", json_object_new_string(mesh_id));
        json_object_object_add(o, "member", json_object_new_string(member_pubkey));
        json_object_object_add(o, "siblings", json_object_new_boolean(to_siblings));
        if (updated) {
                json_object_object_add(o, "updated", json_object_new_boolean(true));
                json_object_object_add(o, "visible", json_object_new_boolean(visible));
        }
        json_object_object_add(o, "frame", json_object_get(frame));
        payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!payload)
                return -ENOMEM;
        if (strlen(payload) > PAYLOAD_MAX) {
                log_debug("A presence frame for mesh %s is too large to notify the other nodes.", mesh_id);
                return -E2BIG;
        }
        if (kept) {
                snprintf(at, sizeof at, "%" PRId64, now_ms());
                const char *values[] = { PRESENCE_CHANNEL, payload, at, s->node_id };
                r = pool_submit(s, 0,
                                "WITH kept AS (INSERT INTO presence_event (at, node_id, payload) VALUES (?3, ?4, ?2))"
                                " SELECT pg_notify(?1, ?2)",
                                ELEMENTSOF(values), values, NULL, NULL);
        } else
                r = notify(s, PRESENCE_CHANNEL, payload);
        if (r < 0) {
                log_debug("Could not notify the other nodes of a presence change in mesh %s.", mesh_id);
                return -EIO;
        }
        return 0;
}

void nodes_announce(Server *s, const char *mesh_id, const char *member_pubkey, bool to_siblings,
                    json_object *frame) {
        (void) announce(s, mesh_id, member_pubkey, to_siblings, false, true, true, frame);
}

void nodes_announce_updated(Conn *subject, json_object *frame) {
        (void) announce(subject->server, subject->mesh_id, subject->member_pubkey, true, true, subject->visible, true,
                        frame);
}

void nodes_announce_state(Conn *setter, const char *key, json_object *frame) {
        Server *s = setter->server;
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *payload;

        /* Not kept: the state catch-up reads the rows. */
        if (announce(s, setter->mesh_id, setter->member_pubkey, true, false, true, false, frame) != -E2BIG)
                return;
        /* A value up to 16 KiB does not fit a NOTIFY: the other nodes read it from the row.
         * The key is at most 256 bytes, the name bounded by the member table. */
        o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "node", json_object_new_string(s->node_id));
        json_object_object_add(o, "mesh", json_object_new_string(setter->mesh_id));
        json_object_object_add(o, "member", json_object_new_string(setter->member_pubkey));
        json_object_object_add(o, "stateKey", json_object_new_string(key));
        payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!payload || strlen(payload) > PAYLOAD_MAX || notify(s, PRESENCE_CHANNEL, payload) < 0)
                log_warning("Could not notify the other nodes of state key %s in mesh %s.", key, setter->mesh_id);
}

typedef struct StateRead {
        Server *server;
        char *mesh_id;
        char *key;
} StateRead;

static void state_read_free(StateRead *r) {
        if (!r)
                return;
        free(r->mesh_id);
        free(r->key);
        free(r);
}

static void state_read_freep(StateRead **r) {
        state_read_free(*r);
}

/* The row as it is now: if a later set overwrote it, that set's own notification follows. */
static void state_read(int r, StoreResult *res, void *userdata) {
        _cleanup_(state_read_freep) StateRead *j = userdata;
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *value;

        if (r < 0 || store_result_rows(res) != 1) {
                log_warning("Cannot read state key %s of mesh %s that another node set.", j->key, j->mesh_id);
                return;
        }
        value = store_result_text(res, 0, 0);
        o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "type", json_object_new_string("state_change"));
        json_object_object_add(o, "key", json_object_new_string(j->key));
        json_object_object_add(o, "value", value ? json_tokener_parse(value) : NULL);
        json_object_object_add(o, "updatedBy", json_object_new_string(strempty(store_result_text(res, 0, 1))));
        for (Conn *c = j->server->conns; c; c = c->next)
                if (conn_is_live(c) && c->hello_done && streq(c->mesh_id, j->mesh_id))
                        (void) conn_send(c, o);
}

static void on_state_key(Server *s, const char *mesh_id, json_object *key) {
        _cleanup_(state_read_freep) StateRead *j = NULL;

        if (!json_object_is_type(key, json_type_string))
                return;
        j = calloc(1, sizeof *j);
        if (!j)
                return;
        j->server = s;
        j->mesh_id = strdup(mesh_id);
        j->key = strdup(json_object_get_string(key));
        if (!j->mesh_id || !j->key)
                return;
        const char *values[] = { j->mesh_id, j->key };
        if (pool_submit(s, 0, "SELECT value, updated_by FROM mesh_state WHERE mesh_id = ?1 AND key = ?2",
                        ELEMENTSOF(values), values, state_read, j) < 0) {
                log_warning("Cannot read state key %s of mesh %s that another node set.", j->key, mesh_id);
                return;
        }
        TAKE_PTR(j);
}

typedef struct GapCatchUp {
        Server *server;
        int64_t gap_ms;
} GapCatchUp;

#define STATE_GAP_WHAT "read the state changed while the LISTEN connection was down"
#define GAP_HINT "tried again at the next reconnect of the LISTEN connection"

/* Whether a catch-up's read (r) succeeded; a failed one keeps its gap, in *gap_ms, for the
 * next time the node listens again. */
static bool gap_read(Server *s, int r, LogLimit *l, int64_t *gap_ms, int64_t read_gap_ms, const char *what) {
        if (r < 0) {
                failed(l, NULL, r, store_errmsg(s->store), what, GAP_HINT);
                if (*gap_ms == 0 || *gap_ms > read_gap_ms)
                        *gap_ms = read_gap_ms;
                return false;
        }
        succeeded(l, what);
        return true;
}

static void state_caught_up(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ GapCatchUp *j = userdata;
        Server *s = j->server;
        int n;

        if (!gap_read(s, r, &s->nodes_log.state_gap, &s->state_gap_ms, j->gap_ms, STATE_GAP_WHAT))
                return;
        n = store_result_rows(res);
        if (n >= STATE_CATCH_UP_MAX)
                log_warning("More than %d state keys changed while the LISTEN connection was down;"
                            " the oldest %d are sent as state_change.", STATE_CATCH_UP_MAX - 1, STATE_CATCH_UP_MAX);
        for (int i = 0; i < n; i++) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                const char *mesh_id = store_result_text(res, i, 0), *value = store_result_text(res, i, 2);

                if (!o || !mesh_id)
                        return;
                json_object_object_add(o, "type", json_object_new_string("state_change"));
                json_object_object_add(o, "key", json_object_new_string(strempty(store_result_text(res, i, 1))));
                json_object_object_add(o, "value", value ? json_tokener_parse(value) : NULL);
                json_object_object_add(o, "updatedBy", json_object_new_string(strempty(store_result_text(res, i, 3))));
                for (Conn *c = s->conns; c; c = c->next)
                        if (conn_is_live(c) && c->hello_done && streq(c->mesh_id, mesh_id))
                                (void) conn_send(c, o);
        }
}

static void state_catch_up(Server *s) {
        _cleanup_free_ GapCatchUp *j = NULL;
        char since[24], limit[24];
        int r;

        if (s->state_gap_ms == 0)
                return;
        j = calloc(1, sizeof *j);
        if (!j)
                return;
        j->server = s;
        j->gap_ms = s->state_gap_ms;
        snprintf(since, sizeof since, "%" PRId64, j->gap_ms);
        snprintf(limit, sizeof limit, "%d", STATE_CATCH_UP_MAX);
        const char *values[] = { since, limit };
        r = pool_submit(s, 0, "SELECT mesh_id, key, value, updated_by FROM mesh_state WHERE updated_at >= ?1"
                              " ORDER BY updated_at LIMIT ?2",
                        ELEMENTSOF(values), values, state_caught_up, j);
        if (r < 0) {
                failed(&s->nodes_log.state_gap, NULL, r, NULL, STATE_GAP_WHAT, GAP_HINT);
                return;
        }
        TAKE_PTR(j);
        s->state_gap_ms = 0;
}

#define PRESENCE_GAP_WHAT "read the presence changed while the LISTEN connection was down"

static void presence_caught_up(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ GapCatchUp *j = userdata;
        Server *s = j->server;
        int n;

        if (!gap_read(s, r, &s->nodes_log.presence_gap, &s->presence_gap_ms, j->gap_ms, PRESENCE_GAP_WHAT))
                return;
        n = store_result_rows(res);
        if (n >= PRESENCE_CATCH_UP_MAX)
                log_warning("More than %d presence frames were notified while the LISTEN connection was down;"
                            " the oldest %d are sent.", PRESENCE_CATCH_UP_MAX - 1, PRESENCE_CATCH_UP_MAX);
        for (int i = 0; i < n; i++) {
                const char *payload = store_result_text(res, i, 1);
                _cleanup_(json_object_putp) json_object *o = payload ? json_tokener_parse(payload) : NULL;
                int64_t at = store_result_int64(res, i, 0);

                if (o && json_object_is_type(o, json_type_object))
                        presence_frame_send(s, o, at > 0 ? at : 1);
        }
}

static void presence_catch_up(Server *s) {
        _cleanup_free_ GapCatchUp *j = NULL;
        char since[24], limit[24];
        int r;

        if (s->presence_gap_ms == 0)
                return;
        j = calloc(1, sizeof *j);
        if (!j)
                return;
        j->server = s;
        j->gap_ms = s->presence_gap_ms;
        snprintf(since, sizeof since, "%" PRId64, j->gap_ms);
        snprintf(limit, sizeof limit, "%d", PRESENCE_CATCH_UP_MAX);
        const char *values[] = { since, s->node_id, limit };
        r = pool_submit(s, 0, "SELECT at, payload FROM presence_event WHERE at >= ?1 AND node_id <> ?2"
                              " ORDER BY id LIMIT ?3",
                        ELEMENTSOF(values), values, presence_caught_up, j);
        if (r < 0) {
                failed(&s->nodes_log.presence_gap, NULL, r, NULL, PRESENCE_GAP_WHAT, GAP_HINT);
                return;
        }
        TAKE_PTR(j);
        s->presence_gap_ms = 0;
}

void nodes_take_over(Conn *c) {
        Server *s = c->server;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *t;
        const char *payload;

        if (!s->nodes_on)
                return;
        o = json_object_new_object();
        t = json_object_new_object();
        if (!o || !t) {
                json_object_put(t);
                return;
        }
        json_object_object_add(t, "session", json_object_new_boolean(c->is_session));
        json_object_object_add(t, "key", json_object_new_string(c->session_pubkey));
        json_object_object_add(t, "sessionId", json_object_new_string(c->session_id));
        json_object_object_add(o, "node", json_object_new_string(s->node_id));
        json_object_object_add(o, "mesh", json_object_new_string(c->mesh_id));
        json_object_object_add(o, "member", json_object_new_string(c->member_pubkey));
        json_object_object_add(o, "takeover", t);
        payload = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (!payload || strlen(payload) > PAYLOAD_MAX || notify(s, PRESENCE_CHANNEL, payload) < 0)
                log_warning("Could not ask the other nodes to close the session %s that %s replaces.", c->session_id,
                            c->display_name);
}

int nodes_key_present(Server *s, const char *mesh_id, const char *key, StoreAsyncCallback cb, void *userdata) {
        const char *values[] = { mesh_id, key };

        assert(s->nodes_on);
        return pool_submit(s, 0, "SELECT 1 FROM presence WHERE mesh_id = ?1 AND routing_key = ?2 AND visible >= 0 LIMIT 1",
                           ELEMENTSOF(values), values, cb, userdata);
}

int nodes_list_peers(const Conn *asker, StoreAsyncCallback cb, void *userdata) {
        Server *s = asker->server;
        const char *values[] = { asker->mesh_id, s->node_id, asker->member_pubkey };

        assert(s->nodes_on);
        /* Hidden peers vanish from other members' lists, but never from their own. Lane 0:
         * after this node's presence writes, so an asker sees its own changes. */
        return pool_submit(s, 0,
                           "SELECT peer FROM presence WHERE mesh_id = ?1 AND node_id <> ?2"
                           " AND (visible = 1 OR (visible = 0 AND member_pubkey = ?3))"
                           " ORDER BY connected_at, node_id, serial",
                           ELEMENTSOF(values), values, cb, userdata);
}

void nodes_list_peers_add(const StoreResult *res, json_object *peers) {
        for (int i = 0; i < store_result_rows(res); i++) {
                const char *text = store_result_text(res, i, 0);
                json_object *peer = text ? json_tokener_parse(text) : NULL;
                if (peer && json_object_is_type(peer, json_type_object))
                        json_object_array_add(peers, peer);
                else
                        json_object_put(peer);
        }
}

#define REAP_WHAT "remove the nodes that stopped, and their presence, from the database"
#define REAP_HINT "retried every catch-up; their peers stay listed until it works"

static void reaped(int r, StoreResult *res, void *userdata) {
        Server *s = userdata;

        if (r < 0) {
                failed(&s->nodes_log.reap, NULL, r, store_errmsg(s->store), REAP_WHAT, REAP_HINT);
                return;
        }
        succeeded(&s->nodes_log.reap, REAP_WHAT);
        for (int i = 0; i < store_result_rows(res); i++) {
                const char *mesh_id = store_result_text(res, i, 0), *member_pubkey = store_result_text(res, i, 1),
                           *pubkey = store_result_text(res, i, 2), *name = store_result_text(res, i, 3);
                if (!mesh_id || !member_pubkey || !pubkey || !name || store_result_int64(res, i, 4) != 0)
                        continue;
                log_info("Peer %s (%s) was on a node that stopped; it left mesh %s.", name, pubkey, mesh_id);
                presence_announce_left(s, mesh_id, member_pubkey, name, pubkey);
        }
}

/* The nodes that stopped beating for the grace (at least three catch-ups): their rows go,
 * and whoever deletes them announces the peer_left the dead node could not, unless the key
 * is still live on a node that beats (the peer came back through it). */
static void reap_dead_nodes(Server *s) {
        int64_t grace_ms = (int64_t) s->opts.presence_grace_sec * 1000;
        int64_t floor_ms = 3 * (int64_t) s->opts.catch_up_interval_ms;
        char cutoff[24];
        int r;

        snprintf(cutoff, sizeof cutoff, "%" PRId64, now_ms() - (grace_ms > floor_ms ? grace_ms : floor_ms));
        const char *values[] = { cutoff };
        r = pool_submit(s, 0,
                        "WITH dead AS (SELECT id FROM broker_node WHERE seen_at < ?1),"
                        " gone AS (DELETE FROM presence WHERE node_id IN (SELECT id FROM dead)"
                        "          RETURNING mesh_id, member_pubkey, routing_key, name)"
                        " SELECT g.mesh_id, g.member_pubkey, g.routing_key, g.name,"
                        "        EXISTS (SELECT 1 FROM presence p WHERE p.mesh_id = g.mesh_id"
                        "                AND p.routing_key = g.routing_key AND p.visible >= 0"
                        "                AND p.node_id NOT IN (SELECT id FROM dead))::int"
                        "   FROM gone g",
                        ELEMENTSOF(values), values, reaped, s);
        if (r < 0) {
                failed(&s->nodes_log.reap, NULL, r, NULL, REAP_WHAT, REAP_HINT);
                return;
        }
        r = pool_submit(s, 0, "DELETE FROM broker_node WHERE seen_at < ?1", ELEMENTSOF(values), values, NULL, NULL);
        if (r < 0)
                failed(&s->nodes_log.reap, NULL, r, NULL, REAP_WHAT, REAP_HINT);
}

#define PRUNE_WHAT "remove the presence frames older than an hour from the database"

/* The presence frames no gap reaches any more go (any node may; the others find none). */
static void presence_events_prune(Server *s) {
        char cutoff[24];
        int r;

        snprintf(cutoff, sizeof cutoff, "%" PRId64, now_ms() - PRESENCE_EVENT_KEEP_MS);
        const char *values[] = { cutoff };
        r = pool_submit(s, 0, "DELETE FROM presence_event WHERE at < ?1", ELEMENTSOF(values), values, NULL, NULL);
        if (r < 0) {
                failed(&s->nodes_log.prune, NULL, r, NULL, PRUNE_WHAT, "retried every catch-up");
                return;
        }
        succeeded(&s->nodes_log.prune, PRUNE_WHAT);
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
        listen_open(s);
        heartbeat_async(s);
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_is_live(c) && c->hello_done) {
                        if (c->presence_dirty)
                                nodes_presence_up(c);
                        delivery_drain(c);
                }
        reap_dead_nodes(s);
        presence_events_prune(s);
        schedule_catch_up(s);
}
