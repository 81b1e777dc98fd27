/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "hex-util.h"
#include "hello.h"
#include "log.h"
#include "nodes.h"
#include "pool.h"
#include "presence.h"
#include "time-util.h"

/* Returns -EACCES so the handler can `return reject(...)`. */
static int reject(Conn *c, const char *code, const char *message, int close_code, const char *close_reason) {
        log_debug("Hello from connection %llu rejected: %s", (unsigned long long) c->serial, code);
        (void) conn_send_error(c, code, message, NULL);
        conn_close(c, close_code, close_reason);
        return -EACCES;
}

/* A signed hello stays valid for its ±60 s skew window, and plain ws:// lets anyone on the
 * path capture it. Every verified signature is remembered until its timestamp has left the
 * window (HELLO_SKEW_MS after it, plus a margin: at most ~125 s), and a second use is refused.
 * The set is bounded: at HELLO_SEEN_MAX, the entry closest to expiry is forgotten, so only a
 * member signing hellos faster than HELLO_SEEN_MAX per two minutes could make its own old
 * hellos replayable again. */
#define HELLO_SEEN_MAX 65536
#define HELLO_SEEN_MARGIN_MS 5000

int hello_init(Store *s) {
        /* PostgreSQL's schema holds it, shared by every node: a hello used on one node is
         * used on all. */
        if (store_engine(s) == STORE_POSTGRESQL)
                return 0;
        return store_exec(s,
                          "CREATE TEMP TABLE hello_seen ("
                          "  signature BLOB PRIMARY KEY, expires_at INTEGER NOT NULL) WITHOUT ROWID;"
                          "CREATE INDEX temp.hello_seen_expires ON hello_seen(expires_at);");
}

static int seen_exec(Store *s, StoreStmt *st, int *ret_changes) {
        int r = store_step_done(s, st);
        if (r >= 0 && ret_changes)
                *ret_changes = store_changes(s);
        return r;
}

/* hello_seen_n counts this node's rows; on PostgreSQL the table is shared and a DELETE
 * also removes other nodes' rows, so the count stops at zero. */
static void seen_forget(Server *s, int n) {
        s->hello_seen_n = (size_t) n >= s->hello_seen_n ? 0 : s->hello_seen_n - (size_t) n;
}

/* 1 when the signature is new (now remembered), 0 when it was used before, negative errno. */
static int hello_claim_signature(Server *s, const char *signature, int64_t timestamp, int64_t now) {
        uint8_t sig[crypto_sign_BYTES];
        StoreStmt *st;
        int n = 0, r;

        if (hex_decode(signature, sig, sizeof sig) < 0)
                return -EINVAL;     /* the verifier has decoded it already */

        st = store_stmt(s->store, "DELETE FROM temp.hello_seen WHERE expires_at < ?1");
        if (!st)
                return -EIO;
        store_bind_int64(st, 1, now);
        r = seen_exec(s->store, st, &n);
        if (r < 0)
                return r;
        seen_forget(s, n);

        st = store_stmt(s->store, "INSERT INTO temp.hello_seen (signature, expires_at) VALUES (?1, ?2)"
                                  " ON CONFLICT (signature) DO NOTHING");
        if (!st)
                return -EIO;
        store_bind_blob(st, 1, sig, sizeof sig);
        store_bind_int64(st, 2, timestamp + HELLO_SKEW_MS + HELLO_SEEN_MARGIN_MS);
        r = seen_exec(s->store, st, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return 0;
        if (++s->hello_seen_n <= HELLO_SEEN_MAX)
                return 1;

        st = store_stmt(s->store, "DELETE FROM temp.hello_seen WHERE signature ="
                                  " (SELECT signature FROM temp.hello_seen ORDER BY expires_at LIMIT 1)");
        if (!st)
                return -EIO;
        r = seen_exec(s->store, st, &n);
        if (r < 0)
                return r;
        seen_forget(s, n);
        if (!s->hello_seen_warned) {
                log_warning("Over %d signed hellos within two minutes; forgetting the oldest to stay bounded.",
                            HELLO_SEEN_MAX);
                s->hello_seen_warned = true;
        }
        return 1;
}

static size_t connections_in_mesh(Server *s, const char *mesh_id) {
        size_t n = 0;

        for (Conn *p = s->conns; p; p = p->next)
                if (conn_is_live(p) && streq(p->mesh_id, mesh_id))
                        n++;
        return n;
}

typedef struct MemberRow {
        char *id;
        char *display_name;
        char *mesh_name;
        bool revoked;
} MemberRow;

static void member_row_done(MemberRow *m) {
        free(m->id);
        free(m->display_name);
        free(m->mesh_name);
}

/* 1 = found, 0 = no such member, negative errno on failure. The key is compared exactly,
 * as upstream does: uppercase hex does not match a lowercase row. */
static int member_lookup(Store *s, const char *mesh_id, const char *pubkey, MemberRow *ret) {
        StoreStmt *st = store_stmt(s,
                "SELECT m.id, m.display_name, m.revoked_at IS NOT NULL, mesh.name"
                "  FROM member m JOIN mesh ON mesh.id = m.mesh_id"
                " WHERE m.mesh_id = ?1 AND m.peer_pubkey = ?2");
        int r = 0;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, pubkey);
        int rc = store_step(st);
        if (rc == STORE_ROW) {
                *ret = (MemberRow) {
                        .id = strdup(store_col_text(st, 0)),
                        .display_name = strdup(store_col_text(st, 1)),
                        .revoked = store_col_int(st, 2) != 0,
                        .mesh_name = strdup(store_col_text(st, 3)),
                };
                r = ret->id && ret->display_name && ret->mesh_name ? 1 : -ENOMEM;
        } else if (rc != STORE_DONE)
                r = rc;
        store_reset(st);
        return r;
}

/* The hello's sessionPubkey is not signed, so it must not let one member take over keys that
 * route another member's messages: a session key another member has used, or another
 * member's own key. 1 = taken by someone else. */
static int session_key_taken(Store *s, const char *mesh_id, const char *member_id, const char *key) {
        StoreStmt *st = store_stmt(s,
                "SELECT 1 FROM session WHERE mesh_id = ?1 AND session_pubkey = ?2 AND member_id != ?3"
                " UNION ALL "
                "SELECT 1 FROM member WHERE mesh_id = ?1 AND peer_pubkey = ?2 AND id != ?3 LIMIT 1");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, key);
        store_bind_text(st, 3, member_id);
        int rc = store_step(st);
        store_reset(st);
        return rc == STORE_ROW ? 1 : rc == STORE_DONE ? 0 : rc;
}

static int remember_session(Conn *c) {
        Store *s = c->server->store;
        StoreStmt *st;

        if (!c->session_pubkey[0])
                return 0;
        /* Known session keys stay addressable while offline, so DMs to them are stored. */
        st = store_stmt(s, "INSERT INTO session (mesh_id, session_pubkey, member_id, last_seen_at)"
                           " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (mesh_id, session_pubkey)"
                           " DO UPDATE SET member_id = excluded.member_id, last_seen_at = excluded.last_seen_at");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, c->session_pubkey);
        store_bind_text(st, 3, c->member_id);
        store_bind_int64(st, 4, c->connected_at_ms);
        return store_step_done(s, st);
}

static char *strdup_or_null(const char *s) {
        return s ? strdup(s) : NULL;
}

static int adopt_identity(Conn *c, const HelloRequest *h, MemberRow *m) {
        c->mesh_id = strdup(h->mesh_id);
        c->member_id = TAKE_PTR(m->id);
        c->display_name = strdup(h->display_name && *h->display_name ? h->display_name : m->display_name);
        /* Upstream requires sessionId, pid and cwd (NOT NULL columns, a thrown insert); this
         * broker fills in neutral values instead of failing the handshake silently. */
        c->session_id = h->session_id ? strdup(h->session_id) : strdup(c->presence_id);
        c->cwd = strdup(h->cwd ? h->cwd : "");
        c->hostname = strdup_or_null(h->hostname);
        c->peer_type = strdup_or_null(h->peer_type);
        c->channel = strdup_or_null(h->channel);
        c->model = strdup_or_null(h->model);
        c->groups = h->groups ? json_object_get(h->groups) : json_object_new_array();
        snprintf(c->member_pubkey, sizeof c->member_pubkey, "%s", h->pubkey);
        snprintf(c->session_pubkey, sizeof c->session_pubkey, "%s", strempty(h->session_pubkey));
        snprintf(c->status, sizeof c->status, "idle");
        c->visible = true;
        c->ack_aware = h->capability_client_ack && !c->server->opts.legacy;
        c->peer_updates = h->capability_peer_updated;
        c->connected_at_ms = now_ms();
        if (!c->mesh_id || !c->display_name || !c->session_id || !c->cwd || !c->groups ||
            (h->hostname && !c->hostname) || (h->peer_type && !c->peer_type) ||
            (h->channel && !c->channel) || (h->model && !c->model))
                return -ENOMEM;
        return 0;
}

/* Newest hello wins: an older live control-plane connection of the same member with the same
 * sessionId or the same session pubkey is closed with 1000 "session_replaced". Upstream
 * matches the sessionId across members too, which lets any member (peers_list shows
 * sessionIds) kick any other; here a member can only replace itself. Returns how many were
 * replaced. */
static unsigned replace_older(Conn *c) {
        unsigned n = 0;

        for (Conn *p = c->server->conns; p; p = p->next) {
                if (p == c || !conn_is_live(p) || p->is_session || !streq(p->mesh_id, c->mesh_id) ||
                    !streq(p->member_pubkey, c->member_pubkey))
                        continue;
                if (!streq(p->session_id, c->session_id) &&
                    !(c->session_pubkey[0] && streq(p->session_pubkey, c->session_pubkey)))
                        continue;
                log_info("Session %s in mesh %s replaced by a newer connection.", p->session_id, p->mesh_id);
                p->replaced = true;
                conn_close(p, 1000, "session_replaced");
                n++;
        }
        return n;
}

/* One presence per session key: a live session connection with the same key, or of the same
 * parent member with the same sessionId, hands its presence (id, connection time, status,
 * summary, profile, visibility) to c and is closed with 1000 "session_replaced". */
static bool take_over_session(Conn *c) {
        for (Conn *p = c->server->conns; p; p = p->next) {
                if (p == c || !conn_is_live(p) || !p->is_session || !streq(p->mesh_id, c->mesh_id))
                        continue;
                if (!streq(p->session_pubkey, c->session_pubkey) &&
                    !(streq(p->member_pubkey, c->member_pubkey) && streq(p->session_id, c->session_id)))
                        continue;
                memcpy(c->presence_id, p->presence_id, sizeof c->presence_id);
                c->connected_at_ms = p->connected_at_ms;
                memcpy(c->status, p->status, sizeof c->status);
                c->visible = p->visible;
                free(c->summary);
                c->summary = TAKE_PTR(p->summary);
                json_object_put(c->profile);
                c->profile = TAKE_PTR(p->profile);
                log_info("Session %s (%s) in mesh %s replaced by a newer connection.", p->session_id,
                         p->session_pubkey, p->mesh_id);
                p->replaced = true;
                conn_close(p, 1000, "session_replaced");
                return true;
        }
        return false;
}

static json_object *features_new(const BrokerOptions *o) {
        json_object *f = json_object_new_object(), *dedupe, *ack, *payload;

        dedupe = json_object_new_object();
        json_object_object_add(dedupe, "version", json_object_new_int(1));
        json_object_object_add(dedupe, "mode", json_object_new_string("retention_scoped"));
        json_object_object_add(dedupe, "dedupe_retention_days", json_object_new_int((int) o->dedupe_retention_days));
        json_object_object_add(dedupe, "request_fingerprint", json_object_new_boolean(true));
        json_object_object_add(f, "client_message_id_dedupe", dedupe);

        ack = json_object_new_object();
        json_object_object_add(ack, "version", json_object_new_int(1));
        json_object_object_add(ack, "lease_seconds", json_object_new_int((int) o->lease_seconds));
        json_object_object_add(f, "client_ack", ack);

        payload = json_object_new_object();
        json_object_object_add(payload, "version", json_object_new_int(1));
        json_object_object_add(payload, "inline_bytes", json_object_new_int(FRAME_MAX_BYTES));
        json_object_object_add(f, "max_payload", payload);
        return f;
}

/* Upstream's default policy: a member may edit all of its own profile. */
static json_object *mesh_policy_new(void) {
        json_object *p = json_object_new_object(), *e = json_object_new_object();
        static const char *const fields[] = { "groups", "roleTag", "displayName", "messageMode" };

        if (!p || !e) {
                json_object_put(p);
                json_object_put(e);
                return NULL;
        }
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                json_object_object_add(e, fields[i], json_object_new_boolean(true));
        json_object_object_add(p, "selfEditable", e);
        return p;
}

/* A reattached session's ack has no memberProfile, as upstream's; a session's has no services. */
static int send_hello_ack(Conn *c, bool reattached) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *profile = json_object_new_object();

        if (!o || !profile) {
                json_object_put(profile);
                return -ENOMEM;
        }
        json_object_object_add(profile, "roleTag", NULL);
        json_object_object_add(profile, "groups", json_object_get(c->groups));
        json_object_object_add(profile, "messageMode", json_object_new_string("push"));

        json_object_object_add(o, "type", json_object_new_string("hello_ack"));
        json_object_object_add(o, "presenceId", json_object_new_string(c->presence_id));
        json_object_object_add(o, "memberDisplayName", json_object_new_string(c->display_name));
        if (c->is_session && reattached)
                json_object_put(profile);
        else
                json_object_object_add(o, "memberProfile", profile);
        json_object_object_add(o, "meshPolicy", mesh_policy_new());
        if (!c->is_session)
                json_object_object_add(o, "services", json_object_new_array());
        if (!c->server->opts.legacy)
                json_object_object_add(o, "features", features_new(&c->server->opts));
        return conn_send(c, o);
}

/* What a hello's checks found in the database, in the order they answer. */
typedef struct HelloCheck {
        int claimed;                     /* 1 new signature, 0 replayed, negative errno */
        int found;                       /* member: 1, 0 none, negative errno */
        MemberRow member;
        int key_taken;                   /* session_key_taken() */
        int acked_before;                /* -1: ask delivery_acked_before() */
        bool remote;                     /* a live connection of another node is replaced */
        json_object *remote_peer;        /* its peers_list entry, for a session's details */
        int64_t remote_connected_at;
} HelloCheck;

static void hello_check_done(HelloCheck *k) {
        member_row_done(&k->member);
        json_object_put(k->remote_peer);
}

/* A hello whose checks are in flight (PostgreSQL); h points into root. */
typedef struct HelloJob {
        ConnRef conn;
        json_object *root;
        HelloRequest h;
        const char *parent_member_id;    /* session_hello's, or NULL */
} HelloJob;

static HelloJob *hello_job_free(HelloJob *j) {
        if (j) {
                json_object_put(j->root);
                free(j);
        }
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(HelloJob *, hello_job_free);

static int admit(Conn *c, const HelloRequest *h, HelloCheck *k);

/* The checks after the signatures, in upstream's order; the first failure answers. */
static int decide(Conn *c, const HelloRequest *h, const char *parent_member_id, HelloCheck *k) {
        const char *what = c->is_session ? "session_hello" : "hello";
        char message[256];

        if (k->claimed < 0) {
                log_warning_errno(k->claimed, "Cannot record a %s signature: %m", what);
                return reject(c, "internal", "broker database error, retry later", 1011, "internal");
        }
        if (k->claimed == 0) {
                log_notice("Connection %llu replayed an already used %s of %s; refused.",
                           (unsigned long long) c->serial, what, c->is_session ? h->session_pubkey : h->member_id);
                snprintf(message, sizeof message, "%s rejected: replayed (this signed hello was already used)", what);
                return reject(c, "replayed", message, 1008, "replayed");
        }
        if (k->found < 0) {
                log_warning_errno(k->found, "Member lookup failed: %m");
                return reject(c, "internal", "broker database error, retry later", 1011, "internal");
        }
        if (k->found > 0 && k->member.revoked) {
                snprintf(message, sizeof message,
                         "You've been removed from \"%s\". Contact the mesh owner to rejoin.", k->member.mesh_name);
                return reject(c, "revoked", message, 4002, "banned");
        }
        if (k->found == 0)
                return reject(c, "unauthorized",
                              c->is_session ? "parent pubkey not found in mesh" : "pubkey not found in mesh", 1008,
                              "unauthorized");
        if (parent_member_id && !streq(parent_member_id, k->member.id))
                return reject(c, "parent_member_id_mismatch", "parentMemberId does not match parentMemberPubkey",
                              1008, "parent_member_id_mismatch");
        /* Ours: the session's signature proves it holds the key, but a key another member's
         * sessions (or the member itself) route by stays theirs. */
        if (h->session_pubkey && k->key_taken < 0)
                return reject(c, "internal", "broker database error, retry later", 1011, "internal");
        if (h->session_pubkey && k->key_taken > 0)
                return reject(c, "session_pubkey_in_use", "sessionPubkey belongs to another member of this mesh",
                              1008, "session_pubkey_in_use");
        /* Others may have been admitted while the checks were in flight. */
        if (connections_in_mesh(c->server, h->mesh_id) >= c->server->opts.max_connections_per_mesh)
                return reject(c, "capacity", "mesh at connection capacity", 1008, "capacity");
        return admit(c, h, k);
}

/* One statement: the replay claim, the member, the session key's owner, the ack history and
 * a connection of another node this hello replaces (nodes.c's rules, over the presence
 * rows), so the loop waits for none of it. */
static const char hello_check_sql[] =
        "WITH gone AS (DELETE FROM hello_seen WHERE expires_at < ?1 RETURNING 1),"
        " claim AS (INSERT INTO hello_seen (signature, expires_at) VALUES (?2, ?3)"
        "           ON CONFLICT (signature) DO NOTHING RETURNING 1)"
        " SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM claim),"
        "        m.id, m.display_name, (m.revoked_at IS NOT NULL)::int, mesh.name,"
        "        (?6::text IS NOT NULL AND m.id IS NOT NULL AND EXISTS ("
        "           SELECT 1 FROM session se WHERE se.mesh_id = ?4 AND se.session_pubkey = ?6 AND se.member_id <> m.id"
        "           UNION ALL SELECT 1 FROM member o WHERE o.mesh_id = ?4 AND o.peer_pubkey = ?6 AND o.id <> m.id))::int,"
        "        EXISTS (SELECT 1 FROM ack_seen a WHERE a.mesh_id = ?4 AND a.pubkey = ?7)::int,"
        "        t.peer, t.connected_at"
        "   FROM (SELECT 1) one"
        "   LEFT JOIN (member m JOIN mesh ON mesh.id = m.mesh_id) ON m.mesh_id = ?4 AND m.peer_pubkey = ?5"
        "   LEFT JOIN LATERAL (SELECT p.peer, p.connected_at FROM presence p"
        "      WHERE p.mesh_id = ?4 AND p.node_id <> ?8 AND p.peer::json->>'peerRole' = ?9"
        "        AND ((?9 = 'session' AND p.routing_key = ?10)"
        "             OR (p.member_pubkey = ?5 AND (p.peer::json->>'sessionId' = ?11 OR (?10 <> '' AND p.routing_key = ?10))))"
        "      ORDER BY p.connected_at LIMIT 1) t ON true";

static void hello_checked(int r, StoreResult *res, void *userdata) {
        _cleanup_(hello_job_freep) HelloJob *j = userdata;
        _cleanup_(hello_check_done) HelloCheck k = { .acked_before = 0 };
        Server *s = j->conn.server;
        Conn *c = conn_ref_get(&j->conn);

        if (r >= 0 && store_result_rows(res) != 1)
                r = -EPROTO;
        if (r < 0) {
                k.claimed = r;
        } else {
                seen_forget(s, (int) store_result_int64(res, 0, 0));
                k.claimed = store_result_int64(res, 0, 1) > 0;
                if (k.claimed && ++s->hello_seen_n > HELLO_SEEN_MAX) {
                        if (pool_submit(s, 0, "DELETE FROM hello_seen WHERE signature ="
                                              " (SELECT signature FROM hello_seen ORDER BY expires_at LIMIT 1)",
                                        0, NULL, NULL, NULL) >= 0)
                                seen_forget(s, 1);
                        if (!s->hello_seen_warned) {
                                log_warning("Over %d signed hellos within two minutes; forgetting the oldest to stay bounded.",
                                            HELLO_SEEN_MAX);
                                s->hello_seen_warned = true;
                        }
                }
                k.found = store_result_text(res, 0, 2) != NULL;
                if (k.found) {
                        k.member = (MemberRow) {
                                .id = strdup(store_result_text(res, 0, 2)),
                                .display_name = strdup(strempty(store_result_text(res, 0, 3))),
                                .revoked = store_result_int64(res, 0, 4) != 0,
                                .mesh_name = strdup(strempty(store_result_text(res, 0, 5))),
                        };
                        if (!k.member.id || !k.member.display_name || !k.member.mesh_name)
                                k.found = -ENOMEM;
                }
                k.key_taken = store_result_int64(res, 0, 6) != 0;
                k.acked_before = store_result_int64(res, 0, 7) != 0;
                k.remote = store_result_text(res, 0, 8) != NULL;
                if (k.remote) {
                        k.remote_peer = json_tokener_parse(store_result_text(res, 0, 8));
                        k.remote_connected_at = store_result_int64(res, 0, 9);
                }
        }
        if (!c)
                return;
        if (!c->closing)
                (void) decide(c, &j->h, j->parent_member_id, &k);
        /* Last: the frames that waited behind the hello run now. */
        conn_barrier_end(c);
}

static int check_async(Conn *c, const Frame *f, const HelloRequest *h, const char *parent_member_id) {
        Server *s = c->server;
        _cleanup_(hello_job_freep) HelloJob *j = calloc(1, sizeof *j);
        uint8_t sig[crypto_sign_BYTES];
        char sig_hex[2 + 2 * crypto_sign_BYTES + 1], now[24], expires[24];
        int64_t t = now_ms();
        int r;

        if (!j)
                return -ENOMEM;
        if (hex_decode(h->signature, sig, sizeof sig) < 0)
                return -EINVAL;     /* the verifier has decoded it already */
        sig_hex[0] = '\\';
        sig_hex[1] = 'x';
        hex_encode(sig, sizeof sig, sig_hex + 2);
        *j = (HelloJob) {
                .conn = conn_ref(c),
                .root = json_object_get(f->root),
                .h = *h,
                .parent_member_id = parent_member_id,
        };
        snprintf(now, sizeof now, "%" PRId64, t);
        snprintf(expires, sizeof expires, "%" PRId64, h->timestamp + HELLO_SKEW_MS + HELLO_SEEN_MARGIN_MS);
        /* adopt_identity()'s sessionId: the hello's, else the presence id it gets. */
        broker_id_generate(c->presence_id);
        const char *values[] = {
                now, sig_hex, expires, h->mesh_id, h->pubkey, h->session_pubkey,
                h->session_pubkey ? h->session_pubkey : h->pubkey, s->node_id,
                c->is_session ? "session" : "control-plane", strempty(h->session_pubkey),
                h->session_id ? h->session_id : c->presence_id,
        };
        r = pool_submit(s, pool_lane_for(s, h->pubkey), hello_check_sql, ELEMENTSOF(values), values, hello_checked, j);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        conn_barrier_begin(c);
        return 0;
}

/* The database checks: one statement in flight on PostgreSQL, else here and now. */
static int check(Conn *c, const Frame *f, const HelloRequest *h, const char *parent_member_id) {
        Server *s = c->server;
        _cleanup_(hello_check_done) HelloCheck k = { .acked_before = -1 };

        if (pool_on(s)) {
                int r = check_async(c, f, h, parent_member_id);
                if (r < 0) {
                        log_warning_errno(r, "Cannot send a hello's checks to the database: %m");
                        return reject(c, "internal", "broker database error, retry later", 1011, "internal");
                }
                return 0;
        }
        broker_id_generate(c->presence_id);
        k.claimed = hello_claim_signature(s, h->signature, h->timestamp, now_ms());
        if (k.claimed > 0)
                k.found = member_lookup(s->store, h->mesh_id, h->pubkey, &k.member);
        if (k.claimed > 0 && k.found > 0 && !k.member.revoked && h->session_pubkey &&
            (!parent_member_id || streq(parent_member_id, k.member.id)))
                k.key_taken = session_key_taken(s->store, h->mesh_id, k.member.id, h->session_pubkey);
        return decide(c, h, parent_member_id, &k);
}

int hello_handle(Conn *c, const Frame *f) {
        Server *s = c->server;
        char message[256];
        HelloRequest h;
        const char *why;

        if (c->hello_done)
                return conn_send_error(c, "already_hello", "hello already accepted on this connection", f->req_id);
        hello_request_parse(f, &h);

        if (h.session_pubkey_invalid)
                return reject(c, "bad_session_pubkey", "sessionPubkey must be 64 lowercase hex chars",
                              1008, "bad_session_pubkey");

        if (h.mesh_id && connections_in_mesh(s, h.mesh_id) >= s->opts.max_connections_per_mesh)
                return reject(c, "capacity", "mesh at connection capacity", 1008, "capacity");

        why = hello_verify(&h, now_ms());
        if (why) {
                snprintf(message, sizeof message, "hello rejected: %s", why);
                return reject(c, why, message, 1008, why);
        }
        return check(c, f, &h, NULL);
}

/* The hello passed every check: c becomes a presence (a new one, or the one it resumes). */
static int admit(Conn *c, const HelloRequest *h, HelloCheck *k) {
        Server *s = c->server;
        bool reattached;
        unsigned replaced = 0;

        if (adopt_identity(c, h, &k->member) < 0)
                return reject(c, "internal", "out of memory", 1011, "internal");
        if (!c->ack_aware && !s->opts.legacy)
                c->ack_aware = c->is_session || (k->acked_before >= 0 ? k->acked_before > 0 : delivery_acked_before(c));
        c->hello_done = true;
        gate_authenticated(&s->gate, c->wsi);

        if (c->is_session)
                reattached = take_over_session(c) || presence_reattach(c);
        else {
                replaced = replace_older(c);
                reattached = presence_reattach(c);
        }
        /* The connection it replaces may live on another node: it is closed there, and a
         * session keeps its status, summary, profile and visibility. */
        if (k->remote) {
                if (c->is_session && !reattached)
                        presence_adopt_details(c, k->remote_peer, k->remote_connected_at);
                nodes_take_over(c);
                if (c->is_session)
                        reattached = true;
                else
                        replaced++;
        }
        if (remember_session(c) < 0)
                log_warning("Could not record session %s; DMs to it are stored only while it is online.",
                            c->session_pubkey);

        log_info("Peer %s (%s, %s) %s mesh %s.", c->display_name, conn_routing_key(c),
                 c->is_session ? "session" : "control-plane", reattached ? "reattached to" : "joined", c->mesh_id);
        (void) send_hello_ack(c, reattached);
        nodes_presence_up(c);
        delivery_drain(c);
        if (replaced == 0 && !reattached)
                presence_announce(c, "peer_joined");
        return 0;
}

int session_hello_handle(Conn *c, const Frame *f) {
        Server *s = c->server;
        SessionHelloRequest h;
        char message[256];
        const char *why, *text;

        if (c->hello_done)
                return conn_send_error(c, "already_hello", "hello already accepted on this connection", f->req_id);
        session_hello_request_parse(f, &h);

        /* Upstream's order (wire-protocol-head §2); the first failure answers. */
        why = session_hello_check_shape(&h, &text);
        if (why)
                return reject(c, why, text, 1008, why);

        if (h.common.mesh_id && connections_in_mesh(s, h.common.mesh_id) >= s->opts.max_connections_per_mesh)
                return reject(c, "capacity", "mesh at connection capacity", 1008, "capacity");

        int64_t now = now_ms();
        why = session_attestation_verify(&h, now);
        if (why) {
                snprintf(message, sizeof message, "attestation rejected: %s", why);
                return reject(c, why, message, 1008, why);
        }
        why = session_hello_verify(&h, now);
        if (why) {
                snprintf(message, sizeof message, "session_hello rejected: %s", why);
                return reject(c, why, message, 1008, why);
        }

        /* The parent member is looked up and the session's signature claimed. */
        HelloRequest common = h.common;
        common.pubkey = h.parent_member_pubkey;
        common.signature = h.signature;
        common.session_pubkey = h.session_pubkey;
        c->is_session = true;
        return check(c, f, &common, h.parent_member_id);
}
