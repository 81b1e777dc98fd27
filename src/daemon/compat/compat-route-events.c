/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "compat-routes-internal.h"
#include "mesh-link.h"
#include "json-util.h"
#include "log.h"

/* GET /v1/events (reference §2.5): the read action, as for the bus's read methods and the
 * consumers of its signals, then an event stream; and the events the daemon sends on it, from the
 * core's events (event.h) as the bus's signals are. Without a stream open they cost nothing. */

/* A request with a session's token gets a stream of that session (upstream 1.34.10's demux): the
 * messages addressed to it, and the peer and broker events of its mesh. Without one, everything.
 * The stream ends with the session. */
static int start_stream(CompatRequest *req, Manager *m, void *request) {
        return compat_reply_stream(req, compat_request_session(request, req));
}

int compat_route_events(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_READ, start_stream, userdata,
                                NULL);
}

/* Who gets an event: unscoped streams all; a session's stream the messages its session received
 * (event.session) and the rest of its mesh. */
typedef struct EventScope {
        const Event *event;
} EventScope;

static bool stream_wants(const void *scope, void *userdata) {
        const Session *session = scope;
        const Event *e = ((EventScope *) userdata)->event;

        if (!session)
                return true;
        if (e->kind == EVENT_MESSAGE_RECEIVED)
                return e->session == session;
        return e->mesh && e->mesh->entry->mesh_id && streq(e->mesh->entry->mesh_id, session->mesh_id);
}

/* An event's data with its ts and mesh, or NULL when no stream listens (or out of memory). */
static json_object *event_new(CompatServer *s, Mesh *mesh) {
        _cleanup_(json_object_putp) json_object *data = NULL;

        if (compat_http_n_streams(s->http) == 0)
                return NULL;
        data = json_object_new_object();
        if (!data ||
            json_object_object_add(data, "ts", compat_json_time(now_usec(CLOCK_REALTIME))) < 0 ||
            compat_json_add_string(data, "mesh", mesh->entry->slug) < 0)
                return NULL;
        return TAKE_PTR(data);
}

static void event_send(CompatServer *s, const Event *e, const char *kind, json_object *data, int r) {
        if (r < 0) {
                log_debug_errno(r, "Mesh %s: cannot build the /v1 %s event: %m", e->mesh->entry->slug, kind);
                return;
        }
        compat_http_broadcast(s->http, kind, data, stream_wants, &(EventScope) { e });
}

/* The push's priority as the receive path kept it in the row's meta; upstream's default "next"
 * otherwise. */
static const char *message_priority(const InboxMessage *im) {
        _cleanup_(json_object_putp) json_object *meta = NULL;
        const char *p;

        if (!im->meta_json || json_parse_strict(im->meta_json, strlen(im->meta_json), &meta) < 0 ||
            json_member_string_strict(meta, "priority", &p) <= 0)
                return "next";
        if (streq(p, "now"))
                return "now";
        if (streq(p, "low"))
                return "low";
        return "next";
}

/* The sender's member key, from the mesh's peer list (the broker's senderMemberPubkey is not
 * kept with the row): null when the sender is not listed, as upstream when the broker sent none. */
static const char *sender_member_pubkey(Mesh *mesh, const InboxMessage *im) {
        const Peer *peers;
        size_t n;

        if (!mesh->link)
                return NULL;
        peers = mesh_link_peers(mesh->link, &n);
        for (size_t i = 0; i < n; i++)
                if (peers[i].pubkey && streq(peers[i].pubkey, im->sender_pubkey))
                        return peers[i].member_pubkey;
        return NULL;
}

static int message_data(json_object *data, Mesh *mesh, const InboxMessage *im) {
        int r;

        r = compat_json_add_string(data, "id", im->id);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "client_message_id", im->client_message_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "broker_message_id", im->broker_message_id);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "sender_pubkey", im->sender_pubkey);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "sender_member_pubkey", sender_member_pubkey(mesh, im));
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "sender_name", im->sender_name);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "topic", im->topic);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "reply_to_id", im->reply_to_id);
        if (r < 0)
                return r;
        /* Upstream (inbound.ts:130-144) sends "priority" always and "subtype" only when the push
         * had one; the row does not keep a message's subtype, so it is left out as absent. */
        r = compat_json_add_string(data, "priority", message_priority(im));
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "body", im->body);
        if (r < 0)
                return r;
        r = json_object_object_add(data, "created_at", compat_json_time(im->received_at));
        if (r < 0)
                return r;
        /* Which identity received it, as on the /v1/inbox rows: upstream's MCP servers keep the
         * events of their own session by these (events.ts). Upstream leaves them out when unknown. */
        if (!im->recipient_pubkey)
                return 0;
        r = compat_json_add_string(data, "recipient_pubkey", im->recipient_pubkey);
        if (r < 0)
                return r;
        return compat_json_add_string(data, "recipient_kind", im->recipient_kind ?: "member");
}

static void event_message(CompatServer *s, const Event *e) {
        Mesh *mesh = e->mesh;
        const InboxMessage *im = e->message;
        _cleanup_(json_object_putp) json_object *data = event_new(s, mesh);

        if (data)
                event_send(s, e, "message", data, message_data(data, mesh, im));
}

/* Only the fields the broker gave, spread as upstream spreads its eventData. */
static int add_if_set(json_object *o, const char *key, const char *value) {
        return value ? json_object_object_add(o, key, json_object_new_string(value)) : 0;
}

static int peer_data(json_object *data, bool joined, const Peer *p) {
        _cleanup_(json_object_putp) json_object *groups = NULL;
        int r;

        r = json_object_object_add(data, "event", json_object_new_string(joined ? "peer_joined" : "peer_left"));
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "pubkey", p->pubkey);
        if (r < 0)
                return r;
        /* "name" is the broker's key in eventData, "displayName" the one of its peer lists. */
        r = compat_json_add_string(data, "name", p->display_name);
        if (r < 0)
                return r;
        r = compat_json_add_string(data, "displayName", p->display_name);
        if (r < 0)
                return r;
        r = add_if_set(data, "memberPubkey", p->member_pubkey);
        if (r < 0)
                return r;
        r = add_if_set(data, "status", p->status);
        if (r < 0)
                return r;
        r = add_if_set(data, "summary", p->summary);
        if (r < 0)
                return r;
        r = add_if_set(data, "sessionId", p->session_id);
        if (r < 0)
                return r;
        r = add_if_set(data, "connectedAt", p->connected_at);
        if (r < 0)
                return r;
        r = add_if_set(data, "hostname", p->hostname);
        if (r < 0)
                return r;
        if (p->groups_json && json_parse_strict(p->groups_json, strlen(p->groups_json), &groups) >= 0)
                return json_object_object_add(data, "groups", TAKE_PTR(groups));
        return 0;
}

static void event_peer(CompatServer *s, const Event *e) {
        Mesh *mesh = e->mesh;
        bool joined = e->kind == EVENT_PEER_JOINED;
        const Peer *p = e->peer;
        _cleanup_(json_object_putp) json_object *data = event_new(s, mesh);

        if (data)
                event_send(s, e, joined ? "peer_join" : "peer_leave", data, peer_data(data, joined, p));
}

const char *compat_upstream_status(MeshState s) {
        static const char *const table[_MESH_STATE_MAX] = {
                [MESH_INVALID] = "closed",
                [MESH_DETACHED] = "closed",
                [MESH_OFFLINE] = "closed",
                [MESH_CONNECTING] = "connecting",
                [MESH_CONNECTED] = "open",
                [MESH_BACKOFF] = "reconnecting",
                [MESH_FAILED] = "closed",
        };
        return s >= 0 && s < _MESH_STATE_MAX ? table[s] : NULL;
}

static void event_mesh_state(CompatServer *s, const Event *e) {
        Mesh *mesh = e->mesh;
        MeshState before = e->before;
        _cleanup_(json_object_putp) json_object *data = NULL;
        const char *was = compat_upstream_status(before), *status = compat_upstream_status(mesh->state);

        /* State also changes with LastError alone, and several states are "closed" upstream. */
        if (!was || !status || streq(was, status))
                return;
        data = event_new(s, mesh);
        if (!data)
                return;
        event_send(s, e, "broker_status", data, compat_json_add_string(data, "status", status));
}

int compat_on_event(Manager *m, const Event *e, void *userdata) {
        CompatServer *s = userdata;

        assert(m);

        switch (e->kind) {
        case EVENT_MESSAGE_RECEIVED:
                event_message(s, e);
                break;
        case EVENT_PEER_JOINED:
        case EVENT_PEER_LEFT:
                event_peer(s, e);
                break;
        case EVENT_MESH_STATE:
                event_mesh_state(s, e);
                break;
        case EVENT_SESSION_REMOVED:
                compat_http_end_streams(s->http, e->session);
                compat_sessions_on_event(s, e);
                break;
        default: /* upstream's stream has no such event */
                break;
        }
        return 0;
}
