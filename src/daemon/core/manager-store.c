/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "log.h"
#include "manager-store.h"
#include "manager.h"

/* NULL (every mesh) for "" or NULL; otherwise the id of the mesh named by slug or id. */
static int mesh_filter(Manager *m, const char *name, const char **ret_mesh_id, CmError *error) {
        Mesh *mesh;
        int r;

        if (!name || !name[0]) {
                *ret_mesh_id = NULL;
                return 0;
        }
        r = manager_lookup_mesh(m, name, &mesh, error);
        if (r < 0)
                return r;
        *ret_mesh_id = mesh->entry->mesh_id;
        return 0;
}

const char *manager_mesh_slug(Manager *m, const char *mesh_id) {
        assert(m);
        assert(mesh_id);

        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->entry->mesh_id && streq(m->meshes[i]->entry->mesh_id, mesh_id))
                        return m->meshes[i]->entry->slug;
        return "";
}

static int outbox_check(Manager *m, CmError *error) {
        if (!m->outbox)
                return cm_error_setf(error, CM_ERR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);
        return 0;
}

int manager_list_outbox_check(Manager *m, const OutboxListRequest *q, CmError *error) {
        const char *mesh_id;
        int r;

        assert(m);
        assert(q);

        r = mesh_filter(m, q->mesh, &mesh_id, error);
        if (r < 0)
                return r;
        return outbox_check(m, error);
}

int manager_list_outbox(Manager *m, const OutboxListRequest *q, OutboxRow **ret, size_t *ret_n, CmError *error) {
        const char *mesh_id;
        int r;

        assert(m);
        assert(q);
        assert(ret);
        assert(ret_n);

        r = mesh_filter(m, q->mesh, &mesh_id, error);
        if (r < 0)
                return r;
        r = outbox_check(m, error);
        if (r < 0)
                return r;
        r = outbox_list(m->outbox, mesh_id, q->status, q->limit, ret, ret_n);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot read the outbox: %s", STRERROR(r));
        return 0;
}

static int inbox_check(Manager *m, CmError *error) {
        if (!m->inbox)
                return cm_error_setf(error, CM_ERR_STORAGE, "%s", m->inbox_error);
        return 0;
}

int manager_list_inbox_check(Manager *m, const InboxListRequest *q, CmError *error) {
        const char *mesh_id;
        int r;

        assert(m);
        assert(q);

        r = mesh_filter(m, q->mesh, &mesh_id, error);
        if (r < 0)
                return r;
        return inbox_check(m, error);
}

int manager_list_inbox(Manager *m, const InboxListRequest *q, InboxMessage **ret, size_t *ret_n, CmError *error) {
        const char *mesh_id;
        int r;

        assert(m);
        assert(q);
        assert(ret);
        assert(ret_n);

        r = mesh_filter(m, q->mesh, &mesh_id, error);
        if (r < 0)
                return r;
        r = inbox_check(m, error);
        if (r < 0)
                return r;
        r = inbox_list_filtered(m->inbox,
                                &(InboxFilter) {
                                        .mesh_id = mesh_id,
                                        .since = q->since,
                                        .from = q->from,
                                        .topic = q->topic,
                                        .unread_only = q->unread_only,
                                        .limit = q->limit,
                                        .recipient_pubkey = q->recipient_pubkey,
                                },
                                ret, ret_n);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot read the inbox: %s", STRERROR(r));
        return 0;
}

/* After rows were removed: UnreadCount follows, for every mesh whose count changed. */
static void recount_unread(Manager *m) {
        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];
                unsigned n;

                if (!mesh->entry->mesh_id || inbox_count_unread(m->inbox, mesh->entry->mesh_id, &n) < 0 ||
                    n == mesh->unread)
                        continue;
                mesh->unread = n;
                (void) manager_emit(m, &(Event) { .kind = EVENT_UNREAD_CHANGED, .mesh = mesh });
        }
        /* A session's count is its rows not seen: /v1 marks and removes them too. */
        for (size_t i = 0; i < m->n_sessions; i++)
                session_refresh_unread(m->sessions[i]);
}

int manager_mark_inbox_seen(Manager *m, const char *const *ids, size_t n, unsigned *ret_flipped, CmError *error) {
        int r;

        assert(m);
        assert(ids || n == 0);
        assert(ret_flipped);

        r = inbox_check(m, error);
        if (r < 0)
                return r;
        r = inbox_mark_seen(m->inbox, ids, n, now_usec(CLOCK_REALTIME), ret_flipped);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot mark inbox rows seen: %s", STRERROR(r));
        if (*ret_flipped > 0)
                for (size_t i = 0; i < m->n_sessions; i++)
                        session_refresh_unread(m->sessions[i]);
        return 0;
}

int manager_delete_inbox_row(Manager *m, const char *id, CmError *error) {
        bool found;
        int r;

        assert(m);
        assert(id);

        r = inbox_check(m, error);
        if (r < 0)
                return r;
        r = inbox_delete(m->inbox, id, &found);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot delete the inbox row: %s", STRERROR(r));
        if (!found)
                return cm_error_setf(error, CM_ERR_NO_SUCH_MESSAGE, "No inbox row \"%s\".", id);
        recount_unread(m);
        return 0;
}

int manager_flush_inbox(Manager *m, const char *mesh, usec_t before, unsigned *ret_removed, CmError *error) {
        const char *mesh_id;
        int r;

        assert(m);
        assert(ret_removed);

        r = mesh_filter(m, mesh, &mesh_id, error);
        if (r < 0)
                return r;
        r = inbox_check(m, error);
        if (r < 0)
                return r;
        r = inbox_flush(m->inbox, mesh_id, before, ret_removed);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot flush the inbox: %s", STRERROR(r));
        if (*ret_removed > 0)
                recount_unread(m);
        return 0;
}

int manager_requeue_check(Manager *m, const RequeueRequest *q, CmError *error) {
        assert(m);
        assert(q);

        if (q->new_client_message_id && !outbox_client_message_id_is_valid(q->new_client_message_id))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "The new client_message_id must be 1 to "
                                     "%d printable ASCII characters.", OUTBOX_CLIENT_MESSAGE_ID_MAX);
        if (q->aborted_by && !streq(q->aborted_by, "operator") && !streq(q->aborted_by, "auto"))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "aborted_by must be \"operator\" or "
                                     "\"auto\", not \"%s\".", q->aborted_by);
        return outbox_check(m, error);
}

int manager_requeue(Manager *m, const RequeueRequest *q, char ret_new_row_id[static ULID_MAX],
                    char **ret_new_client_message_id, CmError *error) {
        int r;

        assert(m);
        assert(q);
        assert(q->row_id);
        assert(ret_new_client_message_id);

        r = manager_requeue_check(m, q, error);
        if (r < 0)
                return r;
        r = outbox_requeue(m->outbox, q->row_id, q->new_client_message_id, q->aborted_by, now_usec(CLOCK_REALTIME),
                           ret_new_row_id, ret_new_client_message_id);
        switch (r) {
        case -ENOENT:
                return cm_error_setf(error, CM_ERR_NO_SUCH_MESSAGE, "No outbox row \"%s\".", q->row_id);
        case -EBUSY:
                return cm_error_setf(error, CM_ERR_NOT_REQUEUEABLE, "Outbox row \"%s\" is neither pending nor "
                                     "dead; only those can be requeued.", q->row_id);
        case -EEXIST:
                return cm_error_setf(error, CM_ERR_CLIENT_MESSAGE_ID_IN_USE, "client_message_id \"%s\" is "
                                     "already used by another outbox row; ids are never reused.",
                                     strna(q->new_client_message_id));
        default:
                if (r < 0)
                        return cm_error_setf(error, CM_ERR_STORAGE, "Cannot requeue: %s", STRERROR(r));
        }
        /* The new row is due now: send it, rather than wait for some unrelated send to wake the drain. */
        transition_queue_kick(m->transitions);
        manager_drain_all(m);
        return 0;
}

int manager_mark_read_check(Manager *m, const char *mesh, CmError *error) {
        Mesh *found;
        int r;

        assert(m);
        assert(mesh);

        r = manager_lookup_mesh(m, mesh, &found, error);
        if (r < 0)
                return r;
        return inbox_check(m, error);
}

int manager_mark_read(Manager *m, const char *mesh, CmError *error) {
        Mesh *found;
        int r;

        assert(m);
        assert(mesh);

        r = manager_lookup_mesh(m, mesh, &found, error);
        if (r < 0)
                return r;
        r = inbox_check(m, error);
        if (r < 0)
                return r;
        r = inbox_mark_read(m->inbox, found->entry->mesh_id, now_usec(CLOCK_REALTIME));
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot store the read mark: %s", STRERROR(r));
        found->unread = 0;
        (void) manager_emit(m, &(Event) { .kind = EVENT_UNREAD_CHANGED, .mesh = found });
        return 0;
}
