/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* GET and POST /v1/state (upstream apps/cli/src/daemon/ipc/server.ts at 1.37.0) onto the broker's
 * get_state, list_state and set_state (link-state.h), answered in upstream's shapes. Where upstream
 * turns a broker that does not answer into "not found" or an empty list, a key asked of no mesh
 * that answered is a 502 here: not knowing is not the same as absent. */
#include <string.h>

#include "compat-routes-internal.h"
#include "json-util.h"
#include "link-state.h"
#include "log.h"
#include "manager-link.h"
#include "mesh-link.h"
#include "polkit.h"

#define KEY_INVALID "'key' must be 1 to 256 bytes without control characters"

/* upstream's meshFromCtx(): the mesh named, else the one of the request's session, else none. */
static const char *mesh_from_context(CompatServer *s, CompatRequest *req, const char *named) {
        Session *session;

        if (named && named[0])
                return named;
        session = compat_request_session(s, req);
        return session ? session->mesh_slug : NULL;
}

static bool any_link(Manager *m) {
        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->link)
                        return true;
        return false;
}

/* One GET /v1/state: the meshes asked, each answer kept until all are in. */
typedef struct StateGather {
        CompatRequest *req;
        char *key;                 /* NULL: list every entry */
        size_t n;
        unsigned pending;
        bool oom;                  /* answered as such, never as a shorter answer */
        struct {
                char *slug;
                int result;
                json_object *answer;
        } *meshes;
} StateGather;

typedef struct StateAnswer {
        StateGather *gather;
        size_t index;
} StateAnswer;

static void gather_free(StateGather *g) {
        for (size_t i = 0; i < g->n; i++) {
                free(g->meshes[i].slug);
                json_object_put(g->meshes[i].answer);
        }
        free(g->meshes);
        free(g->key);
        free(g);
}

/* A broker entry with its mesh, as upstream spreads it: {...row, mesh}. */
static json_object *entry_with_mesh(json_object *entry, const char *slug, const char *key) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (key && compat_json_add_string(o, "key", key) < 0)
                return NULL;
        json_object_object_foreach(entry, k, v) {
                if (streq(k, "type") || streq(k, "_reqId") || (key && streq(k, "key")))
                        continue;
                if (json_object_object_add(o, k, json_object_get(v)) < 0)
                        return NULL;
        }
        if (compat_json_add_string(o, "mesh", slug) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* The string member key of o, or NULL. */
static const char *member_text(json_object *o, const char *key) {
        json_object *v;

        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

/* A mesh that did not answer, as /v1/peers says it: "mesh: why". */
static const char *failure_text(int result, json_object *answer) {
        if (result == -EPROTO)
                return strna(member_text(answer, "message"));
        if (result == -ETIMEDOUT)
                return "the broker did not answer in time";
        if (result == -ECANCELED)
                return "the daemon is stopping";
        if (result == -EBUSY)
                return "too many state queries at once, try again";
        return "not connected to the broker";
}

static int reply_unreachable(StateGather *g) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        _cleanup_free_ char *detail = NULL;

        for (size_t i = 0; i < g->n; i++) {
                char *more = NULL;

                if (g->meshes[i].result == 0)
                        continue;
                if (asprintf(&more, "%s%s%s: %s", strempty(detail), detail ? "; " : "", g->meshes[i].slug,
                             failure_text(g->meshes[i].result, g->meshes[i].answer)) < 0)
                        return -ENOMEM;
                free(detail);
                detail = more;
        }
        if (!body || compat_json_add_string(body, "error", "broker_unreachable") < 0 ||
            compat_json_add_string(body, "detail", detail) < 0)
                return -ENOMEM;
        return compat_reply(g->req, MHD_HTTP_BAD_GATEWAY, body);
}

/* The first mesh, in the config's order, where the key is set (a set key has updatedAt; the
 * broker answers an unset one with value null and updatedAt ""). */
static int reply_key(StateGather *g) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();
        bool failed = false;

        if (!body)
                return -ENOMEM;
        for (size_t i = 0; i < g->n; i++) {
                json_object *a = g->meshes[i].answer;
                const char *at = member_text(a, "updatedAt");

                if (g->meshes[i].result != 0) {
                        failed = true;
                        continue;
                }
                if (isempty(at))
                        continue;
                if (json_object_object_add(body, "state", entry_with_mesh(a, g->meshes[i].slug, g->key)) < 0 ||
                    !json_object_object_get(body, "state"))
                        return -ENOMEM;
                return compat_reply(g->req, MHD_HTTP_OK, body);
        }
        if (failed)
                return reply_unreachable(g);
        if (compat_json_add_string(body, "error", "state_not_found") < 0 ||
            compat_json_add_string(body, "key", g->key) < 0)
                return -ENOMEM;
        return compat_reply(g->req, MHD_HTTP_NOT_FOUND, body);
}

/* Every mesh's entries; a mesh that did not answer is left out, as upstream leaves it out (and as
 * /v1/peers does), unless none answered. */
static int reply_list(StateGather *g) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *list = json_object_new_array();
        bool answered = false;

        if (!body || !list)
                return -ENOMEM;
        for (size_t i = 0; i < g->n; i++) {
                json_object *entries;
                size_t n;

                if (g->meshes[i].result != 0) {
                        log_debug("/v1/state: mesh %s left out: %s", g->meshes[i].slug,
                                  failure_text(g->meshes[i].result, g->meshes[i].answer));
                        continue;
                }
                answered = true;
                entries = json_object_object_get(g->meshes[i].answer, "entries");
                n = json_object_array_length(entries);
                for (size_t k = 0; k < n; k++) {
                        json_object *e = entry_with_mesh(json_object_array_get_idx(entries, k), g->meshes[i].slug,
                                                         NULL);

                        if (!e || json_object_array_add(list, e) < 0) {
                                json_object_put(e);
                                return -ENOMEM;
                        }
                }
        }
        if (!answered && g->n > 0)
                return reply_unreachable(g);
        if (json_object_object_add(body, "entries", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return compat_reply(g->req, MHD_HTTP_OK, body);
}

static void gather_finish(StateGather *g) {
        int r;

        if (--g->pending > 0)
                return;
        r = g->oom ? -ENOMEM : g->key ? reply_key(g) : reply_list(g);
        if (r == -ENOMEM)
                (void) compat_reply_error(g->req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal");
        gather_free(g);
}

static void state_done(int result, json_object *answer, void *userdata) {
        StateAnswer *a = userdata;
        StateGather *g = a->gather;

        g->meshes[a->index].result = result;
        g->meshes[a->index].answer = json_object_get(answer);
        free(a);
        gather_finish(g);
}

static int ask_mesh(StateGather *g, Mesh *mesh) {
        StateAnswer *a = malloc(sizeof(StateAnswer));
        size_t i = g->n;
        int r;

        if (!a)
                return -ENOMEM;
        g->meshes[i].slug = strdup(mesh->entry->slug);
        if (!g->meshes[i].slug) {
                free(a);
                return -ENOMEM;
        }
        g->meshes[i].result = -ENOTCONN;
        g->n++;
        *a = (StateAnswer) { .gather = g, .index = i };
        g->pending++;
        /* done may run at once; pending starts at 1 so the gather outlives the asking. */
        r = g->key ? link_state_get(mesh->link, g->key, state_done, a) : link_state_list(mesh->link, state_done, a);
        if (r < 0) {
                g->meshes[i].result = r;
                g->pending--;
                free(a);
        }
        return 0;
}

typedef struct StateGetRequest {
        CompatServer *server;
        char *mesh;                /* the mesh asked, NULL for every attached one */
        char *key;
} StateGetRequest;

static void state_get_request_free(void *p) {
        StateGetRequest *q = p;

        if (!q)
                return;
        free(q->mesh);
        free(q->key);
        free(q);
}

static int get_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        StateGetRequest *q = request;
        StateGather *g;
        Mesh *named = NULL;
        int r;

        if (!any_link(m))
                return compat_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "broker not initialised");
        if (q->mesh) {
                r = manager_lookup_link(m, q->mesh, &named, &error);
                if (r < 0)
                        return compat_reply_failure(req, r, &error);
        }
        g = calloc(1, sizeof(StateGather));
        if (!g)
                return -ENOMEM;
        *g = (StateGather) { .req = req, .pending = 1, .key = q->key ? strdup(q->key) : NULL,
                             .meshes = calloc(m->n_meshes + 1, sizeof(*g->meshes)) };
        if (!g->meshes || (q->key && !g->key)) {
                gather_free(g);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];

                if (!mesh->link || (named && mesh != named))
                        continue;
                r = ask_mesh(g, mesh);
                if (r < 0) {
                        /* the answers still out hold g: the last to come in answers */
                        g->oom = true;
                        break;
                }
        }
        gather_finish(g);
        return 0;
}

int compat_route_state_get(CompatRequest *req, void *userdata) {
        CompatServer *s = userdata;
        StateGetRequest *q;
        const char *mesh, *key = compat_request_query(req, "key");

        assert(req);

        q = calloc(1, sizeof(StateGetRequest));
        if (!q)
                return -ENOMEM;
        q->server = s;
        mesh = mesh_from_context(s, req, compat_request_query(req, "mesh"));
        /* upstream: if (key) — an empty ?key= lists */
        if ((mesh && !(q->mesh = strdup(mesh))) || (!isempty(key) && !(q->key = strdup(key)))) {
                state_get_request_free(q);
                return -ENOMEM;
        }
        if (q->key && !link_state_key_ok(q->key)) {
                state_get_request_free(q);
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, KEY_INVALID);
        }
        return compat_authorize(req, s->manager, POLKIT_ACTION_READ, get_authorized, q, state_get_request_free);
}

/* ---- POST /v1/state ---- */

typedef struct StateSetRequest {
        CompatServer *server;
        json_object *body;
} StateSetRequest;

static void state_set_request_free(void *p) {
        StateSetRequest *q = p;

        if (!q)
                return;
        json_object_put(q->body);
        free(q);
}

static int reply_mesh_required(CompatRequest *req, Manager *m) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object(), *attached = json_object_new_array();

        if (!body || !attached)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->link &&
                    json_object_array_add(attached, json_object_new_string(m->meshes[i]->entry->slug)) < 0)
                        return -ENOMEM;
        if (compat_json_add_string(body, "error", "mesh_required") < 0 ||
            json_object_object_add(body, "attached", TAKE_PTR(attached)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_BAD_REQUEST, body);
}

static int reply_mesh_not_attached(CompatRequest *req, const char *mesh) {
        _cleanup_(json_object_putp) json_object *body = json_object_new_object();

        if (!body || compat_json_add_string(body, "error", "mesh_not_attached") < 0 ||
            compat_json_add_string(body, "mesh", mesh) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_NOT_FOUND, body);
}

/* upstream: the mesh named (or the session's), else the only attached one. */
static int pick_mesh(CompatRequest *req, Manager *m, const char *name, Mesh **ret) {
        Mesh *only = NULL;
        unsigned attached = 0;

        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];

                if (!mesh->link)
                        continue;
                attached++;
                only = mesh;
                if (name && (streq(mesh->entry->slug, name) ||
                             (mesh->entry->mesh_id && streq(mesh->entry->mesh_id, name)))) {
                        *ret = mesh;
                        return 0;
                }
        }
        if (name)
                return compat_answered(reply_mesh_not_attached(req, name));
        if (attached != 1)
                return compat_answered(reply_mesh_required(req, m));
        *ret = only;
        return 0;
}

static int set_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        StateSetRequest *q = request;
        const char *key = json_object_get_string(json_object_object_get(q->body, "key")), *named = NULL;
        Mesh *mesh;
        int r;

        if (!any_link(m))
                return compat_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "broker not initialised");
        r = compat_json_string(req, q->body, "mesh", "'mesh' must be a string", &named);
        if (r != 0)
                return r < 0 ? r : 0;
        r = pick_mesh(req, m, mesh_from_context(q->server, req, named), &mesh);
        if (r != 0)
                return r < 0 ? r : 0;
        r = link_state_set(mesh->link, key, json_object_object_get(q->body, "value"));
        if (r == -EINVAL)
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, KEY_INVALID);
        if (r == -EMSGSIZE)
                return compat_reply_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "state entry larger than a broker frame");
        if (r == -ENOTCONN) {
                _cleanup_(json_object_putp) json_object *body = json_object_new_object();
                _cleanup_free_ char *detail = NULL;

                if (asprintf(&detail, "%s: not connected to the broker", mesh->entry->slug) < 0 || !body ||
                    compat_json_add_string(body, "error", "broker_unreachable") < 0 ||
                    compat_json_add_string(body, "detail", detail) < 0)
                        return -ENOMEM;
                return compat_reply(req, MHD_HTTP_BAD_GATEWAY, body);
        }
        if (r < 0)
                return r;
        reply = json_object_new_object();
        if (!reply || json_object_object_add(reply, "ok", json_object_new_boolean(true)) < 0 ||
            compat_json_add_string(reply, "key", key) < 0 ||
            compat_json_add_string(reply, "mesh", mesh->entry->slug) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_state_set(CompatRequest *req, void *userdata) {
        StateSetRequest *q;
        const char *key;
        int r;

        assert(req);

        q = calloc(1, sizeof(StateSetRequest));
        if (!q)
                return -ENOMEM;
        q->server = userdata;
        r = compat_read_json_object(req, &q->body);
        if (r != 0) {
                state_set_request_free(q);
                return r < 0 ? r : 0;
        }
        r = compat_json_string(req, q->body, "key", "missing 'key' (string)", &key);
        if (r != 0) {
                state_set_request_free(q);
                return r < 0 ? r : 0;
        }
        if (!key) {
                state_set_request_free(q);
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing 'key' (string)");
        }
        return compat_authorize(req, q->server->manager, POLKIT_ACTION_SEND, set_authorized, q,
                                state_set_request_free);
}
