/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "manager-store.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "request-fingerprint.h"
#include "seal.h"
#include "strv.h"
#include "wire-send.h"

#define ACK_TIMEOUT_USEC (15 * USEC_PER_SEC)
/* The upstream broker asks for 1 s between sends once its bucket is empty. */
#define RATE_LIMIT_MIN_USEC USEC_PER_SEC
/* Rows one turn of the drain looks at before it lets the event loop run. */
#define DRAIN_TURN_MAX 256

static void inflight_remove(MeshLink *l, size_t i) {
        free(l->inflight[i].client_message_id);
        free(l->inflight[i].row_id);
        l->inflight[i] = l->inflight[--l->n_inflight];
        l->inflight[l->n_inflight] = (InflightSend) { 0 };
}

static TransitionQueue *transitions(MeshLink *l) {
        return l->mesh->manager->transitions;
}

/* Through the transition queue, so a status change the store cannot take now is kept and
 * applied later; its signal goes out when it lands (link_transition_landed). */
static int transition(MeshLink *l, TransitionKind kind, const char *row_id, const char *client_message_id,
                      const char *detail, usec_t at) {
        return transition_queue_apply(transitions(l), &(Transition) {
                                                              .kind = kind,
                                                              .mesh_id = l->mesh->entry->mesh_id,
                                                              .row_id = row_id,
                                                              .client_message_id = client_message_id,
                                                              .detail = detail,
                                                              .at = at,
                                                      });
}

void link_transition_landed(const Transition *t, void *userdata) {
        Manager *m = userdata;
        const char *slug = manager_mesh_slug(m, t->mesh_id);

        assert(t);

        if (t->kind == TRANSITION_RETRY)
                return;
        if (t->kind == TRANSITION_DEAD)
                log_warning("Mesh %s: gave up on %s: %s", slug, t->client_message_id, t->detail);
        (void) manager_emit(m, &(Event) {
                                       .kind = t->kind == TRANSITION_DONE ? EVENT_DELIVERED : EVENT_SEND_FAILED,
                                       .mesh_id = t->mesh_id,
                                       .client_message_id = t->client_message_id,
                                       .detail = t->detail,
                               });
}

static void retry_later(MeshLink *l, const InflightSend *s, const char *why, usec_t at_least) {
        usec_t delay = outbox_retry_backoff(s->attempts);
        int r;

        if (delay < at_least)
                delay = at_least;
        r = transition(l, TRANSITION_RETRY, s->row_id, s->client_message_id, why, now_usec(CLOCK_REALTIME) + delay);
        if (r < 0 && r != -ESTALE && r != -EAGAIN)
                log_warning_errno(r, "Mesh %s: cannot put %s back to pending: %m", l->mesh->entry->slug,
                                  s->client_message_id);
}

void link_requeue_inflight(MeshLink *l, const char *why) {
        assert(l);

        while (l->n_inflight > 0) {
                /* Sent, but the answer was lost with the connection: try again soon. The broker's
                 * dedupe (or the receivers') keeps the retry from arriving twice. */
                retry_later(l, &l->inflight[0], why, 0);
                inflight_remove(l, 0);
        }
        manager_schedule_drain(l->mesh->manager);
}

void link_requeue_inflight_conn(MeshLink *l, unsigned conn, const char *why) {
        assert(l);

        for (size_t i = 0; i < l->n_inflight;)
                if (l->inflight[i].conn == conn) {
                        retry_later(l, &l->inflight[i], why, 0);
                        inflight_remove(l, i);
                } else
                        i++;
        manager_schedule_drain(l->mesh->manager);
}

/* DECISIONS §9: classified by code; the upstream broker's free-text errors by their prefix. */
static bool error_is_transient(const char *code, const char *text, usec_t *ret_at_least) {
        *ret_at_least = 0;
        if (code) {
                if (streq(code, "rate_limited")) {
                        *ret_at_least = RATE_LIMIT_MIN_USEC;
                        return true;
                }
                return streq(code, "internal");
        }
        if (strneq(text, "rate_limit:", strlen("rate_limit:"))) {
                *ret_at_least = RATE_LIMIT_MIN_USEC;
                return true;
        }
        return strneq(text, "no connected peer", strlen("no connected peer"));
}

void link_handle_ack(MeshLink *l, unsigned conn, json_object *ack) {
        const char *id = json_string_member(ack, "id"), *message_id = json_string_member(ack, "messageId"),
                   *error = json_string_member(ack, "error"), *code = json_string_member(ack, "error_code");
        json_object *retry_after;
        size_t i;

        assert(l);

        if (!id || !l->mesh->manager->outbox)
                return;
        /* Ids are unique per sender only (DECISIONS §17): the connection tells the senders apart. */
        for (i = 0; i < l->n_inflight; i++)
                if (l->inflight[i].conn == conn && streq(l->inflight[i].client_message_id, id))
                        break;
        if (i == l->n_inflight) {
                log_debug("Mesh %s: ack for %s, which is not in flight", l->mesh->entry->slug, id);
                return;
        }

        if (!error && !code && message_id && message_id[0])
                (void) transition(l, TRANSITION_DONE, l->inflight[i].row_id, id, message_id, now_usec(CLOCK_REALTIME));
        else {
                char reason[512];
                usec_t at_least;

                snprintf(reason, sizeof reason, "%s%s%s", code ? code : "", code && error ? ": " : "",
                         error ? error : code ? "" : "broker did not queue the message");
                if (error_is_transient(code, strempty(error), &at_least)) {
                        if (json_object_object_get_ex(ack, "retry_after_ms", &retry_after) &&
                            json_object_is_type(retry_after, json_type_int) &&
                            (usec_t) json_object_get_int64(retry_after) * USEC_PER_MSEC > at_least)
                                at_least = (usec_t) json_object_get_int64(retry_after) * USEC_PER_MSEC;
                        retry_later(l, &l->inflight[i], reason, at_least);
                } else
                        /* Permanent (topic_not_found, forbidden, payload too large…): dead at once. */
                        (void) transition(l, TRANSITION_DEAD, l->inflight[i].row_id, id, reason, 0);
        }
        inflight_remove(l, i);
        mesh_link_drain(l);
}

static int on_ack_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        MeshLink *l = userdata;
        usec_t now = now_usec(CLOCK_MONOTONIC);

        for (size_t i = 0; i < l->n_inflight;)
                if (l->inflight[i].deadline <= now) {
                        log_info("Mesh %s: no ack for %s within 15 s; it will be sent again", l->mesh->entry->slug,
                                 l->inflight[i].client_message_id);
                        retry_later(l, &l->inflight[i], "ack_timeout", 0);
                        inflight_remove(l, i);
                } else
                        i++;
        mesh_link_drain(l);
        return 0;
}

static void arm_ack_timer(MeshLink *l) {
        usec_t earliest = UINT64_MAX;

        for (size_t i = 0; i < l->n_inflight; i++)
                if (l->inflight[i].deadline < earliest)
                        earliest = l->inflight[i].deadline;
        if (earliest == UINT64_MAX) {
                (void) sd_event_source_set_enabled(l->ack_timer, SD_EVENT_OFF);
                return;
        }
        if (!l->ack_timer) {
                if (sd_event_add_time(l->mesh->manager->event, &l->ack_timer, CLOCK_MONOTONIC, earliest,
                                      USEC_PER_SEC, on_ack_timeout, l) < 0)
                        return;
        } else
                (void) sd_event_source_set_time(l->ack_timer, earliest);
        (void) sd_event_source_set_enabled(l->ack_timer, SD_EVENT_ONESHOT);
}

/* The send frame of row in *ret. -ENOMEM: try again later. Any other error: the row can never
 * go out (it cannot be sealed, its frame is over the limit), with why in reason. */
static int send_frame_new(const OutboxRow *row, const uint8_t sender_sk[static 64], json_object **ret, char *reason,
                          size_t reason_size) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();
        _cleanup_free_ char *nonce = NULL, *ciphertext = NULL;
        char fingerprint[REQUEST_FINGERPRINT_HEX_MAX];
        size_t size;
        int r;

        if (!f)
                return -ENOMEM;
        /* The DM is sealed with the key of the connection it goes out on: the broker names that
         * key as senderPubkey. */
        if (streq(row->kind, "dm"))
                r = seal_direct(row->body, row->body_size, row->target_spec, sender_sk, &nonce, &ciphertext);
        else
                r = seal_plain(row->body, row->body_size, &nonce, &ciphertext);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                snprintf(reason, reason_size, "cannot_seal: %s to \"%.64s\": %s", streq(row->kind, "dm") ? "sealing" : "encoding",
                         row->target_spec, STRERROR(r));
                return r;
        }
        request_fingerprint_hex(row->request_fingerprint, fingerprint);
        if (json_object_object_add(f, "type", json_object_new_string("send")) < 0 ||
            json_object_object_add(f, "id", json_object_new_string(row->client_message_id)) < 0 ||
            json_object_object_add(f, "targetSpec", json_object_new_string(row->target_spec)) < 0 ||
            json_object_object_add(f, "priority", json_object_new_string(row->priority)) < 0 ||
            json_object_object_add(f, "nonce", json_object_new_string(nonce)) < 0 ||
            json_object_object_add(f, "ciphertext", json_object_new_string(ciphertext)) < 0 ||
            json_object_object_add(f, "client_message_id", json_object_new_string(row->client_message_id)) < 0 ||
            json_object_object_add(f, "request_fingerprint", json_object_new_string(fingerprint)) < 0 ||
            (row->reply_to && json_object_object_add(f, "replyToId", json_object_new_string(row->reply_to)) < 0))
                return -ENOMEM;
        /* Accept refuses these (DECISIONS §15), but a row stored otherwise must not ride the ack
         * timeout forever: the worker would drop its frame unsent. */
        if (!json_object_to_json_string_length(f, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &size))
                return -ENOMEM;
        if (size > WIRE_FRAME_MAX) {
                snprintf(reason, reason_size, "payload_too_large: the frame is %zu bytes, the broker takes at most %d",
                         size, WIRE_FRAME_MAX);
                return -EMSGSIZE;
        }
        *ret = TAKE_PTR(f);
        return 0;
}

/* Hands rows to the worker. Returns how many rows were given up (dead), or -EAGAIN when the
 * store failed (the drain stops until it works again). */
static int drain_rows(MeshLink *l, unsigned conn, const uint8_t sender_sk[static 64], const OutboxRow *rows, size_t n,
                      usec_t now) {
        Outbox *o = l->mesh->manager->outbox;
        int given_up = 0, r;

        for (size_t i = 0; i < n && l->n_inflight < LINK_INFLIGHT_MAX; i++) {
                _cleanup_(json_object_putp) json_object *frame = NULL;
                char reason[512];
                InflightSend *s;

                /* Its last outcome is not on disk yet: it waits for the store, like the queue. */
                if (transition_queue_has(transitions(l), rows[i].id))
                        continue;
                r = send_frame_new(&rows[i], sender_sk, &frame, reason, sizeof reason);
                if (r == -ENOMEM)
                        return -EAGAIN;
                if (r < 0) {
                        /* It can never go out: dead now, so it neither waits for max_age nor blocks the rows behind it. */
                        r = transition(l, TRANSITION_DEAD, rows[i].id, rows[i].client_message_id, reason, 0);
                        if (r == -EAGAIN)
                                return r;
                        given_up++;
                        continue;
                }
                r = outbox_mark_inflight(o, rows[i].id, now);
                if (r == -ESTALE || r == -ENOENT)
                        continue;
                if (r < 0) {
                        transition_queue_store_failed(transitions(l));
                        return -EAGAIN;
                }
                s = &l->inflight[l->n_inflight];
                *s = (InflightSend) {
                        .conn = conn,
                        .client_message_id = strdup(rows[i].client_message_id),
                        .row_id = strdup(rows[i].id),
                        .attempts = rows[i].attempts + 1,
                        .deadline = now_usec(CLOCK_MONOTONIC) + ACK_TIMEOUT_USEC,
                };
                l->n_inflight++;
                if (!s->client_message_id || !s->row_id || link_send_frame_conn(l, conn, frame) < 0) {
                        if (s->client_message_id && s->row_id)
                                retry_later(l, s, "could not hand the frame to the worker", 0);
                        else
                                (void) outbox_mark_retry(o, rows[i].id, "out of memory", now);
                        inflight_remove(l, l->n_inflight - 1);
                }
        }
        return given_up;
}

static int on_drain_more(sd_event_source *s, void *userdata) {
        mesh_link_drain(userdata);
        return 0;
}

/* The due rows one identity sends (sender_pubkey "" the member), on its connection. false when the
 * drain must stop for this turn (the store failed, or it examined enough). */
static bool drain_identity(MeshLink *l, unsigned conn, const char *sender_pubkey, const uint8_t sender_sk[static 64],
                           usec_t now, size_t *examined) {
        Outbox *o = l->mesh->manager->outbox;
        int r;

        /* Rows that can never go out are given up as they come; listing again goes past them, so no
         * number of them starves the rows behind. A long run of them continues on the next turn of
         * the event loop, so bus calls are served meanwhile. */
        while (l->n_inflight < LINK_INFLIGHT_MAX) {
                unsigned want = LINK_INFLIGHT_MAX - (unsigned) l->n_inflight;
                OutboxRow *rows = NULL;
                size_t n = 0;

                if (*examined >= DRAIN_TURN_MAX) {
                        if (!l->drain_more &&
                            sd_event_add_defer(l->mesh->manager->event, &l->drain_more, on_drain_more, l) < 0)
                                log_warning("Mesh %s: cannot continue the drain; it goes on with the next send or ack",
                                            l->mesh->entry->slug);
                        (void) sd_event_source_set_enabled(l->drain_more, SD_EVENT_ONESHOT);
                        return false;
                }
                r = outbox_list_due(o, l->mesh->entry->mesh_id, sender_pubkey, now, want, &rows, &n);
                if (r < 0) {
                        log_warning_errno(r, "Mesh %s: cannot read due sends: %m", l->mesh->entry->slug);
                        transition_queue_store_failed(transitions(l));
                        return false;
                }
                r = drain_rows(l, conn, sender_sk, rows, n, now);
                outbox_rows_free(rows, n);
                *examined += n;
                if (r == -EAGAIN)
                        return false;
                if (r == 0 || n < want)
                        break;
        }
        return true;
}

/* The session connection that sends as pubkey_hex, when it is connected; 0 when none is. */
static unsigned connected_conn(MeshLink *l, const char *pubkey_hex) {
        for (unsigned conn = 1; conn <= SESSIONS_MAX; conn++) {
                Session *s = l->conns[conn];

                if (s && streq(s->public_key_hex, pubkey_hex))
                        return streq(s->state, "connected") ? conn : 0;
        }
        return 0;
}

void mesh_link_drain(MeshLink *l) {
        usec_t now = now_usec(CLOCK_REALTIME);
        _cleanup_strv_free_ char **senders = NULL;
        size_t examined = 0;
        bool go_on = true;
        int r;

        assert(l);

        if (!l->mesh->manager->outbox)
                return;
        /* Each identity's rows go out on its own connection, sealed with its own key; the rows of
         * a session that is not connected wait for it without holding up anyone else's. Only the
         * identities with rows due are looked at, so many idle sessions cost nothing here. */
        r = outbox_list_due_senders(l->mesh->manager->outbox, l->mesh->entry->mesh_id, now, OUTBOX_LIST_MAX, &senders);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: cannot read due sends: %m", l->mesh->entry->slug);
                transition_queue_store_failed(transitions(l));
                return;
        }
        for (char **sender = senders; go_on && *sender; sender++) {
                unsigned conn;

                if (!**sender) {
                        if (l->state == LINK_CONNECTED)
                                go_on = drain_identity(l, 0, "", l->session.secret_key, now, &examined);
                        continue;
                }
                conn = connected_conn(l, *sender);
                if (conn > 0)
                        go_on = drain_identity(l, conn, *sender, l->conns[conn]->secret_key, now, &examined);
        }
        arm_ack_timer(l);
        manager_schedule_drain(l->mesh->manager);
}
