/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "request-fingerprint.h"
#include "seal.h"

#define ACK_TIMEOUT_USEC (15 * USEC_PER_SEC)
/* The upstream broker asks for 1 s between sends once its bucket is empty. */
#define RATE_LIMIT_MIN_USEC USEC_PER_SEC

static void inflight_remove(MeshLink *l, size_t i) {
        free(l->inflight[i].client_message_id);
        free(l->inflight[i].row_id);
        l->inflight[i] = l->inflight[--l->n_inflight];
        l->inflight[l->n_inflight] = (InflightSend) { 0 };
}

static void emit_outcome(MeshLink *l, const char *signal, const char *client_message_id, const char *detail) {
        sd_bus *bus = l->mesh->manager->bus;
        if (bus)
                (void) sd_bus_emit_signal(bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, signal, "sss", l->mesh->entry->slug,
                                          client_message_id, detail);
}

static void retry_later(MeshLink *l, const InflightSend *s, const char *why, usec_t at_least) {
        usec_t delay = outbox_retry_backoff(s->attempts);
        int r;

        if (delay < at_least)
                delay = at_least;
        r = outbox_mark_retry(l->mesh->manager->outbox, s->row_id, why, now_usec(CLOCK_REALTIME) + delay);
        if (r < 0 && r != -ESTALE)
                log_warning_errno(r, "Mesh %s: cannot put %s back to pending: %s", l->mesh->entry->slug,
                                  s->client_message_id, STRERROR(r));
}

void link_requeue_inflight(MeshLink *l, const char *why) {
        while (l->n_inflight > 0) {
                /* Sent, but the answer was lost with the connection: try again soon. The broker's
                 * dedupe (or the receivers') keeps the retry from arriving twice. */
                retry_later(l, &l->inflight[0], why, 0);
                inflight_remove(l, 0);
        }
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

void link_handle_ack(MeshLink *l, json_object *ack) {
        Outbox *o = l->mesh->manager->outbox;
        const char *id = json_string_member(ack, "id"), *message_id = json_string_member(ack, "messageId"),
                   *error = json_string_member(ack, "error"), *code = json_string_member(ack, "error_code");
        json_object *retry_after;
        size_t i;
        int r;

        if (!id || !o)
                return;
        for (i = 0; i < l->n_inflight; i++)
                if (streq(l->inflight[i].client_message_id, id))
                        break;
        if (i == l->n_inflight) {
                log_debug("Mesh %s: ack for %s, which is not in flight", l->mesh->entry->slug, id);
                return;
        }

        if (!error && !code && message_id && message_id[0]) {
                r = outbox_mark_done(o, l->inflight[i].row_id, message_id, now_usec(CLOCK_REALTIME));
                if (r >= 0)
                        emit_outcome(l, "Delivered", id, message_id);
                else if (r != -ESTALE)
                        log_warning_errno(r, "Mesh %s: cannot mark %s delivered: %s", l->mesh->entry->slug, id,
                                          STRERROR(r));
        } else {
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
                } else {
                        r = outbox_mark_dead(o, l->inflight[i].row_id, reason);
                        if (r >= 0) {
                                log_warning("Mesh %s: gave up on %s: %s", l->mesh->entry->slug, id, reason);
                                emit_outcome(l, "SendFailed", id, reason);
                        }
                }
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

static json_object *send_frame_new(MeshLink *l, const OutboxRow *row) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();
        _cleanup_free_ char *nonce = NULL, *ciphertext = NULL;
        char fingerprint[REQUEST_FINGERPRINT_HEX_MAX];
        int r;

        if (!f)
                return NULL;
        /* The DM is sealed with the session key: the broker names the session key as senderPubkey. */
        if (streq(row->kind, "dm"))
                r = seal_direct(row->body, row->body_size, row->target_spec, l->session.secret_key, &nonce, &ciphertext);
        else
                r = seal_plain(row->body, row->body_size, &nonce, &ciphertext);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: cannot seal %s: %s", l->mesh->entry->slug, row->client_message_id,
                                  STRERROR(r));
                return NULL;
        }
        request_fingerprint_hex(row->request_fingerprint, fingerprint);
        json_object_object_add(f, "type", json_object_new_string("send"));
        json_object_object_add(f, "id", json_object_new_string(row->client_message_id));
        json_object_object_add(f, "targetSpec", json_object_new_string(row->target_spec));
        json_object_object_add(f, "priority", json_object_new_string(row->priority));
        json_object_object_add(f, "nonce", json_object_new_string(nonce));
        json_object_object_add(f, "ciphertext", json_object_new_string(ciphertext));
        json_object_object_add(f, "client_message_id", json_object_new_string(row->client_message_id));
        json_object_object_add(f, "request_fingerprint", json_object_new_string(fingerprint));
        if (row->reply_to)
                json_object_object_add(f, "replyToId", json_object_new_string(row->reply_to));
        return TAKE_PTR(f);
}

void mesh_link_drain(MeshLink *l) {
        Outbox *o = l->mesh->manager->outbox;
        OutboxRow *rows = NULL;
        size_t n = 0;
        usec_t now = now_usec(CLOCK_REALTIME);
        int r;

        if (!o || l->state != LINK_CONNECTED || l->n_inflight >= LINK_INFLIGHT_MAX)
                return;
        r = outbox_list_due(o, l->mesh->entry->mesh_id, now, LINK_INFLIGHT_MAX - (unsigned) l->n_inflight, &rows, &n);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: cannot read due sends: %s", l->mesh->entry->slug, STRERROR(r));
                return;
        }
        for (size_t i = 0; i < n && l->n_inflight < LINK_INFLIGHT_MAX; i++) {
                _cleanup_(json_object_putp) json_object *frame = send_frame_new(l, &rows[i]);
                InflightSend *s;

                if (!frame)
                        continue;
                r = outbox_mark_inflight(o, rows[i].id, now);
                if (r < 0)
                        continue;
                s = &l->inflight[l->n_inflight];
                *s = (InflightSend) {
                        .client_message_id = strdup(rows[i].client_message_id),
                        .row_id = strdup(rows[i].id),
                        .attempts = rows[i].attempts + 1,
                        .deadline = now_usec(CLOCK_MONOTONIC) + ACK_TIMEOUT_USEC,
                };
                l->n_inflight++;
                if (!s->client_message_id || !s->row_id || mesh_link_send_frame(l, frame) < 0) {
                        retry_later(l, s, "could not hand the frame to the worker", 0);
                        inflight_remove(l, l->n_inflight - 1);
                }
        }
        outbox_rows_free(rows, n);
        arm_ack_timer(l);
        manager_schedule_drain(l->mesh->manager);
}
