/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "cm-error.h"
#include "inbox.h"
#include "outbox.h"
#include "ulid.h"

typedef struct Manager Manager;

/*
 * The outbox and inbox as both front-ends offer them (ListOutbox, Requeue, ListInbox and their
 * /v1 routes), so the two cannot disagree. A front-end parses its arguments into a request once,
 * runs the check before asking polkit for the same action, then the call with the same request;
 * the call checks again, since the stores or meshes may have changed while polkit was asked.
 */

typedef struct OutboxListRequest {
        const char *mesh;        /* slug or id; "" or NULL for every mesh */
        OutboxStatus status;     /* _OUTBOX_STATUS_INVALID: every status */
        unsigned limit;          /* 0: the default; clamped to OUTBOX_LIST_MAX */
} OutboxListRequest;

typedef struct InboxListRequest {
        const char *mesh;        /* slug or id; "" or NULL for every mesh */
        usec_t since;            /* 0: no bound */
        const char *from;        /* sender pubkey, or NULL */
        const char *topic;       /* or NULL */
        bool unread_only;        /* only rows not marked seen (upstream's seen_at) */
        unsigned limit;          /* 0: the default; clamped to INBOX_LIST_MAX */
        const char *recipient_pubkey; /* only what this identity received; NULL: any */
} InboxListRequest;

typedef struct RequeueRequest {
        const char *row_id;
        const char *new_client_message_id; /* NULL: mint a ULID */
        const char *aborted_by;            /* NULL: "operator"; else "operator" or "auto" */
} RequeueRequest;

/* NoSuchMesh, OutboxUnavailable. */
int manager_list_outbox_check(Manager *m, const OutboxListRequest *q, CmError *error);
/* The checks, then the rows, newest first; StorageFailure when they cannot be read. */
int manager_list_outbox(Manager *m, const OutboxListRequest *q, OutboxRow **ret, size_t *ret_n, CmError *error);

/* NoSuchMesh, StorageFailure (no inbox). */
int manager_list_inbox_check(Manager *m, const InboxListRequest *q, CmError *error);
int manager_list_inbox(Manager *m, const InboxListRequest *q, InboxMessage **ret, size_t *ret_n, CmError *error);

/* Upstream's per-row read state and inbox pruning (/v1 only): StorageFailure. */
int manager_mark_inbox_seen(Manager *m, const char *const *ids, size_t n, unsigned *ret_flipped, CmError *error);
/* Removes row id; NoSuchMessage when there is none. */
int manager_delete_inbox_row(Manager *m, const char *id, CmError *error);
/* Removes the rows of mesh (slug or id; "" or NULL: every mesh) received before before (0: any
 * time): NoSuchMesh, StorageFailure. */
int manager_flush_inbox(Manager *m, const char *mesh, usec_t before, unsigned *ret_removed, CmError *error);

/* InvalidArgument (the new id, aborted_by), OutboxUnavailable. */
int manager_requeue_check(Manager *m, const RequeueRequest *q, CmError *error);
/* The checks, then: NoSuchMessage, NotRequeueable (neither pending nor dead), ClientMessageIdInUse,
 * StorageFailure. The new row is sent at once when its mesh is connected. */
int manager_requeue(Manager *m, const RequeueRequest *q, char ret_new_row_id[static ULID_MAX],
                    char **ret_new_client_message_id, CmError *error);

/* NoSuchMesh, StorageFailure (no inbox). */
int manager_mark_read_check(Manager *m, const char *mesh, CmError *error);
/* Marks every message of the mesh received so far as read (its unread count goes to 0). */
int manager_mark_read(Manager *m, const char *mesh, CmError *error);

/* The slug of a configured mesh, "" for a mesh no longer in the config. */
const char *manager_mesh_slug(Manager *m, const char *mesh_id);
