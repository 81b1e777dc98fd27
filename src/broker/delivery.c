/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "accept.h"
#include "delivery.h"
#include "log.h"
#include "nodes.h"
#include "pool.h"
#include "time-util.h"

#define DRAIN_BATCH 256

int delivery_init(Server *s) {
        return store_exec(s->store,
                          "CREATE TEMP TABLE lease ("
                          "  message_id TEXT NOT NULL, recipient_pubkey TEXT NOT NULL,"
                          "  conn_serial INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
                          "  PRIMARY KEY (message_id, recipient_pubkey)) WITHOUT ROWID;"
                          "CREATE INDEX temp.lease_conn ON lease(conn_serial);"
                          "CREATE INDEX temp.lease_expires ON lease(expires_at);");
}

json_object *push_frame_new(const char *mesh_id, const PushMessage *m) {
        char created[ISO8601_MAX];
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (format_iso8601((usec_t) m->created_at_ms * USEC_PER_MSEC, created) < 0)
                created[0] = '\0';
        json_object_object_add(o, "type", json_object_new_string("push"));
        json_object_object_add(o, "messageId", json_object_new_string(m->message_id));
        json_object_object_add(o, "meshId", json_object_new_string(mesh_id));
        json_object_object_add(o, "senderPubkey", json_object_new_string(m->sender_pubkey));
        json_object_object_add(o, "senderMemberPubkey", json_object_new_string(m->sender_member_pubkey));
        json_object_object_add(o, "senderMemberId", json_object_new_string(m->sender_member_id));
        json_object_object_add(o, "senderName", json_object_new_string(m->sender_name));
        json_object_object_add(o, "priority", json_object_new_string(m->priority));
        json_object_object_add(o, "nonce", json_object_new_string(m->nonce));
        json_object_object_add(o, "ciphertext", json_object_new_string(m->ciphertext));
        json_object_object_add(o, "createdAt", json_object_new_string(created));
        if (m->topic_name)
                json_object_object_add(o, "topic", json_object_new_string(m->topic_name));
        if (m->reply_to_id)
                json_object_object_add(o, "replyToId", json_object_new_string(m->reply_to_id));
        if (m->client_message_id)
                json_object_object_add(o, "client_message_id", json_object_new_string(m->client_message_id));
        if (m->request_fingerprint) {
                char hex[2 * FINGERPRINT_BYTES + 1];
                hex_encode(m->request_fingerprint, FINGERPRINT_BYTES, hex);
                json_object_object_add(o, "request_fingerprint", json_object_new_string(hex));
        }
        return o;
}

static void arm_lease_timer(Server *s);
static void lease_timer_fired(lws_sorted_usec_list_t *sul);

static const char lease_sql[] =
        "INSERT INTO temp.lease (message_id, recipient_pubkey, conn_serial, expires_at)"
        " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (message_id, recipient_pubkey)"
        " DO UPDATE SET conn_serial = excluded.conn_serial, expires_at = excluded.expires_at";

/* PostgreSQL: the lease is sent on lane 0, whose session holds the table, without waiting.
 * Every lease lasts lease_seconds, so an armed timer is already due no later than this one:
 * the timer is armed from the clock, not from the table. */
/* PostgreSQL: the pushes whose lease (or settling) is still in flight on lane 0. A drain
 * whose query ran before that statement sees the row as owed and unleased: it must not push
 * it again. Keyed by message id and recipient key. */
#define HANDED_BUCKETS 4096

struct Handed {
        Handed *next;
        Server *server;
        char key[BROKER_ID_LEN + PUBKEY_HEX_LEN + 2];
};

static size_t handed_bucket(const char *key) {
        uint32_t h = 2166136261u;

        for (const char *p = key; *p; p++)
                h = (h ^ (uint8_t) *p) * 16777619u;
        return h % HANDED_BUCKETS;
}

static void handed_key(const char *message_id, const char *recipient_key, char ret[static BROKER_ID_LEN + PUBKEY_HEX_LEN + 2]) {
        snprintf(ret, BROKER_ID_LEN + PUBKEY_HEX_LEN + 2, "%s %s", message_id, recipient_key);
}

static bool handed_pending(const Server *s, const char *message_id, const char *recipient_key) {
        char key[BROKER_ID_LEN + PUBKEY_HEX_LEN + 2];

        if (!s->handed)
                return false;
        handed_key(message_id, recipient_key, key);
        for (const Handed *h = s->handed[handed_bucket(key)]; h; h = h->next)
                if (streq(h->key, key))
                        return true;
        return false;
}

static Handed *handed_add(Server *s, const char *message_id, const char *recipient_key) {
        Handed *h;
        size_t b;

        if (!s->handed) {
                s->handed = calloc(HANDED_BUCKETS, sizeof *s->handed);
                if (!s->handed)
                        return NULL;
        }
        h = calloc(1, sizeof *h);
        if (!h)
                return NULL;
        h->server = s;
        handed_key(message_id, recipient_key, h->key);
        b = handed_bucket(h->key);
        h->next = s->handed[b];
        s->handed[b] = h;
        return h;
}

/* The statement's callback: its row's lease (or deletion) is visible to every later query. */
static void handed_done(int r, StoreResult *res, void *userdata) {
        Handed *h = userdata;

        if (r < 0)
                log_warning_errno(r, "Could not lease or settle %s: %m", h->key);
        for (Handed **p = &h->server->handed[handed_bucket(h->key)]; *p; p = &(*p)->next)
                if (*p == h) {
                        *p = h->next;
                        break;
                }
        free(h);
}

/* Sends the statement on lane 0 with its push remembered until it completes. */
static int handed_submit(Server *s, const char *message_id, const char *recipient_key, const char *sql,
                         unsigned n_params, const char *const *values) {
        Handed *h = handed_add(s, message_id, recipient_key);
        int r;

        if (!h)
                return -ENOMEM;
        r = pool_submit(s, 0, sql, n_params, values, handed_done, h);
        if (r < 0)
                handed_done(r, NULL, h);
        return r;
}

static int lease_async(Conn *c, const char *message_id, const char *recipient_key) {
        Server *s = c->server;
        int64_t expires = mono_ms() + (int64_t) s->opts.lease_seconds * 1000;
        char serial[24], expires_text[24];
        int r;

        snprintf(serial, sizeof serial, "%" PRIu64, c->serial);
        snprintf(expires_text, sizeof expires_text, "%" PRId64, expires);
        const char *values[] = { message_id, recipient_key, serial, expires_text };
        r = handed_submit(s, message_id, recipient_key, lease_sql, ELEMENTSOF(values), values);
        if (r < 0)
                return r;
        if (!s->lease_sul_armed) {
                lws_sul_schedule(s->ctx, 0, &s->lease_sul, lease_timer_fired,
                                 (lws_usec_t) ((int64_t) s->opts.lease_seconds * 1000 + 5) * LWS_US_PER_MS);
                s->lease_sul_armed = true;
        }
        return 0;
}

static int lease(Conn *c, const char *message_id, const char *recipient_key) {
        Server *s = c->server;
        if (pool_on(s))
                return lease_async(c, message_id, recipient_key);
        StoreStmt *st = store_stmt(s->store, lease_sql);
        if (!st)
                return -EIO;
        store_bind_text(st, 1, message_id);
        store_bind_text(st, 2, recipient_key);
        store_bind_int64(st, 3, c->serial);
        store_bind_int64(st, 4, mono_ms() + (int64_t) s->opts.lease_seconds * 1000);
        int r = store_step_done(s->store, st);
        if (r >= 0)
                arm_lease_timer(s);
        return r;
}

/* The last delivery row of a message is gone: it is delivered (message_status says when). */
static void mark_delivered_if_done(Store *store, const char *message_id) {
        StoreStmt *st = store_stmt(store,
                "UPDATE message SET delivered_at = ?2 WHERE id = ?1 AND delivered_at IS NULL"
                "   AND NOT EXISTS (SELECT 1 FROM delivery WHERE message_id = ?1)");
        if (!st)
                return;
        store_bind_text(st, 1, message_id);
        store_bind_int64(st, 2, now_ms());
        (void) store_step_done(store, st);
}

static void settle(Server *s, const char *message_id, const char *recipient_key) {
        Store *store = s->store;
        if (pool_on(s)) {
                char now[24];
                snprintf(now, sizeof now, "%" PRId64, now_ms());
                const char *values[] = { message_id, recipient_key, recipient_key, now };
                if (handed_submit(s, message_id, recipient_key, "SELECT cm_settle(?1, ?2, ?3, ?4)", ELEMENTSOF(values),
                                  values) < 0)
                        log_warning("Could not record the delivery of %s.", message_id);
                return;
        }
        StoreStmt *st = store_stmt(store, "DELETE FROM delivery WHERE message_id = ?1 AND recipient_pubkey = ?2");

        if (!st)
                return;
        store_bind_text(st, 1, message_id);
        store_bind_text(st, 2, recipient_key);
        if (store_step_done(store, st) < 0)
                log_warning("Could not record the delivery of %s.", message_id);
        else
                mark_delivered_if_done(store, message_id);
}

/* The push is queued on c: an ack-aware connection holds a lease until it acknowledges; for
 * a client that never acknowledges, handing it over is delivery (upstream 1.22's broker),
 * or it would get the message again on every reconnect. */
static int handed_over(Conn *c, const char *message_id, const char *recipient_key) {
        if (!c->ack_aware) {
                settle(c->server, message_id, recipient_key);
                return 0;
        }
        return lease(c, message_id, recipient_key);
}

static int push_and_lease(Conn *c, const char *recipient_key, const PushMessage *m) {
        _cleanup_(json_object_putp) json_object *o = push_frame_new(c->mesh_id, m);
        int r;

        if (!o)
                return -ENOMEM;
        r = conn_send(c, o);
        if (r < 0)
                return r;
        return handed_over(c, m->message_id, recipient_key);
}

static bool conn_owns_key(const Conn *c, const char *key) {
        return streq(conn_routing_key(c), key) || streq(c->member_pubkey, key);
}

void delivery_push_new(Server *s, const char *mesh_id, const char *recipient_key, const PushMessage *m,
                       const Conn *sender, bool wake_others) {
        /* One connection per row: the first live one that owns the key, preferring one that is
         * not the sender (a member-key DM from one session of a member to its siblings). */
        Conn *target = NULL;
        for (Conn *c = s->conns; c; c = c->next) {
                /* The keys first: they differ from the first byte on, while every connection of
                 * the mesh matches its id to the end (a push scans all connections). */
                if (!conn_is_live(c) || !conn_owns_key(c, recipient_key) || !streq(c->mesh_id, mesh_id))
                        continue;
                if (c == sender && target)
                        continue;
                target = c;
                if (c != sender)
                        break;
        }
        if (target && target != sender && push_and_lease(target, recipient_key, m) < 0)
                log_warning("Could not push message %s; it stays queued.", m->message_id);
        /* The owner may be on another node; one of its other sessions may be too. */
        if (wake_others && (!target || target == sender))
                nodes_wake(s, mesh_id, recipient_key);
}

static const char drain_sql[] =
        "SELECT d.message_id, d.recipient_pubkey, m.sender_pubkey, m.sender_member_pubkey,"
        "       m.sender_member_id, m.sender_name, m.priority, m.nonce, m.ciphertext, m.created_at,"
        "       m.client_message_id, m.request_fingerprint, m.reply_to_id, t.name"
        "  FROM delivery d JOIN message m ON m.id = d.message_id"
        "  LEFT JOIN topic t ON t.id = m.topic_id"
        " WHERE d.mesh_id = ?1 AND d.recipient_pubkey IN (?2, ?3)"
        "   AND NOT EXISTS (SELECT 1 FROM temp.lease l WHERE l.message_id = d.message_id"
        "                   AND l.recipient_pubkey = d.recipient_pubkey AND l.expires_at > ?4)"
        " ORDER BY d.created_at, d.message_id LIMIT ?5";

/* PostgreSQL: the rows of a drain sent on lane 0 (pool.h). The leases it queues there come
 * before any later drain's query, and one drain per connection is in flight at a time, so
 * no row is pushed twice. */
static void drain_done(int r, StoreResult *res, void *userdata) {
        _cleanup_free_ ConnRef *ref = userdata;
        Conn *c = conn_ref_get(ref);
        int n;

        if (!c)
                return;
        c->drain_inflight = false;
        if (r < 0)
                log_warning_errno(r, "Drain for %s failed: %m", c->presence_id);
        n = r < 0 ? 0 : store_result_rows(res);
        for (int i = 0; i < n && conn_is_live(c); i++) {
                uint8_t fp[FINGERPRINT_BYTES];
                const char *fp_text = store_result_text(res, i, 11);
                bool has_fp = fp_text && strlen(fp_text) == 2 + 2 * FINGERPRINT_BYTES &&
                              hex_decode(fp_text + 2, fp, sizeof fp) >= 0;
                PushMessage m = {
                        .message_id = store_result_text(res, i, 0),
                        .sender_pubkey = store_result_text(res, i, 2),
                        .sender_member_pubkey = store_result_text(res, i, 3),
                        .sender_member_id = store_result_text(res, i, 4),
                        .sender_name = store_result_text(res, i, 5),
                        .priority = store_result_text(res, i, 6),
                        .nonce = store_result_text(res, i, 7),
                        .ciphertext = store_result_text(res, i, 8),
                        .created_at_ms = store_result_int64(res, i, 9),
                        .client_message_id = store_result_text(res, i, 10),
                        .request_fingerprint = has_fp ? fp : NULL,
                        .reply_to_id = store_result_text(res, i, 12),
                        .topic_name = store_result_text(res, i, 13),
                };
                if (handed_pending(c->server, m.message_id, store_result_text(res, i, 1)))
                        continue;       /* pushed after this query ran; its lease is on the way */
                _cleanup_(json_object_putp) json_object *push = push_frame_new(c->mesh_id, &m);
                if (push && conn_send(c, push) >= 0)
                        (void) handed_over(c, m.message_id, store_result_text(res, i, 1));
        }
        c->drain_more = n == DRAIN_BATCH;
        if (c->drain_again) {
                c->drain_again = false;
                delivery_drain(c);
        }
}

static void drain_async(Conn *c) {
        Server *s = c->server;
        _cleanup_free_ ConnRef *ref = NULL;
        char now[24], batch[24];

        if (c->drain_inflight) {
                c->drain_again = true;
                return;
        }
        ref = malloc(sizeof *ref);
        if (!ref)
                return;
        *ref = conn_ref(c);
        snprintf(now, sizeof now, "%" PRId64, mono_ms());
        snprintf(batch, sizeof batch, "%d", DRAIN_BATCH);
        const char *values[] = { c->mesh_id, conn_routing_key(c), c->member_pubkey, now, batch };
        if (pool_submit(s, 0, drain_sql, ELEMENTSOF(values), values, drain_done, ref) < 0) {
                log_warning("Could not send the drain for %s; the next catch-up or hello drains it.", c->presence_id);
                return;
        }
        TAKE_PTR(ref);
        c->drain_inflight = true;
}

void delivery_drain(Conn *c) {
        Server *s = c->server;
        StoreStmt *st;
        size_t n = 0;
        int rc;

        if (!conn_is_live(c))
                return;
        if (pool_on(s)) {
                drain_async(c);
                return;
        }
        st = store_stmt(s->store, drain_sql);
        if (!st)
                return;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, conn_routing_key(c));
        store_bind_text(st, 3, c->member_pubkey);
        store_bind_int64(st, 4, mono_ms());
        store_bind_int64(st, 5, DRAIN_BATCH);

        /* Collect first: leasing writes to the table the cursor reads. */
        typedef struct Row {
                char *message_id, *recipient;
                json_object *push;
        } Row;
        _cleanup_free_ Row *rows = calloc(DRAIN_BATCH, sizeof(Row));
        if (!rows) {
                store_reset(st);
                return;
        }
        while ((rc = store_step(st)) == STORE_ROW && n < DRAIN_BATCH) {
                size_t fp_size;
                const void *fp = store_col_blob(st, 11, &fp_size);
                PushMessage m = {
                        .message_id = store_col_text(st, 0),
                        .sender_pubkey = store_col_text(st, 2),
                        .sender_member_pubkey = store_col_text(st, 3),
                        .sender_member_id = store_col_text(st, 4),
                        .sender_name = store_col_text(st, 5),
                        .priority = store_col_text(st, 6),
                        .nonce = store_col_text(st, 7),
                        .ciphertext = store_col_text(st, 8),
                        .created_at_ms = store_col_int64(st, 9),
                        .client_message_id = store_col_text(st, 10),
                        .request_fingerprint = fp && fp_size == FINGERPRINT_BYTES ? fp : NULL,
                        .reply_to_id = store_col_text(st, 12),
                        .topic_name = store_col_text(st, 13),
                };
                rows[n].message_id = strdup(m.message_id);
                rows[n].recipient = strdup(store_col_text(st, 1));
                rows[n].push = push_frame_new(c->mesh_id, &m);
                n++;
        }
        store_reset(st);
        if (rc != STORE_ROW && rc != STORE_DONE)
                log_warning("Drain for %s failed: %s", c->presence_id, store_errmsg(s->store));
        c->drain_more = n == DRAIN_BATCH;

        for (size_t i = 0; i < n; i++) {
                if (rows[i].message_id && rows[i].recipient && rows[i].push && conn_send(c, rows[i].push) >= 0)
                        (void) handed_over(c, rows[i].message_id, rows[i].recipient);
                free(rows[i].message_id);
                free(rows[i].recipient);
                json_object_put(rows[i].push);
        }
}

/* An ack by clientMessageId alone names the message this recipient is owed with that id.
 * Ids are scoped to their sender (DECISIONS rule 16), so two senders' messages may share one:
 * such an ack is ambiguous and ignored, and the pushes stay leased until acknowledged by
 * brokerMessageId, rather than one sender's message being acknowledged for the other's. */
static const char *resolve_message_id(Conn *c, const ClientAckRequest *a, char buf[static BROKER_ID_LEN + 1]) {
        StoreStmt *st;
        int n = 0;

        if (a->broker_message_id)
                return a->broker_message_id;
        st = store_stmt(c->server->store,
                        "SELECT DISTINCT m.id FROM message m JOIN delivery d ON d.message_id = m.id"
                        " WHERE m.mesh_id = ?1 AND m.client_message_id = ?2 AND d.recipient_pubkey IN (?3, ?4)"
                        " LIMIT 2");
        if (!st)
                return NULL;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, a->client_message_id);
        store_bind_text(st, 3, conn_routing_key(c));
        store_bind_text(st, 4, c->member_pubkey);
        while (store_step(st) == STORE_ROW && ++n == 1)
                snprintf(buf, BROKER_ID_LEN + 1, "%s", store_col_text(st, 0));
        store_reset(st);
        if (n > 1)
                log_debug("client_ack for client_message_id %s from %s is ambiguous; ignored.",
                          a->client_message_id, c->presence_id);
        return n == 1 ? buf : NULL;
}

/* A key that has acknowledged once belongs to a client that acknowledges: its later
 * connections are ack-aware from their hello on, before their first client_ack. */
static void remember_acks(Conn *c) {
        StoreStmt *st = store_stmt(c->server->store,
                "INSERT INTO ack_seen (mesh_id, pubkey, first_ack_at) VALUES (?1, ?2, ?3)"
                " ON CONFLICT (mesh_id, pubkey) DO NOTHING");
        if (!st)
                return;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, conn_routing_key(c));
        store_bind_int64(st, 3, now_ms());
        (void) store_step_done(c->server->store, st);
}

bool delivery_acked_before(const Conn *c) {
        StoreStmt *st = store_stmt(c->server->store, "SELECT 1 FROM ack_seen WHERE mesh_id = ?1 AND pubkey = ?2");
        bool r;

        if (!st)
                return false;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, conn_routing_key(c));
        r = store_step(st) == STORE_ROW;
        store_reset(st);
        return r;
}

/* PostgreSQL: statements on lane 0, after the lease they end, and nothing waits for them.
 * resolve_message_id()'s rule is in the SQL: an ack by clientMessageId alone settles the one
 * message owed with that id, or nothing. */
static void client_ack_async(Conn *c, const ClientAckRequest *a) {
        Server *s = c->server;
        char now[24];
        int r;

        snprintf(now, sizeof now, "%" PRId64, now_ms());
        if (!c->ack_aware) {
                const char *values[] = { c->mesh_id, conn_routing_key(c), now };
                if (pool_submit(s, 0, "INSERT INTO ack_seen (mesh_id, pubkey, first_ack_at) VALUES (?1, ?2, ?3)"
                                      " ON CONFLICT (mesh_id, pubkey) DO NOTHING",
                                ELEMENTSOF(values), values, NULL, NULL) < 0)
                        log_warning("Could not record that %s acknowledges.", conn_routing_key(c));
        }
        c->ack_aware = true;
        if (a->broker_message_id) {
                const char *values[] = { a->broker_message_id, conn_routing_key(c), c->member_pubkey, now };
                r = pool_submit(s, 0, "SELECT cm_ack(?1, ?2, ?3, ?4)", ELEMENTSOF(values), values, NULL, NULL);
        } else {
                const char *values[] = { c->mesh_id, a->client_message_id, conn_routing_key(c), c->member_pubkey, now };
                r = pool_submit(s, 0,
                                "SELECT cm_ack(r.id, ?3, ?4, ?5) FROM (SELECT min(m.id) AS id"
                                "  FROM message m JOIN delivery d ON d.message_id = m.id"
                                " WHERE m.mesh_id = ?1 AND m.client_message_id = ?2 AND d.recipient_pubkey IN (?3, ?4)"
                                " HAVING count(DISTINCT m.id) = 1) r",
                                ELEMENTSOF(values), values, NULL, NULL);
        }
        if (r < 0)
                log_warning("Could not record a client_ack of %s.", c->presence_id);
        /* A drain that follows runs after it on the lane. */
        if (c->drain_more)
                delivery_drain(c);
}

void delivery_handle_client_ack(Conn *c, const Frame *f) {
        Store *store = c->server->store;
        char buf[BROKER_ID_LEN + 1];
        ProtocolError e;
        ClientAckRequest a;
        StoreStmt *st;

        if (client_ack_request_parse(f, &a, &e) < 0) {
                conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (pool_on(c->server)) {
                client_ack_async(c, &a);
                return;
        }
        if (!c->ack_aware)
                remember_acks(c);
        c->ack_aware = true;
        /* No reply on success, as upstream; an ack for an unknown or foreign message is a
         * harmless no-op (at-least-once receivers ack duplicates too). */
        const char *message_id = resolve_message_id(c, &a, buf);
        if (!message_id)
                return;

        /* Per key with "=", not "IN (?2, ?3)": SQLite builds an ephemeral table for an IN
         * list on every run, which cost as much as the delete itself. A member's connection
         * has one key; a session's, its own and its member's. */
        const char *keys[] = { conn_routing_key(c), c->member_pubkey };
        size_t n_keys = streq(keys[0], keys[1]) ? 1 : 2;
        int r = 0;
        for (size_t i = 0; i < n_keys && r >= 0; i++) {
                st = store_stmt(store, "DELETE FROM delivery WHERE message_id = ?1 AND recipient_pubkey = ?2");
                if (!st)
                        return;
                store_bind_text(st, 1, message_id);
                store_bind_text(st, 2, keys[i]);
                r = store_step_done(store, st);
        }
        if (r < 0)
                log_warning("Could not record client_ack for %s.", message_id);
        else
                mark_delivered_if_done(store, message_id);

        for (size_t i = 0; i < n_keys; i++) {
                st = store_stmt(store, "DELETE FROM temp.lease WHERE message_id = ?1 AND recipient_pubkey = ?2");
                if (!st)
                        return;
                store_bind_text(st, 1, message_id);
                store_bind_text(st, 2, keys[i]);
                (void) store_step_done(store, st);
        }

        if (c->drain_more)
                delivery_drain(c);
}

static const char lease_release_sql[] = "DELETE FROM temp.lease WHERE conn_serial = ?1";

void delivery_conn_closed(Conn *c) {
        Server *s = c->server;

        if (pool_on(s)) {
                char serial[24];
                snprintf(serial, sizeof serial, "%" PRIu64, c->serial);
                const char *values[] = { serial };
                /* Lane 0, before the drains below, which then see the rows unleased. */
                if (pool_submit(s, 0, lease_release_sql, ELEMENTSOF(values), values, NULL, NULL) < 0)
                        log_warning("Could not release the leases of connection %s.", serial);
        } else {
                StoreStmt *st = store_stmt(s->store, lease_release_sql);
                if (st) {
                        store_bind_int64(st, 1, c->serial);
                        (void) store_step_done(s->store, st);
                }
        }
        if (!c->hello_done)
                return;
        for (Conn *o = s->conns; o; o = o->next)
                if (o != c && conn_is_live(o) && streq(o->mesh_id, c->mesh_id) &&
                    streq(o->member_pubkey, c->member_pubkey))
                        delivery_drain(o);
}

static void schedule_lease_timer(Server *s, int64_t expires_at) {
        int64_t delay = expires_at - mono_ms();

        if (delay < 0)
                delay = 0;
        lws_sul_schedule(s->ctx, 0, &s->lease_sul, lease_timer_fired, (lws_usec_t) (delay + 5) * LWS_US_PER_MS);
        s->lease_sul_armed = true;
}

/* PostgreSQL: the earliest lease left after the expiry, read without waiting. */
static void lease_next(int r, StoreResult *res, void *userdata) {
        Server *s = userdata;

        if (r < 0 || store_result_rows(res) != 1 || !store_result_text(res, 0, 0) || s->lease_sul_armed)
                return;
        schedule_lease_timer(s, store_result_int64(res, 0, 0));
}

static const char lease_expire_sql[] = "DELETE FROM temp.lease WHERE expires_at <= ?1";
static const char lease_min_sql[] = "SELECT MIN(expires_at) FROM temp.lease";

static void lease_timer_fired(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, lease_sul);
        StoreStmt *st;

        s->lease_sul_armed = false;

        if (pool_on(s)) {
                char now[24];
                snprintf(now, sizeof now, "%" PRId64, mono_ms());
                const char *values[] = { now };
                /* In this order on lane 0: the expiry, the drains that push again, the next. */
                if (pool_submit(s, 0, lease_expire_sql, ELEMENTSOF(values), values, NULL, NULL) < 0)
                        log_warning("Could not expire the leases.");
                for (Conn *c = s->conns; c; c = c->next)
                        delivery_drain(c);
                if (pool_submit(s, 0, lease_min_sql, 0, NULL, lease_next, s) < 0)
                        log_warning("Could not look for the next lease expiry.");
                return;
        }

        st = store_stmt(s->store, lease_expire_sql);
        if (st) {
                store_bind_int64(st, 1, mono_ms());
                (void) store_step_done(s->store, st);
        }
        for (Conn *c = s->conns; c; c = c->next)
                delivery_drain(c);
        arm_lease_timer(s);
}

/* Wakes up at the earliest lease expiry, and not at all while nothing is leased. */
static void arm_lease_timer(Server *s) {
        StoreStmt *st;

        if (s->lease_sul_armed)
                return;
        st = store_stmt(s->store, lease_min_sql);
        if (!st)
                return;
        if (store_step(st) == STORE_ROW && !store_col_is_null(st, 0))
                schedule_lease_timer(s, store_col_int64(st, 0));
        store_reset(st);
}

/* 1 when (message, key) still waits for its client_ack. */
static bool still_owed(Store *store, const char *message_id, const char *key) {
        StoreStmt *st = store_stmt(store, "SELECT 1 FROM delivery WHERE message_id = ?1 AND recipient_pubkey = ?2");
        bool r;

        if (!st)
                return false;
        store_bind_text(st, 1, message_id);
        store_bind_text(st, 2, key);
        r = store_step(st) == STORE_ROW;
        store_reset(st);
        return r;
}

static void add_recipient(json_object *list, const char *name, const char *pubkey, const char *status) {
        json_object *r = json_object_new_object();

        if (!r)
                return;
        json_object_object_add(r, "name", json_object_new_string(name));
        json_object_object_add(r, "pubkey", json_object_new_string(pubkey));
        json_object_object_add(r, "status", json_object_new_string(status));
        json_object_array_add(list, r);
}

/* Upstream's recipients list: for a DM the target ("held" while owed, "disconnected" when it
 * has no connection); for a broadcast or group post the peers connected now. Here "delivered"
 * means that recipient acknowledged (or, not ack-aware, was handed) the push. */
typedef struct Owed {
        Store *store;
        const char *message_id;
        const char *keys;       /* PostgreSQL: the owed keys as an array literal, or NULL: ask */
} Owed;

static bool owed_to(const Owed *o, const char *key) {
        size_t n = strlen(key);

        if (!o->keys)
                return still_owed(o->store, o->message_id, key);
        /* "{k1,k2}": routing keys are hex, never quoted. */
        for (const char *p = strstr(o->keys, key); p; p = strstr(p + 1, key))
                if (p > o->keys && (p[-1] == '{' || p[-1] == ',') && (p[n] == ',' || p[n] == '}'))
                        return true;
        return false;
}

static void list_recipients(Conn *c, const Owed *owed, const char *target, const char *sender_member_pubkey,
                            json_object *list) {
        bool direct = hex_string(target, PUBKEY_HEX_LEN, HEX_LOWER);

        if (direct) {
                const Conn *peer = NULL;
                for (Conn *p = c->server->conns; p && !peer; p = p->next)
                        if (conn_is_live(p) && streq(p->mesh_id, c->mesh_id) &&
                            (streq(conn_routing_key(p), target) || streq(p->member_pubkey, target)))
                                peer = p;
                bool is_owed = owed_to(owed, target);
                if (peer)
                        add_recipient(list, peer->display_name, target, is_owed ? "held" : "delivered");
                else
                        add_recipient(list, "unknown", target, is_owed ? "disconnected" : "delivered");
                return;
        }
        const char *group = target[0] == '@' && !streq(target, "@all") ? target + 1 : NULL;
        for (Conn *p = c->server->conns; p; p = p->next) {
                if (!conn_is_live(p) || !streq(p->mesh_id, c->mesh_id) || streq(p->member_pubkey, sender_member_pubkey))
                        continue;
                if (group && !conn_in_group(p, group))
                        continue;
                add_recipient(list, p->display_name, conn_routing_key(p),
                              owed_to(owed, conn_routing_key(p)) ? "held" : "delivered");
        }
}

/* The reply from the message's row and the keys it is owed to. */
typedef struct StatusRow {
        const char *target;
        bool has_delivered_at;
        int64_t delivered_at;
        const char *sender;
        bool delivered;
} StatusRow;

static void send_message_status(Conn *c, const char *asked, const StatusRow *row, const Owed *owed,
                                const char *req_id) {
        char delivered_at[ISO8601_MAX] = "";

        if (row->has_delivered_at &&
            format_iso8601((usec_t) row->delivered_at * USEC_PER_MSEC, delivered_at) < 0)
                delivered_at[0] = '\0';
        /* Upstream's key order. */
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *recipients = json_object_new_array();
        if (!o || !recipients) {
                json_object_put(recipients);
                return;
        }
        list_recipients(c, owed, row->target, row->sender, recipients);
        json_object_object_add(o, "type", json_object_new_string("message_status_result"));
        json_object_object_add(o, "messageId", json_object_new_string(asked));
        json_object_object_add(o, "targetSpec", json_object_new_string(row->target));
        json_object_object_add(o, "delivered", json_object_new_boolean(row->delivered));
        json_object_object_add(o, "deliveredAt", delivered_at[0] ? json_object_new_string(delivered_at) : NULL);
        json_object_object_add(o, "recipients", recipients);
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        (void) conn_send(c, o);
}

/* A prefix (fewer than 32 characters) is accepted, as upstream; the comparison is exact, and
 * the id holds only [0-9A-Za-z]. Only the asker's member's messages are visible. */
#define MESSAGE_STATUS_SELECT \
        "SELECT id, target_spec, delivered_at, sender_member_pubkey," \
        "       NOT EXISTS (SELECT 1 FROM delivery d WHERE d.message_id = message.id)"
#define MESSAGE_STATUS_FROM \
        "  FROM message WHERE mesh_id = ?1 AND sender_member_id = ?2" \
        "   AND substr(id, 1, length(?3)) = ?3 LIMIT 2"

typedef struct StatusJob {
        ConnRef conn;
        json_object *root;               /* id and req_id point into it */
        const char *id;
        const char *req_id;
} StatusJob;

static void status_done(int r, StoreResult *res, void *userdata) {
        StatusJob *j = userdata;
        Conn *c = conn_ref_get(&j->conn);

        if (c && !c->closing) {
                int n = r < 0 ? 0 : store_result_rows(res);
                if (r < 0)
                        (void) conn_send_error(c, "internal", "broker database error, retry later", j->req_id);
                else if (n == 0)
                        (void) conn_send_error(c, "not_found", "message not found", j->req_id);
                else if (n > 1)
                        (void) conn_send_error(c, "ambiguous_prefix", "prefix matched 2 messages — use a longer id",
                                               j->req_id);
                else {
                        StatusRow row = {
                                .target = strempty(store_result_text(res, 0, 1)),
                                .has_delivered_at = store_result_text(res, 0, 2) != NULL,
                                .delivered_at = store_result_int64(res, 0, 2),
                                .sender = strempty(store_result_text(res, 0, 3)),
                                .delivered = streq(strempty(store_result_text(res, 0, 4)), "t"),
                        };
                        Owed owed = { .keys = strempty(store_result_text(res, 0, 5)) };
                        send_message_status(c, j->id, &row, &owed, j->req_id);
                }
        }
        if (c)
                conn_barrier_end(c);
        json_object_put(j->root);
        free(j);
}

void delivery_handle_message_status(Conn *c, const Frame *f) {
        Store *store = c->server->store;
        ProtocolError e;
        const char *id;
        char message_id[BROKER_ID_LEN + 1], sender[PUBKEY_HEX_LEN + 1];
        _cleanup_free_ char *target = NULL;
        StatusRow row = { .delivered = false };
        int n = 0, rc;

        if (message_status_request_parse(f, &id, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }

        if (pool_on(c->server)) {
                StatusJob *j = malloc(sizeof *j);
                const char *values[] = { c->mesh_id, c->member_id, id };
                if (!j) {
                        (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                        return;
                }
                *j = (StatusJob) { .conn = conn_ref(c), .root = json_object_get(f->root),
                                   .id = id, .req_id = f->req_id };
                /* The owed keys come along, so the reply needs nothing more. */
                if (pool_submit(c->server, 0,
                                MESSAGE_STATUS_SELECT ", ARRAY(SELECT d.recipient_pubkey FROM delivery d"
                                "  WHERE d.message_id = message.id)" MESSAGE_STATUS_FROM,
                                ELEMENTSOF(values), values, status_done, j) < 0) {
                        json_object_put(j->root);
                        free(j);
                        (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                        return;
                }
                conn_barrier_begin(c);
                return;
        }
        StoreStmt *st = store_stmt(store, MESSAGE_STATUS_SELECT MESSAGE_STATUS_FROM);
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, c->member_id);
        store_bind_text(st, 3, id);
        while ((rc = store_step(st)) == STORE_ROW)
                if (++n == 1) {
                        snprintf(message_id, sizeof message_id, "%s", store_col_text(st, 0));
                        target = strdup(store_col_text(st, 1));
                        row.has_delivered_at = !store_col_is_null(st, 2);
                        row.delivered_at = store_col_int64(st, 2);
                        snprintf(sender, sizeof sender, "%s", store_col_text(st, 3));
                        row.delivered = store_col_int(st, 4) != 0;
                }
        store_reset(st);
        if (rc != STORE_DONE || (n == 1 && !target)) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        if (n == 0) {
                (void) conn_send_error(c, "not_found", "message not found", f->req_id);
                return;
        }
        if (n > 1) {
                (void) conn_send_error(c, "ambiguous_prefix", "prefix matched 2 messages — use a longer id", f->req_id);
                return;
        }

        row.target = target;
        row.sender = sender;
        Owed owed = { .store = store, .message_id = message_id };
        send_message_status(c, id, &row, &owed, f->req_id);
}
