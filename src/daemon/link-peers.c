/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-methods.h"
#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"

static void peer_done(Peer *p) {
        free(p->pubkey);
        free(p->member_pubkey);
        free(p->display_name);
        free(p->status);
        free(p->summary);
        free(p->session_id);
        free(p->connected_at);
        free(p->hostname);
        free(p->groups_json);
        *p = (Peer) { 0 };
}

#define PEERS_QUERY_TIMEOUT_USEC (5 * USEC_PER_SEC)

int link_peers_reply(MeshLink *l, sd_bus_message *call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "a{sv}");
        for (size_t i = 0; r >= 0 && i < l->n_peers; i++) {
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = bus_append_peer(reply, l, &l->peers[i]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        return r;
}

static void answer_peer_waiters(MeshLink *l) {
        for (size_t i = 0; i < l->n_peer_waiters; i++) {
                (void) link_peers_reply(l, l->peer_waiters[i]);
                sd_bus_message_unref(l->peer_waiters[i]);
        }
        l->peer_waiters = mfree(l->peer_waiters);
        l->n_peer_waiters = 0;
        l->peers_timer = sd_event_source_disable_unref(l->peers_timer);
}

static int on_peers_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        answer_peer_waiters(userdata);
        return 0;
}

int link_peers_query(MeshLink *l, sd_bus_message *call) {
        _cleanup_(json_object_putp) json_object *f = NULL;
        sd_bus_message **grown;
        int r;

        if (l->state != LINK_CONNECTED)
                return link_peers_reply(l, call);
        grown = realloc(l->peer_waiters, (l->n_peer_waiters + 1) * sizeof(sd_bus_message *));
        if (!grown)
                return -ENOMEM;
        l->peer_waiters = grown;
        l->peer_waiters[l->n_peer_waiters++] = sd_bus_message_ref(call);
        if (l->peers_timer)
                return 1; /* a query is out already: this call rides along */

        r = sd_event_add_time_relative(l->mesh->manager->event, &l->peers_timer, CLOCK_MONOTONIC,
                                       PEERS_QUERY_TIMEOUT_USEC, 0, on_peers_timeout, l);
        if (r < 0)
                return r;
        f = json_object_new_object();
        if (!f)
                return -ENOMEM;
        json_object_object_add(f, "type", json_object_new_string("list_peers"));
        json_object_object_add(f, "_reqId", json_object_new_string("daemon-peers"));
        if (mesh_link_send_frame(l, f) < 0)
                answer_peer_waiters(l);
        return 1;
}

void link_peers_clear(MeshLink *l) {
        for (size_t i = 0; i < l->n_peers; i++)
                peer_done(&l->peers[i]);
        l->peers = mfree(l->peers);
        l->n_peers = 0;
}

static char *dup_member(json_object *o, const char *key) {
        const char *v = json_string_member(o, key);
        return v ? strdup(v) : NULL;
}

/* A peer from a peers_list entry or a peer_joined event ({name, pubkey, groups}). */
static int peer_from_json(json_object *o, Peer *ret) {
        json_object *groups;
        Peer p = {
                .pubkey = dup_member(o, "pubkey"),
                .member_pubkey = dup_member(o, "memberPubkey"),
                .display_name = dup_member(o, "displayName"),
                .status = dup_member(o, "status"),
                .summary = dup_member(o, "summary"),
                .session_id = dup_member(o, "sessionId"),
                .connected_at = dup_member(o, "connectedAt"),
                .hostname = dup_member(o, "hostname"),
        };

        if (!p.display_name)
                p.display_name = dup_member(o, "name");
        if (json_object_object_get_ex(o, "groups", &groups))
                p.groups_json = strdup(json_object_to_json_string_ext(groups, JSON_C_TO_STRING_PLAIN));
        if (!p.pubkey || strlen(p.pubkey) != 64 || !p.display_name) {
                peer_done(&p);
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

void link_peers_replace(MeshLink *l, json_object *peers) {
        size_t n;
        Peer *list;

        if (!peers || !json_object_is_type(peers, json_type_array))
                return;
        n = json_object_array_length(peers);
        list = calloc(n + 1, sizeof(Peer));
        if (!list)
                return;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (peer_from_json(json_object_array_get_idx(peers, i), &list[k]) >= 0)
                        k++;
        link_peers_clear(l);
        l->peers = list;
        l->n_peers = k;
        answer_peer_waiters(l);
}

static void emit_peer(MeshLink *l, const char *signal, const Peer *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        sd_bus *bus = l->mesh->manager->bus;
        int r;

        if (!bus)
                return;
        r = sd_bus_message_new_signal(bus, &s, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, signal);
        if (r >= 0)
                r = sd_bus_message_append(s, "s", l->mesh->entry->slug);
        if (r >= 0)
                r = sd_bus_message_open_container(s, 'a', "{sv}");
        if (r >= 0)
                r = bus_append_peer(s, l, p);
        if (r >= 0)
                r = sd_bus_message_close_container(s);
        if (r >= 0)
                r = sd_bus_send(bus, s, NULL);
        if (r < 0)
                log_debug_errno(r, "Cannot emit %s: %s", signal, STRERROR(r));
}

void link_peer_event(MeshLink *l, const char *event, json_object *data) {
        Peer p;
        size_t i;

        if (!data || peer_from_json(data, &p) < 0)
                return;
        for (i = 0; i < l->n_peers; i++)
                if (streq(l->peers[i].pubkey, p.pubkey))
                        break;

        if (streq(event, "peer_joined") || streq(event, "peer_returned") || streq(event, "peer_visible")) {
                if (i < l->n_peers) {
                        peer_done(&l->peers[i]);
                        l->peers[i] = p;
                } else {
                        Peer *grown = realloc(l->peers, (l->n_peers + 1) * sizeof(Peer));
                        if (!grown) {
                                peer_done(&p);
                                return;
                        }
                        l->peers = grown;
                        l->peers[l->n_peers++] = p;
                }
                emit_peer(l, "PeerJoined", &l->peers[i < l->n_peers ? i : l->n_peers - 1]);
        } else if (streq(event, "peer_left") || streq(event, "peer_hidden")) {
                emit_peer(l, "PeerLeft", &p);
                if (i < l->n_peers) {
                        peer_done(&l->peers[i]);
                        l->peers[i] = l->peers[--l->n_peers];
                }
                peer_done(&p);
        } else
                peer_done(&p);
}

const char *link_peer_name(const MeshLink *l, const char *pubkey) {
        for (size_t i = 0; i < l->n_peers; i++)
                if (streq(l->peers[i].pubkey, pubkey) ||
                    (l->peers[i].member_pubkey && streq(l->peers[i].member_pubkey, pubkey)))
                        return l->peers[i].display_name;
        return NULL;
}

const Peer *mesh_link_peers(const MeshLink *l, size_t *ret_n) {
        *ret_n = l->n_peers;
        return l->peers;
}

int mesh_link_peer_names(const MeshLink *l, PeerName **ret, size_t *ret_n) {
        PeerName *names = calloc(l->n_peers + 1, sizeof(PeerName));
        size_t n = 0;

        if (!names)
                return -ENOMEM;
        /* Ourselves are not a destination by name: the broker refuses a DM to one's own key. */
        for (size_t i = 0; i < l->n_peers; i++)
                if (!streq(l->peers[i].pubkey, l->session.public_key_hex))
                        names[n++] = (PeerName) { l->peers[i].pubkey, l->peers[i].display_name };
        *ret = names;
        *ret_n = n;
        return 0;
}
