/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "accept.h"
#include "delivery.h"
#include "log.h"
#include "nodes.h"
#include "pool.h"
#include "ratelimit.h"
#include "time-util.h"

#define MS_PER_DAY ((int64_t) 24 * 3600 * 1000)
/* Other nodes woken per multicast; beyond, their catch-up delivers. */
#define RECIPIENTS_WAKE_MAX 256

typedef struct Recipients {
        const char **keys;
        size_t n;
} Recipients;

typedef struct DedupeRow {
        char broker_message_id[BROKER_ID_LEN + 1];
        uint8_t fingerprint[FINGERPRINT_BYTES];
        bool history_available;
        int64_t first_seen_at;
} DedupeRow;

static json_object *ack_new(const SendRequest *req) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        json_object_object_add(o, "type", json_object_new_string("ack"));
        json_object_object_add(o, "id", json_object_new_string(req->id));
        if (req->client_message_id)
                json_object_object_add(o, "client_message_id", json_object_new_string(req->client_message_id));
        return o;
}

static void send_ack_error(Conn *c, const SendRequest *req, const char *code, const char *message,
                           int64_t retry_after_ms) {
        _cleanup_(json_object_putp) json_object *o = ack_new(req);

        if (!o)
                return;
        json_object_object_add(o, "messageId", json_object_new_string(""));
        json_object_object_add(o, "queued", json_object_new_boolean(false));
        json_object_object_add(o, "error", json_object_new_string(message));
        json_object_object_add(o, "error_code", json_object_new_string(code));
        if (retry_after_ms > 0)
                json_object_object_add(o, "retry_after_ms", json_object_new_int64(retry_after_ms));
        (void) conn_send(c, o);
}

/* The answer for an id the dedupe table already holds: the original message when the
 * fingerprints match, a conflict naming the stored fingerprint otherwise. */
static void send_ack_existing(Conn *c, const SendRequest *req, const uint8_t fingerprint[static FINGERPRINT_BYTES],
                              const DedupeRow *row) {
        _cleanup_(json_object_putp) json_object *o = ack_new(req);
        char first_seen[ISO8601_MAX];

        if (!o)
                return;
        if (sodium_memcmp(fingerprint, row->fingerprint, FINGERPRINT_BYTES) != 0) {
                char prefix[2 * 8 + 1];
                hex_encode(row->fingerprint, 8, prefix);
                json_object_object_add(o, "messageId", json_object_new_string(""));
                json_object_object_add(o, "queued", json_object_new_boolean(false));
                json_object_object_add(o, "error", json_object_new_string(
                        "idempotency_key_reused: client_message_id already names a different request"));
                json_object_object_add(o, "error_code", json_object_new_string("idempotency_key_reused"));
                json_object_object_add(o, "conflict", json_object_new_string("request_fingerprint_mismatch"));
                json_object_object_add(o, "broker_fingerprint_prefix", json_object_new_string(prefix));
                (void) conn_send(c, o);
                return;
        }
        if (format_iso8601((usec_t) row->first_seen_at * USEC_PER_MSEC, first_seen) < 0)
                first_seen[0] = '\0';
        json_object_object_add(o, "messageId", json_object_new_string(row->broker_message_id));
        json_object_object_add(o, "queued", json_object_new_boolean(true));
        json_object_object_add(o, "duplicate", json_object_new_boolean(true));
        json_object_object_add(o, "history_available", json_object_new_boolean(row->history_available));
        json_object_object_add(o, "first_seen_at", json_object_new_string(first_seen));
        (void) conn_send(c, o);
}

/* Without a client fingerprint the broker derives one from the destination, so the same id
 * sent elsewhere is still a conflict. Domain-separated from the client's "1"-prefixed form. */
static void derive_fingerprint(const SendRequest *req, const char *destination_ref, uint8_t ret[static FINGERPRINT_BYTES]) {
        crypto_hash_sha256_state h;
        static const uint8_t zero = 0;

        crypto_hash_sha256_init(&h);
        crypto_hash_sha256_update(&h, (const uint8_t *) "broker-1", strlen("broker-1") + 1);
        crypto_hash_sha256_update(&h, (const uint8_t *) target_kind_destination(req->target_kind),
                                  strlen(target_kind_destination(req->target_kind)));
        crypto_hash_sha256_update(&h, &zero, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *) destination_ref, strlen(destination_ref));
        crypto_hash_sha256_update(&h, &zero, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *) strempty(req->reply_to_id), strlen(strempty(req->reply_to_id)));
        crypto_hash_sha256_update(&h, &zero, 1);
        crypto_hash_sha256_update(&h, (const uint8_t *) req->priority, strlen(req->priority));
        crypto_hash_sha256_final(&h, ret);
}

/* 1 and *ret filled when the row exists, 0 when not, negative errno on failure. */
static int dedupe_lookup(Store *s, const Conn *c, const char *client_message_id, DedupeRow *ret) {
        StoreStmt *st = store_stmt(s,
                "SELECT broker_message_id, request_fingerprint, history_available, first_seen_at"
                "  FROM client_message_dedupe WHERE mesh_id = ?1 AND sender_scope = ?2 AND client_message_id = ?3");
        int rc, r = 0;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, conn_sender_scope(c));
        store_bind_text(st, 3, client_message_id);
        rc = store_step(st);
        if (rc == STORE_ROW) {
                *ret = (DedupeRow) {
                        .history_available = store_col_int(st, 2) != 0,
                        .first_seen_at = store_col_int64(st, 3),
                };
                snprintf(ret->broker_message_id, sizeof ret->broker_message_id, "%s",
                         store_col_text(st, 0));
                size_t fp_size;
                const void *fp = store_col_blob(st, 1, &fp_size);
                if (fp && fp_size == FINGERPRINT_BYTES)
                        memcpy(ret->fingerprint, fp, FINGERPRINT_BYTES);
                r = 1;
        } else if (rc != STORE_DONE)
                r = rc;
        store_reset(st);
        return r;
}

bool conn_in_group(const Conn *p, const char *group) {
        return groups_include(p->groups, group);
}

bool groups_include(json_object *groups, const char *group) {
        size_t n = strlen(group);

        if (!groups || !json_object_is_type(groups, json_type_array))
                return false;
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                json_object *name;
                if (!json_object_object_get_ex(json_object_array_get_idx(groups, i), "name", &name))
                        continue;
                /* "@a" reaches members of "a" and of its subgroups "a/…", as upstream's drain. */
                const char *g = json_object_get_string(name);
                if (strneq(g, group, n) && (g[n] == '\0' || g[n] == '/'))
                        return true;
        }
        return false;
}

/* Multicast goes to the live, visible connections of the other members at accept time;
 * each gets its own delivery row, so it is redelivered until acknowledged. These are this
 * node's: with several nodes, the accept's statement adds the other nodes' (accept_submit()). */
static int multicast_recipients(Conn *sender, const SendRequest *req, Recipients *ret) {
        size_t max = 0;

        for (Conn *p = sender->server->conns; p; p = p->next)
                max++;
        ret->keys = calloc(max + 1, sizeof *ret->keys);
        if (!ret->keys)
                return -ENOMEM;
        for (Conn *p = sender->server->conns; p; p = p->next) {
                if (!conn_is_live(p) || !p->visible || !streq(p->mesh_id, sender->mesh_id) ||
                    streq(p->member_pubkey, sender->member_pubkey))
                        continue;
                if (req->target_kind == TARGET_GROUP && !conn_in_group(p, req->target_ref))
                        continue;
                const char *key = conn_routing_key(p);
                bool seen = false;
                for (size_t i = 0; i < ret->n && !seen; i++)
                        seen = streq(ret->keys[i], key);
                if (!seen)
                        ret->keys[ret->n++] = key;
        }
        return 0;
}

/* B2: a DM must name a current member or a session of one. 1 = exists. */
static int direct_target_exists(Store *s, const char *mesh_id, const char *key) {
        StoreStmt *st = store_stmt(s,
                "SELECT 1 FROM member WHERE mesh_id = ?1 AND peer_pubkey = ?2 AND revoked_at IS NULL"
                " UNION ALL "
                "SELECT 1 FROM session se JOIN member m ON m.id = se.member_id"
                " WHERE se.mesh_id = ?1 AND se.session_pubkey = ?2 AND m.revoked_at IS NULL LIMIT 1");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, key);
        int rc = store_step(st);
        store_reset(st);
        return rc == STORE_ROW ? 1 : rc == STORE_DONE ? 0 : rc;
}

/* B2 for topics: 1 and the topic's name when it exists in the mesh. */
static int topic_lookup(Store *s, const char *mesh_id, const char *topic_id, char **ret_name) {
        StoreStmt *st = store_stmt(s, "SELECT name FROM topic WHERE mesh_id = ?1 AND id = ?2");
        int r = 0;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, topic_id);
        int rc = store_step(st);
        if (rc == STORE_ROW) {
                *ret_name = strdup(store_col_text(st, 0));
                r = *ret_name ? 1 : -ENOMEM;
        } else if (rc != STORE_DONE)
                r = rc;
        store_reset(st);
        return r;
}

typedef struct Mentions {
        char names[MENTIONS_MAX][65];
        size_t n;
} Mentions;

static void mentions_add(Mentions *m, const char *name, size_t len) {
        char lower[65];

        if (len == 0 || len > 64 || m->n >= MENTIONS_MAX)
                return;
        for (size_t i = 0; i < len; i++)
                lower[i] = (char) tolower((unsigned char) name[i]);
        lower[len] = '\0';
        for (size_t i = 0; i < m->n; i++)
                if (streq(m->names[i], lower))
                        return;
        memcpy(m->names[m->n++], lower, len + 1);
}

static bool is_name_char(char ch) {
        return isalnum((unsigned char) ch) || ch == '_' || ch == '-' || ch == '.';
}

/* Explicit mentions win; otherwise, like upstream, the plaintext body (bodyVersion 1 carries
 * base64 plaintext) is scanned for @names. */
static void collect_mentions(const SendRequest *req, Mentions *ret) {
        *ret = (Mentions) { .n = 0 };
        if (req->has_mentions) {
                for (size_t i = 0; i < req->n_mentions; i++) {
                        const char *name = req->mentions[i] + (req->mentions[i][0] == '@');
                        mentions_add(ret, name, strlen(name));
                }
                return;
        }
        if (req->body_version != 1)
                return;

        size_t max = strlen(req->ciphertext) / 4 * 3 + 3, len;
        _cleanup_free_ char *text = malloc(max + 1);
        if (!text ||
            sodium_base642bin((unsigned char *) text, max, req->ciphertext, strlen(req->ciphertext), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0)
                return;
        for (size_t i = 0; i < len; i++) {
                if (text[i] != '@' || (i > 0 && is_name_char(text[i - 1])))
                        continue;
                size_t j = i + 1;
                while (j < len && is_name_char(text[j]))
                        j++;
                mentions_add(ret, text + i + 1, j - i - 1);
                i = j - 1;
        }
}

typedef struct Accepted {
        char message_id[BROKER_ID_LEN + 1];
        int64_t created_at;
        char *topic_name;
} Accepted;

static int insert_message(Conn *c, const SendRequest *req, const Accepted *a, const char *topic_id) {
        Store *s = c->server->store;
        StoreStmt *st = store_stmt(s,
                "INSERT INTO message (id, mesh_id, sender_member_id, sender_pubkey, sender_member_pubkey,"
                "  sender_name, target_spec, priority, nonce, ciphertext, created_at, client_message_id,"
                "  request_fingerprint, reply_to_id, topic_id, sender_scope)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, a->message_id);
        store_bind_text(st, 2, c->mesh_id);
        store_bind_text(st, 3, c->member_id);
        store_bind_text(st, 4, conn_routing_key(c));
        store_bind_text(st, 5, c->member_pubkey);
        store_bind_text(st, 6, c->display_name);
        store_bind_text(st, 7, req->target_kind == TARGET_DIRECT ? req->direct_key : req->target_spec);
        store_bind_text(st, 8, req->priority);
        store_bind_text(st, 9, req->nonce);
        store_bind_text(st, 10, req->ciphertext);
        store_bind_int64(st, 11, a->created_at);
        if (req->client_message_id)
                store_bind_text(st, 12, req->client_message_id);
        /* Only the client's own fingerprint travels on with the message. */
        if (req->has_fingerprint)
                store_bind_blob(st, 13, req->fingerprint, FINGERPRINT_BYTES);
        if (req->reply_to_id)
                store_bind_text(st, 14, req->reply_to_id);
        if (topic_id)
                store_bind_text(st, 15, topic_id);
        store_bind_text(st, 16, conn_sender_scope(c));
        return store_step_done(s, st);
}

static int insert_rows(Conn *c, const SendRequest *req, const Accepted *a, const Recipients *rcpt,
                       const Mentions *mentions) {
        Store *s = c->server->store;
        StoreStmt *st;
        int r;

        if (req->target_kind == TARGET_TOPIC) {
                st = store_stmt(s, "INSERT INTO topic_message (message_id, mesh_id, topic_id, created_at)"
                                   " VALUES (?1, ?2, ?3, ?4)");
                if (!st)
                        return -EIO;
                store_bind_text(st, 1, a->message_id);
                store_bind_text(st, 2, c->mesh_id);
                store_bind_text(st, 3, req->target_ref);
                store_bind_int64(st, 4, a->created_at);
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < rcpt->n; i++) {
                st = store_stmt(s, "INSERT INTO delivery (message_id, recipient_pubkey, mesh_id, created_at)"
                                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
                if (!st)
                        return -EIO;
                store_bind_text(st, 1, a->message_id);
                store_bind_text(st, 2, rcpt->keys[i]);
                store_bind_text(st, 3, c->mesh_id);
                store_bind_int64(st, 4, a->created_at);
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < mentions->n; i++) {
                st = store_stmt(s, "INSERT INTO mention_index (broker_message_id, mesh_id, mentioned, created_at)"
                                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING");
                if (!st)
                        return -EIO;
                store_bind_text(st, 1, a->message_id);
                store_bind_text(st, 2, c->mesh_id);
                store_bind_text(st, 3, mentions->names[i]);
                store_bind_int64(st, 4, a->created_at);
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int claim_dedupe(Conn *c, const SendRequest *req, const uint8_t *fingerprint, const char *destination_ref,
                        const Accepted *a) {
        Store *s = c->server->store;
        StoreStmt *st = store_stmt(s,
                "INSERT INTO client_message_dedupe (mesh_id, client_message_id, broker_message_id,"
                "  request_fingerprint, destination_kind, destination_ref, first_seen_at, expires_at, sender_scope)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                " ON CONFLICT (mesh_id, sender_scope, client_message_id) DO NOTHING");
        int r;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, req->client_message_id);
        store_bind_text(st, 3, a->message_id);
        store_bind_blob(st, 4, fingerprint, FINGERPRINT_BYTES);
        store_bind_text(st, 5, target_kind_destination(req->target_kind));
        store_bind_text(st, 6, destination_ref);
        store_bind_int64(st, 7, a->created_at);
        store_bind_int64(st, 8, a->created_at + (int64_t) c->server->opts.dedupe_retention_days * MS_PER_DAY);
        store_bind_text(st, 9, conn_sender_scope(c));
        r = store_step_done(s, st);
        if (r < 0)
                return r;
        return store_changes(s) == 1; /* 0: an earlier request of this sender holds the id */
}

typedef enum AcceptOutcome {
        ACCEPT_NEW,
        ACCEPT_EXISTING,        /* *existing filled */
        ACCEPT_NO_RECIPIENT,
        ACCEPT_NO_TOPIC,
} AcceptOutcome;

/* The rows an accept wrote so far, each keyed by its fresh message id. */
typedef struct AcceptWrites {
        bool dedupe, message;
} AcceptWrites;

/* The message and what insert_rows() wrote beside it, all keyed by its id. insert_rows()
 * stops at its first failure: rows it did not get to are simply not there. */
static const char *const undo_message_sql[] = {
        "DELETE FROM message WHERE id = ?1",
        "DELETE FROM topic_message WHERE message_id = ?1",
        "DELETE FROM delivery WHERE message_id = ?1",
        "DELETE FROM mention_index WHERE broker_message_id = ?1",
};

static int undo_message(Store *s, const char *message_id) {
        for (size_t i = 0; i < ELEMENTSOF(undo_message_sql); i++) {
                StoreStmt *st = store_stmt(s, undo_message_sql[i]);
                int r;

                if (!st)
                        return -EIO;
                store_bind_text(st, 1, message_id);
                r = store_step_done(s, st);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Takes back what this accept wrote inside the batch, as a savepoint's rollback would. A
 * row that cannot be taken back would be committed with the batch and claim a send that
 * failed; as when the batch cannot commit, nothing has been sent yet, so stop. */
static void accept_undo(Conn *c, const SendRequest *req, const Accepted *a, const AcceptWrites *w) {
        Store *s = c->server->store;
        int r = 0;

        if (w->dedupe) {
                StoreStmt *st = store_stmt(s,
                        "DELETE FROM client_message_dedupe WHERE mesh_id = ?1 AND sender_scope = ?2"
                        " AND client_message_id = ?3 AND broker_message_id = ?4");
                if (!st)
                        r = -EIO;
                else {
                        store_bind_text(st, 1, c->mesh_id);
                        store_bind_text(st, 2, conn_sender_scope(c));
                        store_bind_text(st, 3, req->client_message_id);
                        store_bind_text(st, 4, a->message_id);
                        r = store_step_done(s, st);
                }
        }
        if (r >= 0 && w->message)
                r = undo_message(s, a->message_id);
        if (r < 0) {
                log_error_errno(r, "Cannot take back a failed accept (%m); exiting before any reply is sent.");
                _exit(EXIT_FAILURE);
        }
}

static int accept_tx(Conn *c, const SendRequest *req, const uint8_t *fingerprint, const char *destination_ref,
                     const Recipients *rcpt, const Mentions *mentions, Accepted *a, DedupeRow *existing) {
        Store *s = c->server->store;
        AcceptWrites w = {};
        int r;

        /* Inside SQLite's batch the accept is all or nothing by taking back its own rows on
         * failure (accept_undo()): a savepoint per accept copied every page it wrote into the
         * statement journal, about 8 µs of the ~50 µs of CPU a DM costs. Outside a batch it
         * is its own transaction. */
        bool in_batch = store_batch_is_open(s) && store_engine(s) == STORE_SQLITE;
        if (!in_batch) {
                r = store_begin(s);
                if (r < 0)
                        return r;
        }

        if (req->client_message_id) {
                r = claim_dedupe(c, req, fingerprint, destination_ref, a);
                if (r == 0) {
                        r = dedupe_lookup(s, c, req->client_message_id, existing);
                        if (!in_batch)
                                store_rollback(s);
                        return r < 0 ? r : r == 0 ? -EIO : ACCEPT_EXISTING;
                }
                if (r < 0)
                        goto fail;
                w.dedupe = true;
        }

        if (req->target_kind == TARGET_DIRECT) {
                r = direct_target_exists(s, c->mesh_id, req->direct_key);
                if (r == 0)
                        r = ACCEPT_NO_RECIPIENT;
                if (r != 1)
                        goto fail;
        } else if (req->target_kind == TARGET_TOPIC) {
                r = topic_lookup(s, c->mesh_id, req->target_ref, &a->topic_name);
                if (r == 0)
                        r = ACCEPT_NO_TOPIC;
                if (r != 1)
                        goto fail;
        }

        r = insert_message(c, req, a, req->target_kind == TARGET_TOPIC ? req->target_ref : NULL);
        if (r < 0)
                goto fail;
        w.message = true;
        r = insert_rows(c, req, a, rcpt, mentions);
        if (r < 0)
                goto fail;
        if (!in_batch) {
                r = store_commit(s);
                if (r < 0)
                        return r;
        }
        return ACCEPT_NEW;

fail:
        if (in_batch)
                accept_undo(c, req, a, &w);
        else
                store_rollback(s);
        return r;
}


/* ---- PostgreSQL: the accept as one statement, without waiting (pool.h) ---- */

typedef struct AcceptJob {
        ConnRef conn;                    /* the sender's connection, which may go meanwhile */
        json_object *root;               /* holds the strings req points to */
        SendRequest req;
        uint8_t fingerprint[FINGERPRINT_BYTES];
        char message_id[BROKER_ID_LEN + 1];
        int64_t created_at;
        char routing_key[PUBKEY_HEX_LEN + 1];
        char member_pubkey[PUBKEY_HEX_LEN + 1];
        char *mesh_id, *member_id, *display_name;
        char **recipients;               /* NULL-ended */
} AcceptJob;

static AcceptJob *accept_job_free(AcceptJob *j) {
        if (!j)
                return NULL;
        json_object_put(j->root);
        free(j->mesh_id);
        free(j->member_id);
        free(j->display_name);
        for (char **k = j->recipients; k && *k; k++)
                free(*k);
        free(j->recipients);
        free(j);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(AcceptJob *, accept_job_free);

/* A PostgreSQL array literal of strings: {"a","b"}, each quoted. */
static char *array_literal(const char *const *items, size_t n) {
        size_t len = 3;
        char *out, *o;

        for (size_t i = 0; i < n; i++)
                len += 2 * strlen(items[i]) + 3;
        out = malloc(len);
        if (!out)
                return NULL;
        o = out;
        *o++ = '{';
        for (size_t i = 0; i < n; i++) {
                if (i > 0)
                        *o++ = ',';
                *o++ = '"';
                for (const char *p = items[i]; *p; p++) {
                        if (*p == '"' || *p == '\\')
                                *o++ = '\\';
                        *o++ = *p;
                }
                *o++ = '"';
        }
        *o++ = '}';
        *o = '\0';
        return out;
}

/* bytea's text input: \x and the hex digits. */
static void bytea_hex(const uint8_t *p, size_t n, char *ret) {
        ret[0] = '\\';
        ret[1] = 'x';
        hex_encode(p, n, ret + 2);
}

/* Whether another live connection of this node holds key: if not, the other nodes are
 * woken for it (delivery_push_new()'s rule, decided before the statement). */
static bool held_here(const Server *s, const char *mesh_id, const char *key, const Conn *sender) {
        for (const Conn *c = s->conns; c; c = c->next)
                if (c != sender && conn_is_live(c) && streq(c->mesh_id, mesh_id) &&
                    (streq(conn_routing_key(c), key) || streq(c->member_pubkey, key)))
                        return true;
        return false;
}

static void accept_done(int r, StoreResult *res, void *userdata) {
        _cleanup_(accept_job_freep) AcceptJob *j = userdata;
        Server *s = j->conn.server;
        Conn *c = conn_ref_get(&j->conn);
        int outcome = r < 0 || store_result_rows(res) != 1 ? -1 : (int) store_result_int64(res, 0, 0);
        const char *topic_name = outcome == 0 ? store_result_text(res, 0, 5) : NULL;

        if (r < 0)
                log_warning_errno(r, "Accept of a send from %s failed: %m", j->member_id);
        if (c && c->closing)
                c = NULL;
        switch (outcome) {
        case 0:
                break;
        case 1: {
                DedupeRow row = {
                        .history_available = store_result_int64(res, 0, 3) != 0,
                        .first_seen_at = store_result_int64(res, 0, 4),
                };
                const char *id = store_result_text(res, 0, 1), *fp = store_result_text(res, 0, 2);
                snprintf(row.broker_message_id, sizeof row.broker_message_id, "%s", strempty(id));
                if (!fp || strlen(fp) != 2 + 2 * FINGERPRINT_BYTES ||
                    hex_decode(fp + 2, row.fingerprint, FINGERPRINT_BYTES) < 0)
                        memset(row.fingerprint, 0, sizeof row.fingerprint);
                if (c)
                        send_ack_existing(c, &j->req, j->fingerprint, &row);
                break;
        }
        case 2:
                if (c)
                        send_ack_error(c, &j->req, "unknown_recipient",
                                       "no connected peer for target (no member or session of this mesh has that pubkey)",
                                       0);
                break;
        case 3:
                if (c)
                        send_ack_error(c, &j->req, "topic_not_found", "topic not found in this mesh", 0);
                break;
        case 4:
                if (c) {
                        char msg[128];
                        snprintf(msg, sizeof msg, "rate_limit: max %u msg per %u s — slow down", s->opts.rate_limit,
                                 s->opts.rate_window_sec);
                        send_ack_error(c, &j->req, "rate_limited", msg, store_result_int64(res, 0, 6));
                }
                break;
        default:
                /* A failure, or 5: an id whose dedupe row expired before its message, which
                 * SQLite's accept answers so too. */
                if (c)
                        send_ack_error(c, &j->req, "internal", "broker database error, retry later", 1000);
                break;
        }
        if (outcome == 0) {
                if (c) {
                        _cleanup_(json_object_putp) json_object *ack = ack_new(&j->req);
                        if (ack) {
                                json_object_object_add(ack, "messageId", json_object_new_string(j->message_id));
                                json_object_object_add(ack, "queued", json_object_new_boolean(true));
                                json_object_object_add(ack, "duplicate", json_object_new_boolean(false));
                                (void) conn_send(c, ack);
                        }
                }
                PushMessage m = {
                        .message_id = j->message_id,
                        .sender_pubkey = j->routing_key,
                        .sender_member_pubkey = j->member_pubkey,
                        .sender_member_id = j->member_id,
                        .sender_name = j->display_name,
                        .priority = j->req.priority,
                        .nonce = j->req.nonce,
                        .ciphertext = j->req.ciphertext,
                        .created_at_ms = j->created_at,
                        .client_message_id = j->req.client_message_id,
                        .request_fingerprint = j->req.has_fingerprint ? j->req.fingerprint : NULL,
                        .topic_name = topic_name,
                        .reply_to_id = j->req.reply_to_id,
                };
                /* The other nodes were woken by the statement itself. */
                for (char **k = j->recipients; *k; k++)
                        delivery_push_new(s, j->mesh_id, *k, &m, c, false);
        }
        /* Last: it may run frames that waited behind this send. */
        c = conn_ref_get(&j->conn);
        if (c)
                conn_async_done(c);
}

static const char accept_sql[] =
        "SELECT o_outcome, o_message_id, o_fingerprint, o_history_available, o_first_seen_at, o_topic_name,"
        "       o_retry_after"
        "  FROM cm_accept(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
        "                 ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

/* With several nodes, a multicast's recipients on the other nodes come from their presence
 * rows in the accept's own statement (the same rule as multicast_recipients(): live, visible,
 * another member, in the group), after this node's keys ?24; each is woken, up to ?29. */
static const char accept_multicast_sql[] =
        "SELECT o_outcome, o_message_id, o_fingerprint, o_history_available, o_first_seen_at, o_topic_name,"
        "       o_retry_after"
        "  FROM (SELECT ARRAY(SELECT DISTINCT p.routing_key FROM presence p"
        "         WHERE p.mesh_id = ?2 AND p.node_id <> ?27::text AND p.visible = 1 AND p.member_pubkey <> ?5"
        "           AND p.routing_key <> ALL (?24::text[])"
        "           AND (?28::text IS NULL OR EXISTS (SELECT 1 FROM json_array_elements(CASE"
        "                  WHEN json_typeof(p.groups::json) = 'array' THEN p.groups::json ELSE '[]' END) g"
        "                WHERE g->>'name' = ?28::text OR left(g->>'name', length(?28::text) + 1) = ?28::text || '/'))"
        "        ) AS keys) r,"
        "       cm_accept(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,"
        "                 ?20, ?21, ?22, ?23, ?24::text[] || r.keys, ?25,"
        "                 ?26::text[] || ARRAY(SELECT ?2 || ' ' || k FROM unnest(r.keys[1:?29::int]) k))";

static int accept_submit(Conn *c, const Frame *f, const SendRequest *req, const uint8_t *fingerprint,
                         const char *destination_ref, const Recipients *rcpt, const Mentions *mentions) {
        Server *s = c->server;
        _cleanup_(accept_job_freep) AcceptJob *j = calloc(1, sizeof *j);
        _cleanup_free_ const char **wakes = NULL;
        _cleanup_free_ char *recipients = NULL, *mention_list = NULL, *wake_list = NULL;
        char created[24], expires[24], limit[24], window[24], wake_room[24], client_fp[2 + 2 * FINGERPRINT_BYTES + 1],
                fp[2 + 2 * FINGERPRINT_BYTES + 1];
        char wake_buf[RECIPIENTS_WAKE_MAX][BROKER_ID_LEN + PUBKEY_HEX_LEN + 2];
        const char *mention_names[MENTIONS_MAX];
        size_t n_wakes = 0;
        int r;

        if (!j)
                return -ENOMEM;
        *j = (AcceptJob) {
                .conn = conn_ref(c),
                .root = json_object_get(f->root),
                .req = *req,
                .created_at = now_ms(),
                .mesh_id = strdup(c->mesh_id),
                .member_id = strdup(c->member_id),
                .display_name = strdup(c->display_name),
                .recipients = calloc(rcpt->n + 1, sizeof(char *)),
        };
        if (j->req.target_kind == TARGET_DIRECT)
                j->req.target_ref = j->req.direct_key;   /* it pointed into req */
        memcpy(j->fingerprint, fingerprint, FINGERPRINT_BYTES);
        snprintf(j->routing_key, sizeof j->routing_key, "%s", conn_routing_key(c));
        snprintf(j->member_pubkey, sizeof j->member_pubkey, "%s", c->member_pubkey);
        if (!j->mesh_id || !j->member_id || !j->display_name || !j->recipients)
                return -ENOMEM;
        wakes = calloc(rcpt->n + 1, sizeof *wakes);
        if (!wakes)
                return -ENOMEM;
        for (size_t i = 0; i < rcpt->n; i++) {
                j->recipients[i] = strdup(rcpt->keys[i]);
                if (!j->recipients[i])
                        return -ENOMEM;
                if (s->nodes_on && n_wakes < RECIPIENTS_WAKE_MAX && !held_here(s, c->mesh_id, rcpt->keys[i], c) &&
                    snprintf(wake_buf[n_wakes], sizeof wake_buf[n_wakes], "%s %s", c->mesh_id, rcpt->keys[i]) <
                            (int) sizeof wake_buf[n_wakes]) {
                        wakes[n_wakes] = wake_buf[n_wakes];
                        n_wakes++;
                }
        }
        for (size_t i = 0; i < mentions->n; i++)
                mention_names[i] = mentions->names[i];
        recipients = array_literal((const char *const *) j->recipients, rcpt->n);
        mention_list = array_literal(mention_names, mentions->n);
        wake_list = array_literal(wakes, n_wakes);
        if (!recipients || !mention_list || !wake_list)
                return -ENOMEM;

        broker_id_generate(j->message_id);
        snprintf(created, sizeof created, "%" PRId64, j->created_at);
        snprintf(expires, sizeof expires, "%" PRId64,
                 j->created_at + (int64_t) s->opts.dedupe_retention_days * MS_PER_DAY);
        snprintf(limit, sizeof limit, "%u", s->opts.rate_limit);
        snprintf(window, sizeof window, "%" PRId64, (int64_t) (s->opts.rate_window_sec ? s->opts.rate_window_sec : 1) * 1000);
        bytea_hex(fingerprint, FINGERPRINT_BYTES, fp);
        if (req->has_fingerprint)
                bytea_hex(req->fingerprint, FINGERPRINT_BYTES, client_fp);

        const char *values[] = {
                j->message_id, c->mesh_id, c->member_id, conn_routing_key(c), c->member_pubkey, c->display_name,
                req->target_kind == TARGET_DIRECT ? req->direct_key : req->target_spec,
                req->priority, req->nonce, req->ciphertext, created, req->client_message_id,
                req->has_fingerprint ? client_fp : NULL, req->reply_to_id,
                req->target_kind == TARGET_TOPIC ? req->target_ref : NULL,
                conn_sender_scope(c), fp, target_kind_destination(req->target_kind), destination_ref, expires,
                limit, window, req->target_kind == TARGET_DIRECT ? req->direct_key : NULL,
                recipients, mention_list, wake_list,
                s->node_id, req->target_kind == TARGET_GROUP ? req->target_ref : NULL, wake_room,
        };
        snprintf(wake_room, sizeof wake_room, "%zu", RECIPIENTS_WAKE_MAX - n_wakes);
        bool remote = s->nodes_on && req->target_kind != TARGET_DIRECT;
        r = pool_submit(s, pool_lane_for(s, c->member_id), remote ? accept_multicast_sql : accept_sql,
                        remote ? ELEMENTSOF(values) : ELEMENTSOF(values) - 3, values, accept_done, j);
        if (r < 0)
                return r;
        TAKE_PTR(j);
        conn_async_started(c);
        return 0;
}

void accept_handle_send(Conn *c, const Frame *f) {
        Server *s = c->server;
        uint8_t fingerprint[FINGERPRINT_BYTES];
        _cleanup_free_ const char **multicast_keys = NULL;
        ProtocolError e;
        SendRequest req;
        DedupeRow existing;
        Accepted a = { .created_at = now_ms() };
        Mentions mentions = { .n = 0 };
        int64_t retry_after = 0;
        int r;

        if (send_request_parse(f, &req, &e) < 0) {
                send_ack_error(c, &req, e.code, e.message, 0);
                return;
        }
        if (req.target_kind == TARGET_DIRECT &&
            (streq(req.direct_key, conn_routing_key(c)) ||
             (streq(req.direct_key, c->member_pubkey) && !c->session_pubkey[0]))) {
                send_ack_error(c, &req, "no_recipient",
                               "no connected peer for target (targetSpec is your own key without another session)", 0);
                return;
        }

        const char *destination_ref = req.target_kind == TARGET_DIRECT ? req.direct_key : req.target_spec;
        if (req.has_fingerprint)
                memcpy(fingerprint, req.fingerprint, sizeof fingerprint);
        else
                derive_fingerprint(&req, destination_ref, fingerprint);

        if (pool_on(s)) {
                const char *direct[1] = { req.direct_key };
                Recipients rcpt = { .n = 0 };
                _cleanup_free_ const char **keys = NULL;
                if (req.target_kind == TARGET_DIRECT)
                        rcpt = (Recipients) { .keys = direct, .n = 1 };
                else if (multicast_recipients(c, &req, &rcpt) >= 0)
                        keys = rcpt.keys;
                else {
                        send_ack_error(c, &req, "internal", "out of memory, retry later", 1000);
                        return;
                }
                if (req.target_kind == TARGET_TOPIC)
                        collect_mentions(&req, &mentions);
                r = accept_submit(c, f, &req, fingerprint, destination_ref, &rcpt, &mentions);
                if (r < 0) {
                        log_warning_errno(r, "Cannot send the accept of a send from %s to PostgreSQL: %m",
                                          c->presence_id);
                        send_ack_error(c, &req, "internal", "broker database error, retry later", 1000);
                }
                return;
        }

        /* B0: retries of committed ids are answered here and never spend rate budget. */
        if (req.client_message_id) {
                r = dedupe_lookup(s->store, c, req.client_message_id, &existing);
                if (r > 0) {
                        send_ack_existing(c, &req, fingerprint, &existing);
                        return;
                }
                if (r < 0) {
                        send_ack_error(c, &req, "internal", "broker database error, retry later", 1000);
                        return;
                }
        }

        r = ratelimit_consume(s->store, s->opts.rate_limit, s->opts.rate_window_sec, c->mesh_id, c->member_id,
                              req.client_message_id, a.created_at, &retry_after);
        if (r == 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "rate_limit: max %u msg per %u s — slow down", s->opts.rate_limit,
                         s->opts.rate_window_sec);
                send_ack_error(c, &req, "rate_limited", msg, retry_after);
                return;
        }
        if (r < 0) {
                send_ack_error(c, &req, "internal", "broker database error, retry later", 1000);
                return;
        }

        const char *direct[1] = { req.direct_key };
        Recipients rcpt = { .n = 0 };
        if (req.target_kind == TARGET_DIRECT)
                rcpt = (Recipients) { .keys = direct, .n = 1 };
        else {
                if (multicast_recipients(c, &req, &rcpt) < 0) {
                        send_ack_error(c, &req, "internal", "out of memory, retry later", 1000);
                        return;
                }
                multicast_keys = rcpt.keys;
        }
        if (req.target_kind == TARGET_TOPIC)
                collect_mentions(&req, &mentions);

        broker_id_generate(a.message_id);
        r = accept_tx(c, &req, fingerprint, destination_ref,
                      &rcpt, &mentions, &a, &existing);
        _cleanup_free_ char *topic_name = a.topic_name;
        switch (r) {
        case ACCEPT_EXISTING:
                send_ack_existing(c, &req, fingerprint, &existing);
                return;
        case ACCEPT_NO_RECIPIENT:
                send_ack_error(c, &req, "unknown_recipient",
                               "no connected peer for target (no member or session of this mesh has that pubkey)", 0);
                return;
        case ACCEPT_NO_TOPIC:
                send_ack_error(c, &req, "topic_not_found", "topic not found in this mesh", 0);
                return;
        case ACCEPT_NEW:
                break;
        default:
                log_warning_errno(r, "Accept of a send from %s failed: %m", c->presence_id);
                send_ack_error(c, &req, "internal", "broker database error, retry later", 1000);
                return;
        }

        _cleanup_(json_object_putp) json_object *ack = ack_new(&req);
        if (ack) {
                json_object_object_add(ack, "messageId", json_object_new_string(a.message_id));
                json_object_object_add(ack, "queued", json_object_new_boolean(true));
                json_object_object_add(ack, "duplicate", json_object_new_boolean(false));
                (void) conn_send(c, ack);
        }

        PushMessage m = {
                .message_id = a.message_id,
                .sender_pubkey = conn_routing_key(c),
                .sender_member_pubkey = c->member_pubkey,
                .sender_member_id = c->member_id,
                .sender_name = c->display_name,
                .priority = req.priority,
                .nonce = req.nonce,
                .ciphertext = req.ciphertext,
                .created_at_ms = a.created_at,
                .client_message_id = req.client_message_id,
                .request_fingerprint = req.has_fingerprint ? req.fingerprint : NULL,
                .topic_name = topic_name,
                .reply_to_id = req.reply_to_id,
        };
        for (size_t i = 0; i < rcpt.n; i++)
                delivery_push_new(s, c->mesh_id, rcpt.keys[i], &m, c, true);
}
