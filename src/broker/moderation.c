/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "message-ids.h"
#include "moderation.h"
#include "pool.h"
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

/* r is is_admin()'s answer: false and the error sent unless it is 1. */
static bool admin_answer(Conn *c, const char *req_id, int r, const char *what) {
        char message[64];

        if (r > 0)
                return true;
        if (r < 0)
                (void) conn_send_error(c, "internal", DB_ERROR, req_id);
        else {
                snprintf(message, sizeof message, "only owner or admin can %s", what);
                (void) conn_send_error(c, "forbidden", message, req_id);
        }
        return false;
}

static bool require_admin(Conn *c, const Frame *f, const char *what) {
        return admin_answer(c, f->req_id, is_admin(c), what);
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

static void reply(Conn *c, const char *req_id, json_object *o) {
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        (void) conn_send(c, o);
}

/* The admin's kick or disconnect, parsed: closes the matching connections and replies. */
static void kick_act(Conn *c, const char *req_id, bool kick, const KickRequest *k) {
        const char *verb = kick ? "kicked" : "disconnected";
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *affected = json_object_new_array(), *skipped = json_object_new_array();
        int64_t now = mono_ms();
        unsigned n = 0;

        if (!o || !affected || !skipped) {
                json_object_put(affected);
                json_object_put(skipped);
                return;
        }
        for (Conn *p = c->server->conns; p; p = p->next) {
                if (!conn_is_live(p) || !streq(p->mesh_id, c->mesh_id) || !kick_matches(p, k, now))
                        continue;
                /* Not oneself for all/stale, as upstream; a target names whom it names. */
                if (p == c && !k->target)
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
                conn_close(p, kick ? 4001 : 1000, k->has_stale ? (kick ? "kicked_stale" : "disconnected_stale") : verb);
                n++;
        }

        json_object_object_add(o, "type", json_object_new_string(kick ? "kick_ack" : "disconnect_ack"));
        json_object_object_add(o, "kicked", json_object_get(affected));
        json_object_object_add(o, "affected", affected);
        if (json_object_array_length(skipped) > 0)
                json_object_object_add(o, "skipped_control_plane", skipped);
        else
                json_object_put(skipped);
        reply(c, req_id, o);
        log_info("%s by %s in mesh %s: %u connections.", kick ? "Kick" : "Disconnect", c->display_name, c->mesh_id, n);
}

static int moderation_submit(Conn *c, const Frame *f, int op);

void moderation_handle_kick(Conn *c, const Frame *f, bool kick) {
        ProtocolError e;
        KickRequest k;

        if (pool_on(c->server)) {
                (void) moderation_submit(c, f, kick ? FRAME_KICK : FRAME_DISCONNECT);
                return;
        }
        if (!require_admin(c, f, kick ? "kick" : "disconnect"))
                return;
        if (kick_request_parse(f, &k, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        kick_act(c, f->req_id, kick, &k);
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

static bool report_lookup(Conn *c, const char *req_id, int r, const char *target, const char *what) {
        char message[300];

        if (r == 1)
                return true;
        if (r == 0) {
                snprintf(message, sizeof message, "%s \"%.200s\" not found", what, target);
                (void) conn_send_error(c, "not_found", message, req_id);
        } else if (r == -ENOTUNIQ) {
                snprintf(message, sizeof message, "\"%.200s\" names several members; give the pubkey", target);
                (void) conn_send_error(c, "ambiguous", message, req_id);
        } else
                (void) conn_send_error(c, "internal", DB_ERROR, req_id);
        return false;
}

/* The member named, found (lookup is find_member()'s answer) and, for a ban, revoked
 * (revoked: 1 done, 0 not attempted yet, negative errno): closes its connections and
 * replies. */
static void ban_act(Conn *c, const char *req_id, bool ban, int lookup, const Target *t, const char *target,
                    int revoked) {
        unsigned n = 0;

        if (!report_lookup(c, req_id, lookup, target, ban ? "peer" : "no banned peer"))
                return;
        if (ban && streq(t->id, c->member_id)) {
                (void) conn_send_error(c, "invalid", "cannot ban yourself", req_id);
                return;
        }
        if (revoked == 0)
                revoked = set_revoked(c, t->id, ban) < 0 ? -EIO : 1;
        if (revoked < 0) {
                (void) conn_send_error(c, "internal", DB_ERROR, req_id);
                return;
        }
        if (ban) {
                for (Conn *p = c->server->conns; p; p = p->next)
                        if (conn_is_live(p) && streq(p->mesh_id, c->mesh_id) && streq(p->member_pubkey, t->pubkey)) {
                                p->evicted = true;
                                conn_close(p, 4002, "banned");
                                n++;
                        }
                log_event(LOG_NOTICE, CM_MESSAGE_BROKER_BAN,
                          LOG_FIELDS({ "CLAUDEMESH_MESH_ID", c->mesh_id }, { "CLAUDEMESH_ACTOR", c->display_name },
                                     { "CLAUDEMESH_TARGET", t->name }, { "CLAUDEMESH_TARGET_PUBKEY", t->pubkey }),
                          "%s banned member %s (%s) from mesh %s; %u connections closed.", c->display_name, t->name,
                          t->pubkey, c->mesh_id, n);
        } else
                log_event(LOG_NOTICE, CM_MESSAGE_BROKER_UNBAN,
                          LOG_FIELDS({ "CLAUDEMESH_MESH_ID", c->mesh_id }, { "CLAUDEMESH_ACTOR", c->display_name },
                                     { "CLAUDEMESH_TARGET", t->name }, { "CLAUDEMESH_TARGET_PUBKEY", t->pubkey }),
                          "%s unbanned member %s (%s) in mesh %s.", c->display_name, t->name, t->pubkey, c->mesh_id);

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "type", json_object_new_string(ban ? "ban_ack" : "unban_ack"));
        json_object_object_add(o, ban ? "banned" : "unbanned", json_object_new_string(t->name));
        reply(c, req_id, o);
}

static void ban_or_unban(Conn *c, const Frame *f, bool ban) {
        _cleanup_(target_done) Target t = { .name = NULL };
        ProtocolError e;
        const char *target;

        if (!require_admin(c, f, ban ? "ban" : "unban"))
                return;
        if (ban_request_parse(f, &target, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        ban_act(c, f->req_id, ban, find_member(c, target, !ban, &t), &t, target, 0);
}

void moderation_handle_ban(Conn *c, const Frame *f) {
        if (pool_on(c->server))
                (void) moderation_submit(c, f, FRAME_BAN);
        else
                ban_or_unban(c, f, true);
}

void moderation_handle_unban(Conn *c, const Frame *f) {
        if (pool_on(c->server))
                (void) moderation_submit(c, f, FRAME_UNBAN);
        else
                ban_or_unban(c, f, false);
}

static void add_ban(json_object *bans, const char *name, const char *pubkey, int64_t revoked_at) {
        json_object *b = json_object_new_object();
        char at[ISO8601_MAX];

        if (!b)
                return;
        if (format_iso8601((usec_t) revoked_at * USEC_PER_MSEC, at) < 0)
                at[0] = '\0';
        json_object_object_add(b, "name", json_object_new_string(strempty(name)));
        json_object_object_add(b, "pubkey", json_object_new_string(strempty(pubkey)));
        json_object_object_add(b, "revokedAt", json_object_new_string(at));
        json_object_array_add(bans, b);
}

/*
 * PostgreSQL: each frame is one statement in flight, the admin check with what the frame
 * does (the ban's lookup and revocation in one), answered from its callback while c's later
 * frames wait, so replies keep their order. A frame that does not parse still asks whether
 * its sender is an admin: a non-admin is told "forbidden" first, as on SQLite.
 */
typedef struct ModJob {
        ConnRef conn;
        int op;                          /* FRAME_KICK, _DISCONNECT, _BAN, _UNBAN, _LIST_BANS */
        json_object *root;               /* req_id, target and the kick's strings point into it */
        const char *req_id;
        const char *target;
        KickRequest kick;
        ProtocolError error;
        bool parsed;
} ModJob;

static const char *op_verb(int op) {
        return op == FRAME_KICK ? "kick" : op == FRAME_DISCONNECT ? "disconnect" : op == FRAME_BAN ? "ban" :
               op == FRAME_UNBAN ? "unban" : "list bans";
}

static void moderation_done(int r, StoreResult *res, void *userdata) {
        ModJob *j = userdata;
        Conn *c = conn_ref_get(&j->conn);

        if (!c || c->closing)
                goto done;
        if (r >= 0 && store_result_rows(res) < 1)
                r = -EPROTO;
        if (!admin_answer(c, j->req_id, r < 0 ? r : store_result_int64(res, 0, 0) != 0, op_verb(j->op)))
                goto done;
        if (!j->parsed) {
                (void) conn_send_error(c, j->error.code, j->error.message, j->req_id);
                goto done;
        }
        switch (j->op) {
        case FRAME_KICK:
        case FRAME_DISCONNECT:
                kick_act(c, j->req_id, j->op == FRAME_KICK, &j->kick);
                break;
        case FRAME_BAN:
        case FRAME_UNBAN: {
                int64_t n = store_result_int64(res, 0, 1);
                _cleanup_(target_done) Target t = { .name = NULL };
                int lookup = n > 1 ? -ENOTUNIQ : (int) n;
                if (lookup == 1) {
                        snprintf(t.id, sizeof t.id, "%s", strempty(store_result_text(res, 0, 2)));
                        snprintf(t.pubkey, sizeof t.pubkey, "%s", strempty(store_result_text(res, 0, 3)));
                        t.name = strdup(strempty(store_result_text(res, 0, 4)));
                        if (!t.name)
                                lookup = -ENOMEM;
                }
                /* The statement revoked (or restored) exactly when the checks above pass. */
                ban_act(c, j->req_id, j->op == FRAME_BAN, lookup, &t, j->target,
                        store_result_int64(res, 0, 5) == 1 ? 1 : -EIO);
                break;
        }
        default: {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                json_object *bans = json_object_new_array();
                if (!o || !bans) {
                        json_object_put(bans);
                        break;
                }
                json_object_object_add(o, "type", json_object_new_string("list_bans_result"));
                json_object_object_add(o, "bans", bans);
                for (int i = 0; i < store_result_rows(res); i++)
                        if (store_result_text(res, i, 1))
                                add_ban(bans, store_result_text(res, i, 1), store_result_text(res, i, 2),
                                        store_result_int64(res, i, 3));
                reply(c, j->req_id, o);
                break;
        }
        }
done:
        if (c)
                conn_barrier_end(c);
        json_object_put(j->root);
        free(j);
}

#define ADMIN_CTE "WITH adm AS (SELECT COALESCE(bool_or(role = 'admin' AND revoked_at IS NULL), false) AS ok" \
                  "             FROM member WHERE id = ?1)"

static int moderation_submit(Conn *c, const Frame *f, int op) {
        ModJob *j = calloc(1, sizeof *j);
        char now[24];
        int r;

        if (!j) {
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return -ENOMEM;
        }
        *j = (ModJob) { .conn = conn_ref(c), .op = op, .root = json_object_get(f->root),
                        .req_id = f->req_id };
        if (op == FRAME_KICK || op == FRAME_DISCONNECT)
                j->parsed = kick_request_parse(f, &j->kick, &j->error) >= 0;
        else if (op == FRAME_BAN || op == FRAME_UNBAN)
                j->parsed = ban_request_parse(f, &j->target, &j->error) >= 0;
        else
                j->parsed = true;

        if (!j->parsed || op == FRAME_KICK || op == FRAME_DISCONNECT) {
                const char *values[] = { c->member_id };
                r = pool_submit(c->server, 0, ADMIN_CTE " SELECT ok::int FROM adm", ELEMENTSOF(values), values,
                                moderation_done, j);
        } else if (op == FRAME_BAN || op == FRAME_UNBAN) {
                bool ban = op == FRAME_BAN;
                snprintf(now, sizeof now, "%" PRId64, now_ms());
                const char *values[] = { c->member_id, c->mesh_id, j->target, ban ? "0" : "1", ban ? now : NULL,
                                         ban ? "1" : "0" };
                /* find_member() and set_revoked(), revoking only what the callback reports as
                 * done: an admin, one member, not oneself for a ban. */
                r = pool_submit(c->server, 0,
                                ADMIN_CTE ","
                                " t AS (SELECT id, peer_pubkey, display_name FROM member"
                                "        WHERE mesh_id = ?2 AND (CASE WHEN revoked_at IS NULL THEN 0 ELSE 1 END) = ?4::int"
                                "          AND (display_name = ?3 OR peer_pubkey = ?3"
                                "               OR (?4::int = 0 AND substr(peer_pubkey, 1, length(?3)) = ?3))"
                                "        LIMIT 2),"
                                " upd AS (UPDATE member SET revoked_at = ?5::bigint"
                                "          WHERE id IN (SELECT id FROM t) AND (SELECT ok FROM adm)"
                                "            AND (SELECT count(*) FROM t) = 1 AND NOT (?6::int = 1 AND id = ?1)"
                                "          RETURNING 1)"
                                " SELECT (SELECT ok FROM adm)::int, (SELECT count(*) FROM t), f.id, f.peer_pubkey,"
                                "        f.display_name, (SELECT count(*) FROM upd)"
                                "   FROM (SELECT 1) one LEFT JOIN (SELECT * FROM t LIMIT 1) f ON true",
                                ELEMENTSOF(values), values, moderation_done, j);
        } else {
                const char *values[] = { c->member_id, c->mesh_id };
                r = pool_submit(c->server, 0,
                                ADMIN_CTE
                                " SELECT (SELECT ok FROM adm)::int, m.display_name, m.peer_pubkey, m.revoked_at"
                                "   FROM (SELECT 1) one LEFT JOIN (SELECT display_name, peer_pubkey, revoked_at, id"
                                "     FROM member WHERE mesh_id = ?2 AND revoked_at IS NOT NULL) m ON (SELECT ok FROM adm)"
                                "  ORDER BY m.revoked_at, m.id",
                                ELEMENTSOF(values), values, moderation_done, j);
        }
        if (r < 0) {
                json_object_put(j->root);
                free(j);
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return r;
        }
        conn_barrier_begin(c);
        return 0;
}

void moderation_handle_list_bans(Conn *c, const Frame *f) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *bans;
        int rc;

        if (pool_on(c->server)) {
                (void) moderation_submit(c, f, FRAME_LIST_BANS);
                return;
        }
        o = json_object_new_object();
        bans = json_object_new_array();
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
        while ((rc = store_step(st)) == STORE_ROW)
                add_ban(bans, store_col_text(st, 0), store_col_text(st, 1), store_col_int64(st, 2));
        store_reset(st);
        if (rc != STORE_DONE) {
                (void) conn_send_error(c, "internal", DB_ERROR, f->req_id);
                return;
        }
        reply(c, f->req_id, o);
}
