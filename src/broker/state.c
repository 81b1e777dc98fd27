/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "nodes.h"
#include "pool.h"
#include "state.h"
#include "time-util.h"

/* Values were validated JSON when stored; a row that does not parse reads as null. */
static json_object *value_parse(const char *text) {
        return text ? json_tokener_parse(text) : NULL;
}

static void add_iso(json_object *o, const char *key, int64_t ms) {
        char buf[ISO8601_MAX];

        if (format_iso8601((usec_t) ms * USEC_PER_MSEC, buf) < 0)
                buf[0] = '\0';
        json_object_object_add(o, key, json_object_new_string(buf));
}

static int count_keys(Store *s, const char *mesh_id, const char *key, int64_t *ret_n, bool *ret_exists) {
        StoreStmt *st = store_stmt(s,
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN key = ?2 THEN 1 ELSE 0 END), 0)"
                "  FROM mesh_state WHERE mesh_id = ?1");
        int rc;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, key);
        rc = store_step(st);
        if (rc == STORE_ROW) {
                *ret_n = store_col_int64(st, 0);
                *ret_exists = store_col_int64(st, 1) > 0;
        }
        store_reset(st);
        return rc == STORE_ROW ? 0 : rc;
}

static json_object *entry_new(const char *key, const char *value, const char *updated_by, int64_t updated_at) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (key)
                json_object_object_add(o, "key", json_object_new_string(key));
        json_object_object_add(o, "value", value_parse(value));
        json_object_object_add(o, "updatedBy", json_object_new_string(strempty(updated_by)));
        add_iso(o, "updatedAt", updated_at);
        return o;
}

static json_object *entry_of_stmt(StoreStmt *st, bool with_key) {
        return entry_new(with_key ? store_col_text(st, 0) : NULL, store_col_text(st, 1), store_col_text(st, 2),
                         store_col_int64(st, 3));
}

/* The key is not set: upstream's answer. */
static json_object *entry_unset(void) {
        json_object *o = json_object_new_object();

        if (o) {
                json_object_object_add(o, "value", NULL);
                json_object_object_add(o, "updatedBy", json_object_new_string(""));
                json_object_object_add(o, "updatedAt", json_object_new_string(""));
        }
        return o;
}

static void send_state_result(Conn *c, const char *key, json_object *entry, const char *req_id) {
        /* Upstream's key order: type, key, value, updatedBy, updatedAt, _reqId. */
        _cleanup_(json_object_putp) json_object *r = json_object_new_object();
        if (!r)
                return;
        json_object_object_add(r, "type", json_object_new_string("state_result"));
        json_object_object_add(r, "key", json_object_new_string(key));
        json_object_object_foreach(entry, k, v)
                json_object_object_add(r, k, json_object_get(v));
        if (req_id)
                json_object_object_add(r, "_reqId", json_object_new_string(req_id));
        (void) conn_send(c, r);
}

static void send_state_change(Conn *c, const char *key, const char *value) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        if (!o)
                return;
        json_object_object_add(o, "type", json_object_new_string("state_change"));
        json_object_object_add(o, "key", json_object_new_string(key));
        json_object_object_add(o, "value", value_parse(value));
        json_object_object_add(o, "updatedBy", json_object_new_string(c->display_name));
        for (Conn *p = c->server->conns; p; p = p->next)
                if (p != c && conn_is_live(p) && streq(p->mesh_id, c->mesh_id))
                        (void) conn_send(p, o);
        /* And every connection of the mesh on the other nodes, the setter's siblings too. */
        nodes_announce_state(c, key, o);
}

static json_object *list_new(const char *req_id, json_object **ret_entries) {
        json_object *o = json_object_new_object(), *entries = json_object_new_array();

        if (!o || !entries) {
                json_object_put(o);
                json_object_put(entries);
                return NULL;
        }
        json_object_object_add(o, "type", json_object_new_string("state_list"));
        json_object_object_add(o, "entries", entries);
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        *ret_entries = entries;
        return o;
}

/*
 * PostgreSQL: each handler is one statement in flight; its reply is sent from the callback,
 * and c's later frames wait for it (conn_barrier_begin()), so replies keep their order.
 */
typedef enum StateOp { STATE_SET, STATE_GET, STATE_LIST } StateOp;

typedef struct StateJob {
        ConnRef conn;
        StateOp op;
        json_object *root;               /* key and req_id point into it */
        const char *key;
        const char *req_id;
        char *value;
} StateJob;

static StateJob *state_job_free(StateJob *j) {
        if (j) {
                json_object_put(j->root);
                free(j->value);
                free(j);
        }
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(StateJob *, state_job_free);

static void state_done(int r, StoreResult *res, void *userdata) {
        _cleanup_(state_job_freep) StateJob *j = userdata;
        Conn *c = conn_ref_get(&j->conn);

        if (!c)
                return;
        if (c->closing)
                goto done;
        if (r < 0) {
                log_warning("A state statement of mesh %s failed: %s", c->mesh_id, store_errmsg(c->server->store));
                (void) conn_send_error(c, "internal", "broker database error, retry later", j->req_id);
                goto done;
        }
        switch (j->op) {
        case STATE_SET:
                if (store_result_rows(res) != 1 || store_result_int64(res, 0, 0) == 0)
                        (void) conn_send_error(c, "too_many_keys", "set_state: the mesh holds 1000 state keys already",
                                               j->req_id);
                else
                        send_state_change(c, j->key, j->value);
                break;
        case STATE_GET: {
                _cleanup_(json_object_putp) json_object *e =
                        store_result_rows(res) > 0 ? entry_new(NULL, store_result_text(res, 0, 1),
                                                               store_result_text(res, 0, 2),
                                                               store_result_int64(res, 0, 3))
                                                   : entry_unset();
                if (e)
                        send_state_result(c, j->key, e, j->req_id);
                break;
        }
        case STATE_LIST: {
                json_object *entries;
                _cleanup_(json_object_putp) json_object *o = list_new(j->req_id, &entries);
                if (!o)
                        break;
                for (int i = 0; i < store_result_rows(res); i++) {
                        json_object *e = entry_new(strempty(store_result_text(res, i, 0)), store_result_text(res, i, 1),
                                                   store_result_text(res, i, 2), store_result_int64(res, i, 3));
                        if (!e || json_object_array_add(entries, e) < 0) {
                                json_object_put(e);
                                (void) conn_send_error(c, "internal", "out of memory", j->req_id);
                                goto done;
                        }
                }
                (void) conn_send(c, o);
                break;
        }
        }
done:
        conn_barrier_end(c);
}

static void state_submit(Conn *c, const Frame *f, StateOp op, const char *key, char **value) {
        _cleanup_(state_job_freep) StateJob *j = calloc(1, sizeof *j);
        char now[24], max[24];
        int r;

        if (!j) {
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return;
        }
        *j = (StateJob) { .conn = conn_ref(c), .op = op, .root = json_object_get(f->root),
                          .key = key, .req_id = f->req_id, .value = value ? TAKE_PTR(*value) : NULL };
        snprintf(now, sizeof now, "%" PRId64, now_ms());
        snprintf(max, sizeof max, "%d", STATE_KEYS_MAX);
        switch (op) {
        case STATE_SET: {
                /* count_keys()'s limit and the write, in one statement: 1 stored, 0 refused. */
                const char *values[] = { c->mesh_id, key, j->value, c->display_name, now, max };
                r = pool_submit(c->server, 0,
                                "WITH n AS (SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN key = ?2 THEN 1 ELSE 0 END), 0) AS mine"
                                "             FROM mesh_state WHERE mesh_id = ?1),"
                                " w AS (INSERT INTO mesh_state (mesh_id, key, value, updated_by, updated_at)"
                                "        SELECT ?1, ?2, ?3, ?4, ?5::bigint FROM n WHERE n.mine > 0 OR n.total < ?6::bigint"
                                "        ON CONFLICT (mesh_id, key) DO UPDATE SET value = excluded.value,"
                                "          updated_by = excluded.updated_by, updated_at = excluded.updated_at RETURNING 1)"
                                " SELECT COUNT(*) FROM w",
                                ELEMENTSOF(values), values, state_done, j);
                break;
        }
        case STATE_GET: {
                const char *values[] = { c->mesh_id, key };
                r = pool_submit(c->server, 0,
                                "SELECT key, value, updated_by, updated_at FROM mesh_state WHERE mesh_id = ?1 AND key = ?2",
                                ELEMENTSOF(values), values, state_done, j);
                break;
        }
        default: {
                const char *values[] = { c->mesh_id };
                r = pool_submit(c->server, 0,
                                "SELECT key, value, updated_by, updated_at FROM mesh_state WHERE mesh_id = ?1 ORDER BY key",
                                ELEMENTSOF(values), values, state_done, j);
                break;
        }
        }
        if (r < 0) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        TAKE_PTR(j);
        conn_barrier_begin(c);
}

void state_handle_set(Conn *c, const Frame *f) {
        Store *s = c->server->store;
        _cleanup_free_ char *value = NULL;
        ProtocolError e;
        const char *key;
        bool exists = false;
        int64_t n = 0;
        int r;

        r = set_state_request_parse(f, &key, &value, &e);
        if (r == -ENOMEM) {
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return;
        }
        if (r < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (pool_on(c->server)) {
                state_submit(c, f, STATE_SET, key, &value);
                return;
        }
        r = count_keys(s, c->mesh_id, key, &n, &exists);
        if (r < 0) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        if (!exists && n >= STATE_KEYS_MAX) {
                (void) conn_send_error(c, "too_many_keys", "set_state: the mesh holds 1000 state keys already",
                                       f->req_id);
                return;
        }

        int64_t now = now_ms();
        StoreStmt *st = store_stmt(s,
                "INSERT INTO mesh_state (mesh_id, key, value, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"
                " ON CONFLICT (mesh_id, key) DO UPDATE SET value = excluded.value,"
                "  updated_by = excluded.updated_by, updated_at = excluded.updated_at");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, key);
        store_bind_text(st, 3, value);
        store_bind_text(st, 4, c->display_name);
        store_bind_int64(st, 5, now);
        r = store_step_done(s, st);
        if (r < 0) {
                log_warning_errno(r, "Storing state key of mesh %s failed: %m", c->mesh_id);
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }

        send_state_change(c, key, value);
}

void state_handle_get(Conn *c, const Frame *f) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        ProtocolError e;
        const char *key;
        int rc;

        if (get_state_request_parse(f, &key, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        if (pool_on(c->server)) {
                state_submit(c, f, STATE_GET, key, NULL);
                return;
        }
        StoreStmt *st = store_stmt(c->server->store,
                "SELECT key, value, updated_by, updated_at FROM mesh_state WHERE mesh_id = ?1 AND key = ?2");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, key);
        rc = store_step(st);
        if (rc == STORE_ROW)
                o = entry_of_stmt(st, false);
        store_reset(st);
        if (rc != STORE_ROW && rc != STORE_DONE) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        if (rc == STORE_DONE)
                o = entry_unset();
        if (o)
                send_state_result(c, key, o, f->req_id);
}

void state_handle_list(Conn *c, const Frame *f) {
        json_object *entries;
        _cleanup_(json_object_putp) json_object *o = NULL;
        int rc;

        if (pool_on(c->server)) {
                state_submit(c, f, STATE_LIST, NULL, NULL);
                return;
        }
        o = list_new(f->req_id, &entries);
        if (!o)
                return;
        StoreStmt *st = store_stmt(c->server->store,
                "SELECT key, value, updated_by, updated_at FROM mesh_state WHERE mesh_id = ?1 ORDER BY key");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *e = entry_of_stmt(st, true);
                if (!e || json_object_array_add(entries, e) < 0) {
                        json_object_put(e);
                        rc = -ENOMEM;
                        break;
                }
        }
        store_reset(st);
        if (rc != STORE_DONE) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        (void) conn_send(c, o);
}
