/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "log.h"
#include "time-util.h"
#include "topic.h"

static json_object *topic_new(StoreStmt *st) {
        json_object *t = json_object_new_object();
        char created[ISO8601_MAX];

        if (!t)
                return NULL;
        if (format_iso8601((usec_t) store_col_int64(st, 2) * USEC_PER_MSEC, created) < 0)
                created[0] = '\0';
        json_object_object_add(t, "id", json_object_new_string(store_col_text(st, 0)));
        json_object_object_add(t, "name", json_object_new_string(store_col_text(st, 1)));
        json_object_object_add(t, "description", store_col_is_null(st, 4) ? NULL :
                               json_object_new_string(store_col_text(st, 4)));
        json_object_object_add(t, "visibility", json_object_new_string("public"));
        json_object_object_add(t, "memberCount", json_object_new_int(store_col_int(st, 3)));
        json_object_object_add(t, "createdAt", json_object_new_string(created));
        return t;
}

void topic_handle_list(Conn *c, const Frame *f) {
        Store *s = c->server->store;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *topics = json_object_new_array();
        StoreStmt *st;
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
                "  (SELECT COUNT(*) FROM member m WHERE m.mesh_id = t.mesh_id AND m.revoked_at IS NULL), t.description"
                "  FROM topic t WHERE t.mesh_id = ?1 ORDER BY t.name, t.id");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *t = topic_new(st);
                if (!t || json_object_array_add(topics, t) < 0) {
                        json_object_put(t);
                        rc = -ENOMEM;
                        break;
                }
        }
        store_reset(st);
        if (rc != STORE_DONE) {
                log_warning_errno(rc, "Listing the topics of mesh %s failed: %m", c->mesh_id);
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        (void) conn_send(c, o);
}

void topic_handle_create(Conn *c, const Frame *f) {
        Store *s = c->server->store;
        char id[BROKER_ID_LEN + 1];
        TopicCreateRequest req;
        ProtocolError e;
        StoreStmt *st;
        int r;

        if (topic_create_request_parse(f, &req, &e) < 0) {
                (void) conn_send_error(c, e.code, e.message, f->req_id);
                return;
        }
        /* Every member of the mesh receives every topic here: a topic that claims to be
         * private would mislead its creator. */
        if (!streq(req.visibility, "public")) {
                (void) conn_send_error(c, "not_supported",
                                       "topic visibility other than \"public\" is not supported by this broker "
                                       "(every member of the mesh receives every topic)", f->req_id);
                return;
        }

        broker_id_generate(id);
        st = store_stmt(s, "INSERT INTO topic (id, mesh_id, name, created_at, description) VALUES (?1, ?2, ?3, ?4, ?5)"
                           " ON CONFLICT (mesh_id, name) DO NOTHING");
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, c->mesh_id);
        store_bind_text(st, 3, req.name);
        store_bind_int64(st, 4, now_ms());
        if (req.description)
                store_bind_text(st, 5, req.description);
        r = store_step_done(s, st);
        bool created = r >= 0 && store_changes(s) == 1;

        /* Idempotent on the name, as upstream: an existing topic is reported, created:false. */
        st = r >= 0 ? store_stmt(s, "SELECT id FROM topic WHERE mesh_id = ?1 AND name = ?2") : NULL;
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        store_bind_text(st, 2, req.name);
        int rc = store_step(st);
        if (rc == STORE_ROW)
                snprintf(id, sizeof id, "%s", store_col_text(st, 0));
        store_reset(st);
        if (rc != STORE_ROW) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        if (created)
                log_info("%s created topic %s (%s) in mesh %s.", c->display_name, req.name, id, c->mesh_id);

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *t = json_object_new_object();
        if (!o || !t) {
                json_object_put(t);
                return;
        }
        json_object_object_add(t, "id", json_object_new_string(id));
        json_object_object_add(t, "name", json_object_new_string(req.name));
        json_object_object_add(t, "visibility", json_object_new_string(req.visibility));
        json_object_object_add(o, "type", json_object_new_string("topic_created"));
        json_object_object_add(o, "topic", t);
        json_object_object_add(o, "created", json_object_new_boolean(created));
        if (f->req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(f->req_id));
        (void) conn_send(c, o);
}
