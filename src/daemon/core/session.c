/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Sessions: agent processes with their own identity on a mesh, ended by the kernel's word (a
 * pidfd) that their process is gone. */
#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-bus.h>

#include "escape.h"
#include "fileio.h"
#include "link-receive.h"
#include "log.h"
#include "manager.h"
#include "mesh-link.h"
#include "secret-util.h"
#include "session.h"
#include "strv.h"

#define SESSION_CWD_MAX 4096

static Session *session_free(Session *s) {
        Mesh *mesh;

        if (!s)
                return NULL;
        /* The link must not keep a pointer to it (shutdown frees sessions before meshes). */
        if (s->conn > 0 && manager_lookup_mesh(s->manager, s->mesh_id, &mesh, NULL) >= 0 && mesh->link)
                mesh_link_session_forget(mesh->link, s);
        sd_event_source_disable_unref(s->exit_source);
        if (s->pidfd >= 0)
                close(s->pidfd);
        free(s->id);
        free(s->path);
        free(s->mesh_id);
        free(s->mesh_slug);
        free(s->display_name);
        free(s->cwd);
        strv_free(s->groups);
        free(s->status);
        free(s->summary);
        sodium_memzero(s->secret_key, sizeof s->secret_key);
        free(s);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Session *, session_free);

/* Text a peer will show: valid UTF-8 of 1..max bytes, no controls or invisible reordering marks. */
static bool text_ok(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n;) {
                uint32_t c;
                size_t l = utf8_decode(s + i, n - i, &c);

                if (l == 0 || c < 0x20 || c == 0x7f || unichar_is_unsafe(c))
                        return false;
                i += l;
        }
        return true;
}

/* A file name part and an object path element after escaping: keep it plain. */
static bool session_id_ok(const char *id) {
        size_t n = strlen(id);

        if (n == 0 || n > SESSION_ID_MAX)
                return false;
        return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") == n;
}

static char **strv_dup(char **l) {
        size_t n = strv_length(l);
        char **c = calloc(n + 1, sizeof(char *));

        if (!c)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                c[i] = strdup(l[i]);
                if (!c[i])
                        return strv_free(c);
        }
        return c;
}

static Session *session_find(Manager *m, const char *mesh_id, const char *id) {
        for (size_t i = 0; i < m->n_sessions; i++)
                if (streq(m->sessions[i]->mesh_id, mesh_id) && streq(m->sessions[i]->id, id))
                        return m->sessions[i];
        return NULL;
}

Session *session_find_by_path(Manager *m, const char *path) {
        assert(m);
        assert(path);

        for (size_t i = 0; i < m->n_sessions; i++)
                if (streq(m->sessions[i]->path, path))
                        return m->sessions[i];
        return NULL;
}

int session_register_check(Manager *m, const SessionRegistration *reg, CmError *error) {
        Mesh *mesh;
        int r;

        assert(m);
        assert(reg);
        assert(reg->mesh);

        r = manager_lookup_mesh(m, reg->mesh, &mesh, error);
        if (r < 0)
                return r;
        if (reg->display_name && !text_ok(reg->display_name, SESSION_NAME_MAX))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                     "display_name must be 1 to %d bytes of UTF-8 text without control characters.",
                                     SESSION_NAME_MAX);
        if (reg->session_id && !session_id_ok(reg->session_id))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                     "session_id must be 1 to %d characters of A-Z a-z 0-9 . _ : -.", SESSION_ID_MAX);
        if (reg->cwd && (reg->cwd[0] != '/' || !text_ok(reg->cwd, SESSION_CWD_MAX)))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                     "cwd must be an absolute path of at most %d bytes without control characters.",
                                     SESSION_CWD_MAX);
        if (strv_length(reg->groups) > SESSION_GROUPS_MAX)
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "At most %d groups.", SESSION_GROUPS_MAX);
        for (char **g = reg->groups; g && *g; g++)
                if (!text_ok(*g, SESSION_GROUP_MAX) || strchr(*g, ' ') || strchr(*g, ','))
                        return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                             "Group names are 1 to %d bytes without spaces, commas or control "
                                             "characters.", SESSION_GROUP_MAX);
        if (m->n_sessions >= SESSIONS_MAX)
                return cm_error_setf(error, CM_ERR_TOO_MANY_SESSIONS,
                                     "This daemon already holds %d sessions; close one first.", SESSIONS_MAX);
        return 0;
}

/* mesh_id and session_id are caller text: the hex of a SHA-256 over both is a name that cannot
 * collide or escape the directory. */
static int key_path(const char *state_dir, const char *mesh_id, const char *session_id, char **ret) {
        crypto_hash_sha256_state st;
        uint8_t digest[crypto_hash_sha256_BYTES];
        char hex[2 * crypto_hash_sha256_BYTES + 1];

        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, (const unsigned char *) mesh_id, strlen(mesh_id) + 1);
        crypto_hash_sha256_update(&st, (const unsigned char *) session_id, strlen(session_id));
        crypto_hash_sha256_final(&st, digest);
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        return asprintf(ret, "%s/sessions/%s.session-key", state_dir, hex) < 0 ? -ENOMEM : 0;
}

/* The seed kept for session_id, made and written (0600) when there is none. A file of another
 * size is set aside and replaced: a key that cannot be read back is no identity to keep. */
static int load_seed(const char *state_dir, const char *mesh_id, const char *session_id,
                     uint8_t seed[static crypto_sign_SEEDBYTES]) {
        _cleanup_(secret_buffer_done) SecretBuffer b = { 0 };
        _cleanup_free_ char *path = NULL, *dir = NULL;
        struct stat st;
        int r;

        r = key_path(state_dir, mesh_id, session_id, &path);
        if (r < 0)
                return r;
        r = read_full_file(path, 4096, &b.data, &b.size, &st);
        if (r >= 0 && b.size == crypto_sign_SEEDBYTES) {
                if ((st.st_mode & 07777) != 0600 && chmod(path, 0600) < 0)
                        return log_error_errno(errno, "Cannot make %s 0600: %m", path);
                memcpy(seed, b.data, crypto_sign_SEEDBYTES);
                return 0;
        }
        if (r >= 0) {
                _cleanup_free_ char *moved = NULL;

                r = quarantine_file(path, "malformed", &moved);
                if (r < 0)
                        return log_error_errno(r, "Cannot set aside the malformed session key %s: %m", path);
                log_warning("Session key %s was %zu bytes, not %d; moved it to %s and made a new key.", path,
                            b.size, crypto_sign_SEEDBYTES, moved);
        } else if (r != -ENOENT)
                return log_error_errno(r, "Cannot read the session key %s: %m", path);

        if (asprintf(&dir, "%s/sessions", state_dir) < 0)
                return -ENOMEM;
        r = mkdir_parents_mode(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        randombytes_buf(seed, crypto_sign_SEEDBYTES);
        r = write_file_atomic(path, seed, crypto_sign_SEEDBYTES, 0600);
        if (r < 0)
                return log_error_errno(r, "Cannot write the session key %s: %m", path);
        return 0;
}

static int session_make_key(Session *s, const char *state_dir) {
        uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
        int r = 0;

        if (s->persistent)
                r = load_seed(state_dir, s->mesh_id, s->id, seed);
        else
                randombytes_buf(seed, sizeof seed);
        if (r >= 0 && crypto_sign_seed_keypair(pk, s->secret_key, seed) < 0)
                r = -EIO;
        sodium_memzero(seed, sizeof seed);
        if (r < 0)
                return r;
        sodium_bin2hex(s->public_key_hex, sizeof s->public_key_hex, pk, sizeof pk);
        return 0;
}

static void session_remove(Session *s) {
        Manager *m = s->manager;

        for (size_t i = 0; i < m->n_sessions; i++)
                if (m->sessions[i] == s) {
                        memmove(m->sessions + i, m->sessions + i + 1, (m->n_sessions - i - 1) * sizeof(Session *));
                        m->n_sessions--;
                        break;
                }
}

/* The sends of a session whose key dies with it can never go out: each goes dead with why,
 * announced as SendFailed, rather than waiting in the outbox for max_age. A kept key's sends
 * wait for the session_id to register again. */
static void give_up_sends(Manager *m, const char *pubkey_hex, const char *why) {
        OutboxRow *rows = NULL;
        size_t n = 0;
        int r;

        if (!m->outbox || !m->transitions)
                return;
        r = outbox_list_active_from(m->outbox, pubkey_hex, OUTBOX_LIST_MAX, &rows, &n);
        if (r < 0) {
                log_warning_errno(r, "Cannot read the queued sends of session key %.16s; they go dead at max_age: %m",
                                  pubkey_hex);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                r = transition_queue_apply(m->transitions,
                                           &(Transition) {
                                                   .kind = TRANSITION_DEAD,
                                                   .mesh_id = rows[i].mesh_id,
                                                   .row_id = rows[i].id,
                                                   .client_message_id = rows[i].client_message_id,
                                                   .detail = why,
                                           });
                if (r < 0 && r != -ESTALE && r != -ENOENT && r != -EAGAIN)
                        log_warning_errno(r, "Cannot give up send %s of session key %.16s: %m",
                                          rows[i].client_message_id, pubkey_hex);
        }
        outbox_rows_free(rows, n);
}

static void session_give_up_sends(Session *s) {
        give_up_sends(s->manager, s->public_key_hex,
                      "session_ended: the session closed before the message went out, and its key was not kept "
                      "(no session_id)");
}

#define KEPT_KEYS_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* The public keys (hex) of the kept session keys, at most KEPT_KEYS_MAX of them. */
static int kept_public_keys(const char *state_dir, char ***ret) {
        _cleanup_strv_free_ char **keys = NULL;
        _cleanup_free_ char *dir = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        size_t n = 0;

        if (asprintf(&dir, "%s/sessions", state_dir) < 0)
                return -ENOMEM;
        keys = calloc(1, sizeof(char *));
        if (!keys)
                return -ENOMEM;
        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = TAKE_PTR(keys);
                return 0;
        }
        while ((de = readdir(d)) && n < KEPT_KEYS_MAX) {
                _cleanup_(secret_buffer_done) SecretBuffer b = { 0 };
                uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
                _cleanup_free_ char *path = NULL;
                size_t len = strlen(de->d_name);
                char **grown;

                if (len < strlen(".session-key") || !streq(de->d_name + len - strlen(".session-key"), ".session-key"))
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
                        return -ENOMEM;
                if (read_full_file(path, 4096, &b.data, &b.size, NULL) < 0 || b.size != crypto_sign_SEEDBYTES)
                        continue;
                crypto_sign_seed_keypair(pk, sk, (const unsigned char *) b.data);
                sodium_memzero(sk, sizeof sk);
                grown = reallocarray(keys, n + 2, sizeof(char *));
                if (!grown)
                        return -ENOMEM;
                keys = grown;
                keys[n + 1] = NULL;
                keys[n] = malloc(2 * sizeof pk + 1);
                if (!keys[n])
                        return -ENOMEM;
                sodium_bin2hex(keys[n], 2 * sizeof pk + 1, pk, sizeof pk);
                n++;
        }
        *ret = TAKE_PTR(keys);
        return 0;
}

void session_fail_orphan_sends(Manager *m) {
        _cleanup_strv_free_ char **senders = NULL, **kept = NULL;
        int r;

        assert(m);

        if (!m->outbox || outbox_list_active_senders(m->outbox, OUTBOX_LIST_MAX, &senders) < 0 || !senders[0])
                return;
        r = kept_public_keys(m->state_dir, &kept);
        if (r < 0) {
                log_warning_errno(r, "Cannot read the kept session keys; queued sends of sessions wait: %m");
                return;
        }
        for (char **s = senders; *s; s++) {
                bool found = false;

                for (char **k = kept; *k && !found; k++)
                        found = streq(*k, *s);
                for (size_t i = 0; i < m->n_sessions && !found; i++)
                        found = streq(m->sessions[i]->public_key_hex, *s);
                if (!found)
                        give_up_sends(m, *s,
                                      "session_ended: the daemon stopped before the message went out, and the "
                                      "session's key was not kept (no session_id)");
        }
}

void session_end(Session *s, const char *why) {
        Mesh *mesh;

        assert(s);

        log_info("Session %s (%s) on mesh %s ended: %s.", s->id, s->display_name, s->mesh_slug, why);
        /* Its presence ends now, not when the broker notices. */
        if (manager_lookup_mesh(s->manager, s->mesh_id, &mesh, NULL) >= 0 && mesh->link)
                mesh_link_session_close(mesh->link, s);
        if (!s->persistent)
                session_give_up_sends(s);
        /* Announced while it is still findable, so the object is there for InterfacesRemoved. */
        (void) manager_emit(s->manager, &(Event) { .kind = EVENT_SESSION_REMOVED, .session = s });
        session_remove(s);
        session_free(s);
}

void session_end_orphans(Manager *m) {
        assert(m);

        for (size_t i = m->n_sessions; i > 0; i--) {
                Session *s = m->sessions[i - 1];
                bool found = false;

                for (size_t k = 0; k < m->n_meshes && !found; k++)
                        found = m->meshes[k]->entry->mesh_id && streq(m->meshes[k]->entry->mesh_id, s->mesh_id);
                if (!found)
                        session_end(s, "its mesh is no longer in the config");
        }
}

void session_drop_all(Manager *m) {
        assert(m);

        for (size_t i = 0; i < m->n_sessions; i++)
                session_free(m->sessions[i]);
        free(m->sessions);
        m->sessions = NULL;
        m->n_sessions = 0;
}

/* The pidfd turns readable when the process exits: no polling, no tokens. */
static int on_owner_exit(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        session_end(userdata, "its process exited");
        return 0;
}

/* A pidfd of the caller that is sure to be the caller: the start time read after pidfd_open()
 * must still be the one its bus credentials had, or the pid was reused meanwhile. */
static int session_watch_owner(Session *s, sd_event *event) {
        _cleanup_close_ int fd = -1;
        uint64_t start_time;
        int r;

        fd = (int) syscall(SYS_pidfd_open, s->owner.pid, 0);
        if (fd < 0)
                return -errno;
        r = caller_start_time(s->owner.pid, &start_time);
        if (r < 0)
                return r == -ENOENT ? -ESRCH : r;
        if (start_time != s->owner.start_time)
                return -ESRCH;
        r = sd_event_add_io(event, &s->exit_source, fd, EPOLLIN, on_owner_exit, s);
        if (r < 0)
                return r;
        r = sd_event_source_set_description(s->exit_source, "session-owner");
        if (r < 0)
                return r;
        s->pidfd = TAKE_FD(fd);
        return 0;
}

int session_register(Manager *m, const SessionRegistration *reg, const Caller *caller, Session **ret,
                     CmError *error) {
        _cleanup_(session_freep) Session *s = NULL;
        char random_id[33];
        uint8_t raw[16];
        Session **grown;
        Mesh *mesh;
        int r;

        assert(m);
        assert(reg);
        assert(reg->mesh);
        assert(caller);

        r = manager_lookup_mesh(m, reg->mesh, &mesh, error);
        if (r < 0)
                return r;
        if (!mesh->entry->mesh_id || mesh->state == MESH_INVALID)
                return cm_error_setf(error, CM_ERR_MESH_UNAVAILABLE, "Mesh \"%s\" has an invalid config entry: %s",
                                     mesh->entry->slug, strempty(mesh->last_error));
        r = session_register_check(m, reg, error);
        if (r < 0)
                return r;
        if (reg->session_id && session_find(m, mesh->entry->mesh_id, reg->session_id))
                return cm_error_setf(error, CM_ERR_SESSION_IN_USE,
                                     "Session \"%s\" is already registered on mesh \"%s\" by a running process; "
                                     "close it or use another session_id.", reg->session_id, mesh->entry->slug);

        s = calloc(1, sizeof(Session));
        if (!s)
                return -ENOMEM;
        s->manager = m;
        s->pidfd = -1;
        s->owner = *caller;
        s->persistent = reg->session_id != NULL;
        if (!reg->session_id) {
                randombytes_buf(raw, sizeof raw);
                sodium_bin2hex(random_id, sizeof random_id, raw, sizeof raw);
        }
        s->id = strdup(reg->session_id ?: random_id);
        s->mesh_id = strdup(mesh->entry->mesh_id);
        s->mesh_slug = strdup(mesh->entry->slug);
        s->display_name = strdup(reg->display_name ?: (m->config && m->config->display_name ?
                                                       m->config->display_name : "session"));
        s->cwd = strdup(strempty(reg->cwd));
        s->groups = strv_dup(reg->groups);
        s->status = strdup("idle");
        s->summary = strdup("");
        s->state = "closed";
        if (!s->id || !s->mesh_id || !s->mesh_slug || !s->display_name || !s->cwd || !s->status || !s->summary ||
            !s->groups)
                return -ENOMEM;
        /* The object is named by the id alone, so one id is one session across the meshes. */
        r = sd_bus_path_encode(SESSION_OBJECT_PREFIX, s->id, &s->path);
        if (r < 0)
                return r;
        if (session_find_by_path(m, s->path))
                return cm_error_setf(error, CM_ERR_SESSION_IN_USE,
                                     "Session \"%s\" is already registered on another mesh; use another session_id.",
                                     s->id);

        r = session_make_key(s, m->state_dir);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot keep the key of session \"%s\" in %s/sessions: %s",
                                     s->id, m->state_dir, STRERROR(r));
        r = session_watch_owner(s, m->event);
        if (r == -ESRCH)
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                     "The registering process (pid %d) is gone; a session lives as long as its process.",
                                     (int) caller->pid);
        if (r < 0)
                return log_error_errno(r, "Cannot watch process %d for session %s: %m", (int) caller->pid, s->id);

        grown = reallocarray(m->sessions, m->n_sessions + 1, sizeof(Session *));
        if (!grown)
                return -ENOMEM;
        m->sessions = grown;
        m->sessions[m->n_sessions++] = s;
        log_info("Session %s (%s, pid %d) registered on mesh %s with key %.16s.", s->id, s->display_name,
                 (int) s->owner.pid, s->mesh_slug, s->public_key_hex);
        if (m->inbox)
                (void) inbox_count_unseen(m->inbox, s->public_key_hex, &s->unread);
        (void) manager_emit(m, &(Event) { .kind = EVENT_SESSION_ADDED, .session = s });
        if (mesh->link)
                mesh_link_session_open(mesh->link, s);
        /* What reached it while it was away (or before a crash) and was not announced. */
        session_announce_stored(s);
        *ret = TAKE_PTR(s);
        return 0;
}

Session *session_find_by_key(Manager *m, const char *mesh_id, const char *pubkey_hex) {
        assert(m);
        assert(mesh_id);
        assert(pubkey_hex);

        for (size_t i = 0; i < m->n_sessions; i++)
                if (streq(m->sessions[i]->mesh_id, mesh_id) && streq(m->sessions[i]->public_key_hex, pubkey_hex))
                        return m->sessions[i];
        return NULL;
}

void session_set_state(Session *s, const char *state) {
        assert(s);
        assert(state);

        if (streq(s->state, state))
                return;
        s->state = state;
        (void) manager_emit(s->manager, &(Event) { .kind = EVENT_SESSION_CHANGED, .session = s });
}

void session_refresh_unread(Session *s) {
        unsigned n;

        assert(s);

        if (!s->manager->inbox || inbox_count_unseen(s->manager->inbox, s->public_key_hex, &n) < 0 || n == s->unread)
                return;
        s->unread = n;
        (void) manager_emit(s->manager, &(Event) { .kind = EVENT_SESSION_CHANGED, .session = s });
}

int session_check_owner(const Session *s, const Caller *caller, CmError *error) {
        assert(s);
        assert(caller);

        if (caller->uid != s->owner.uid)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED, "Session \"%s\" belongs to uid %u.", s->id,
                                     (unsigned) s->owner.uid);
        return 0;
}

int session_set_profile(Session *s, const char *status, const char *summary, CmError *error) {
        _cleanup_free_ char *new_status = NULL, *new_summary = NULL;
        Mesh *mesh;

        assert(s);

        if (status && !streq(status, "idle") && !streq(status, "working") && !streq(status, "dnd"))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT, "status must be idle, working or dnd, not \"%s\".",
                                     status);
        if (summary && summary[0] && !text_ok(summary, SESSION_SUMMARY_MAX))
                return cm_error_setf(error, CM_ERR_INVALID_ARGUMENT,
                                     "summary must be at most %d bytes of UTF-8 text without control characters.",
                                     SESSION_SUMMARY_MAX);
        if (status) {
                new_status = strdup(status);
                if (!new_status)
                        return -ENOMEM;
        }
        if (summary) {
                new_summary = strdup(summary);
                if (!new_summary)
                        return -ENOMEM;
        }
        if (new_status) {
                free(s->status);
                s->status = TAKE_PTR(new_status);
        }
        if (new_summary) {
                free(s->summary);
                s->summary = TAKE_PTR(new_summary);
        }
        if (manager_lookup_mesh(s->manager, s->mesh_id, &mesh, NULL) >= 0 && mesh->link)
                mesh_link_session_profile(mesh->link, s);
        (void) manager_emit(s->manager, &(Event) { .kind = EVENT_SESSION_CHANGED, .session = s });
        return 0;
}
