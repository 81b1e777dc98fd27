/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "log.h"
#include "time-util.h"
#include "topic.h"

static json_object *topic_new(sqlite3_stmt *st) {
        json_object *t = json_object_new_object();
        char created[ISO8601_MAX];

        if (!t)
                return NULL;
        if (format_iso8601((usec_t) sqlite3_column_int64(st, 2) * USEC_PER_MSEC, created) < 0)
                created[0] = '\0';
        json_object_object_add(t, "id", json_object_new_string((const char *) sqlite3_column_text(st, 0)));
        json_object_object_add(t, "name", json_object_new_string((const char *) sqlite3_column_text(st, 1)));
        json_object_object_add(t, "description", NULL);
        json_object_object_add(t, "visibility", json_object_new_string("public"));
        json_object_object_add(t, "memberCount", json_object_new_int(sqlite3_column_int(st, 3)));
        json_object_object_add(t, "createdAt", json_object_new_string(created));
        return t;
}

void topic_handle_list(Conn *c, const Frame *f) {
        Store *s = c->server->store;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *topics = json_object_new_array();
        sqlite3_stmt *st;
        int rc;

        if (!o || !topics) {
                json_object_put(topics);
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return;
        }
        json_object_object_add(o, "type", json_object_new_string("topic_list_response"));
        json_object_object_add(o, "topics", topics);
        if (f->req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(f->req_id));

        /* Ordered by name, as upstream's listTopics. */
        st = store_stmt(s,
                "SELECT t.id, t.name, t.created_at,"
                "  (SELECT COUNT(*) FROM member m WHERE m.mesh_id = t.mesh_id AND m.revoked_at IS NULL)"
                "  FROM topic t WHERE t.mesh_id = ?1 ORDER BY t.name, t.id");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        sqlite3_bind_text(st, 1, c->mesh_id, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                json_object *t = topic_new(st);
                if (!t || json_object_array_add(topics, t) < 0) {
                        json_object_put(t);
                        rc = SQLITE_NOMEM;
                        break;
                }
        }
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) {
                log_warning("Listing the topics of mesh %s failed: %s", c->mesh_id, sqlite3_errstr(rc));
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        (void) conn_send(c, o);
}
