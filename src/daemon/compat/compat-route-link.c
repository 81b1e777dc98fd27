/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "compat-routes-internal.h"
#include "json-util.h"
#include "log.h"
#include "manager-link.h"
#include "mesh-link.h"
#include "polkit.h"

/* GET /v1/peers and POST /v1/profile (reference §2.3, §7.1): ListPeers' and SetProfile's own
 * paths (manager-link.h, mesh_link_query_peers) behind their polkit actions, answered in
 * upstream's shapes. */

/* The broker's groups as it sent them; [] when it sent none. */
static json_object *groups_json(const Peer *p) {
        json_object *g = p->groups_json ? json_tokener_parse(p->groups_json) : NULL;

        if (g && json_object_is_type(g, json_type_array))
                return g;
        json_object_put(g);
        return json_object_new_array();
}

/* A PeerSummary, camelCase as upstream clients read it; absent optional keys are left out. The
 * broker's channel and peerRole go along: upstream's MCP shim leaves out peers with channel
 * "claudemesh-daemon" or peerRole "control-plane" (apps/cli/src/mcp/server.ts:560-566), so the
 * user's own daemon is not counted. mesh is the slug, as upstream adds it (ipc/server.ts:354). */
static int peer_fill(json_object *o, const Peer *p, const char *mesh) {
        _cleanup_(json_object_putp) json_object *groups = groups_json(p);
        int r;

        if (!groups)
                return -ENOMEM;
        r = compat_json_add_string(o, "pubkey", p->pubkey);
        if (r < 0)
                return r;
        if (p->member_pubkey) {
                r = compat_json_add_string(o, "memberPubkey", p->member_pubkey);
                if (r < 0)
                        return r;
        }
        r = compat_json_add_string(o, "displayName", p->display_name);
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "status", strempty(p->status));
        if (r < 0)
                return r;
        r = json_object_object_add(o, "summary", p->summary ? json_object_new_string(p->summary) : NULL);
        if (r < 0)
                return r;
        r = json_object_object_add(o, "groups", TAKE_PTR(groups));
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "sessionId", strempty(p->session_id));
        if (r < 0)
                return r;
        r = compat_json_add_string(o, "connectedAt", strempty(p->connected_at));
        if (r < 0)
                return r;
        if (p->hostname) {
                r = compat_json_add_string(o, "hostname", p->hostname);
                if (r < 0)
                        return r;
        }
        if (p->channel) {
                r = compat_json_add_string(o, "channel", p->channel);
                if (r < 0)
                        return r;
        }
        if (p->peer_role) {
                r = compat_json_add_string(o, "peerRole", p->peer_role);
                if (r < 0)
                        return r;
        }
        return compat_json_add_string(o, "mesh", mesh);
}

static json_object *peer_json(const Peer *p, const char *mesh) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o || peer_fill(o, p, mesh) < 0)
                return NULL;
        return TAKE_PTR(o);
}

static int reply_peer_list(CompatRequest *req, const MeshLink *l, const char *mesh) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *list = json_object_new_array();
        size_t n;
        const Peer *peers = mesh_link_peers(l, &n);

        if (!body || !list)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *p = peer_json(&peers[i], mesh);
                if (!p || json_object_array_add(list, p) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(body, "peers", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, body);
}

/* Upstream's daemon answers 502 when its broker connection is down; ListPeers then gives the
 * last list known, which an upstream client cannot tell from a live one. */
static int reply_unreachable(CompatRequest *req, const MeshLink *l) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        _cleanup_free_ char *detail = NULL;
        const char *why = mesh_link_detail(l);

        if (asprintf(&detail, "%s%s%s", link_state_to_string(mesh_link_state(l)), why[0] ? ": " : "", why) < 0)
                return -ENOMEM;
        if (!body || compat_json_add_string(body, "error", "broker_unreachable") < 0 || compat_json_add_string(body, "detail", detail) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_BAD_GATEWAY, body);
}

static void peers_done(const MeshLink *l, int result, const CmError *error, void *userdata) {
        CompatRequest *req = userdata;
        int r;

        if (cm_error_is_set(error))
                r = compat_reply_cm_error(req, error);
        else if (result == -ENOTCONN)
                r = reply_unreachable(req, l);
        else
                r = reply_peer_list(req, l, mesh_link_mesh(l)->entry->slug);
        if (r == -ENOMEM)
                (void) compat_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
}

/* Without ?mesh=, upstream lists the peers of every attached mesh, each row with its mesh, and
 * leaves out a mesh whose broker does not answer (apps/cli/src/daemon/ipc/server.ts:340-364). */
typedef struct PeersGather {
        CompatRequest *req;
        json_object *peers;
        unsigned pending;
        bool oom;                /* answered as such, never as a shorter list */
} PeersGather;

static void gather_finish(PeersGather *g) {
        _cleanup_(json_object_putp) json_object *body = NULL;

        if (--g->pending > 0)
                return;
        body = g->oom ? NULL : json_object_new_object();
        if (!body || json_object_object_add(body, "peers", TAKE_PTR(g->peers)) < 0 ||
            compat_reply(g->req, MHD_HTTP_OK, body) == -ENOMEM)
                (void) compat_reply_error(g->req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
        json_object_put(g->peers);
        free(g);
}

static void gather_done(const MeshLink *l, int result, const CmError *error, void *userdata) {
        PeersGather *g = userdata;
        const char *slug = mesh_link_mesh(l)->entry->slug;
        size_t n;
        const Peer *peers = mesh_link_peers(l, &n);

        if (cm_error_is_set(error) || result < 0)
                log_debug("/v1/peers: mesh %s left out: %s", slug,
                          cm_error_is_set(error) ? cm_error_message(error) : STRERROR(result));
        else
                for (size_t i = 0; i < n && !g->oom; i++) {
                        json_object *p = peer_json(&peers[i], slug);
                        if (!p || json_object_array_add(g->peers, p) < 0) {
                                json_object_put(p);
                                g->oom = true;
                        }
                }
        gather_finish(g);
}

static int list_every_mesh(CompatRequest *req, Manager *m) {
        PeersGather *g = calloc(1, sizeof(PeersGather));
        unsigned attached = 0;

        if (!g)
                return -ENOMEM;
        *g = (PeersGather) { .req = req, .peers = json_object_new_array(), .pending = 1 };
        if (!g->peers) {
                free(g);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];

                if (!mesh->link)
                        continue;
                attached++;
                g->pending++;
                /* done may run at once; pending starts at 1 so the gather outlives this loop. */
                if (mesh_link_query_peers(mesh->link, gather_done, g) < 0)
                        g->pending--;
        }
        if (attached == 0) {
                json_object_put(g->peers);
                free(g);
                return compat_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "broker not initialised");
        }
        gather_finish(g);
        return 0;
}

static int list_peers(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        const char *name = compat_request_query(req, "mesh");
        Session *session;
        Mesh *mesh;
        int r;

        /* upstream's meshFromCtx(): a session's request lists its own mesh */
        if (isempty(name)) {
                session = compat_request_session(request, req);
                name = session ? session->mesh_slug : NULL;
        }
        if (!name)
                return list_every_mesh(req, m);
        r = manager_lookup_link(m, name, &mesh, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        return mesh_link_query_peers(mesh->link, peers_done, req);
}

int compat_route_peers(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_READ, list_peers, userdata,
                                NULL);
}

/* A JSON member as profile_update_set() checks it; strings points into it. -EILSEQ when a string
 * in it holds a NUL. */
static int json_profile_value(json_object *o, ProfileValue *v, const char ***strings) {
        size_t n;
        int r;

        *v = (ProfileValue) { .type = PROFILE_VALUE_OTHER };
        if (json_object_is_type(o, json_type_string)) {
                *v = (ProfileValue) { .type = PROFILE_VALUE_STRING };
                return json_string_get_strict(o, &v->string);
        }
        if (json_object_is_type(o, json_type_boolean))
                *v = (ProfileValue) { .type = PROFILE_VALUE_BOOLEAN, .boolean = json_object_get_boolean(o) };
        else if (json_object_is_type(o, json_type_array)) {
                n = json_object_array_length(o);
                *strings = calloc(n + 1, sizeof(char *));
                if (!*strings)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        r = json_string_get_strict(json_object_array_get_idx(o, i), &(*strings)[i]);
                        if (r == -EINVAL)
                                return 0; /* not a list of strings: profile_update_set() says so */
                        if (r < 0)
                                return r;
                }
                *v = (ProfileValue) { .type = PROFILE_VALUE_STRINGS, .strings = *strings };
        }
        return 0;
}

static int set_profile(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *body = NULL, *applied = json_object_new_array(), *reply = NULL;
        _cleanup_(profile_update_done) ProfileUpdate update = { 0 };
        const char *mesh = "";
        int r;

        if (!applied)
                return -ENOMEM;
        r = compat_read_json_object(req, &body);
        if (r != 0)
                return r < 0 ? r : 0;
        /* Every field is checked before anything is sent, as SetProfile does. */
        json_object_object_foreach(body, key, value) {
                _cleanup_free_ const char **strings = NULL;
                ProfileValue v;

                if (streq(key, "mesh")) {
                        r = compat_json_string(req, body, "mesh", "'mesh' must be a string", &mesh);
                        if (r != 0)
                                return r < 0 ? r : 0;
                        if (!mesh)
                                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "'mesh' must be a string");
                        continue;
                }
                r = json_profile_value(value, &v, &strings);
                if (r == -EILSEQ)
                        return compat_reply_nul(req, key);
                if (r < 0)
                        return r;
                r = profile_update_set(&update, key, &v, &error);
                if (r < 0)
                        return compat_reply_failure(req, r, &error);
                if (json_object_array_add(applied, json_object_new_string(key)) < 0)
                        return -ENOMEM;
        }
        r = manager_set_profile(m, mesh, &update, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);

        reply = json_object_new_object();
        if (!reply ||
            json_object_object_add(reply, "ok", json_object_new_boolean(true)) < 0 ||
            json_object_object_add(reply, "applied", TAKE_PTR(applied)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_profile(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata),
                                POLKIT_ACTION_SET_PROFILE, set_profile, NULL, NULL);
}
