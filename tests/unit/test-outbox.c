/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "outbox-internal.h"
#include "request-fingerprint.h"
#include "store.h"
#include "tests.h"
#include "ulid.h"

/* The upstream test's clock (reference §10), in µs. */
#define NOW ((usec_t) 1730000000000 * USEC_PER_MSEC)
#define HOUR ((usec_t) 3600 * USEC_PER_SEC)

#define ALICE "a1a2a3a4a5a6a7a8a9b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2"
#define BOB   "b0b1b2b3b4b5b6b7b8b9c0c1c2c3c4c5c6c7c8c9d0d1d2d3d4d5d6d7d8d9e0e1"

/* A send as the bus would normalize it; unset fields take the upstream test's base request. */
typedef struct Req {
        const char *mesh;
        const char *to;
        const char *body;
        const char *priority;
        const char *meta;
        const char *reply_to;
} Req;

static Req base(void) {
        return (Req) { .mesh = "mesh-1", .to = ALICE, .body = "hello", .priority = "next" };
}

static OutboxEnvelope envelope(const Req *q) {
        return (OutboxEnvelope) {
                .mesh_id = q->mesh,
                .kind = "dm",
                .destination_ref = q->to,
                .target_spec = q->to,
                .priority = q->priority,
                .meta_json = q->meta,
                .reply_to = q->reply_to,
                .body = q->body,
                .body_size = strlen(q->body),
        };
}

static void fingerprint(const Req *q, uint8_t fp[static 32]) {
        RequestFingerprintInput in = {
                .kind = "dm",
                .ref = q->to,
                .reply_to = q->reply_to,
                .priority = q->priority,
                .meta_json = q->meta,
                .body = q->body,
                .body_size = strlen(q->body),
        };
        ASSERT_OK(request_fingerprint(&in, fp, NULL));
}

static int accept_req(Outbox *o, const char *cmid, const Req *q, usec_t now, OutboxAcceptResult *res) {
        OutboxEnvelope env = envelope(q);
        uint8_t fp[32];

        fingerprint(q, fp);
        return outbox_accept(o, cmid, fp, &env, now, res);
}

static char *new_path(const char *name) {
        static unsigned counter;
        char *path;

        ASSERT_TRUE(asprintf(&path, "%s/%s-%u.db", test_tmpdir(), name, counter++) > 0);
        return path;
}

static Outbox *open_outbox(const char *path) {
        _cleanup_free_ char *error = NULL;
        Outbox *o = NULL;

        ASSERT_OK(outbox_open(path, true, &o, &error));
        ASSERT_TRUE(!error);
        return o;
}

static void exec_sql(Outbox *o, const char *format, ...) _printf_(2, 3);
static void exec_sql(Outbox *o, const char *format, ...) {
        _cleanup_free_ char *sql = NULL;
        va_list ap;

        va_start(ap, format);
        ASSERT_TRUE(vasprintf(&sql, format, ap) >= 0);
        va_end(ap);
        ASSERT_EQ(sqlite3_exec(outbox_db(o), sql, NULL, NULL, NULL), SQLITE_OK);
}

static unsigned total_rows(Outbox *o) {
        unsigned counts[_OUTBOX_STATUS_MAX], n = 0;

        ASSERT_OK(outbox_count(o, NULL, counts));
        for (size_t i = 0; i < _OUTBOX_STATUS_MAX; i++)
                n += counts[i];
        return n;
}

static OutboxStatus status_of(Outbox *o, const char *row_id) {
        _cleanup_(outbox_row_done) OutboxRow row = { 0 };

        ASSERT_OK(outbox_get(o, row_id, &row));
        return row.status;
}

static bool is_hex16(const char *s) {
        if (strlen(s) != 16)
                return false;
        for (size_t i = 0; i < 16; i++)
                if (!strchr("0123456789abcdef", s[i]))
                        return false;
        return true;
}

static void prefix_of(const Req *q, char ret[static 17]) {
        uint8_t fp[32];

        fingerprint(q, fp);
        request_fingerprint_prefix(fp, ret);
}

/* A duplicate that must conflict: the name verbatim, the STORED row's prefix, nothing written. */
static void expect_conflict(Outbox *o, const Req *q, const Req *stored, const char *name) {
        OutboxAcceptResult res;
        char want[17];
        unsigned before = total_rows(o);

        ASSERT_OK(accept_req(o, "key-A", q, NOW + 1, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_CONFLICT);
        ASSERT_STREQ(res.conflict, name);
        ASSERT_TRUE(is_hex16(res.fingerprint_prefix));
        prefix_of(stored, want);
        ASSERT_STREQ(res.fingerprint_prefix, want);
        ASSERT_EQ(total_rows(o), before);
        outbox_accept_result_done(&res);
}

static void expect_outcome(Outbox *o, const Req *q, OutboxAcceptOutcome outcome, const char *row_id) {
        OutboxAcceptResult res;
        char want[17];
        unsigned before = total_rows(o);

        ASSERT_OK(accept_req(o, "key-A", q, NOW + 1, &res));
        ASSERT_EQ(res.outcome, outcome);
        ASSERT_TRUE(!res.conflict);
        ASSERT_STREQ(res.row_id, row_id);
        prefix_of(q, want);
        ASSERT_STREQ(res.fingerprint_prefix, want);
        ASSERT_EQ(total_rows(o), before);
        outbox_accept_result_done(&res);
}

/* A fresh outbox with key-A accepted from the base request; returns its row id. */
static Outbox *outbox_with_key_a(char row_id[static ULID_MAX]) {
        _cleanup_free_ char *path = new_path("table");
        Outbox *o = open_outbox(path);
        OutboxAcceptResult res;
        Req q = base();

        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        memcpy(row_id, res.row_id, ULID_MAX);
        outbox_accept_result_done(&res);
        return o;
}

/* Reference §10 cases 1–7: no row, and a pending row. */
static void test_table_pending(void) {
        _cleanup_(outbox_row_done) OutboxRow row = { 0 };
        _cleanup_(outbox_freep) Outbox *o = NULL;
        char row_id[ULID_MAX], minted[ULID_MAX], want[17];
        OutboxAcceptResult res;
        Req q = base(), other;

        /* 1. first send: queued, the row persisted pending with the whole envelope. */
        o = outbox_with_key_a(row_id);
        ASSERT_TRUE(ulid_is_valid(row_id));
        ASSERT_EQ(total_rows(o), 1);
        ASSERT_OK(outbox_get(o, row_id, &row));
        ASSERT_STREQ(row.client_message_id, "key-A");
        ASSERT_EQ(row.status, OUTBOX_PENDING);
        ASSERT_STREQ(row.mesh_id, "mesh-1");
        ASSERT_STREQ(row.kind, "dm");
        ASSERT_STREQ(row.destination_ref, ALICE);
        ASSERT_STREQ(row.target_spec, ALICE);
        ASSERT_STREQ(row.priority, "next");
        ASSERT_TRUE(!row.meta_json && !row.reply_to);
        ASSERT_EQ(row.body_size, 5);
        ASSERT_STREQ(row.body, "hello");
        ASSERT_EQ(row.enqueued_at, NOW);
        ASSERT_EQ(row.next_attempt_at, NOW);
        ASSERT_EQ(row.attempts, 0);
        ASSERT_TRUE(!row.last_error && !row.broker_message_id && !row.aborted_by && !row.superseded_by);
        ASSERT_EQ(row.delivered_at, 0);
        {
                uint8_t fp[32];

                fingerprint(&q, fp);
                ASSERT_TRUE(memcmp(row.request_fingerprint, fp, 32) == 0);
                request_fingerprint_prefix(fp, want);
        }

        /* 2. cmid omitted: the id the daemon mints (a ULID) is what is stored. */
        ASSERT_OK(ulid_new(NOW, minted));
        ASSERT_OK(accept_req(o, minted, &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        ASSERT_STREQ(res.fingerprint_prefix, want);
        ASSERT_EQ(total_rows(o), 2);
        outbox_accept_result_done(&res);

        /* 3. pending + the same request: accepted, nothing written. */
        expect_outcome(o, &q, OUTBOX_ACCEPT_PENDING, row_id);

        /* 4. different body. */
        other = base();
        other.body = "hello!";
        expect_conflict(o, &other, &q, "outbox_pending_fingerprint_mismatch");
        /* 5. different destination. */
        other = base();
        other.to = BOB;
        expect_conflict(o, &other, &q, "outbox_pending_fingerprint_mismatch");
        /* 6. different priority. */
        other = base();
        other.priority = "now";
        expect_conflict(o, &other, &q, "outbox_pending_fingerprint_mismatch");
        /* reply_to and meta are hashed too. */
        other = base();
        other.reply_to = "bm-0";
        expect_conflict(o, &other, &q, "outbox_pending_fingerprint_mismatch");

        /* 7. meta key order is ignored (JCS): {z:1,a:2} then {a:2,z:1}. */
        other = base();
        other.meta = "{\"z\":1,\"a\":2}";
        ASSERT_OK(accept_req(o, "key-M", &other, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        outbox_accept_result_done(&res);
        other.meta = "{\"a\":2,\"z\":1}";
        ASSERT_OK(accept_req(o, "key-M", &other, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_PENDING);
        outbox_accept_result_done(&res);
        ASSERT_EQ(total_rows(o), 3);
}

/* Reference §10 cases 8–15: inflight, done, dead and aborted rows. */
static void test_table_later_states(void) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        char row_id[ULID_MAX];
        OutboxAcceptResult res;
        Req q = base(), other = base();

        other.body = "changed";
        o = outbox_with_key_a(row_id);

        /* 8, 9. inflight. */
        ASSERT_OK(outbox_mark_inflight(o, row_id, NOW));
        expect_outcome(o, &q, OUTBOX_ACCEPT_INFLIGHT, row_id);
        expect_conflict(o, &other, &q, "outbox_inflight_fingerprint_mismatch");

        /* 10, 11. done (bm-1): the broker message id comes back both ways. */
        ASSERT_OK(outbox_mark_done(o, row_id, "bm-1", NOW));
        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_DONE);
        ASSERT_STREQ(res.broker_message_id, "bm-1");
        ASSERT_TRUE(!res.conflict && !res.last_error);
        outbox_accept_result_done(&res);
        expect_conflict(o, &other, &q, "outbox_done_fingerprint_mismatch");
        ASSERT_OK(accept_req(o, "key-A", &other, NOW, &res));
        ASSERT_STREQ(res.broker_message_id, "bm-1");
        outbox_accept_result_done(&res);

        /* 12, 13. dead ("payload too large"): the reason only with a matching fingerprint. */
        exec_sql(o, "UPDATE outbox SET status = 'dead', last_error = 'payload too large' WHERE id = '%s'", row_id);
        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_CONFLICT);
        ASSERT_STREQ(res.conflict, "outbox_dead_fingerprint_match");
        ASSERT_STREQ(res.last_error, "payload too large");
        ASSERT_TRUE(!res.broker_message_id);
        outbox_accept_result_done(&res);
        expect_conflict(o, &q, &q, "outbox_dead_fingerprint_match");
        expect_conflict(o, &other, &q, "outbox_dead_fingerprint_mismatch");
        ASSERT_OK(accept_req(o, "key-A", &other, NOW, &res));
        ASSERT_TRUE(!res.last_error);
        outbox_accept_result_done(&res);

        /* 14, 15. aborted by the operator: never reusable. */
        exec_sql(o, "UPDATE outbox SET status = 'aborted', aborted_by = 'operator', aborted_at = 1 WHERE id = '%s'",
                 row_id);
        expect_conflict(o, &q, &q, "outbox_aborted_fingerprint_match");
        expect_conflict(o, &other, &q, "outbox_aborted_fingerprint_mismatch");
        ASSERT_EQ(status_of(o, row_id), OUTBOX_ABORTED);
}

static void test_invalid_requests(void) {
        _cleanup_free_ char *path = new_path("invalid");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        OutboxAcceptResult res;
        OutboxEnvelope env;
        char long_id[OUTBOX_CLIENT_MESSAGE_ID_MAX + 2];
        uint8_t fp[32] = { 0 };
        Req q = base();

        memset(long_id, 'x', sizeof long_id - 1);
        long_id[sizeof long_id - 1] = 0;
        ASSERT_EQ(accept_req(o, long_id, &q, NOW, &res), -EINVAL);
        long_id[OUTBOX_CLIENT_MESSAGE_ID_MAX] = 0;
        ASSERT_OK(accept_req(o, long_id, &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        ASSERT_EQ(accept_req(o, "", &q, NOW, &res), -EINVAL);
        ASSERT_EQ(accept_req(o, NULL, &q, NOW, &res), -EINVAL);
        ASSERT_EQ(accept_req(o, "tab\there", &q, NOW, &res), -EINVAL);
        ASSERT_EQ(accept_req(o, "del\x7f", &q, NOW, &res), -EINVAL);
        ASSERT_EQ(accept_req(o, "caf\xc3\xa9", &q, NOW, &res), -EINVAL);
        ASSERT_TRUE(outbox_client_message_id_is_valid("!~"));
        ASSERT_TRUE(outbox_client_message_id_is_valid("with space"));

        env = envelope(&q);
        env.kind = "queue";
        ASSERT_EQ(outbox_accept(o, "key-X", fp, &env, NOW, &res), -EINVAL);
        env = envelope(&q);
        env.priority = "urgent";
        ASSERT_EQ(outbox_accept(o, "key-X", fp, &env, NOW, &res), -EINVAL);
        env = envelope(&q);
        env.mesh_id = "";
        ASSERT_EQ(outbox_accept(o, "key-X", fp, &env, NOW, &res), -EINVAL);
        env = envelope(&q);
        env.body = NULL;
        ASSERT_EQ(outbox_accept(o, "key-X", fp, &env, NOW, &res), -EINVAL);
        ASSERT_EQ(total_rows(o), 1);

        /* An empty body is a zero-length BLOB, read back as "". */
        env = envelope(&q);
        env.body = NULL;
        env.body_size = 0;
        ASSERT_OK(outbox_accept(o, "key-empty", fp, &env, NOW, &res));
        {
                _cleanup_(outbox_row_done) OutboxRow row = { 0 };

                ASSERT_OK(outbox_get(o, res.row_id, &row));
                ASSERT_EQ(row.body_size, 0);
                ASSERT_STREQ(row.body, "");
        }
        ASSERT_EQ(outbox_get(o, "01ARZ3NDEKTSV4RRFFQ69G5FAV", &(OutboxRow) { 0 }), -ENOENT);
}

static void test_status_strings(void) {
        for (OutboxStatus s = 0; s < _OUTBOX_STATUS_MAX; s++)
                ASSERT_EQ(outbox_status_from_string(outbox_status_to_string(s)), s);
        ASSERT_STREQ(outbox_status_to_string(OUTBOX_INFLIGHT), "inflight");
        ASSERT_TRUE(!outbox_status_to_string(_OUTBOX_STATUS_INVALID));
        ASSERT_EQ(outbox_status_from_string("queued"), _OUTBOX_STATUS_INVALID);
        ASSERT_EQ(outbox_status_from_string(NULL), _OUTBOX_STATUS_INVALID);
}

/* Reads the row and checks the old → new chain of a requeue. */
static void check_requeued(Outbox *o, const char *old_id, const char *new_id, const char *new_cmid,
                           const char *aborted_by, usec_t now) {
        _cleanup_(outbox_row_done) OutboxRow old = { 0 }, new = { 0 };

        ASSERT_OK(outbox_get(o, old_id, &old));
        ASSERT_OK(outbox_get(o, new_id, &new));
        ASSERT_EQ(old.status, OUTBOX_ABORTED);
        ASSERT_EQ(old.aborted_at, now);
        ASSERT_STREQ(old.aborted_by, aborted_by);
        ASSERT_STREQ(old.superseded_by, new_id);

        ASSERT_EQ(new.status, OUTBOX_PENDING);
        ASSERT_STREQ(new.client_message_id, new_cmid);
        ASSERT_EQ(new.attempts, 0);
        ASSERT_EQ(new.enqueued_at, now);
        ASSERT_EQ(new.next_attempt_at, now);
        ASSERT_TRUE(!new.last_error && !new.superseded_by && !new.aborted_by);
        ASSERT_STREQ(new.mesh_id, old.mesh_id);
        ASSERT_STREQ(new.kind, old.kind);
        ASSERT_STREQ(new.destination_ref, old.destination_ref);
        ASSERT_STREQ(new.target_spec, old.target_spec);
        ASSERT_STREQ(new.priority, old.priority);
        ASSERT_STREQ(strempty(new.meta_json), strempty(old.meta_json));
        ASSERT_STREQ(strempty(new.reply_to), strempty(old.reply_to));
        ASSERT_EQ(new.body_size, old.body_size);
        ASSERT_TRUE(memcmp(new.body, old.body, old.body_size) == 0);
        ASSERT_TRUE(memcmp(new.request_fingerprint, old.request_fingerprint, 32) == 0);
}

static void test_requeue(void) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        char row_id[ULID_MAX], new_id[ULID_MAX], id2[ULID_MAX];
        _cleanup_free_ char *cmid = NULL, *cmid2 = NULL;
        OutboxAcceptResult res;
        Req q = base();

        q.meta = "{\"a\":1}";
        q.reply_to = "bm-0";
        o = outbox_with_key_a(row_id);
        /* key-A is the base request; key-B carries meta and reply_to. */
        ASSERT_OK(accept_req(o, "key-B", &q, NOW, &res));
        memcpy(id2, res.row_id, sizeof id2);

        /* pending ✓, with a minted ULID. */
        ASSERT_OK(outbox_requeue(o, row_id, NULL, NULL, NOW + 10, new_id, &cmid));
        ASSERT_TRUE(ulid_is_valid(cmid));
        ASSERT_TRUE(ulid_is_valid(new_id));
        check_requeued(o, row_id, new_id, cmid, "operator", NOW + 10);
        ASSERT_EQ(total_rows(o), 3);

        /* The old id stays consumed; the new one answers as pending. */
        {
                Req b = base();

                expect_conflict(o, &b, &b, "outbox_aborted_fingerprint_match");
                ASSERT_OK(accept_req(o, cmid, &b, NOW, &res));
                ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_PENDING);
                ASSERT_STREQ(res.row_id, new_id);
        }

        /* aborted, inflight, done refused; missing. */
        ASSERT_EQ(outbox_requeue(o, row_id, NULL, NULL, NOW, new_id, NULL), -EBUSY);
        ASSERT_OK(outbox_mark_inflight(o, id2, NOW));
        ASSERT_EQ(outbox_requeue(o, id2, NULL, NULL, NOW, new_id, NULL), -EBUSY);
        ASSERT_OK(outbox_mark_done(o, id2, "bm-9", NOW));
        ASSERT_EQ(outbox_requeue(o, id2, NULL, NULL, NOW, new_id, NULL), -EBUSY);
        ASSERT_EQ(outbox_requeue(o, "01ARZ3NDEKTSV4RRFFQ69G5FAV", NULL, NULL, NOW, new_id, NULL), -ENOENT);
        ASSERT_EQ(total_rows(o), 3);

        /* dead ✓ with a caller's id, by "auto"; the given id must be unused and valid. */
        {
                _cleanup_free_ char *dead_cmid = NULL;
                char dead_id[ULID_MAX];
                Req d = base();

                d.body = "to die";
                ASSERT_OK(accept_req(o, "key-D", &d, NOW, &res));
                memcpy(dead_id, res.row_id, sizeof dead_id);
                ASSERT_OK(outbox_mark_dead(o, dead_id, "permanent: forbidden"));

                ASSERT_EQ(outbox_requeue(o, dead_id, "key-B", NULL, NOW, new_id, NULL), -EEXIST);
                ASSERT_EQ(outbox_requeue(o, dead_id, cmid, NULL, NOW, new_id, NULL), -EEXIST);
                ASSERT_EQ(outbox_requeue(o, dead_id, "bad\nid", NULL, NOW, new_id, NULL), -EINVAL);
                ASSERT_EQ(outbox_requeue(o, dead_id, "key-D2", "someone", NOW, new_id, NULL), -EINVAL);
                /* Nothing changed by the refusals. */
                ASSERT_EQ(total_rows(o), 4);
                {
                        _cleanup_(outbox_row_done) OutboxRow row = { 0 };

                        ASSERT_OK(outbox_get(o, dead_id, &row));
                        ASSERT_EQ(row.status, OUTBOX_DEAD);
                        ASSERT_STREQ(row.last_error, "permanent: forbidden");
                        ASSERT_TRUE(!row.superseded_by && !row.aborted_by);
                }

                ASSERT_OK(outbox_requeue(o, dead_id, "key-D2", "auto", NOW + 20, new_id, &dead_cmid));
                ASSERT_STREQ(dead_cmid, "key-D2");
                check_requeued(o, dead_id, new_id, "key-D2", "auto", NOW + 20);
                ASSERT_EQ(total_rows(o), 5);
        }

        /* Inside a caller's transaction a refused requeue changes nothing and keeps that
         * transaction usable (a savepoint, not a second BEGIN). */
        ASSERT_OK(outbox_begin(o));
        ASSERT_OK(accept_req(o, "key-T", &q, NOW, &res));
        ASSERT_EQ(outbox_requeue(o, res.row_id, "key-A", NULL, NOW, new_id, NULL), -EEXIST);
        ASSERT_EQ(status_of(o, res.row_id), OUTBOX_PENDING);
        ASSERT_OK(outbox_requeue(o, res.row_id, NULL, NULL, NOW + 30, new_id, &cmid2));
        ASSERT_OK(outbox_commit(o));
        check_requeued(o, res.row_id, new_id, cmid2, "operator", NOW + 30);
        ASSERT_EQ(total_rows(o), 7);
}

static void test_guarded_updates(void) {
        _cleanup_(outbox_freep) Outbox *o = NULL;
        _cleanup_(outbox_row_done) OutboxRow row = { 0 };
        char row_id[ULID_MAX], new_id[ULID_MAX];
        const char *missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

        o = outbox_with_key_a(row_id);

        /* pending: only inflight or dead. */
        ASSERT_EQ(outbox_mark_done(o, row_id, "bm-1", NOW), -ESTALE);
        ASSERT_EQ(outbox_mark_retry(o, row_id, "x", NOW), -ESTALE);

        /* The drain's path: inflight, retry, inflight, done. */
        ASSERT_OK(outbox_mark_inflight(o, row_id, NOW + 1));
        ASSERT_EQ(outbox_mark_inflight(o, row_id, NOW + 1), -ESTALE);
        ASSERT_OK(outbox_mark_retry(o, row_id, "rate_limit: slow down", NOW + 5 * USEC_PER_SEC));
        ASSERT_OK(outbox_get(o, row_id, &row));
        ASSERT_EQ(row.status, OUTBOX_PENDING);
        ASSERT_EQ(row.attempts, 1);
        ASSERT_EQ(row.next_attempt_at, NOW + 5 * USEC_PER_SEC);
        ASSERT_STREQ(row.last_error, "rate_limit: slow down");
        outbox_row_done(&row);
        ASSERT_OK(outbox_mark_inflight(o, row_id, NOW + 6 * USEC_PER_SEC));
        ASSERT_OK(outbox_mark_done(o, row_id, "bm-1", NOW + 7 * USEC_PER_SEC));
        ASSERT_OK(outbox_get(o, row_id, &row));
        ASSERT_EQ(row.status, OUTBOX_DONE);
        ASSERT_EQ(row.attempts, 2);
        ASSERT_EQ(row.delivered_at, NOW + 7 * USEC_PER_SEC);
        ASSERT_STREQ(row.broker_message_id, "bm-1");
        ASSERT_TRUE(!row.last_error);
        outbox_row_done(&row);

        /* done never goes back. */
        ASSERT_EQ(outbox_mark_inflight(o, row_id, NOW), -ESTALE);
        ASSERT_EQ(outbox_mark_retry(o, row_id, "x", NOW), -ESTALE);
        ASSERT_EQ(outbox_mark_dead(o, row_id, "x"), -ESTALE);
        ASSERT_EQ(outbox_mark_done(o, row_id, "bm-2", NOW), -ESTALE);
        ASSERT_OK(outbox_get(o, row_id, &row));
        ASSERT_STREQ(row.broker_message_id, "bm-1");
        outbox_row_done(&row);

        /* A row requeued while its send was in the air: the late result cannot touch it. */
        {
                OutboxAcceptResult res;
                Req q = base();

                q.body = "raced";
                ASSERT_OK(accept_req(o, "key-R", &q, NOW, &res));
                ASSERT_OK(outbox_mark_inflight(o, res.row_id, NOW));
                ASSERT_OK(outbox_mark_retry(o, res.row_id, "timeout", NOW));
                ASSERT_OK(outbox_requeue(o, res.row_id, "key-R2", NULL, NOW, new_id, NULL));
                ASSERT_EQ(outbox_mark_done(o, res.row_id, "bm-late", NOW), -ESTALE);
                ASSERT_EQ(outbox_mark_dead(o, res.row_id, "late"), -ESTALE);
                ASSERT_EQ(outbox_mark_retry(o, res.row_id, "late", NOW), -ESTALE);
                ASSERT_EQ(outbox_mark_inflight(o, res.row_id, NOW), -ESTALE);
                ASSERT_OK(outbox_get(o, res.row_id, &row));
                ASSERT_EQ(row.status, OUTBOX_ABORTED);
                ASSERT_TRUE(!row.broker_message_id);
                outbox_row_done(&row);

                /* dead from pending and from inflight. */
                ASSERT_OK(outbox_mark_dead(o, new_id, "permanent"));
                ASSERT_EQ(status_of(o, new_id), OUTBOX_DEAD);
                ASSERT_OK(accept_req(o, "key-S", &q, NOW, &res));
                ASSERT_OK(outbox_mark_inflight(o, res.row_id, NOW));
                ASSERT_OK(outbox_mark_dead(o, res.row_id, "permanent"));
                ASSERT_EQ(outbox_mark_retry(o, res.row_id, "x", NOW), -ESTALE);
        }

        ASSERT_EQ(outbox_mark_inflight(o, missing, NOW), -ENOENT);
        ASSERT_EQ(outbox_mark_done(o, missing, "bm", NOW), -ENOENT);
        ASSERT_EQ(outbox_mark_retry(o, missing, "x", NOW), -ENOENT);
        ASSERT_EQ(outbox_mark_dead(o, missing, "x"), -ENOENT);
}

/* Accepts a base-request row under cmid at enqueued_at, forced into status with raw SQL. */
static void add_row(Outbox *o, const char *cmid, usec_t enqueued_at, const char *status, char ret_id[static ULID_MAX]) {
        OutboxAcceptResult res;
        Req q = base();

        ASSERT_OK(accept_req(o, cmid, &q, enqueued_at, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        exec_sql(o, "UPDATE outbox SET status = '%s' WHERE id = '%s'", status, res.row_id);
        memcpy(ret_id, res.row_id, ULID_MAX);
}

static void test_recovery(void) {
        _cleanup_free_ char *path = new_path("recovery");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        _cleanup_(outbox_row_done) OutboxRow row = { 0 };
        char a[ULID_MAX], b[ULID_MAX], c[ULID_MAX], d[ULID_MAX];

        add_row(o, "in-1", NOW, "pending", a);
        add_row(o, "in-3", NOW, "pending", b);
        add_row(o, "pend", NOW, "pending", c);
        add_row(o, "done", NOW, "pending", d);
        ASSERT_OK(outbox_mark_inflight(o, a, NOW));
        for (unsigned i = 0; i < 3; i++) {
                ASSERT_OK(outbox_mark_inflight(o, b, NOW));
                if (i < 2)
                        ASSERT_OK(outbox_mark_retry(o, b, "transient", NOW));
        }
        ASSERT_OK(outbox_mark_inflight(o, d, NOW));
        ASSERT_OK(outbox_mark_done(o, d, "bm-d", NOW));

        /* A crash: the process goes away with rows inflight; the next start recovers them. */
        o = outbox_free(o);
        o = open_outbox(path);
        ASSERT_EQ(outbox_recover(o, NOW + HOUR), 2);
        ASSERT_OK(outbox_get(o, a, &row));
        ASSERT_EQ(row.status, OUTBOX_PENDING);
        ASSERT_EQ(row.attempts, 1);
        ASSERT_EQ(row.next_attempt_at, NOW + HOUR + 500 * USEC_PER_MSEC);
        outbox_row_done(&row);
        ASSERT_OK(outbox_get(o, b, &row));
        ASSERT_EQ(row.status, OUTBOX_PENDING);
        ASSERT_EQ(row.attempts, 3);
        ASSERT_EQ(row.next_attempt_at, NOW + HOUR + 500 * USEC_PER_MSEC);
        outbox_row_done(&row);
        ASSERT_OK(outbox_get(o, c, &row));
        ASSERT_EQ(row.next_attempt_at, NOW);
        outbox_row_done(&row);
        ASSERT_EQ(status_of(o, d), OUTBOX_DONE);
        ASSERT_EQ(outbox_recover(o, NOW + HOUR), 0);

        /* The drain's view: c is due now, a and b 500 ms after the restart. */
        {
                OutboxRow *rows = NULL;
                size_t n = 0;
                usec_t next = 0;

                ASSERT_OK(outbox_list_due(o, NULL, NULL, NOW + HOUR, 0, &rows, &n));
                ASSERT_EQ(n, 1);
                ASSERT_STREQ(rows[0].id, c);
                outbox_rows_free(rows, n);
                ASSERT_OK(outbox_list_due(o, NULL, NULL, NOW + HOUR + 500 * USEC_PER_MSEC, 0, &rows, &n));
                ASSERT_EQ(n, 3);
                ASSERT_STREQ(rows[0].id, c);
                outbox_rows_free(rows, n);
                ASSERT_OK(outbox_list_due(o, NULL, NULL, NOW + 2 * HOUR, 1, &rows, &n));
                ASSERT_EQ(n, 1);
                outbox_rows_free(rows, n);
                /* per mesh: every row here belongs to one mesh */
                ASSERT_OK(outbox_list_due(o, "mesh-1", NULL, NOW + 2 * HOUR, 0, &rows, &n));
                ASSERT_EQ(n, 3);
                outbox_rows_free(rows, n);
                ASSERT_OK(outbox_list_due(o, "no-such-mesh", NULL, NOW + 2 * HOUR, 0, &rows, &n));
                ASSERT_EQ(n, 0);
                outbox_rows_free(rows, n);
                ASSERT_OK(outbox_next_attempt_at(o, 0, &next));
                ASSERT_EQ(next, NOW);
                /* rows due already do not hide the next one due later */
                ASSERT_OK(outbox_next_attempt_at(o, NOW + HOUR, &next));
                ASSERT_EQ(next, NOW + HOUR + 500 * USEC_PER_MSEC);
                ASSERT_EQ(outbox_next_attempt_at(o, NOW + HOUR + 500 * USEC_PER_MSEC, &next), -ENOENT);
                exec_sql(o, "UPDATE outbox SET status = 'done' WHERE status = 'pending'");
                ASSERT_EQ(outbox_next_attempt_at(o, 0, &next), -ENOENT);
        }
}

static void test_max_age(void) {
        _cleanup_free_ char *path = new_path("max-age");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        _cleanup_(outbox_row_done) OutboxRow row = { 0 };
        const usec_t age = 72 * HOUR;
        char above[ULID_MAX], at[ULID_MAX], inflight[ULID_MAX], done[ULID_MAX], dead[ULID_MAX], aborted[ULID_MAX],
                young[ULID_MAX];

        add_row(o, "above", NOW - age - 1, "pending", above);
        add_row(o, "at", NOW - age, "pending", at);
        add_row(o, "inflight", NOW - age - HOUR, "inflight", inflight);
        add_row(o, "done", NOW - age - HOUR, "done", done);
        add_row(o, "dead", NOW - age - HOUR, "pending", dead);
        ASSERT_OK(outbox_mark_dead(o, dead, "permanent"));
        add_row(o, "aborted", NOW - age - HOUR, "aborted", aborted);
        add_row(o, "young", NOW, "pending", young);

        /* An injected clock: nothing is old yet an hour before; another mesh's age does not apply. */
        ASSERT_EQ(outbox_expire(o, NULL, NOW - HOUR, age), 0);
        ASSERT_EQ(outbox_expire(o, "no-such-mesh", NOW, age), 0);
        ASSERT_EQ(outbox_expire(o, "mesh-1", NOW, age), 2);
        ASSERT_OK(outbox_get(o, above, &row));
        ASSERT_EQ(row.status, OUTBOX_DEAD);
        ASSERT_STREQ(row.last_error, "max_age");
        outbox_row_done(&row);
        ASSERT_OK(outbox_get(o, inflight, &row));
        ASSERT_EQ(row.status, OUTBOX_DEAD);
        ASSERT_STREQ(row.last_error, "max_age");
        outbox_row_done(&row);
        ASSERT_EQ(status_of(o, at), OUTBOX_PENDING);
        ASSERT_EQ(status_of(o, done), OUTBOX_DONE);
        ASSERT_EQ(status_of(o, aborted), OUTBOX_ABORTED);
        ASSERT_EQ(status_of(o, young), OUTBOX_PENDING);
        ASSERT_OK(outbox_get(o, dead, &row));
        ASSERT_STREQ(row.last_error, "permanent");
        outbox_row_done(&row);

        /* One µs later the row at exactly the age goes too; a clock before the age does nothing. */
        ASSERT_EQ(outbox_expire(o, NULL, NOW + 1, age), 1);
        ASSERT_EQ(status_of(o, at), OUTBOX_DEAD);
        ASSERT_EQ(outbox_expire(o, NULL, age, age), 0);

        /* Reference §3.8. */
        ASSERT_EQ(outbox_max_age_hours(3, false), 72);
        ASSERT_EQ(outbox_max_age_hours(7, false), 144);
        ASSERT_EQ(outbox_max_age_hours(30, false), 648);
        ASSERT_EQ(outbox_max_age_hours(365, false), 7884);
        ASSERT_EQ(outbox_max_age_hours(0, false), 168);
        ASSERT_EQ(outbox_max_age_hours(365, true), 168);
        ASSERT_EQ(outbox_max_age_hours(1, false), 72);
        ASSERT_EQ(outbox_max_age_hours(11, false), 237); /* the margin is ceil(26.4) = 27 */
}

static void test_backoff(void) {
        for (unsigned attempts = 0; attempts < 40; attempts++) {
                usec_t cap = attempts >= 6 ? 30 * USEC_PER_SEC : (500 * USEC_PER_MSEC) << attempts, max = 0;

                for (unsigned i = 0; i < 2000; i++) {
                        usec_t b = outbox_retry_backoff(attempts);

                        ASSERT_TRUE(b <= cap);
                        if (b > max)
                                max = b;
                }
                /* Full jitter spreads over the whole range: 2000 draws all below 3/4 of it
                 * happen with probability (3/4)^2000. */
                ASSERT_TRUE(max > cap / 4 * 3);
        }
        ASSERT_TRUE(outbox_retry_backoff(UINT32_MAX) <= 30 * USEC_PER_SEC);
}

static void test_list_and_count(void) {
        _cleanup_free_ char *path = new_path("list");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        unsigned counts[_OUTBOX_STATUS_MAX];
        OutboxRow *rows = NULL;
        size_t n = 0;
        char id[ULID_MAX];

        for (unsigned i = 0; i < 30; i++) {
                char cmid[32];
                OutboxAcceptResult res;
                Req q = base();

                q.mesh = i % 3 == 0 ? "mesh-2" : "mesh-1";
                snprintf(cmid, sizeof cmid, "list-%u", i);
                /* Two rows per µs, to see ties broken by insertion order. */
                ASSERT_OK(accept_req(o, cmid, &q, NOW + i / 2, &res));
                if (i == 29)
                        memcpy(id, res.row_id, sizeof id);
        }
        ASSERT_OK(outbox_mark_inflight(o, id, NOW));

        ASSERT_OK(outbox_list(o, NULL, _OUTBOX_STATUS_INVALID, 0, &rows, &n));
        ASSERT_EQ(n, 30);
        ASSERT_STREQ(rows[0].client_message_id, "list-29");
        ASSERT_STREQ(rows[1].client_message_id, "list-28");
        ASSERT_STREQ(rows[29].client_message_id, "list-0");
        outbox_rows_free(rows, n);

        ASSERT_OK(outbox_list(o, "mesh-2", _OUTBOX_STATUS_INVALID, 0, &rows, &n));
        ASSERT_EQ(n, 10);
        for (size_t i = 0; i < n; i++)
                ASSERT_STREQ(rows[i].mesh_id, "mesh-2");
        ASSERT_STREQ(rows[0].client_message_id, "list-27");
        outbox_rows_free(rows, n);

        ASSERT_OK(outbox_list(o, NULL, OUTBOX_INFLIGHT, 0, &rows, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(rows[0].id, id);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list(o, "mesh-2", OUTBOX_INFLIGHT, 0, &rows, &n));
        ASSERT_EQ(n, 0);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list(o, "mesh-1", OUTBOX_INFLIGHT, 0, &rows, &n));
        ASSERT_EQ(n, 1);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list(o, "mesh-1", OUTBOX_PENDING, 3, &rows, &n));
        ASSERT_EQ(n, 3);
        ASSERT_STREQ(rows[0].client_message_id, "list-28");
        outbox_rows_free(rows, n);
        ASSERT_EQ(outbox_list(o, NULL, (OutboxStatus) 17, 0, &rows, &n), -EINVAL);

        ASSERT_OK(outbox_count(o, NULL, counts));
        ASSERT_EQ(counts[OUTBOX_PENDING], 29);
        ASSERT_EQ(counts[OUTBOX_INFLIGHT], 1);
        ASSERT_EQ(counts[OUTBOX_DONE] + counts[OUTBOX_DEAD] + counts[OUTBOX_ABORTED], 0);
        ASSERT_OK(outbox_count(o, "mesh-2", counts));
        ASSERT_EQ(counts[OUTBOX_PENDING], 10);
        ASSERT_EQ(counts[OUTBOX_INFLIGHT], 0);
        ASSERT_OK(outbox_count(o, "mesh-9", counts));
        ASSERT_EQ(counts[OUTBOX_PENDING], 0);
}

static void test_group_commit(void) {
        _cleanup_free_ char *path = new_path("group");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        OutboxAcceptResult res;
        OutboxRow *rows = NULL;
        size_t n = 0;
        Req q = base();

        ASSERT_OK(outbox_begin(o));
        ASSERT_EQ(outbox_begin(o), -EBUSY);
        for (unsigned i = 0; i < 1000; i++) {
                char cmid[32];

                snprintf(cmid, sizeof cmid, "batch-%u", i);
                ASSERT_OK(accept_req(o, cmid, &q, NOW + i, &res));
                ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        }
        /* A duplicate in the same batch sees the uncommitted row. */
        ASSERT_OK(accept_req(o, "batch-7", &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_PENDING);
        ASSERT_OK(outbox_commit(o));

        /* Committed means durable: visible to a second connection. */
        {
                _cleanup_(outbox_freep) Outbox *other = open_outbox(path);
                ASSERT_EQ(total_rows(other), 1000);
        }

        /* A batch rolled back leaves nothing, not even its ids consumed. */
        ASSERT_OK(outbox_begin(o));
        for (unsigned i = 0; i < 100; i++) {
                char cmid[32];

                snprintf(cmid, sizeof cmid, "lost-%u", i);
                ASSERT_OK(accept_req(o, cmid, &q, NOW, &res));
                ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        }
        outbox_rollback(o);
        outbox_rollback(o);
        ASSERT_EQ(total_rows(o), 1000);
        ASSERT_OK(accept_req(o, "lost-3", &q, NOW, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);

        /* Listing clamps: 0 → 50, above 500 → 500. */
        ASSERT_OK(outbox_list(o, NULL, _OUTBOX_STATUS_INVALID, 0, &rows, &n));
        ASSERT_EQ(n, OUTBOX_LIST_DEFAULT);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list(o, NULL, _OUTBOX_STATUS_INVALID, 100000, &rows, &n));
        ASSERT_EQ(n, OUTBOX_LIST_MAX);
        outbox_rows_free(rows, n);
}

#define RACE_IDS 200u

/* Accepts race-0 … race-(n-1) one transaction each and returns how many it inserted. */
static unsigned race(Outbox *o, unsigned n) {
        unsigned queued = 0;
        Req q = base();

        for (unsigned i = 0; i < n; i++) {
                OutboxAcceptResult res;
                char cmid[32];

                snprintf(cmid, sizeof cmid, "race-%u", i);
                ASSERT_OK(outbox_begin(o));
                ASSERT_OK(accept_req(o, cmid, &q, NOW, &res));
                ASSERT_OK(outbox_commit(o));
                ASSERT_TRUE(res.outcome == OUTBOX_ACCEPT_QUEUED || res.outcome == OUTBOX_ACCEPT_PENDING);
                queued += res.outcome == OUTBOX_ACCEPT_QUEUED;
        }
        return queued;
}

/* The racing side in its own process (exec'd, so it has nothing of ours but the path):
 * waits for a byte on stdin, races, writes how many rows it inserted to stdout. */
static int race_child(const char *path) {
        Outbox *o = open_outbox(path);
        unsigned queued;
        char c;

        ASSERT_EQ(read(STDIN_FILENO, &c, 1), 1);
        queued = race(o, RACE_IDS);
        outbox_free(o);
        ASSERT_EQ(write(STDOUT_FILENO, &queued, sizeof queued), (ssize_t) sizeof queued);
        return EXIT_SUCCESS;
}

static void test_two_processes(const char *self) {
        _cleanup_free_ char *path = new_path("race");
        _cleanup_(outbox_freep) Outbox *o = NULL;
        unsigned mine, theirs = 0;
        int go[2], result[2], status;
        pid_t pid;
        char c = 0;

        /* Create the file first, so both sides only race the rows. */
        outbox_free(open_outbox(path));
        ASSERT_OK(pipe2(go, O_CLOEXEC) < 0 ? -errno : 0);
        ASSERT_OK(pipe2(result, O_CLOEXEC) < 0 ? -errno : 0);
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
                if (dup2(go[0], STDIN_FILENO) < 0 || dup2(result[1], STDOUT_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                execl(self, self, "--race-child", path, (char *) NULL);
                _exit(EXIT_FAILURE);
        }
        o = open_outbox(path);
        ASSERT_EQ(write(go[1], &c, 1), 1);
        mine = race(o, RACE_IDS);
        ASSERT_EQ(read(result[0], &theirs, sizeof theirs), (ssize_t) sizeof theirs);
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(go[0]);
        close(go[1]);
        close(result[0]);
        close(result[1]);

        /* Each id has exactly one row, inserted by exactly one side. */
        ASSERT_EQ(mine + theirs, RACE_IDS);
        ASSERT_EQ(total_rows(o), RACE_IDS);
}

static int pragma_int(Outbox *o, const char *pragma) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o), pragma, -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        return sqlite3_column_int(st, 0);
}

static void test_pragmas(void) {
        _cleanup_free_ char *path = new_path("pragmas");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        Outbox *normal = NULL;

        {
                _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

                ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o), "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_STREQ((const char *) sqlite3_column_text(st, 0), "wal");
        }
        ASSERT_EQ(pragma_int(o, "PRAGMA synchronous"), 2);
        ASSERT_EQ(pragma_int(o, "PRAGMA busy_timeout"), 5000);
        ASSERT_EQ(pragma_int(o, "PRAGMA foreign_keys"), 1);
        ASSERT_OK(outbox_open(path, false, &normal, NULL));
        ASSERT_EQ(pragma_int(normal, "PRAGMA synchronous"), 1);
        outbox_free(normal);
}

static void test_schema(void) {
        _cleanup_free_ char *path = new_path("schema"), *error = NULL;
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        char row_id[ULID_MAX], newer[32];
        OutboxAcceptResult res;
        Req q = base();
        Outbox *refused = NULL;

        /* A fresh file has the current version; reopening changes nothing and keeps rows. */
        {
                _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

                ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o), "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_EQ(sqlite3_column_int(st, 0), OUTBOX_SCHEMA_VERSION);
        }
        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        memcpy(row_id, res.row_id, sizeof row_id);
        o = outbox_free(o);
        o = open_outbox(path);
        ASSERT_EQ(total_rows(o), 1);
        ASSERT_EQ(status_of(o, row_id), OUTBOX_PENDING);
        o = outbox_free(o);

        /* A newer schema is refused with both versions and the file named. */
        ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        snprintf(newer, sizeof newer, "PRAGMA user_version = %d", OUTBOX_SCHEMA_VERSION + 1);
        ASSERT_EQ(sqlite3_exec(db, newer, NULL, NULL, NULL), SQLITE_OK);
        ASSERT_EQ(outbox_open(path, true, &refused, &error), -EPROTO);
        ASSERT_TRUE(!refused);
        ASSERT_CONTAINS(error, path);
        snprintf(newer, sizeof newer, "schema version %d", OUTBOX_SCHEMA_VERSION + 1);
        ASSERT_CONTAINS(error, newer);
        snprintf(newer, sizeof newer, "up to %d", OUTBOX_SCHEMA_VERSION);
        ASSERT_CONTAINS(error, newer);
}

static int user_version(Outbox *o) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o), "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        return sqlite3_column_int(st, 0);
}

/* A file written at schema version 1 keeps every row and every column through the rebuild of
 * version 2, and its constraints and indexes still hold. */
static void test_schema_v1(void) {
        _cleanup_free_ char *path = new_path("schema-v1"), *sql = NULL;
        _cleanup_(outbox_row_done) OutboxRow a = { 0 }, b = { 0 }, c = { 0 };
        char fp_hex[65], id_a[ULID_MAX], id_b[ULID_MAX], id_c[ULID_MAX];
        _cleanup_(outbox_freep) Outbox *o = NULL;
        sqlite3 *db = NULL;
        OutboxAcceptResult res;
        Req q = base();
        uint8_t fp[32];

        ASSERT_OK(ulid_new(NOW, id_a));
        ASSERT_OK(ulid_new(NOW + 1, id_b));
        ASSERT_OK(ulid_new(NOW + 2, id_c));
        fingerprint(&q, fp);
        sodium_bin2hex(fp_hex, sizeof fp_hex, fp, sizeof fp);
        ASSERT_TRUE(asprintf(&sql,
                "%s PRAGMA user_version = 1;"
                "INSERT INTO outbox VALUES ('%s', 'key-A', 'mesh-1', 'dm', '" ALICE "', '" ALICE "', 'next', "
                "  '{\"k\":1}', 'r-1', x'68656c6c6f', x'%s', %" PRIu64 ", 1, %" PRIu64 ", 'pending', 'boom', "
                "  NULL, NULL, NULL, NULL, NULL);"
                "INSERT INTO outbox VALUES ('%s', 'key-B', 'mesh-2', 'topic', '*', '*', 'now', NULL, NULL, x'', "
                "  randomblob(32), %" PRIu64 ", 2, %" PRIu64 ", 'done', NULL, %" PRIu64 ", 'bm-1', NULL, NULL, NULL);"
                "INSERT INTO outbox VALUES ('%s', 'key-C', 'mesh-1', 'dm', '" BOB "', '" BOB "', 'low', NULL, NULL, "
                "  x'00ff', randomblob(32), %" PRIu64 ", 0, %" PRIu64 ", 'aborted', NULL, NULL, NULL, %" PRIu64 ", "
                "  'auto', '%s');",
                outbox_migrations[0], id_a, fp_hex, NOW, NOW + HOUR, id_b, NOW + 1, NOW + 2, NOW + 3, id_c, NOW + 4,
                NOW + 5, NOW + 6, id_a) > 0);
        ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_close(db), SQLITE_OK);

        o = open_outbox(path);
        ASSERT_EQ(user_version(o), OUTBOX_SCHEMA_VERSION);
        ASSERT_EQ(total_rows(o), 3);
        ASSERT_OK(outbox_get(o, id_a, &a));
        ASSERT_STREQ(a.client_message_id, "key-A");
        ASSERT_STREQ(a.mesh_id, "mesh-1");
        ASSERT_STREQ(a.kind, "dm");
        ASSERT_STREQ(a.destination_ref, ALICE);
        ASSERT_STREQ(a.target_spec, ALICE);
        ASSERT_STREQ(a.priority, "next");
        ASSERT_STREQ(a.meta_json, "{\"k\":1}");
        ASSERT_STREQ(a.reply_to, "r-1");
        ASSERT_EQ(a.body_size, 5);
        ASSERT_STREQ(a.body, "hello");
        ASSERT_TRUE(memcmp(a.request_fingerprint, fp, sizeof fp) == 0);
        ASSERT_EQ(a.enqueued_at, NOW);
        ASSERT_EQ(a.attempts, 1);
        ASSERT_EQ(a.next_attempt_at, NOW + HOUR);
        ASSERT_EQ(a.status, OUTBOX_PENDING);
        ASSERT_STREQ(a.last_error, "boom");
        ASSERT_OK(outbox_get(o, id_b, &b));
        ASSERT_STREQ(b.kind, "topic");
        ASSERT_STREQ(b.priority, "now");
        ASSERT_EQ(b.body_size, 0);
        ASSERT_EQ(b.attempts, 2);
        ASSERT_EQ(b.status, OUTBOX_DONE);
        ASSERT_EQ(b.delivered_at, NOW + 3);
        ASSERT_STREQ(b.broker_message_id, "bm-1");
        ASSERT_OK(outbox_get(o, id_c, &c));
        ASSERT_STREQ(c.priority, "low");
        ASSERT_EQ(c.body_size, 2);
        ASSERT_TRUE(memcmp(c.body, "\x00\xff", 2) == 0);
        ASSERT_EQ(c.status, OUTBOX_ABORTED);
        ASSERT_EQ(c.aborted_at, NOW + 6);
        ASSERT_STREQ(c.aborted_by, "auto");
        ASSERT_STREQ(c.superseded_by, id_a);

        /* The dedupe lookup finds the copied row; a new key is still queued. */
        ASSERT_OK(accept_req(o, "key-A", &q, NOW + 10, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_PENDING);
        ASSERT_STREQ(res.row_id, id_a);
        ASSERT_OK(accept_req(o, "key-D", &q, NOW + 10, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        ASSERT_EQ(total_rows(o), 4);

        /* The rewritten CHECKs refuse what the old ones refused, and only that. */
        ASSERT_EQ(sqlite3_exec(outbox_db(o), "UPDATE outbox SET status = 'lost' WHERE client_message_id = 'key-D'",
                               NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
        ASSERT_EQ(sqlite3_exec(outbox_db(o), "UPDATE outbox SET priority = 'Now' WHERE client_message_id = 'key-D'",
                               NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
        ASSERT_EQ(sqlite3_exec(outbox_db(o), "UPDATE outbox SET kind = 'queue' WHERE client_message_id = 'key-D'",
                               NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
        ASSERT_EQ(sqlite3_exec(outbox_db(o), "UPDATE outbox SET aborted_by = 'user' WHERE client_message_id = 'key-D'",
                               NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
        exec_sql(o, "UPDATE outbox SET status = 'dead', priority = 'low', kind = 'topic', aborted_by = 'operator' "
                    "WHERE client_message_id = 'key-D'");
        exec_sql(o, "UPDATE outbox SET aborted_by = NULL WHERE client_message_id = 'key-D'");

        /* The same indexes as a fresh file, under the same names. */
        {
                _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

                ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o),
                                             "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_schema "
                                             "WHERE type = 'index' AND tbl_name = 'outbox' ORDER BY name)",
                                             -1, &st, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_STREQ((const char *) sqlite3_column_text(st, 0),
                             "outbox_aborted outbox_mesh outbox_pending sqlite_autoindex_outbox_2");
        }
}

/* No statement of the accept or of the drain's transitions of a row builds a temporary b-tree
 * (an ephemeral table: a constant IN list of more than two values, DISTINCT, an unindexed ORDER
 * BY ...): each is a fresh in-memory database, zeroed pages and all, on every run. (Recovery,
 * expiry and requeue need one, for the keys of the rows they change or copy: they are not run
 * per send.) */
static void test_no_temporary_btree(void) {
        _cleanup_free_ char *path = new_path("ephemeral");
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        char id_a[ULID_MAX], id_b[ULID_MAX];
        const char *sql[64];
        size_t n = 0;
        OutboxAcceptResult res;
        Req q = base();

        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        memcpy(id_a, res.row_id, sizeof id_a);
        ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
        ASSERT_OK(accept_req(o, "key-B", &q, NOW, &res));
        memcpy(id_b, res.row_id, sizeof id_b);
        ASSERT_OK(outbox_mark_inflight(o, id_a, NOW));
        ASSERT_OK(outbox_mark_retry(o, id_a, "later", NOW + 1));
        ASSERT_OK(outbox_mark_inflight(o, id_a, NOW + 1));
        ASSERT_OK(outbox_mark_done(o, id_a, "bm-1", NOW + 2));
        ASSERT_EQ(outbox_mark_inflight(o, id_a, NOW + 2), -ESTALE);
        ASSERT_OK(outbox_mark_dead(o, id_b, "refused"));

        for (sqlite3_stmt *st = sqlite3_next_stmt(outbox_db(o), NULL); st; st = sqlite3_next_stmt(outbox_db(o), st)) {
                ASSERT_TRUE(n < ELEMENTSOF(sql));
                sql[n++] = sqlite3_sql(st);
        }
        ASSERT_TRUE(n >= 8);
        for (size_t i = 0; i < n; i++) {
                _cleanup_(sqlite3_finalizep) sqlite3_stmt *explain = NULL;
                _cleanup_free_ char *text = NULL;
                int rc;

                ASSERT_TRUE(asprintf(&text, "EXPLAIN %s", sql[i]) > 0);
                ASSERT_EQ(sqlite3_prepare_v2(outbox_db(o), text, -1, &explain, NULL), SQLITE_OK);
                while ((rc = sqlite3_step(explain)) == SQLITE_ROW)
                        if (streq((const char *) sqlite3_column_text(explain, 1), "OpenEphemeral"))
                                ASSERT_STREQ(sql[i], "(a statement without OpenEphemeral)");
                ASSERT_EQ(rc, SQLITE_DONE);
        }
}

/* Version 2 to 3 (DECISIONS §17): rows before were the member's (sender_pubkey ''), and an id is
 * unique per sender: the member's dedupe still finds its row, a session's same id is its own. */
static void test_schema_v2_senders(void) {
        _cleanup_free_ char *path = new_path("schema-v2"), *sql = NULL, *new_cmid = NULL;
        _cleanup_(outbox_row_done) OutboxRow a = { 0 }, moved = { 0 };
        char id_a[ULID_MAX], new_row[ULID_MAX];
        _cleanup_(outbox_freep) Outbox *o = NULL;
        OutboxRow *rows = NULL;
        size_t n = 0;
        sqlite3 *db = NULL;
        OutboxAcceptResult res;
        Req q = base();
        OutboxEnvelope env = envelope(&q);
        uint8_t fp[32];

        fingerprint(&q, fp);
        ASSERT_OK(ulid_new(NOW, id_a));
        ASSERT_TRUE(asprintf(&sql,
                "%s %s PRAGMA user_version = 2;"
                "INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec, priority, "
                "  body, request_fingerprint, enqueued_at, attempts, next_attempt_at, status) VALUES ('%s', 'key-A', "
                "  'mesh-1', 'dm', '" ALICE "', '" ALICE "', 'next', x'68656c6c6f', randomblob(32), %" PRIu64 ", 0, "
                "  %" PRIu64 ", 'pending');",
                outbox_migrations[0], outbox_migrations[1], id_a, NOW, NOW) > 0);
        ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
        ASSERT_EQ(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_close(db), SQLITE_OK);

        o = open_outbox(path);
        ASSERT_EQ(user_version(o), OUTBOX_SCHEMA_VERSION);
        ASSERT_OK(outbox_get(o, id_a, &a));
        ASSERT_STREQ(a.sender_pubkey, "");
        ASSERT_STREQ(a.body, "hello");

        /* The member's id is found again (the stored fingerprint differs: a conflict, no new row). */
        ASSERT_OK(accept_req(o, "key-A", &q, NOW + 1, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_CONFLICT);
        ASSERT_EQ(total_rows(o), 1);
        /* The same id from a session is a send of its own; again from it, the duplicate. */
        env.sender_pubkey = BOB;
        ASSERT_OK(outbox_accept(o, "key-A", fp, &env, NOW + 2, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_QUEUED);
        ASSERT_OK(outbox_accept(o, "key-A", fp, &env, NOW + 3, &res));
        ASSERT_EQ(res.outcome, OUTBOX_ACCEPT_PENDING);
        ASSERT_EQ(total_rows(o), 2);

        /* The drain lists each identity's rows apart. */
        ASSERT_OK(outbox_list_due(o, "mesh-1", "", NOW + HOUR, 0, &rows, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(rows[0].id, id_a);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list_due(o, "mesh-1", BOB, NOW + HOUR, 0, &rows, &n));
        ASSERT_EQ(n, 1);
        ASSERT_STREQ(rows[0].sender_pubkey, BOB);
        ASSERT_STREQ(rows[0].client_message_id, "key-A");
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list_due(o, NULL, NULL, NOW + HOUR, 0, &rows, &n));
        ASSERT_EQ(n, 2);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list_active_from(o, BOB, 0, &rows, &n));
        ASSERT_EQ(n, 1);
        outbox_rows_free(rows, n);
        ASSERT_OK(outbox_list_active_from(o, ALICE, 0, &rows, &n));
        ASSERT_EQ(n, 0);
        outbox_rows_free(rows, n);
        {
                char **senders = NULL;

                /* The member's rows ('') are not a session's. */
                ASSERT_OK(outbox_list_active_senders(o, 0, &senders));
                ASSERT_STREQ(senders[0], BOB);
                ASSERT_TRUE(!senders[1]);
                free(senders[0]);
                free(senders);
                /* Due now: the member's row (due at NOW) and the session's (due at NOW + 2). */
                ASSERT_OK(outbox_list_due_senders(o, "mesh-1", NOW + 1, 0, &senders));
                ASSERT_STREQ(senders[0], "");
                ASSERT_TRUE(!senders[1]);
                free(senders[0]);
                free(senders);
                ASSERT_OK(outbox_list_due_senders(o, "mesh-1", NOW + 2, 0, &senders));
                ASSERT_TRUE(senders[0] && senders[1] && !senders[2]);
                ASSERT_TRUE(streq(senders[0], BOB) || streq(senders[1], BOB));
                free(senders[0]);
                free(senders[1]);
                free(senders);
                ASSERT_OK(outbox_list_due_senders(o, "mesh-2", NOW + 2, 0, &senders));
                ASSERT_TRUE(!senders[0]);
                free(senders);
        }

        /* A requeue keeps the sender, and checks the new id within the sender's scope only. */
        ASSERT_OK(outbox_accept(o, "key-B", fp, &env, NOW + 4, &res));
        ASSERT_EQ(outbox_requeue(o, res.row_id, "key-A", NULL, NOW + 5, new_row, NULL), -EEXIST);
        ASSERT_OK(outbox_requeue(o, res.row_id, "key-C", NULL, NOW + 5, new_row, &new_cmid));
        ASSERT_OK(outbox_get(o, new_row, &moved));
        ASSERT_STREQ(moved.sender_pubkey, BOB);
        ASSERT_STREQ(moved.client_message_id, "key-C");
}

/* The forward-only steps of store_open, with a schema of three versions. */
static void test_migrations(void) {
        static const char *const steps[] = {
                "CREATE TABLE t (a INTEGER NOT NULL)",
                "ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT 'b'",
                "CREATE INDEX t_b ON t(b)",
        };
        static const char *const broken[] = {
                "CREATE TABLE t (a INTEGER NOT NULL)",
                "ALTER TABLE t ADD COLUMN c TEXT; CREATE TABLE t (x)",
        };
        _cleanup_free_ char *path = new_path("migrate"), *error = NULL;
        Store *s = NULL;

        /* Version 1 made by hand, with a row in it. */
        {
                _cleanup_(sqlite3_closep) sqlite3 *db = NULL;

                ASSERT_EQ(sqlite3_open(path, &db), SQLITE_OK);
                ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE t (a INTEGER NOT NULL); INSERT INTO t VALUES (7);"
                                           "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
        }

        /* A failing step leaves the file at the last whole version. */
        ASSERT_TRUE(store_open(path, true, broken, ELEMENTSOF(broken), &s, &error) < 0);
        ASSERT_CONTAINS(error, "from schema version 1 to 2");
        error = mfree(error);
        ASSERT_OK(store_open(path, true, steps, 1, &s, NULL));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (8)"));
        s = store_free(s);

        ASSERT_OK(store_open(path, false, steps, ELEMENTSOF(steps), &s, NULL));
        {
                _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

                ASSERT_EQ(sqlite3_prepare_v2(store_db(s), "SELECT count(*), min(b), (SELECT user_version FROM "
                                             "pragma_user_version) FROM t INDEXED BY t_b", -1, &st, NULL), SQLITE_OK);
                ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
                ASSERT_EQ(sqlite3_column_int(st, 0), 2);
                ASSERT_STREQ((const char *) sqlite3_column_text(st, 1), "b");
                ASSERT_EQ(sqlite3_column_int(st, 2), 3);
        }
        s = store_free(s);

        /* Reopening at the same version is a no-op; older code refuses the file. */
        ASSERT_OK(store_open(path, true, steps, ELEMENTSOF(steps), &s, NULL));
        s = store_free(s);
        ASSERT_EQ(store_open(path, true, steps, 2, &s, &error), -EPROTO);
        ASSERT_CONTAINS(error, "schema version 3");
}

static int count_t(Store *s) {
        _cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;

        ASSERT_EQ(sqlite3_prepare_v2(store_db(s), "SELECT count(*) FROM t", -1, &st, NULL), SQLITE_OK);
        ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
        return sqlite3_column_int(st, 0);
}

/* store_atomic_*: a transaction of its own, or a savepoint inside the caller's. */
static void test_atomic(void) {
        static const char *const steps[] = {
                "CREATE TABLE t (a INTEGER NOT NULL);"
                "CREATE TABLE p (id INTEGER PRIMARY KEY);"
                "CREATE TABLE c (pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)",
        };
        _cleanup_free_ char *path = new_path("atomic");
        _cleanup_(store_freep) Store *s = NULL;
        bool own;

        ASSERT_OK(store_open(path, true, steps, ELEMENTSOF(steps), &s, NULL));

        ASSERT_OK(store_atomic_begin(s, &own));
        ASSERT_TRUE(own && store_in_transaction(s));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (1)"));
        ASSERT_EQ(store_atomic_end(s, own, -EIO), -EIO);
        ASSERT_TRUE(!store_in_transaction(s));
        ASSERT_EQ(count_t(s), 0);

        ASSERT_OK(store_begin(s));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (1)"));
        ASSERT_OK(store_atomic_begin(s, &own));
        ASSERT_TRUE(!own);
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (2)"));
        ASSERT_EQ(store_atomic_end(s, own, -EEXIST), -EEXIST);
        /* Only the failed operation is undone, and the caller's transaction goes on. */
        ASSERT_TRUE(store_in_transaction(s));
        ASSERT_EQ(count_t(s), 1);
        ASSERT_OK(store_atomic_begin(s, &own));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (3)"));
        ASSERT_OK(store_atomic_end(s, own, 0));
        ASSERT_TRUE(store_in_transaction(s));
        ASSERT_OK(store_commit(s));
        ASSERT_EQ(count_t(s), 2);

        ASSERT_OK(store_atomic_begin(s, &own));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (4)"));
        ASSERT_OK(store_atomic_end(s, own, 0));
        ASSERT_TRUE(!store_in_transaction(s));
        ASSERT_EQ(count_t(s), 3);

        /* foreign_keys is on, and a COMMIT that fails (here on a deferred foreign key) has
         * rolled everything back rather than leave the transaction open. */
        ASSERT_OK(store_begin(s));
        ASSERT_OK(store_exec(s, "INSERT INTO t VALUES (5); INSERT INTO c VALUES (99)"));
        ASSERT_EQ(store_commit(s), -EEXIST);
        ASSERT_TRUE(!store_in_transaction(s));
        ASSERT_EQ(count_t(s), 3);
}

static void check_mode(const char *path, const char *suffix) {
        _cleanup_free_ char *p = NULL;
        struct stat st;

        ASSERT_TRUE(asprintf(&p, "%s%s", path, suffix) > 0);
        ASSERT_OK(stat(p, &st) < 0 ? -errno : 0);
        ASSERT_EQ(st.st_mode & 07777, 0600);
}

static void test_file_mode(void) {
        _cleanup_free_ char *path = new_path("mode"), *loose = new_path("loose");
        OutboxAcceptResult res;
        Req q = base();
        mode_t old;

        /* Even with no umask at all, the file, its WAL and its shared memory are 0600. */
        old = umask(0);
        {
                _cleanup_(outbox_freep) Outbox *o = open_outbox(path);

                ASSERT_OK(accept_req(o, "key-A", &q, NOW, &res));
                check_mode(path, "");
                check_mode(path, "-wal");
                check_mode(path, "-shm");
        }

        /* A file left world-readable by something else is narrowed. */
        outbox_free(open_outbox(loose));
        ASSERT_OK(chmod(loose, 0644) < 0 ? -errno : 0);
        outbox_free(open_outbox(loose));
        check_mode(loose, "");
        umask(old);
}

/* An outbox with a few pages of rows, closed cleanly (no -wal left). */
static char *make_full_outbox(const char *name) {
        char *path = new_path(name);
        _cleanup_(outbox_freep) Outbox *o = open_outbox(path);
        Req q = base();

        q.body = "a body long enough to fill several pages of the table and its indexes quickly";
        ASSERT_OK(outbox_begin(o));
        for (unsigned i = 0; i < 400; i++) {
                OutboxAcceptResult res;
                char cmid[32];

                snprintf(cmid, sizeof cmid, "fill-%u", i);
                ASSERT_OK(accept_req(o, cmid, &q, NOW + i, &res));
        }
        ASSERT_OK(outbox_commit(o));
        return path;
}

static void expect_corrupt(const char *path) {
        _cleanup_free_ char *before = NULL, *after = NULL, *error = NULL, *corrupt = NULL;
        size_t before_size, after_size;
        Outbox *o = NULL;

        ASSERT_OK(read_full_file(path, 16 << 20, &before, &before_size, NULL));
        ASSERT_EQ(outbox_open(path, true, &o, &error), -EUCLEAN);
        ASSERT_TRUE(!o);
        ASSERT_CONTAINS(error, path);
        ASSERT_CONTAINS(error, "damaged");
        ASSERT_CONTAINS(error, "Sends are refused");
        ASSERT_CONTAINS(error, "the file is left as it is");
        ASSERT_CONTAINS(error, ".created");
        /* Untouched, and not set aside: that is for the operator to decide. */
        ASSERT_OK(read_full_file(path, 16 << 20, &after, &after_size, NULL));
        ASSERT_EQ(after_size, before_size);
        ASSERT_TRUE(memcmp(before, after, before_size) == 0);
        ASSERT_TRUE(asprintf(&corrupt, "%s.corrupt", path) > 0);
        ASSERT_TRUE(access(corrupt, F_OK) < 0);
}

static void test_corrupt(void) {
        _cleanup_free_ char *middle = make_full_outbox("corrupt-middle"), *truncated = make_full_outbox("truncated"),
                            *garbage = new_path("garbage");
        char junk[4096];
        struct stat st;
        int fd;

        /* Bytes overwritten in the middle of the file. */
        memset(junk, 0xa5, sizeof junk);
        fd = open(middle, O_WRONLY | O_CLOEXEC);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(fstat(fd, &st) < 0 ? -errno : 0);
        ASSERT_TRUE(st.st_size > 4 * 4096);
        ASSERT_EQ(pwrite(fd, junk, sizeof junk, st.st_size / 2 / 4096 * 4096 + 100), (ssize_t) sizeof junk);
        close(fd);
        expect_corrupt(middle);

        /* A file cut in half. */
        ASSERT_OK(stat(truncated, &st) < 0 ? -errno : 0);
        ASSERT_OK(truncate(truncated, st.st_size / 2) < 0 ? -errno : 0);
        expect_corrupt(truncated);

        /* Not SQLite at all. */
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = "not a database\n"[i % 15];
        ASSERT_OK(write_file_atomic(garbage, junk, sizeof junk, 0600));
        expect_corrupt(garbage);
}

/* A lost outbox never silently becomes a fresh one: an empty file, or a missing one where the
 * marker (or a write-ahead log) shows there was an outbox. */
static void test_lost(void) {
        _cleanup_free_ char *path = new_path("lost"), *marker = NULL, *wal = NULL, *tmp = NULL, *error = NULL;
        Outbox *o = NULL;
        struct stat st;
        int fd;

        ASSERT_TRUE(asprintf(&marker, "%s.created", path) > 0);
        ASSERT_TRUE(asprintf(&wal, "%s-wal", path) > 0);
        ASSERT_TRUE(asprintf(&tmp, "%s.new", path) > 0);

        /* Created through "<path>.new", never an empty file at path; the marker follows. */
        ASSERT_TRUE(access(marker, F_OK) < 0);
        o = open_outbox(path);
        o = outbox_free(o);
        ASSERT_OK(stat(path, &st) < 0 ? -errno : 0);
        ASSERT_TRUE(st.st_size > 0);
        ASSERT_TRUE(access(tmp, F_OK) < 0);
        ASSERT_OK(access(marker, F_OK) < 0 ? -errno : 0);

        /* Emptied (a crash on a file system without data journaling): refused, left as it is. */
        ASSERT_OK(truncate(path, 0) < 0 ? -errno : 0);
        ASSERT_EQ(outbox_open(path, true, &o, &error), -EUCLEAN);
        ASSERT_TRUE(!o);
        ASSERT_CONTAINS(error, "is empty (0 bytes)");
        ASSERT_CONTAINS(error, "Sends are refused");
        ASSERT_OK(stat(path, &st) < 0 ? -errno : 0);
        ASSERT_EQ(st.st_size, 0);
        error = mfree(error);

        /* Gone, while the marker says there was one: refused, and nothing is created. */
        ASSERT_OK(unlink(path) < 0 ? -errno : 0);
        (void) unlink(wal);
        ASSERT_EQ(outbox_open(path, true, &o, &error), -EUCLEAN);
        ASSERT_CONTAINS(error, "is missing, but");
        ASSERT_CONTAINS(error, marker);
        ASSERT_TRUE(access(path, F_OK) < 0);
        error = mfree(error);

        /* Gone, no marker, but its write-ahead log is left: refused too. */
        ASSERT_OK(unlink(marker) < 0 ? -errno : 0);
        fd = open(wal, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(write(fd, "wal", 3), 3);
        close(fd);
        ASSERT_EQ(outbox_open(path, true, &o, &error), -EUCLEAN);
        ASSERT_CONTAINS(error, "write-ahead log");
        ASSERT_TRUE(access(path, F_OK) < 0);
        error = mfree(error);

        /* The operator's way out: with the evidence moved aside, a fresh outbox. */
        ASSERT_OK(unlink(wal) < 0 ? -errno : 0);
        o = open_outbox(path);
        o = outbox_free(o);
        ASSERT_OK(access(marker, F_OK) < 0 ? -errno : 0);
}

int main(int argc, char *argv[]) {
        ASSERT_TRUE(sodium_init() >= 0);
        if (argc == 3 && streq(argv[1], "--race-child"))
                return race_child(argv[2]);

        test_status_strings();
        test_table_pending();
        test_table_later_states();
        test_invalid_requests();
        test_requeue();
        test_guarded_updates();
        test_recovery();
        test_max_age();
        test_backoff();
        test_list_and_count();
        test_group_commit();
        test_two_processes(argv[0]);
        test_pragmas();
        test_schema();
        test_schema_v1();
        test_no_temporary_btree();
        test_schema_v2_senders();
        test_migrations();
        test_atomic();
        test_file_mode();
        test_corrupt();
        test_lost();
        return 0;
}
