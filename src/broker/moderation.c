/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "message-ids.h"
#include "moderation.h"
#include "time-util.h"

#define DB_ERROR "broker database error, retry later"

/* 1 = admin, 0 = not, negative errno. */
static int is_admin(Conn *c) {
        StoreStmt *st = store_stmt(c->server->store,
                "SELECT role = 'admin' AND revoked_at IS NULL FROM member WHERE id = ?1");
        int r = 0, rc;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, c->member_id);
        rc = store_step(st);
        if (rc == STORE_ROW)
                r = store_col_int(st, 0) != 0;
        else if (rc != STORE_DONE)
                r = rc;
        store_reset(st);
        return r;
}

static bool require_admin(Conn *c, const Frame *f, const char *what) {
        char message[64];
        int r = is_admin(c);

        if (r > 0)
                return true;
        if (r < 0)
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
        else {
                snprintf(message, sizeof message, "only owner or admin can %s", what);
                (void) conn_send_error(c, "forbidden", message, f->req_id);
        }
        return false;
}

static bool kick_matches(const Conn *p, const KickRequest *k, int64_t now) {
        if (k->all)
                return true;
        if (k->has_stale)
                return now - p->last_rx_ms > k->stale_ms;
        /* Upstream: display name, member pubkey, or a prefix of it; and here a session's own key. */
        return streq(p->display_name, k->target) || strneq(p->member_pubkey, k->target, strlen(k->target)) ||
               streq(p->session_pubkey, k->target);
}

static void reply(Conn *c, const Frame *f, json_object *o) {
        if (f->req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(f->req_id));
        (void) conn_send(c, o);
}

void moderation_handle_kick(Conn *c, const Frame *f, bool kick) {
        const char *verb = kick ? "kicked" : "disconnected";
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *affected = json_object_new_array(), *skipped = json_object_new_array();
        ProtocolError e;
        KickRequest k;
        int64_t now = mono_ms();
        unsigned n = 0;

        if (!o || !affected || !skipped) {
                json_object_put(affected);
                json_object_put(skipped);
                return;
        }
        if (!require_admin(c, f, kick ? "kick" : "disconnect") ) {
                json_object_put(affected);
                json_object_put(skipped);
                return;
        }
        if (kick_request_parse(f, &k, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                json_object_put(affected);
                json_object_put(skipped);
                return;
        }

        for (Conn *p = c->server->conns; p; p = p->next) {
                if (!conn_is_live(p) || !streq(p->mesh_id, c->mesh_id) || !kick_matches(p, &k, now))
                        continue;
                /* Not oneself for all/stale, as upstream; a target names whom it names. */
                if (p == c && !k.target)
                        continue;
                if (kick && !p->is_session) {
                        json_object_array_add(skipped, json_object_new_string(p->display_name));
                        continue;
                }
                json_object_array_add(affected, json_object_new_string(p->display_name));
                log_event(LOG_NOTICE, kick ? CM_MESSAGE_BROKER_KICK : CM_MESSAGE_BROKER_DISCONNECT,
                          LOG_FIELDS({ "CLAUDEMESH_MESH_ID", c->mesh_id }, { "CLAUDEMESH_ACTOR", c->display_name },
                                     { "CLAUDEMESH_TARGET", p->display_name },
                                     { "CLAUDEMESH_TARGET_PUBKEY", conn_routing_key(p) }),
                          "%s %s %s (%s) from mesh %s.", c->display_name, verb, p->display_name,
                          conn_routing_key(p), c->mesh_id);
                p->evicted = kick;
                conn_close(p, kick ? 4001 : 1000, k.has_stale ? (kick ? "kicked_stale" : "disconnected_stale") : verb);
                n++;
        }

        json_object_object_add(o, "type", json_object_new_string(kick ? "kick_ack" : "disconnect_ack"));
        json_object_object_add(o, "kicked", json_object_get(affected));
        json_object_object_add(o, "affected", affected);
        if (json_object_array_length(skipped) > 0)
                json_object_object_add(o, "skipped_control_plane", skipped);
        else
                json_object_put(skipped);
        reply(c, f, o);
        log_info("%s by %s in mesh %s: %u connections.", kick ? "Kick" : "Disconnect", c->display_name, c->mesh_id, n);
}

typedef struct Target {
        char id[BROKER_ID_LEN + 1];
        char pubkey[PUBKEY_HEX_LEN + 1];
        char *name;
} Target;

static void target_done(Target *t) {
        free(t->name);
}

/* 1 = one member found, 0 = none, -ENOTUNIQ = several, other negative errno. */
static int find_member(Conn *c, const char *target, bool revoked, Target *ret) {
        StoreStmt *st = store_stmt(c->server->store,
                "SELECT id, peer_pubkey, display_name FROM member"
                " WHERE mesh_id = ?1 AND (CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END) = ?3"
                "   AND (display_name = ?2 OR peer_pubkey = ?2 OR (?3 = 0 AND substr(peer_pubkey, 1, length(?2)) = ?2))"
                " LIMIT 2");
        int n = 0, rc;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, target);
        store_bind_int64(st, 3, revoked);
        while ((rc = store_step(st)) == STORE_ROW)
                if (++n == 1) {
                        snprintf(ret->id, sizeof ret->id, "%s", store_col_text(st, 0));
                        snprintf(ret->pubkey, sizeof ret->pubkey, "%s", store_col_text(st, 1));
                        ret->name = strdup(store_col_text(st, 2));
                }
        store_reset(st);
        if (rc != STORE_DONE)
                return rc;
        if (n == 1 && !ret->name)
                return -ENOMEM;
        return n > 1 ? -ENOTUNIQ : n;
}

static int set_revoked(Conn *c, const char *member_id, bool revoked) {
        StoreStmt *st = store_stmt(c->server->store, "UPDATE member SET revoked_at = ?2 WHERE id = ?1");

        if (!st)
                return -EIO;
        store_bind_text(st, 1, member_id);
        if (revoked)
                store_bind_int64(st, 2, now_ms());
        return store_step_done(c->server->store, st);
}

static bool report_lookup(Conn *c, const Frame *f, int r, const char *target, const char *what) {
        char message[300];

        if (r == 1)
                return true;
        if (r == 0) {
                snprintf(message, sizeof message, "%s \"%.200s\" not found", what, target);
                (void) conn_send_error(c, "not_found", message, f->req_id);
        } else if (r == -ENOTUNIQ) {
                snprintf(message, sizeof message, "\"%.200s\" names several members; give the pubkey", target);
                (void) conn_send_error(c, "ambiguous", message, f->req_id);
        } else
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
        return false;
}

void moderation_handle_ban(Conn *c, const Frame *f) {
        _cleanup_(target_done) Target t = { .name = NULL };
        ProtocolError e;
        const char *target;
        unsigned n = 0;

        if (!require_admin(c, f, "ban"))
                return;
        if (ban_request_parse(f, &target, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (!report_lookup(c, f, find_member(c, target, false, &t), target, "peer"))
                return;
        if (streq(t.id, c->member_id)) {
                (void) conn_send_error(c, "invalid", "cannot ban yourself", f->req_id);
                return;
        }
        if (set_revoked(c, t.id, true) < 0) {
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return;
        }
        for (Conn *p = c->server->conns; p; p = p->next)
                if (conn_is_live(p) && streq(p->mesh_id, c->mesh_id) && streq(p->member_pubkey, t.pubkey)) {
                        p->evicted = true;
                        conn_close(p, 4002, "banned");
                        n++;
                }
        log_event(LOG_NOTICE, CM_MESSAGE_BROKER_BAN,
                  LOG_FIELDS({ "CLAUDEMESH_MESH_ID", c->mesh_id }, { "CLAUDEMESH_ACTOR", c->display_name },
                             { "CLAUDEMESH_TARGET", t.name }, { "CLAUDEMESH_TARGET_PUBKEY", t.pubkey }),
                  "%s banned member %s (%s) from mesh %s; %u connections closed.", c->display_name, t.name,
                  t.pubkey, c->mesh_id, n);

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "type", json_object_new_string("ban_ack"));
        json_object_object_add(o, "banned", json_object_new_string(t.name));
        reply(c, f, o);
}

void moderation_handle_unban(Conn *c, const Frame *f) {
        _cleanup_(target_done) Target t = { .name = NULL };
        ProtocolError e;
        const char *target;

        if (!require_admin(c, f, "unban"))
                return;
        if (ban_request_parse(f, &target, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (!report_lookup(c, f, find_member(c, target, true, &t), target, "no banned peer"))
                return;
        if (set_revoked(c, t.id, false) < 0) {
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return;
        }
        log_event(LOG_NOTICE, CM_MESSAGE_BROKER_UNBAN,
                  LOG_FIELDS({ "CLAUDEMESH_MESH_ID", c->mesh_id }, { "CLAUDEMESH_ACTOR", c->display_name },
                             { "CLAUDEMESH_TARGET", t.name }, { "CLAUDEMESH_TARGET_PUBKEY", t.pubkey }),
                  "%s unbanned member %s (%s) in mesh %s.", c->display_name, t.name, t.pubkey, c->mesh_id);

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "type", json_object_new_string("unban_ack"));
        json_object_object_add(o, "unbanned", json_object_new_string(t.name));
        reply(c, f, o);
}

void moderation_handle_list_bans(Conn *c, const Frame *f) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *bans = json_object_new_array();
        char at[ISO8601_MAX];
        int rc;

        if (!o || !bans) {
                json_object_put(bans);
                return;
        }
        json_object_object_add(o, "type", json_object_new_string("list_bans_result"));
        json_object_object_add(o, "bans", bans);
        if (!require_admin(c, f, "list bans"))
                return;
        StoreStmt *st = store_stmt(c->server->store,
                "SELECT display_name, peer_pubkey, revoked_at FROM member"
                " WHERE mesh_id = ?1 AND revoked_at IS NOT NULL ORDER BY revoked_at, id");
        if (!st) {
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *b = json_object_new_object();
                if (!b) {
                        rc = -ENOMEM;
                        break;
                }
                if (format_iso8601((usec_t) store_col_int64(st, 2) * USEC_PER_MSEC, at) < 0)
                        at[0] = '\0';
                json_object_object_add(b, "name", json_object_new_string(store_col_text(st, 0)));
                json_object_object_add(b, "pubkey", json_object_new_string(store_col_text(st, 1)));
                json_object_object_add(b, "revokedAt", json_object_new_string(at));
                json_object_array_add(bans, b);
        }
        store_reset(st);
        if (rc != STORE_DONE) {
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return;
        }
        reply(c, f, o);
}
