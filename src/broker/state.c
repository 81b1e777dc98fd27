/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
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
}

static json_object *entry_new(StoreStmt *st, bool with_key) {
        json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (with_key)
                json_object_object_add(o, "key", json_object_new_string(store_col_text(st, 0)));
        json_object_object_add(o, "value", value_parse(store_col_text(st, 1)));
        json_object_object_add(o, "updatedBy", json_object_new_string(store_col_text(st, 2)));
        add_iso(o, "updatedAt", store_col_int64(st, 3));
        return o;
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
                o = entry_new(st, false);
        store_reset(st);
        if (rc != STORE_ROW && rc != STORE_DONE) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        if (rc == STORE_DONE) {
                /* Upstream's answer for a key that is not set. */
                o = json_object_new_object();
                if (o) {
                        json_object_object_add(o, "value", NULL);
                        json_object_object_add(o, "updatedBy", json_object_new_string(""));
                        json_object_object_add(o, "updatedAt", json_object_new_string(""));
                }
        }
        if (!o)
                return;

        /* Upstream's key order: type, key, value, updatedBy, updatedAt, _reqId. */
        _cleanup_(json_object_putp) json_object *r = json_object_new_object();
        if (!r)
                return;
        json_object_object_add(r, "type", json_object_new_string("state_result"));
        json_object_object_add(r, "key", json_object_new_string(key));
        json_object_object_foreach(o, k, v)
                json_object_object_add(r, k, json_object_get(v));
        if (f->req_id)
                json_object_object_add(r, "_reqId", json_object_new_string(f->req_id));
        (void) conn_send(c, r);
}

void state_handle_list(Conn *c, const Frame *f) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *entries = json_object_new_array();
        int rc;

        if (!o || !entries) {
                json_object_put(entries);
                return;
        }
        json_object_object_add(o, "type", json_object_new_string("state_list"));
        json_object_object_add(o, "entries", entries);
        if (f->req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(f->req_id));

        StoreStmt *st = store_stmt(c->server->store,
                "SELECT key, value, updated_by, updated_at FROM mesh_state WHERE mesh_id = ?1 ORDER BY key");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *e = entry_new(st, true);
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
