/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "strv.h"
#include "time-util.h"

static void peer_done(Peer *p) {
        free(p->pubkey);
        free(p->member_pubkey);
        free(p->display_name);
        free(p->status);
        free(p->summary);
        free(p->session_id);
        free(p->connected_at);
        free(p->hostname);
        free(p->channel);
        free(p->peer_role);
        free(p->groups_json);
        strv_free(p->groups);
        *p = (Peer) { 0 };
}

#define PEERS_QUERY_TIMEOUT_USEC (5 * USEC_PER_SEC)

/* Hands the waiters over before calling them, so a callback may ask again. */
static void answer_peer_waiters(MeshLink *l, int result, const CmError *error) {
        _cleanup_free_ PeersWaiter *waiters = TAKE_PTR(l->peer_waiters);
        size_t n = l->n_peer_waiters;

        l->n_peer_waiters = 0;
        l->peers_timer = sd_event_source_disable_unref(l->peers_timer);
        for (size_t i = 0; i < n; i++)
                waiters[i].done(l, result, error, waiters[i].userdata);
}

static int on_peers_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        answer_peer_waiters(userdata, -ETIMEDOUT, NULL);
        return 0;
}

int mesh_link_query_peers(MeshLink *l, MeshLinkPeersDone done, void *userdata) {
        _cleanup_(json_object_putp) json_object *f = NULL;
        PeersWaiter *grown;
        int r;

        assert(l);

        if (l->state != LINK_CONNECTED) {
                done(l, -ENOTCONN, NULL, userdata);
                return 0;
        }
        grown = realloc(l->peer_waiters, (l->n_peer_waiters + 1) * sizeof(PeersWaiter));
        if (!grown)
                return -ENOMEM;
        l->peer_waiters = grown;
        if (l->peers_timer) {
                /* a query is out already: this one rides along */
                l->peer_waiters[l->n_peer_waiters++] = (PeersWaiter) { done, userdata };
                return 0;
        }

        f = json_object_new_object();
        if (!f ||
            json_object_object_add(f, "type", json_object_new_string("list_peers")) < 0 ||
            json_object_object_add(f, "_reqId", json_object_new_string("daemon-peers")) < 0)
                return -ENOMEM;
        r = sd_event_add_time_relative(l->mesh->manager->event, &l->peers_timer, CLOCK_MONOTONIC,
                                       PEERS_QUERY_TIMEOUT_USEC, 0, on_peers_timeout, l);
        if (r < 0)
                return r;
        l->peer_waiters[l->n_peer_waiters++] = (PeersWaiter) { done, userdata };
        if (mesh_link_send_frame(l, f) < 0)
                answer_peer_waiters(l, -ENOTCONN, NULL);
        return 0;
}

void link_peers_cancel(MeshLink *l) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;

        (void) cm_error_setf(&error, CM_ERR_NOT_CONNECTED, "The mesh was detached while the peer list was asked for.");
        answer_peer_waiters(l, -ECONNABORTED, &error);
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

/* The broker's groups ([{"name", "role"}, …] or names) as "name" or "name:role", upstream's
 * notation; entries without a string name are left out. */
static char **groups_from_json(json_object *groups) {
        size_t n = groups && json_object_is_type(groups, json_type_array) ? json_object_array_length(groups) : 0;
        _cleanup_strv_free_ char **l = calloc(n + 1, sizeof(char *));
        size_t k = 0;

        if (!l)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(groups, i);
                const char *name = json_object_is_type(g, json_type_string) ? json_object_get_string(g)
                                                                            : json_string_member(g, "name");
                const char *role = json_object_is_type(g, json_type_object) ? json_string_member(g, "role") : NULL;

                if (!name)
                        continue;
                if (role ? asprintf(&l[k], "%s:%s", name, role) < 0 : !(l[k] = strdup(name))) {
                        l[k] = NULL;
                        return NULL;
                }
                k++;
        }
        return TAKE_PTR(l);
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
                .channel = dup_member(o, "channel"),
                .peer_role = dup_member(o, "peerRole"),
        };

        if (!p.display_name)
                p.display_name = dup_member(o, "name");
        if (json_object_object_get_ex(o, "groups", &groups))
                p.groups_json = strdup(json_object_to_json_string_ext(groups, JSON_C_TO_STRING_PLAIN));
        else
                groups = NULL;
        p.groups = groups_from_json(groups);
        if (p.connected_at && parse_iso8601(p.connected_at, &p.connected_at_usec) < 0) {
                log_debug("Peer %.16s: connectedAt \"%.40s\" is not ISO 8601, shown as 0.", strna(p.pubkey),
                          p.connected_at);
                p.connected_at_usec = 0;
        }
        if (!p.pubkey || strlen(p.pubkey) != 64 || !p.display_name || !p.groups) {
                peer_done(&p);
                return -EINVAL;
        }
        *ret = p;
        return 0;
}

void link_peers_replace(MeshLink *l, json_object *peers) {
        size_t n;
        Peer *list;

        assert(l);

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
        l->peers_updated_at = now_usec(CLOCK_REALTIME);
        answer_peer_waiters(l, 0, NULL);
}

static size_t count_presences(const MeshLink *l, const char *pubkey, size_t *ret_last) {
        size_t n = 0;

        for (size_t i = 0; i < l->n_peers; i++)
                if (streq(l->peers[i].pubkey, pubkey)) {
                        n++;
                        *ret_last = i;
                }
        return n;
}

static int replace_field(char **field, const char *value, bool *changed) {
        char *copy = NULL;

        if (*field && value ? streq(*field, value) : *field == value)
                return 0;
        if (value) {
                copy = strdup(value);
                if (!copy)
                        return -ENOMEM;
        }
        free(*field);
        *field = copy;
        *changed = true;
        return 0;
}

/* peer_updated (our broker, to clients that list it in their hello's capabilities): a key's new
 * status and summary. Every row of the key takes them: the event names the key, not the
 * connection. A field the event leaves out stays as it was. */
static void peer_updated(MeshLink *l, const Peer *p, json_object *data) {
        bool changed = false, has_summary = json_object_object_get_ex(data, "summary", NULL);
        size_t last = SIZE_MAX;

        for (size_t i = 0; i < l->n_peers; i++) {
                if (!streq(l->peers[i].pubkey, p->pubkey))
                        continue;
                if ((p->status && replace_field(&l->peers[i].status, p->status, &changed) < 0) ||
                    (has_summary && replace_field(&l->peers[i].summary, p->summary, &changed) < 0)) {
                        log_debug_errno(-ENOMEM, "Peer %.16s: cannot keep its new status: %m", p->pubkey);
                        return;
                }
                last = i;
        }
        if (last == SIZE_MAX || !changed)
                return;
        l->peers_updated_at = now_usec(CLOCK_REALTIME);
        (void) manager_emit(l->mesh->manager,
                            &(Event) { .kind = EVENT_PEER_CHANGED, .mesh = l->mesh, .link = l, .peer = &l->peers[last] });
}

/* The list holds one row per presence (connection), as the broker's peers_list does: one key may
 * be online several times (a member's sessions without keys of their own share its key). The
 * events name only the key, so a join adds a row and a leave drops one row of that key; the peer
 * joins with its first presence and leaves with its last. */
void link_peer_event(MeshLink *l, const char *event, json_object *data) {
        Peer p;
        size_t last = 0, n;

        assert(l);

        if (!data || peer_from_json(data, &p) < 0)
                return;
        n = count_presences(l, p.pubkey, &last);

        if (streq(event, "peer_joined") || streq(event, "peer_returned") || streq(event, "peer_visible")) {
                Peer *grown = realloc(l->peers, (l->n_peers + 1) * sizeof(Peer));

                if (!grown) {
                        peer_done(&p);
                        return;
                }
                l->peers = grown;
                l->peers[l->n_peers++] = p;
                l->peers_updated_at = now_usec(CLOCK_REALTIME);
                if (n == 0) {
                        (void) manager_emit(l->mesh->manager, &(Event) { .kind = EVENT_PEER_JOINED, .mesh = l->mesh,
                                                                         .link = l, .peer = &l->peers[l->n_peers - 1] });
                }
        } else if (streq(event, "peer_left") || streq(event, "peer_hidden")) {
                if (n > 0) {
                        peer_done(&l->peers[last]);
                        memmove(&l->peers[last], &l->peers[last + 1], (l->n_peers - last - 1) * sizeof(Peer));
                        l->n_peers--;
                }
                l->peers_updated_at = now_usec(CLOCK_REALTIME);
                if (n <= 1) {
                        (void) manager_emit(l->mesh->manager, &(Event) { .kind = EVENT_PEER_LEFT, .mesh = l->mesh,
                                                                         .link = l, .peer = &p });
                }
                peer_done(&p);
        } else if (streq(event, "peer_updated")) {
                peer_updated(l, &p, data);
                peer_done(&p);
        } else
                peer_done(&p);
}

const char *link_peer_name(const MeshLink *l, const char *pubkey) {
        assert(l);

        for (size_t i = 0; i < l->n_peers; i++)
                if (streq(l->peers[i].pubkey, pubkey) ||
                    (l->peers[i].member_pubkey && streq(l->peers[i].member_pubkey, pubkey)))
                        return l->peers[i].display_name;
        return NULL;
}

usec_t mesh_link_peers_updated_at(const MeshLink *l) {
        assert(l);

        return l->peers_updated_at;
}

bool mesh_link_peer_is_self(const MeshLink *l, const Peer *p) {
        assert(l);
        assert(p);
        return streq(p->pubkey, l->session.public_key_hex);
}

Mesh *mesh_link_mesh(const MeshLink *l) {
        assert(l);
        return l->mesh;
}

const Peer *mesh_link_peers(const MeshLink *l, size_t *ret_n) {
        assert(l);

        *ret_n = l->n_peers;
        return l->peers;
}

int mesh_link_peer_names(const MeshLink *l, PeerName **ret, size_t *ret_n) {
        PeerName *names = calloc(l->n_peers + 1, sizeof(PeerName));
        size_t n = 0;

        assert(l);

        if (!names)
                return -ENOMEM;
        /* Ourselves are not a destination by name: the broker refuses a DM to one's own key. A
         * key online twice is one destination, not two peers of the same name. */
        for (size_t i = 0; i < l->n_peers; i++) {
                bool seen = false;

                for (size_t j = 0; !seen && j < n; j++)
                        seen = streq(names[j].pubkey, l->peers[i].pubkey);
                if (!seen && !streq(l->peers[i].pubkey, l->session.public_key_hex))
                        names[n++] = (PeerName) { l->peers[i].pubkey, l->peers[i].display_name,
                                                  l->peers[i].member_pubkey, l->peers[i].peer_role };
        }
        *ret = names;
        *ret_n = n;
        return 0;
}
