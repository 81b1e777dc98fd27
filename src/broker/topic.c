/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "pool.h"
#include "time-util.h"
#include "topic.h"

static json_object *topic_new(const char *id, const char *name, int64_t created_at, int64_t member_count,
                              const char *description) {
        json_object *t = json_object_new_object();
        char created[ISO8601_MAX];

        if (!t)
                return NULL;
        if (format_iso8601((usec_t) created_at * USEC_PER_MSEC, created) < 0)
                created[0] = '\0';
        json_object_object_add(t, "id", json_object_new_string(strempty(id)));
        json_object_object_add(t, "name", json_object_new_string(strempty(name)));
        json_object_object_add(t, "description", description ? json_object_new_string(description) : NULL);
        json_object_object_add(t, "visibility", json_object_new_string("public"));
        json_object_object_add(t, "memberCount", json_object_new_int((int) member_count));
        json_object_object_add(t, "createdAt", json_object_new_string(created));
        return t;
}

static json_object *list_new(const char *req_id, json_object **ret_topics) {
        json_object *o = json_object_new_object(), *topics = json_object_new_array();

        if (!o || !topics) {
                json_object_put(o);
                json_object_put(topics);
                return NULL;
        }
        json_object_object_add(o, "type", json_object_new_string("topic_list_response"));
        json_object_object_add(o, "topics", topics);
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        *ret_topics = topics;
        return o;
}

static void send_created(Conn *c, const char *id, const char *name, const char *visibility, bool created,
                         const char *req_id) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *t = json_object_new_object();

        if (!o || !t) {
                json_object_put(t);
                return;
        }
        if (created)
                log_info("%s created topic %s (%s) in mesh %s.", c->display_name, name, id, c->mesh_id);
        json_object_object_add(t, "id", json_object_new_string(id));
        json_object_object_add(t, "name", json_object_new_string(name));
        json_object_object_add(t, "visibility", json_object_new_string(visibility));
        json_object_object_add(o, "type", json_object_new_string("topic_created"));
        json_object_object_add(o, "topic", t);
        json_object_object_add(o, "created", json_object_new_boolean(created));
        if (req_id)
                json_object_object_add(o, "_reqId", json_object_new_string(req_id));
        (void) conn_send(c, o);
}

/* Ordered by name, as upstream's listTopics. */
static const char list_sql[] =
        "SELECT t.id, t.name, t.created_at,"
        "  (SELECT COUNT(*) FROM member m WHERE m.mesh_id = t.mesh_id AND m.revoked_at IS NULL), t.description"
        "  FROM topic t WHERE t.mesh_id = ?1 ORDER BY t.name, t.id";

/* PostgreSQL: one statement in flight per frame, answered from its callback while c's later
 * frames wait, so replies keep their order. */
typedef struct TopicJob {
        ConnRef conn;
        bool create;
        json_object *root;               /* the strings below point into it */
        const char *req_id;
        TopicCreateRequest req;
} TopicJob;

static void topic_done(int r, StoreResult *res, void *userdata) {
        TopicJob *j = userdata;
        Conn *c = conn_ref_get(&j->conn);
        json_object *topics;
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (!c || c->closing)
                goto done;
        if (r < 0 || (j->create && store_result_rows(res) != 1)) {
                log_warning("A topic statement of mesh %s failed: %s", c->mesh_id, store_errmsg(c->server->store));
                (void) conn_send_error(c, "internal", "broker database error, retry later", j->req_id);
                goto done;
        }
        if (j->create) {
                send_created(c, strempty(store_result_text(res, 0, 0)), j->req.name, j->req.visibility,
                             store_result_int64(res, 0, 1) != 0, j->req_id);
                goto done;
        }
        o = list_new(j->req_id, &topics);
        if (!o) {
                (void) conn_send_error(c, "internal", "out of memory", j->req_id);
                goto done;
        }
        for (int i = 0; i < store_result_rows(res); i++) {
                json_object *t = topic_new(store_result_text(res, i, 0), store_result_text(res, i, 1),
                                           store_result_int64(res, i, 2), store_result_int64(res, i, 3),
                                           store_result_text(res, i, 4));
                if (!t || json_object_array_add(topics, t) < 0) {
                        json_object_put(t);
                        (void) conn_send_error(c, "internal", "out of memory", j->req_id);
                        goto done;
                }
        }
        (void) conn_send(c, o);
done:
        if (c)
                conn_barrier_end(c);
        json_object_put(j->root);
        free(j);
}

static void topic_submit(Conn *c, const Frame *f, const TopicCreateRequest *req) {
        TopicJob *j = malloc(sizeof *j);
        char id[BROKER_ID_LEN + 1], now[24];
        int r;

        if (!j) {
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return;
        }
        *j = (TopicJob) { .conn = conn_ref(c), .create = req != NULL,
                          .root = json_object_get(f->root), .req_id = f->req_id };
        if (req) {
                j->req = *req;
                broker_id_generate(id);
                snprintf(now, sizeof now, "%" PRId64, now_ms());
                const char *values[] = { id, c->mesh_id, req->name, now, req->description };
                /* Idempotent on the name, as upstream: the new topic's id and 1, or the existing
                 * one's and 0. */
                r = pool_submit(c->server, 0,
                                "WITH ins AS (INSERT INTO topic (id, mesh_id, name, created_at, description)"
                                "             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (mesh_id, name) DO NOTHING"
                                "             RETURNING id)"
                                " SELECT id, 1 FROM ins"
                                " UNION ALL SELECT id, 0 FROM topic WHERE mesh_id = ?2 AND name = ?3"
                                "   AND NOT EXISTS (SELECT 1 FROM ins)",
                                ELEMENTSOF(values), values, topic_done, j);
        } else {
                const char *values[] = { c->mesh_id };
                r = pool_submit(c->server, 0, list_sql, ELEMENTSOF(values), values, topic_done, j);
        }
        if (r < 0) {
                json_object_put(j->root);
                free(j);
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        conn_barrier_begin(c);
}

void topic_handle_list(Conn *c, const Frame *f) {
        Store *s = c->server->store;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *topics;
        StoreStmt *st;
        int rc;

        if (pool_on(c->server)) {
                topic_submit(c, f, NULL);
                return;
        }
        o = list_new(f->req_id, &topics);
        if (!o) {
                (void) conn_send_error(c, "internal", "out of memory", f->req_id);
                return;
        }
        st = store_stmt(s, list_sql);
        if (!st) {
                (void) conn_send_error(c, "internal", "broker database error, retry later", f->req_id);
                return;
        }
        store_bind_text(st, 1, c->mesh_id);
        while ((rc = store_step(st)) == STORE_ROW) {
                json_object *t = topic_new(store_col_text(st, 0), store_col_text(st, 1), store_col_int64(st, 2),
                                           store_col_int64(st, 3), store_col_is_null(st, 4) ? NULL : store_col_text(st, 4));
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

        if (pool_on(c->server)) {
                topic_submit(c, f, &req);
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
        send_created(c, id, req.name, req.visibility, created, f->req_id);
}
