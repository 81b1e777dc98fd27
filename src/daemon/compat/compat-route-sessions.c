/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The upstream CLI's session registry on /v1 (apps/cli/src/daemon/ipc/server.ts at 1.37.0, and
 * its session-registry.ts): POST /v1/sessions/register, GET /v1/sessions/me, GET /v1/sessions,
 * DELETE /v1/sessions/<token>, and the "Authorization: ClaudeMesh-Session <64 hex>" header.
 *
 * A registration makes the same Session RegisterSession makes (core/session.h), with a key the
 * daemon holds: the "presence" upstream's CLI sends (its session secret key and attestation) is
 * never taken. The session lives as long as the process named by "pid", watched through a pidfd,
 * not by upstream's 5 s polling and 24 h ceiling; the token goes with it. */
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compat-routes-internal.h"
#include "escape.h"
#include "fileio.h"
#include "hex-util.h"
#include "json-util.h"
#include "log.h"
#include "polkit.h"
#include "strv.h"

#define TOKEN_BYTES 32
#define TOKEN_PREFIX_HEX 8
#define ROLE_MAX 64

static void token_done(CompatSessionToken *t) {
        sodium_memzero(t->hash, sizeof t->hash);
        free(t->role);
        *t = (CompatSessionToken) { 0 };
}

static void token_remove(CompatServer *s, size_t i) {
        token_done(&s->tokens[i]);
        memmove(s->tokens + i, s->tokens + i + 1, (s->n_tokens - i - 1) * sizeof(CompatSessionToken));
        s->n_tokens--;
}

void compat_sessions_free(CompatServer *s) {
        assert(s);

        for (size_t i = 0; i < s->n_tokens; i++)
                token_done(&s->tokens[i]);
        s->tokens = mfree(s->tokens);
        s->n_tokens = 0;
}

/* ---- the registry across restarts ----
 * As upstream's registry survives its daemon's restart, each token's session is kept in
 * <state>/compat-sessions.json (0600): the token's hash (never the token), the session's id, mesh,
 * name, cwd, groups and role, and its process (pid, uid, start time). At start a session comes
 * back only while that very process lives (the same start time, then a pidfd as at registration);
 * the rest are dropped. */

#define REGISTRY_FILE "compat-sessions.json"
#define REGISTRY_MAX (1024 * 1024)

static char *registry_path(const CompatServer *s) {
        char *p;

        if (asprintf(&p, "%s/" REGISTRY_FILE, s->manager->state_dir) < 0)
                return NULL;
        return p;
}

static json_object *token_json(const CompatSessionToken *t) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *groups = json_object_new_array();
        const Session *session = t->session;
        char hash[2 * TOKEN_BYTES + 1];

        if (!o || !groups)
                return NULL;
        hex_encode(t->hash, sizeof t->hash, hash);
        for (char **g = session->groups; g && *g; g++)
                if (json_object_array_add(groups, json_object_new_string(*g)) < 0)
                        return NULL;
        if (compat_json_add_string(o, "token_hash", hash) < 0 || compat_json_add_string(o, "token_prefix", t->prefix) < 0 ||
            compat_json_add_string(o, "session_id", session->id) < 0 ||
            compat_json_add_string(o, "mesh", session->mesh_slug) < 0 ||
            compat_json_add_string(o, "display_name", session->display_name) < 0 ||
            compat_json_add_string(o, "cwd", session->cwd) < 0 || compat_json_add_string(o, "role", t->role) < 0 ||
            json_object_object_add(o, "groups", TAKE_PTR(groups)) < 0 ||
            json_object_object_add(o, "pid", json_object_new_int64(session->owner.pid)) < 0 ||
            json_object_object_add(o, "uid", json_object_new_int64(session->owner.uid)) < 0 ||
            json_object_object_add(o, "start_time", json_object_new_uint64(session->owner.start_time)) < 0 ||
            json_object_object_add(o, "registered_at", json_object_new_uint64(t->registered_at)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* Best effort: a registry that cannot be written costs only the sessions' survival of a restart. */
static void compat_sessions_save(CompatServer *s) {
        _cleanup_(json_object_putp) json_object *list = json_object_new_array();
        _cleanup_free_ char *path = registry_path(s);
        const char *text;
        int r;

        if (!list || !path) {
                log_warning_errno(-ENOMEM, "Cannot keep the /v1 sessions: %m");
                return;
        }
        for (size_t i = 0; i < s->n_tokens; i++) {
                json_object *o = token_json(&s->tokens[i]);

                if (!o || json_object_array_add(list, o) < 0) {
                        json_object_put(o);
                        log_warning_errno(-ENOMEM, "Cannot keep the /v1 sessions: %m");
                        return;
                }
        }
        text = json_object_to_json_string_ext(list, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                log_warning_errno(r, "Cannot write %s: %m", path);
}

static bool member_uint(json_object *o, const char *key, uint64_t min, uint64_t max, uint64_t *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return false;
        *ret = json_object_get_uint64(v);
        return *ret >= min && *ret <= max && json_object_get_int64(v) >= 0;
}

/* One entry of the file, the file being ours but checked as any input. */
static int restore_one(CompatServer *s, json_object *o) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_strv_free_ char **groups = NULL;
        const char *hash = NULL, *prefix = NULL, *id = NULL, *mesh = NULL, *name = NULL, *cwd = NULL, *role = NULL;
        uint64_t pid, uid, start_time, registered_at;
        uint8_t token_hash[TOKEN_BYTES];
        json_object *garr;
        CompatSessionToken *grown, *t;
        Session *session;
        int r;

        if (!json_object_is_type(o, json_type_object) ||
            json_member_string_strict(o, "token_hash", &hash) <= 0 || !hex_string(hash, 2 * TOKEN_BYTES, HEX_LOWER) ||
            json_member_string_strict(o, "token_prefix", &prefix) <= 0 || !hex_string(prefix, TOKEN_PREFIX_HEX, HEX_LOWER) ||
            json_member_string_strict(o, "session_id", &id) <= 0 || json_member_string_strict(o, "mesh", &mesh) <= 0 ||
            json_member_string_strict(o, "display_name", &name) <= 0 || json_member_string_strict(o, "cwd", &cwd) < 0 ||
            json_member_string_strict(o, "role", &role) < 0 || (role && (strlen(role) > ROLE_MAX || string_has_cc(role))) ||
            !member_uint(o, "pid", 1, INT32_MAX, &pid) || !member_uint(o, "uid", 0, UINT32_MAX - 1, &uid) ||
            !member_uint(o, "start_time", 0, UINT64_MAX, &start_time) ||
            !member_uint(o, "registered_at", 0, UINT64_MAX, &registered_at) ||
            !json_object_object_get_ex(o, "groups", &garr) || !json_object_is_type(garr, json_type_array) ||
            json_object_array_length(garr) > SESSION_GROUPS_MAX)
                return -EBADMSG;
        groups = calloc(json_object_array_length(garr) + 1, sizeof(char *));
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(garr); i++) {
                const char *g;

                if (json_string_get_strict(json_object_array_get_idx(garr, i), &g) < 0)
                        return -EBADMSG;
                groups[i] = strdup(g);
                if (!groups[i])
                        return -ENOMEM;
        }
        if (uid != (uint64_t) getuid())
                return -EPERM;
        r = hex_decode(hash, token_hash, sizeof token_hash);
        if (r < 0)
                return r;

        grown = reallocarray(s->tokens, s->n_tokens + 1, sizeof(CompatSessionToken));
        if (!grown)
                return -ENOMEM;
        s->tokens = grown;
        /* session_register() checks the names and groups as for a new registration, and takes the
         * pidfd only if the process still has this start time: a reused pid gets nothing. */
        r = session_register(s->manager,
                             &(SessionRegistration) { .mesh = mesh, .display_name = name, .session_id = id,
                                                      .cwd = isempty(cwd) ? NULL : cwd, .groups = groups },
                             &(Caller) { .pid = (pid_t) pid, .uid = (uid_t) uid, .start_time = start_time }, &session,
                             &error);
        if (r < 0) {
                if (cm_error_is_set(&error))
                        log_info("Not restoring /v1 session %s: %s", id, cm_error_message(&error));
                else
                        log_info_errno(r, "Not restoring /v1 session %s: %m", id);
                return 0;
        }
        t = &s->tokens[s->n_tokens];
        *t = (CompatSessionToken) { .session = session, .registered_at = registered_at };
        memcpy(t->hash, token_hash, sizeof t->hash);
        memcpy(t->prefix, prefix, TOKEN_PREFIX_HEX + 1);
        if (role) {
                t->role = strdup(role);
                if (!t->role) {
                        token_done(t);
                        session_end(session, "out of memory while restoring it");
                        return -ENOMEM;
                }
        }
        s->n_tokens++;
        log_info("Restored /v1 session %s (pid %d).", id, (int) pid);
        return 0;
}

void compat_sessions_restore(CompatServer *s) {
        _cleanup_(json_object_putp) json_object *list = NULL;
        _cleanup_free_ char *path = registry_path(s), *text = NULL;
        struct stat st;
        size_t size;
        int r;

        assert(s);

        if (!path)
                return;
        r = read_full_file(path, REGISTRY_MAX, &text, &size, &st);
        if (r == -ENOENT)
                return;
        if (r < 0) {
                log_warning_errno(r, "Cannot read %s; the /v1 sessions are not restored: %m", path);
                return;
        }
        if (st.st_uid != getuid() || (st.st_mode & 0077)) {
                log_warning("%s is not the daemon's own 0600 file; the /v1 sessions are not restored", path);
                return;
        }
        r = json_parse_strict(text, size, &list);
        if (r < 0 || !json_object_is_type(list, json_type_array)) {
                log_warning("%s is not a JSON array; the /v1 sessions are not restored", path);
                return;
        }
        for (size_t i = 0; i < json_object_array_length(list) && s->n_tokens < SESSIONS_MAX; i++) {
                r = restore_one(s, json_object_array_get_idx(list, i));
                if (r < 0)
                        log_warning_errno(r, "Dropping entry %zu of %s: %m", i, path);
        }
        /* what did not come back is gone for good */
        compat_sessions_save(s);
}

void compat_sessions_on_event(CompatServer *s, const Event *e) {
        assert(s);
        assert(e);

        if (e->kind != EVENT_SESSION_REMOVED)
                return;
        for (size_t i = 0; i < s->n_tokens; i++)
                if (s->tokens[i].session == e->session) {
                        token_remove(s, i);
                        compat_sessions_save(s);
                        return;
                }
}

/* Every entry is compared, each in constant time: the answer's timing tells nothing of how much of
 * a guess was right. */
static CompatSessionToken *token_find(CompatServer *s, const uint8_t token[static TOKEN_BYTES]) {
        CompatSessionToken *found = NULL;
        uint8_t hash[TOKEN_BYTES];

        crypto_generichash(hash, sizeof hash, token, TOKEN_BYTES, NULL, 0);
        for (size_t i = 0; i < s->n_tokens; i++)
                if (sodium_memcmp(s->tokens[i].hash, hash, sizeof hash) == 0)
                        found = &s->tokens[i];
        sodium_memzero(hash, sizeof hash);
        return found;
}

static CompatSessionToken *token_of_session(CompatServer *s, const Session *session) {
        for (size_t i = 0; i < s->n_tokens; i++)
                if (s->tokens[i].session == session)
                        return &s->tokens[i];
        return NULL;
}

/* JavaScript's trim() and \s, for what a header carries: ASCII whitespace. */
static bool js_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* upstream: /^ClaudeMesh-Session\s+([0-9a-f]{64})$/i on the trimmed header. */
static int parse_session_header(const char *h, uint8_t token[static TOKEN_BYTES]) {
        static const char scheme[] = "ClaudeMesh-Session";
        char hex[2 * TOKEN_BYTES + 1];
        size_t n;
        int r;

        if (!h)
                return -ENOENT;
        while (js_space(*h))
                h++;
        n = strlen(h);
        while (n > 0 && js_space(h[n - 1]))
                n--;
        if (n < sizeof scheme || strncasecmp(h, scheme, sizeof scheme - 1) != 0 || !js_space(h[sizeof scheme - 1]))
                return -EINVAL;
        h += sizeof scheme - 1;
        n -= sizeof scheme - 1;
        while (n > 0 && js_space(*h)) {
                h++;
                n--;
        }
        if (n != 2 * TOKEN_BYTES)
                return -EINVAL;
        memcpy(hex, h, n);
        hex[n] = '\0';
        r = hex_decode(hex, token, TOKEN_BYTES);
        sodium_memzero(hex, sizeof hex);
        return r;
}

Session *compat_request_session(CompatServer *s, CompatRequest *req) {
        uint8_t token[TOKEN_BYTES];
        CompatSessionToken *t;
        Caller caller;

        assert(s);
        assert(req);

        if (parse_session_header(compat_request_header(req, "Authorization"), token) < 0)
                return NULL;
        t = token_find(s, token);
        sodium_memzero(token, sizeof token);
        if (!t || compat_request_caller(req, &caller) < 0 || caller.uid != t->session->owner.uid)
                return NULL;
        return t->session;
}

/* A session as upstream's registry lists it, the token reduced to its first 8 hex digits (null
 * for a session registered over D-Bus, which has none). presence holds only the public key: the
 * secret one never leaves the daemon. */
static json_object *session_json(const Session *session, const CompatSessionToken *t) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *presence = json_object_new_object(),
                                               *groups = NULL;

        if (!o || !presence)
                return NULL;
        if (compat_json_add_string(o, "sessionId", session->id) < 0 ||
            compat_json_add_string(o, "mesh", session->mesh_slug) < 0 ||
            compat_json_add_string(o, "displayName", session->display_name) < 0 ||
            json_object_object_add(o, "pid", json_object_new_int((int) session->owner.pid)) < 0)
                return NULL;
        if (session->cwd[0] && compat_json_add_string(o, "cwd", session->cwd) < 0)
                return NULL;
        if (t && t->role && compat_json_add_string(o, "role", t->role) < 0)
                return NULL;
        if (strv_length(session->groups) > 0) {
                groups = json_object_new_array();
                if (!groups)
                        return NULL;
                /* upstream's notation: "@name" or "@name:role" */
                for (char **g = session->groups; *g; g++) {
                        _cleanup_free_ char *at = NULL;

                        if (asprintf(&at, "@%s", *g) < 0 || json_object_array_add(groups, json_object_new_string(at)) < 0)
                                return NULL;
                }
                if (json_object_object_add(o, "groups", TAKE_PTR(groups)) < 0)
                        return NULL;
        }
        if (compat_json_add_string(presence, "sessionPubkey", session->public_key_hex) < 0 ||
            json_object_object_add(o, "presence", TAKE_PTR(presence)) < 0)
                return NULL;
        if (json_object_object_add(o, "registeredAt",
                                   t ? json_object_new_int64((int64_t) (t->registered_at / USEC_PER_MSEC)) : NULL) < 0)
                return NULL;
        if (compat_json_add_string(o, "token_prefix", t ? t->prefix : NULL) < 0)
                return NULL;
        return TAKE_PTR(o);
}

/* ---- POST /v1/sessions/register ---- */

typedef struct Registration {
        CompatServer *server;
        json_object *body;        /* the strings below point into it */
        const char *mesh, *session_id, *display_name, *cwd, *role;
        char **groups;
        pid_t pid;
        uint8_t token[TOKEN_BYTES];
} Registration;

static void registration_free(void *p) {
        Registration *reg = p;

        if (!reg)
                return;
        json_object_put(reg->body);
        strv_free(reg->groups);
        sodium_memzero(reg->token, sizeof reg->token);
        free(reg);
}

/* An optional string member as upstream reads it (typeof x === "string", else absent); 1 after
 * answering 400 for a NUL in it. */
static int optional_string(CompatRequest *req, json_object *body, const char *key, const char **ret) {
        json_object *v;

        *ret = NULL;
        if (!json_object_object_get_ex(body, key, &v) || !json_object_is_type(v, json_type_string))
                return 0;
        if (json_string_get_strict(v, ret) < 0)
                return compat_answered(compat_reply_nul(req, key));
        return 0;
}

/* upstream: groups.filter(g => typeof g === "string"), written "@name" or "@name:role"; kept as
 * the bus keeps them, "name" or "name:role". */
static int read_groups(CompatRequest *req, json_object *body, char ***ret) {
        json_object *list;
        size_t n, k = 0;
        _cleanup_strv_free_ char **groups = NULL;

        if (!json_object_object_get_ex(body, "groups", &list) || !json_object_is_type(list, json_type_array))
                return 0;
        n = json_object_array_length(list);
        /* more than the session may hold is refused by session_register_check(), not read */
        if (n > SESSION_GROUPS_MAX + 1)
                n = SESSION_GROUPS_MAX + 1;
        groups = calloc(n + 1, sizeof(char *));
        if (!groups)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(list, i);
                const char *name;

                if (!json_object_is_type(g, json_type_string))
                        continue;
                if (json_string_get_strict(g, &name) < 0)
                        return compat_answered(compat_reply_nul(req, "groups"));
                groups[k] = strdup(name[0] == '@' ? name + 1 : name);
                if (!groups[k])
                        return -ENOMEM;
                k++;
        }
        *ret = TAKE_PTR(groups);
        return 0;
}

/* Reads upstream's body; 1 after answering 400 with upstream's sentences. */
static int read_registration(CompatRequest *req, Registration *reg) {
        const char *token = NULL;
        json_object *pid;
        size_t size;
        int r;

        (void) compat_request_body(req, &size);
        if (size == 0)
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "missing body"));
        r = compat_read_json_object(req, &reg->body);
        if (r != 0)
                return r;

        r = optional_string(req, reg->body, "token", &token);
        if (r != 0)
                return r;
        if (!token || hex_decode(token, reg->token, TOKEN_BYTES) < 0)
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "token must be 64 hex chars"));

        r = optional_string(req, reg->body, "session_id", &reg->session_id);
        if (r != 0)
                return r;
        r = optional_string(req, reg->body, "mesh", &reg->mesh);
        if (r != 0)
                return r;
        r = optional_string(req, reg->body, "display_name", &reg->display_name);
        if (r != 0)
                return r;
        if (json_object_object_get_ex(reg->body, "pid", &pid) &&
            (json_object_is_type(pid, json_type_int) || json_object_is_type(pid, json_type_double))) {
                double d = json_object_get_double(pid);

                if (d != 0 && (d < 1 || d > INT32_MAX || d != (double) (int32_t) d))
                        return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                                                  "'pid' must be a process id"));
                reg->pid = (pid_t) d;
        }
        if (isempty(reg->session_id) || isempty(reg->mesh) || isempty(reg->display_name) || reg->pid == 0)
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                                          "session_id, mesh, display_name, pid all required"));

        r = optional_string(req, reg->body, "cwd", &reg->cwd);
        if (r != 0)
                return r;
        r = optional_string(req, reg->body, "role", &reg->role);
        if (r != 0)
                return r;
        if (reg->role && (strlen(reg->role) > ROLE_MAX || string_has_cc(reg->role)))
                return compat_answered(compat_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                                          "'role' must be at most 64 bytes without control characters"));
        return read_groups(req, reg->body, &reg->groups);
}

/* The process whose life the session's is: the caller, or another process of the caller's uid
 * (a wrapper registering for the program it starts). Its start time guards against pid reuse
 * until session_register() holds a pidfd of it. */
static int registration_owner(const Caller *caller, pid_t pid, Caller *ret, CmError *error) {
        _cleanup_free_ char *proc = NULL;
        uint64_t start_time;
        struct stat st;
        int r;

        if (pid == caller->pid) {
                *ret = *caller;
                return 0;
        }
        r = caller_start_time(pid, &start_time);
        if (r == -ENOENT)
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "There is no process %d.", (int) pid);
        if (r < 0)
                return r;
        if (asprintf(&proc, "/proc/%d", (int) pid) < 0)
                return -ENOMEM;
        if (stat(proc, &st) < 0)
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "There is no process %d.", (int) pid);
        if (st.st_uid != caller->uid)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED, "Process %d is not one of uid %u.", (int) pid,
                                     (unsigned) caller->uid);
        *ret = (Caller) { .pid = pid, .uid = caller->uid, .start_time = start_time };
        return 0;
}

/* upstream: a registration under a session id already registered replaces it (a relaunch). Only
 * the same uid's, and only a session that was registered here with a token: a bus client's
 * session is not taken over. */
static void replace_previous(CompatServer *s, const Registration *reg, const Caller *owner) {
        Manager *m = s->manager;
        Mesh *mesh;

        if (manager_lookup_mesh(m, reg->mesh, &mesh, NULL) < 0 || !mesh->entry->mesh_id)
                return;
        for (size_t i = 0; i < m->n_sessions; i++) {
                Session *old = m->sessions[i];

                if (streq(old->id, reg->session_id) && streq(old->mesh_id, mesh->entry->mesh_id) &&
                    old->owner.uid == owner->uid && token_of_session(s, old)) {
                        session_end(old, "registered again through /v1");
                        return;
                }
        }
}

static int register_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        Registration *reg = request;
        CompatServer *s = reg->server;
        CompatSessionToken *t, *grown;
        SessionRegistration sreg = {
                .mesh = reg->mesh,
                .display_name = reg->display_name,
                .session_id = reg->session_id,
                .cwd = reg->cwd,
                .groups = reg->groups,
        };
        Caller caller, owner;
        Session *session;
        int r;

        r = compat_identify_caller(req, &caller, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        r = registration_owner(&caller, reg->pid, &owner, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        r = session_register_check(m, &sreg, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);

        t = token_find(s, reg->token);
        if (t && !(streq(t->session->id, reg->session_id) && t->session->owner.uid == owner.uid))
                return compat_reply_error(req, MHD_HTTP_CONFLICT, "token already registered for another session");
        replace_previous(s, reg, &owner);

        grown = reallocarray(s->tokens, s->n_tokens + 1, sizeof(CompatSessionToken));
        if (!grown)
                return -ENOMEM;
        s->tokens = grown;

        r = session_register(m, &sreg, &owner, &session, &error);
        if (r < 0)
                return compat_reply_failure(req, r, &error);
        t = &s->tokens[s->n_tokens];
        *t = (CompatSessionToken) { .session = session, .registered_at = now_usec(CLOCK_REALTIME) };
        crypto_generichash(t->hash, sizeof t->hash, reg->token, TOKEN_BYTES, NULL, 0);
        hex_encode(reg->token, TOKEN_PREFIX_HEX / 2, t->prefix);
        if (reg->role) {
                t->role = strdup(reg->role);
                if (!t->role) {
                        token_done(t);
                        session_end(session, "out of memory while registering it");
                        return -ENOMEM;
                }
        }
        s->n_tokens++;
        compat_sessions_save(s);

        reply = json_object_new_object();
        if (!reply ||
            json_object_object_add(reply, "ok", json_object_new_boolean(true)) < 0 ||
            json_object_object_add(reply, "registered_at",
                                   json_object_new_int64((int64_t) (t->registered_at / USEC_PER_MSEC))) < 0 ||
            /* it has a presence of its own, with the key the daemon made for it */
            json_object_object_add(reply, "presence_accepted", json_object_new_boolean(true)) < 0 ||
            compat_json_add_string(reply, "session_pubkey", session->public_key_hex) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_session_register(CompatRequest *req, void *userdata) {
        Registration *reg;
        int r;

        assert(req);

        reg = calloc(1, sizeof(Registration));
        if (!reg)
                return -ENOMEM;
        reg->server = userdata;
        r = read_registration(req, reg);
        if (r != 0) {
                registration_free(reg);
                return r < 0 ? r : 0;
        }
        /* Registering gives the caller an identity to send with, as RegisterSession does. */
        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_SEND, register_authorized, reg,
                                registration_free);
}

/* ---- GET /v1/sessions/me, GET /v1/sessions ---- */

static int me_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(json_object_putp) json_object *reply = NULL, *row = NULL;
        CompatServer *s = request;
        Session *session = compat_request_session(s, req);

        if (!session)
                return compat_reply_error(req, MHD_HTTP_UNAUTHORIZED, "no session token");
        row = session_json(session, token_of_session(s, session));
        reply = json_object_new_object();
        if (!row || !reply || json_object_object_add(reply, "session", TAKE_PTR(row)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_session_me(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_READ, me_authorized, userdata,
                                NULL);
}

/* Every session of the daemon, those registered over D-Bus too: they are the same sessions. */
static int list_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(json_object_putp) json_object *reply = json_object_new_object(), *list = json_object_new_array();
        CompatServer *s = request;

        if (!reply || !list)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_sessions; i++) {
                json_object *row = session_json(m->sessions[i], token_of_session(s, m->sessions[i]));

                if (!row || json_object_array_add(list, row) < 0) {
                        json_object_put(row);
                        return -ENOMEM;
                }
        }
        if (json_object_object_add(reply, "sessions", TAKE_PTR(list)) < 0)
                return -ENOMEM;
        return compat_reply(req, MHD_HTTP_OK, reply);
}

int compat_route_sessions(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_READ, list_authorized,
                                userdata, NULL);
}

/* ---- DELETE /v1/sessions/<token> ---- */

static int delete_authorized(CompatRequest *req, Manager *m, void *request) {
        _cleanup_(cm_error_done) CmError error = CM_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *reply = json_object_new_object();
        CompatServer *s = request;
        const char *tail = compat_request_tail(req);
        uint8_t token[TOKEN_BYTES];
        CompatSessionToken *t;
        Caller caller;
        int r;

        if (!reply)
                return -ENOMEM;
        if (hex_decode(tail, token, TOKEN_BYTES) < 0)
                return compat_reply_error(req, MHD_HTTP_BAD_REQUEST, "invalid token");
        t = token_find(s, token);
        sodium_memzero(token, sizeof token);
        if (t) {
                r = compat_identify_caller(req, &caller, &error);
                if (r < 0)
                        return compat_reply_failure(req, r, &error);
                r = session_check_owner(t->session, &caller, &error);
                if (r < 0)
                        return compat_reply_failure(req, r, &error);
        }
        if (json_object_object_add(reply, "ok", json_object_new_boolean(t != NULL)) < 0)
                return -ENOMEM;
        {
                _cleanup_free_ char *prefix = strndup(tail, TOKEN_PREFIX_HEX);

                if (!prefix || compat_json_add_string(reply, "token_prefix", prefix) < 0)
                        return -ENOMEM;
        }
        if (t)
                session_end(t->session, "its /v1 token was deleted");
        return compat_reply(req, t ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, reply);
}

int compat_route_session_delete(CompatRequest *req, void *userdata) {
        assert(req);

        return compat_authorize(req, compat_server_manager(userdata), POLKIT_ACTION_SEND, delete_authorized,
                                userdata, NULL);
}
