/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "time-util.h"

/*
 * inbox.db: the messages pushed to us, once each per (mesh, sender key, client_message_id)
 * (reference §4.3 with mesh_id for mesh; scoped to the sender by DECISIONS §16). Each row records
 * when MessageReceived announced it, so that every stored message is announced once across
 * crashes. It is a cache of what the broker delivered: a damaged file is set aside
 * as inbox.db.corrupt-<unix seconds> and a fresh one created (DECISIONS §8).
 */

typedef struct Inbox Inbox;

typedef struct InboxMessage {
        char *id;                /* ULID */
        char *client_message_id;
        char *broker_message_id; /* or NULL */
        char *mesh_id;
        char *topic;             /* or NULL */
        char *sender_pubkey;
        char *sender_name;
        char *body;              /* or NULL */
        char *meta_json;         /* or NULL */
        char *reply_to_id;       /* or NULL */
        usec_t received_at;      /* CLOCK_REALTIME µs */
        usec_t seen_at;          /* when /v1 marked it seen; 0: not yet */
        char *recipient_pubkey;  /* the identity that received it: the member's or a session's key */
        char *recipient_kind;    /* "member" | "session"; NULL on insert = "member" */
} InboxMessage;

/* What inbox_list_filtered() returns; NULL, 0 and false filter nothing. */
typedef struct InboxFilter {
        const char *mesh_id;
        usec_t since;                 /* received_at >= since */
        const char *from;             /* sender_pubkey */
        const char *topic;
        bool unread_only;             /* seen_at not set */
        unsigned limit;               /* clamped to 1..1000, 0 = 100 */
        const char *recipient_pubkey; /* only the rows this identity received */
} InboxFilter;

#define INBOX_LIST_DEFAULT 100u
#define INBOX_LIST_MAX 1000u

/* Opens (creating, migrating) inbox.db. A damaged file (with its -wal and -shm) is renamed to
 * "<path>.corrupt-<unix seconds>" and a fresh inbox created; *ret_recreated says so. On failure
 * *ret_error holds a sentence naming the file (-EPROTO: its schema is newer than this code). */
int inbox_open(const char *path, bool synchronous_full, Inbox **ret, bool *ret_recreated, char **ret_error);
Inbox *inbox_free(Inbox *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(Inbox *, inbox_free);

/* Each identity (the member, each session) is a receiver of its own: a row is one per (mesh,
 * sender key, client_message_id, recipient key), so a broadcast that reached the member and a
 * session is a row for each, and a DM redelivered on another connection of the same identity
 * stays one row.
 *
 * INSERT … ON CONFLICT(mesh_id, sender_pubkey, client_message_id, recipient_pubkey) DO NOTHING: *ret_new is true
 * only for a new row (only new rows are announced); the row starts unannounced. msg->id NULL = mint a ULID; received_at 0 = now.
 * -EINVAL when client_message_id, mesh_id, sender_pubkey or sender_name is missing. */
int inbox_insert(Inbox *i, const InboxMessage *msg, bool *ret_new);

/* Newest first. Filters: mesh_id (NULL = all), since (received_at >= since; 0 = none), from
 * (sender_pubkey; NULL = any), topic (NULL = any), unread_only (seen_at not set). limit clamped
 * to 1..1000, 0 = 100. */
int inbox_list(Inbox *i, const char *mesh_id, usec_t since, const char *from, const char *topic, bool unread_only,
               unsigned limit, InboxMessage **ret, size_t *ret_n);
/* The same with every filter, newest first. */
int inbox_list_filtered(Inbox *i, const InboxFilter *filter, InboxMessage **ret, size_t *ret_n);
void inbox_message_done(InboxMessage *m);
void inbox_messages_free(InboxMessage *m, size_t n);

/* The member's messages of mesh_id received after its read mark (all of them before the first
 * MarkRead); a session's rows count in inbox_count_unseen() instead. */
int inbox_count_unread(Inbox *i, const char *mesh_id, unsigned *ret);
/* Moves the read mark of mesh_id to now (never backwards). */
int inbox_mark_read(Inbox *i, const char *mesh_id, usec_t now);

/* Rows of mesh_id not yet marked announced, oldest first; limit as inbox_list(). recipient_pubkey
 * NULL: the member's rows; else the rows of that identity. */
int inbox_list_unannounced(Inbox *i, const char *mesh_id, const char *recipient_pubkey, unsigned limit,
                           InboxMessage **ret, size_t *ret_n);
/* Records that row id was announced (MessageReceived emitted) at now; a marked row stays as it is. */
int inbox_mark_announced(Inbox *i, const char *id, usec_t now);

/* Upstream's per-row read state: sets seen_at to now on the rows of ids not seen yet, in one
 * transaction; *ret_flipped counts them (unknown ids count nothing). */
int inbox_mark_seen(Inbox *i, const char *const *ids, size_t n, usec_t now, unsigned *ret_flipped);
/* A session's read state is per row: the rows recipient_pubkey received and has not seen, and
 * marking all of them seen at now (*ret_flipped, may be NULL, counts them). */
int inbox_count_unseen(Inbox *i, const char *recipient_pubkey, unsigned *ret);
int inbox_mark_seen_for(Inbox *i, const char *recipient_pubkey, usec_t now, unsigned *ret_flipped);
/* Names member_pubkey as the recipient of the rows of mesh_id stored before recipients were
 * recorded (recipient_pubkey ''). */
int inbox_adopt_member(Inbox *i, const char *mesh_id, const char *member_pubkey);

/* Removes row id; *ret_found false when there was none. */
int inbox_delete(Inbox *i, const char *id, bool *ret_found);
/* Removes the rows of mesh_id (NULL: every mesh) received before before (0: any time). */
int inbox_flush(Inbox *i, const char *mesh_id, usec_t before, unsigned *ret_removed);
