/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "link-receive.h"
#include "link-state.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "seal.h"
#include "ulid.h"

/* Announces a stored row to every subscriber (MessageReceived, the /v1 event, the desktop), then
 * records that it did. Emit, then mark: killed between the two, the row is announced again at
 * the next start (at-least-once for that window, which spans only the hand-over of the signal
 * to the bus socket and one UPDATE); marking first would lose it for good instead. A broadcast
 * signal has no receipt, so nothing narrower is possible: the daemon cannot know who heard it.
 * An emission that fails leaves the row unmarked for the next start or reload. */
static int announce_message(Mesh *mesh, Session *session, const InboxMessage *im, bool encrypted) {
        Manager *m = mesh->manager;
        int r;

        r = manager_emit(m, &(Event) { .kind = EVENT_MESSAGE_RECEIVED, .mesh = mesh, .message = im, .direct = encrypted,
                                       .session = session });
        if (r < 0)
                return r;
        r = inbox_mark_announced(m->inbox, im->id, now_usec(CLOCK_REALTIME));
        if (r < 0)
                log_warning_errno(r, "Mesh %s: message %s was announced but cannot be marked so; it will be "
                                  "announced again at the next start: %m", mesh->entry->slug, im->id);
        return r;
}

/* meta.encrypted as receive_push() stored it: a sealed message was a direct one. */
static bool meta_encrypted(const char *meta_json) {
        _cleanup_(json_object_putp) json_object *meta = meta_json ? json_tokener_parse(meta_json) : NULL;
        json_object *v;

        return meta && json_object_object_get_ex(meta, "encrypted", &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}

void manager_announce_stored(Manager *m) {
        assert(m);

        if (!m->inbox || !m->bus)
                return;
        for (size_t k = 0; k < m->n_meshes; k++) {
                Mesh *mesh = m->meshes[k];
                unsigned announced = 0;
                bool more = true;

                /* A batch at a time; a failed emission stops this mesh until the next start. */
                while (more) {
                        InboxMessage *rows = NULL;
                        size_t n = 0;
                        int r;

                        /* The member's rows; a session's wait until it registers (session_announce_stored). */
                        r = inbox_list_unannounced(m->inbox, mesh->entry->mesh_id, NULL, INBOX_LIST_MAX, &rows, &n);
                        if (r < 0) {
                                log_warning_errno(r, "Mesh %s: cannot read the messages not yet announced: %m",
                                                  mesh->entry->slug);
                                break;
                        }
                        more = n == INBOX_LIST_MAX;
                        for (size_t i = 0; i < n; i++) {
                                r = announce_message(mesh, NULL, &rows[i], meta_encrypted(rows[i].meta_json));
                                if (r < 0) {
                                        more = false;
                                        break;
                                }
                                announced++;
                        }
                        inbox_messages_free(rows, n);
                }
                if (announced > 0)
                        log_notice("Mesh %s: announced %u message(s) stored before the last stop but not announced "
                                   "then", mesh->entry->slug, announced);
        }
}

void session_announce_stored(Session *s) {
        Manager *m;
        Mesh *mesh;
        bool more = true;

        assert(s);

        m = s->manager;
        if (!m->inbox || !m->bus || manager_lookup_mesh(m, s->mesh_id, &mesh, NULL) < 0)
                return;
        while (more) {
                InboxMessage *rows = NULL;
                size_t n = 0;
                int r;

                r = inbox_list_unannounced(m->inbox, s->mesh_id, s->public_key_hex, INBOX_LIST_MAX, &rows, &n);
                if (r < 0) {
                        log_warning_errno(r, "Session %s: cannot read the messages not yet announced: %m", s->id);
                        break;
                }
                more = n == INBOX_LIST_MAX;
                for (size_t i = 0; i < n; i++)
                        if (announce_message(mesh, s, &rows[i], meta_encrypted(rows[i].meta_json)) < 0) {
                                more = false;
                                break;
                        }
                inbox_messages_free(rows, n);
        }
}

/* Test knob: the honest way to hit the window between the inbox commit and the announcement is
 * to die there, as a kill -9 or a power cut could. */
static void crash_after_commit_if_asked(void) {
        const char *v = getenv("CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT");

        if (v && streq(v, "1"))
                (void) raise(SIGKILL);
}

/* DECISIONS §12: acknowledged only once the row is committed, duplicates included, so the
 * broker stops redelivering. */
static void send_client_ack(MeshLink *l, unsigned conn, const char *client_message_id, const char *broker_message_id) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();

        if (!l->client_ack || !f)
                return;
        json_object_object_add(f, "type", json_object_new_string("client_ack"));
        if (client_message_id)
                json_object_object_add(f, "clientMessageId", json_object_new_string(client_message_id));
        json_object_object_add(f, "brokerMessageId", json_object_new_string(broker_message_id));
        /* On the connection it came on: the broker takes an ack only for the acker's own keys. */
        (void) link_send_frame_conn(l, conn, f);
}

/* A push on connection conn (0: the member's, else the session's on it). Who received it: the
 * key that opened it (a session's own key: that session; the member's or an archived one: the
 * member, on whichever connection it landed), or for a post in the clear the connection's. */
static void receive_push(MeshLink *l, unsigned conn, json_object *push) {
        Manager *m = l->mesh->manager;
        const char *message_id = json_string_member(push, "messageId"), *sender = json_string_member(push, "senderPubkey"),
                   *cmid = json_string_member(push, "client_message_id"), *subtype = json_string_member(push, "subtype");
        _cleanup_free_ char *body = NULL, *meta = NULL, *short_name = NULL;
        _cleanup_(json_object_putp) json_object *meta_obj = NULL;
        const char *name;
        char row_id[ULID_MAX];
        usec_t received_at;
        OpenedWith how;
        size_t size;
        Session *session = conn > 0 ? l->conns[conn] : NULL, *recipient = NULL;
        bool is_new = false;
        int r;

        if (!message_id || !sender || (conn > 0 && !session))
                return;
        if (subtype && streq(subtype, "system")) {
                const char *event = json_string_member(push, "event");

                /* Every connection hears them; the member's keeps the peer list. */
                if (event && conn == 0)
                        link_peer_event(l, event, json_object_object_get(push, "eventData"));
                return;
        }
        if (!m->inbox)
                return; /* not acknowledged: the broker keeps it until the inbox works again */

        r = open_push(sender, strempty(json_string_member(push, "nonce")),
                      strempty(json_string_member(push, "ciphertext")),
                      session ? session->secret_key : l->session.secret_key,
                      l->mesh->entry->secret_key, m->archive, &body, &size, &how);
        if (r < 0) {
                /* Never stored as garbage and never acknowledged: the failure stays visible. */
                l->unopenable++;
                log_warning("Mesh %s: could not open message %s from %.16s (%u so far); not stored",
                            l->mesh->entry->slug, message_id, sender, l->unopenable);
                return;
        }

        if (session && (how == OPENED_SESSION_KEY || how == OPENED_PLAINTEXT))
                recipient = session;

        name = json_string_member(push, "senderName");
        if (!name)
                name = link_peer_name(l, sender);
        if (!name) {
                short_name = strndup(sender, 8);
                name = short_name;
        }
        meta_obj = json_object_new_object();
        if (meta_obj) {
                const char *created = json_string_member(push, "createdAt"), *priority = json_string_member(push, "priority");
                if (created)
                        json_object_object_add(meta_obj, "created_at", json_object_new_string(created));
                if (priority)
                        json_object_object_add(meta_obj, "priority", json_object_new_string(priority));
                json_object_object_add(meta_obj, "encrypted", json_object_new_boolean(how != OPENED_PLAINTEXT));
                /* Kept as the broker sent it: the MCP server passes it on as meta.subtype. */
                if (subtype)
                        json_object_object_add(meta_obj, "subtype", json_object_new_string(subtype));
                meta = strdup(json_object_to_json_string_ext(meta_obj, JSON_C_TO_STRING_PLAIN));
        }

        /* Chosen here rather than by the inbox, so that the signal and the /v1 event carry them. */
        received_at = now_usec(CLOCK_REALTIME);
        r = ulid_new(received_at, row_id);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: cannot mint an inbox id for %s: %m", l->mesh->entry->slug, message_id);
                return;
        }
        InboxMessage im = {
                .id = row_id,
                .client_message_id = (char *) (cmid && cmid[0] ? cmid : message_id),
                .broker_message_id = (char *) message_id,
                .mesh_id = l->mesh->entry->mesh_id,
                .topic = (char *) json_string_member(push, "topic"),
                .sender_pubkey = (char *) sender,
                .sender_name = (char *) name,
                .body = body,
                .meta_json = meta,
                .reply_to_id = (char *) json_string_member(push, "replyToId"),
                .received_at = received_at,
                .recipient_pubkey = recipient ? recipient->public_key_hex : l->mesh->entry->pubkey_hex,
                .recipient_kind = (char *) (recipient ? "session" : "member"),
        };
        r = inbox_insert(m->inbox, &im, &is_new);
        if (r < 0) {
                log_warning_errno(r, "Mesh %s: cannot store message %s: %m", l->mesh->entry->slug, message_id);
                return;
        }
        if (is_new) {
                crash_after_commit_if_asked();
                if (recipient) {
                        recipient->unread++;
                        (void) manager_emit(m, &(Event) { .kind = EVENT_SESSION_CHANGED, .session = recipient });
                } else {
                        l->mesh->unread++;
                        (void) manager_emit(m, &(Event) { .kind = EVENT_UNREAD_CHANGED, .mesh = l->mesh });
                }
                (void) announce_message(l->mesh, recipient, &im, how != OPENED_PLAINTEXT);
        }
        send_client_ack(l, conn, cmid, message_id);
}

void link_receive_frame(MeshLink *l, unsigned conn, json_object *frame) {
        const char *type = worker_channel_type(frame);

        assert(l);

        if (link_state_receive(l, frame))
                return;
        if (streq(type, "ack"))
                link_handle_ack(l, conn, frame);
        else if (streq(type, "push"))
                receive_push(l, conn, frame);
        else if (conn > 0)
                log_debug("Mesh %s: a \"%s\" frame on a session connection; ignored", l->mesh->entry->slug, type);
        else if (streq(type, "peers_list"))
                link_peers_replace(l, json_object_object_get(frame, "peers"));
        else if (streq(type, "error"))
                log_notice("Mesh %s: the broker reports %s: %s", l->mesh->entry->slug,
                           strna(json_string_member(frame, "code")), strna(json_string_member(frame, "message")));
}
