/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"
#include "ulid.h"

/*
 * outbox.db: every accepted send, durably, exactly once per client_message_id (DECISIONS §5–§9,
 * reference §3.3–§3.8, §4.2). A row holds the full normalized envelope, so the drain can route
 * it without anything else, and the request fingerprint computed at accept, never recomputed.
 * Timestamps are CLOCK_REALTIME µs; row ids are ULIDs.
 *
 * Status machine (reference §3.5): pending → inflight → done | pending (retry) | dead;
 * pending/inflight → dead (max_age); pending/dead → aborted (requeue). done and aborted are
 * terminal. Every drain transition names the status it expects, so a row that moved on
 * meanwhile (an aborted row, above all) is never changed by a late drain result.
 */

typedef struct Outbox Outbox;

typedef enum OutboxStatus {
        OUTBOX_PENDING,
        OUTBOX_INFLIGHT,
        OUTBOX_DONE,
        OUTBOX_DEAD,
        OUTBOX_ABORTED,
        _OUTBOX_STATUS_MAX,
        _OUTBOX_STATUS_INVALID = -EINVAL,
} OutboxStatus;

const char *outbox_status_to_string(OutboxStatus s);   /* "pending", ..., NULL when invalid */
OutboxStatus outbox_status_from_string(const char *s); /* _OUTBOX_STATUS_INVALID when unknown */

#define OUTBOX_CLIENT_MESSAGE_ID_MAX 128
#define OUTBOX_FINGERPRINT_SIZE 32
#define OUTBOX_FINGERPRINT_PREFIX_MAX 17
#define OUTBOX_MIN_BACKOFF_USEC (500 * USEC_PER_MSEC)
#define OUTBOX_MAX_BACKOFF_USEC (30 * USEC_PER_SEC)
#define OUTBOX_LIST_DEFAULT 50u
#define OUTBOX_LIST_MAX 500u

/* DECISIONS §5: 1–128 printable ASCII characters (0x20–0x7e, as isprint() in the C locale). */
bool outbox_client_message_id_is_valid(const char *id);

typedef struct OutboxEnvelope {
        const char *mesh_id;
        const char *kind;            /* "dm" | "topic": the fingerprint's destination_kind */
        const char *destination_ref; /* the fingerprint's destination_ref */
        const char *target_spec;     /* the wire targetSpec */
        const char *priority;        /* "now" | "next" | "low" */
        const char *meta_json;       /* canonical JSON or NULL */
        const char *reply_to;        /* or NULL */
        const char *body;            /* body_size bytes, UTF-8 */
        size_t body_size;
        const char *sender_pubkey;   /* the session key it goes out as; NULL or "" = the member */
} OutboxEnvelope;

/* The 11 rows of the duplicate table (reference §3.3) fold into these outcomes. */
typedef enum OutboxAcceptOutcome {
        OUTBOX_ACCEPT_QUEUED,   /* new row inserted (pending) */
        OUTBOX_ACCEPT_PENDING,  /* same id, same fingerprint, row pending: nothing written */
        OUTBOX_ACCEPT_INFLIGHT, /* same id, same fingerprint, row inflight: nothing written */
        OUTBOX_ACCEPT_DONE,     /* same id, same fingerprint, row done: broker_message_id set */
        OUTBOX_ACCEPT_CONFLICT, /* every other row of the table: conflict set */
} OutboxAcceptOutcome;

typedef struct OutboxAcceptResult {
        OutboxAcceptOutcome outcome;
        const char *conflict;          /* static, e.g. "outbox_pending_fingerprint_mismatch"; NULL unless CONFLICT */
        char fingerprint_prefix[OUTBOX_FINGERPRINT_PREFIX_MAX]; /* of the stored row on conflicts, else of the request */
        char row_id[ULID_MAX];
        char *broker_message_id;       /* done+match and done+mismatch, else NULL */
        char *last_error;              /* dead+match, else NULL */
} OutboxAcceptResult;
void outbox_accept_result_done(OutboxAcceptResult *r);

/* Opens (creating, migrating) outbox.db, and writes "<path>.created" beside it. On failure
 * *ret_error holds a sentence naming the file: -EUCLEAN when it is damaged or lost (empty, or
 * missing while "<path>.created" or a "<path>-wal" shows there was one): sends must be refused
 * until it is restored or moved aside, and nothing is touched; -EPROTO when its schema is newer
 * than this code. Call outbox_recover() once at daemon start. */
int outbox_open(const char *path, bool synchronous_full, Outbox **ret, char **ret_error);
Outbox *outbox_free(Outbox *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(Outbox *, outbox_free);
const char *outbox_path(Outbox *o);

/* Group commit: the caller opens one BEGIN IMMEDIATE transaction (-EBUSY if one is open,
 * -ETIMEDOUT if another process held the write lock for busy_timeout, 5 s), applies the
 * duplicate table for several requests, then commits; no reply goes out before outbox_commit()
 * returned 0. A failed commit has rolled everything back. */
int outbox_begin(Outbox *o);
int outbox_commit(Outbox *o);
void outbox_rollback(Outbox *o);

/* A client_message_id is unique per sender (DECISIONS §17): the member ('' in sender_pubkey) and
 * each session key have their own scope. */

/* Applies the duplicate table to one request inside the caller's transaction, or in a
 * transaction of its own when none is open. -EINVAL for an invalid id or envelope (nothing
 * written). The new row is pending with enqueued_at = next_attempt_at = now, attempts 0. */
int outbox_accept(Outbox *o, const char *client_message_id, const uint8_t fingerprint[static OUTBOX_FINGERPRINT_SIZE],
                  const OutboxEnvelope *env, usec_t now, OutboxAcceptResult *ret);

typedef struct OutboxRow {
        char *id;
        char *client_message_id;
        char *mesh_id;
        char *kind;
        char *destination_ref;
        char *target_spec;
        char *priority;
        char *meta_json;         /* NULL when none */
        char *reply_to;          /* NULL when none */
        char *body;              /* body_size bytes plus a NUL */
        size_t body_size;
        uint8_t request_fingerprint[OUTBOX_FINGERPRINT_SIZE];
        usec_t enqueued_at;
        unsigned attempts;
        usec_t next_attempt_at;
        OutboxStatus status;
        char *last_error;        /* NULL when none */
        usec_t delivered_at;     /* 0 when not done */
        char *broker_message_id; /* NULL when not done */
        usec_t aborted_at;       /* 0 when not aborted */
        char *aborted_by;        /* "operator" | "auto", NULL when not aborted */
        char *superseded_by;     /* the row id that replaced this one, NULL when none */
        char *sender_pubkey;     /* the session key it goes out as, "" for the member */
} OutboxRow;
void outbox_row_done(OutboxRow *row);
void outbox_rows_free(OutboxRow *rows, size_t n);

/* Newest first; mesh_id NULL = every mesh; status _OUTBOX_STATUS_INVALID = every status;
 * limit clamped to 1..500, 0 = 50. */
int outbox_list(Outbox *o, const char *mesh_id, OutboxStatus status, unsigned limit, OutboxRow **ret, size_t *ret_n);
/* -ENOENT when there is no such row. */
int outbox_get(Outbox *o, const char *row_id, OutboxRow *ret);

/* For the drain: pending rows of mesh_id (NULL = every mesh) sent as sender_pubkey (NULL = any
 * sender, "" = the member) with next_attempt_at <= now, oldest first, at most limit (1..500,
 * 0 = 50); and the earliest next_attempt_at after `after` of any pending row (-ENOENT when none
 * is pending that late). */
int outbox_list_due(Outbox *o, const char *mesh_id, const char *sender_pubkey, usec_t now, unsigned limit,
                    OutboxRow **ret, size_t *ret_n);
/* Pending and inflight rows sent as sender_pubkey, oldest first; limit as outbox_list_due(). */
int outbox_list_active_from(Outbox *o, const char *sender_pubkey, unsigned limit, OutboxRow **ret, size_t *ret_n);
int outbox_next_attempt_at(Outbox *o, usec_t after, usec_t *ret);
/* The session keys (not '') that pending or inflight rows are sent as, at most limit (as
 * outbox_list_due()), as a NULL-terminated array. */
int outbox_list_active_senders(Outbox *o, unsigned limit, char ***ret);
/* The senders ('' the member, else session keys) of the rows of mesh_id due at now, at most limit
 * (as outbox_list_due()), as a NULL-terminated array. */
int outbox_list_due_senders(Outbox *o, const char *mesh_id, usec_t now, unsigned limit, char ***ret);
/* Rows of mesh_id still to deliver (pending or inflight). */
int outbox_count_active(Outbox *o, const char *mesh_id, unsigned *ret);

/* DECISIONS §7, one transaction: only pending or dead rows (-EBUSY otherwise, -ENOENT when
 * missing); new_client_message_id NULL = mint a ULID, else it must be valid (-EINVAL) and unused
 * (-EEXIST); aborted_by "operator" or "auto" (NULL = "operator"). The old row becomes aborted
 * (aborted_at, aborted_by, superseded_by = new row id); the new pending row has the same envelope
 * and fingerprint. On any error nothing changed. */
int outbox_requeue(Outbox *o, const char *row_id, const char *new_client_message_id, const char *aborted_by,
                   usec_t now, char ret_new_row_id[static ULID_MAX], char **ret_new_client_message_id);

/* Drain transitions, each guarded by the expected status: -ESTALE when the row is in another
 * status, -ENOENT when it is missing. */
int outbox_mark_inflight(Outbox *o, const char *row_id, usec_t now);                            /* pending → inflight, attempts++ */
int outbox_mark_done(Outbox *o, const char *row_id, const char *broker_message_id, usec_t now); /* inflight → done */
int outbox_mark_retry(Outbox *o, const char *row_id, const char *error, usec_t next_attempt_at); /* inflight → pending */
int outbox_mark_dead(Outbox *o, const char *row_id, const char *error);                         /* pending|inflight → dead */

/* DECISIONS §8: every inflight row → pending, attempts kept, next_attempt_at = now + 500 ms.
 * Returns the number of rows. */
int outbox_recover(Outbox *o, usec_t now);
/* DECISIONS §9: pending/inflight rows enqueued more than max_age before now → dead with
 * last_error "max_age". Returns the number of rows. */
int outbox_expire(Outbox *o, const char *mesh_id, usec_t now, usec_t max_age);
/* max_age_hours for a broker's advertised dedupe retention (reference §3.8):
 * max(72, D·24 − max(24, ceil(2.4·D))); 168 when nothing is advertised (D = 0) or permanent. */
unsigned outbox_max_age_hours(unsigned dedupe_retention_days, bool permanent);
/* Full jitter (DECISIONS §9): uniform in [0, min(30 s, 500 ms · 2^attempts)]. */
usec_t outbox_retry_backoff(unsigned attempts);

/* Rows per status, for one mesh or (mesh_id NULL) all. */
int outbox_count(Outbox *o, const char *mesh_id, unsigned ret_counts[static _OUTBOX_STATUS_MAX]);
