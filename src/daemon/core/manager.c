/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <systemd/sd-daemon.h>

#include "fileio.h"
#include "json-util.h"
#include "link-receive.h"
#include "log.h"
#include "manager.h"
#include "mesh-link.h"
#include "message-ids.h"
#include "paths.h"
#include "time-util.h"

#define STATUS_MAX 1024
/* How often rows past the outbox max-age are retired (DECISIONS §9). */
#define EXPIRE_INTERVAL_USEC (3600 * USEC_PER_SEC)
/* Until a broker advertises its dedupe retention (DECISIONS §9). */
#define DEFAULT_MAX_AGE_HOURS 168

int manager_new(Manager **ret) {
        _cleanup_(manager_freep) Manager *m = NULL;
        int r;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        m->host_root = "/";
        m->synchronous_full = true;
        m->host_state = HOST_FINGERPRINT_UNAVAILABLE;
        m->config_error = strdup("");
        m->status = strdup("Starting");
        if (!m->config_error || !m->status)
                return -ENOMEM;
        r = sd_event_default(&m->event);
        if (r < 0)
                return r;
        r = polkit_registry_new(m->event, &m->polkit);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

static void manager_drop_meshes(Manager *m) {
        for (size_t i = 0; i < m->n_meshes; i++)
                mesh_free(m->meshes[i]);
        free(m->meshes);
        m->meshes = NULL;
        m->n_meshes = 0;
}

void manager_shutdown(Manager *m) {
        assert(m);

        session_drop_all(m);
        manager_drop_meshes(m);
        /* The queue answers its waiting callers, so it goes before the bus and the outbox. */
        m->send_queue = send_queue_free(m->send_queue);
        m->transitions = transition_queue_free(m->transitions);
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        manager_shutdown(m);
        sd_event_source_disable_unref(m->expire_timer);
        sd_event_source_disable_unref(m->drain_timer);
        outbox_free(m->outbox);
        inbox_free(m->inbox);
        free(m->outbox_error);
        free(m->inbox_error);
        mesh_config_free(m->config);
        keypair_archive_free(m->archive);
        sd_event_source_unref(m->config_watch);
        sd_event_source_unref(m->config_parent_watch);
        polkit_registry_free(m->polkit);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        free(m->config_path);
        free(m->config_dir);
        free(m->state_dir);
        free(m->config_error);
        free(m->host_reason);
        free(m->status);
        free(m);
        return NULL;
}

static int manager_setup_paths(Manager *m) {
        char *slash;
        int r;

        r = path_config_file(&m->config_path);
        if (r < 0)
                return log_error_errno(r, "Cannot find the config directory (set HOME or CLAUDEMESH_CONFIG_DIR "
                                          "to an absolute path): %m");
        m->config_dir = strdup(m->config_path);
        if (!m->config_dir)
                return -ENOMEM;
        slash = strrchr(m->config_dir, '/');
        *slash = '\0';

        r = path_state_dir(&m->state_dir);
        if (r < 0)
                return log_error_errno(r, "Cannot find the state directory (set STATE_DIRECTORY, "
                                          "XDG_STATE_HOME or HOME): %m");
        r = mkdir_parents_mode(m->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create state directory %s: %m", m->state_dir);
        return 0;
}

static int host_check(Manager *m, char **reason) {
        int r;

        r = host_identity_derive(m->host_root, &m->host);
        if (r < 0)
                return r;
        return host_fingerprint_check(m->state_dir, &m->host, &m->host_state, NULL, reason);
}

static void manager_check_host(Manager *m) {
        _cleanup_free_ char *reason = NULL;
        int r;

        r = host_check(m, &reason);
        if (r < 0) {
                /* Failing closed: a host we cannot check is treated like a changed one. */
                m->host_state = HOST_FINGERPRINT_MISMATCH;
                free(reason);
                if (asprintf(&reason, "Cannot check the host fingerprint in %s: %s", m->state_dir,
                             STRERROR(r)) < 0)
                        reason = NULL;
        }

        switch (m->host_state) {
        case HOST_FINGERPRINT_FIRST_RUN:
                log_info("Recorded host fingerprint %.16s in %s", m->host.fingerprint, m->state_dir);
                break;
        case HOST_FINGERPRINT_MISMATCH:
                log_event(LOG_WARNING, CM_MESSAGE_HOST_MISMATCH,
                          LOG_FIELDS({ "CLAUDEMESH_HOST_FINGERPRINT", m->host.fingerprint }),
                          "Host fingerprint mismatch, meshes stay detached: %s", strna(reason));
                break;
        case HOST_FINGERPRINT_UNAVAILABLE:
                log_warning("No machine-id and no stable MAC address found: clone detection is off");
                break;
        default:
                break;
        }
        free(m->host_reason);
        m->host_reason = TAKE_PTR(reason);
}

static void manager_load_archive(Manager *m) {
        _cleanup_free_ char *path = NULL;
        KeypairArchiveReport report = { 0 };
        int r;

        if (asprintf(&path, "%s/keypair-archive.json", m->state_dir) < 0)
                return;
        r = keypair_archive_load(path, now_usec(CLOCK_REALTIME), &m->archive, &report);
        if (r < 0)
                log_event_errno(LOG_ERR, r, CM_MESSAGE_KEY_ARCHIVE_PROBLEM, NULL,
                                "Cannot load %s, continuing without archived keys: %m", path);
        keypair_archive_report_done(&report);
}

/* DECISIONS §9: a send is given up only by age, and the age follows the broker's advertised
 * dedupe retention (168 h when it advertises none), so a retry never outlives the broker's
 * memory of the id. */
static unsigned mesh_max_age_hours(Mesh *mesh) {
        _cleanup_(json_object_putp) json_object *f = NULL;
        json_object *dedupe, *v;
        const char *features = mesh->link ? mesh_link_features(mesh->link) : "";

        if (!features[0] || !(f = json_tokener_parse(features)) ||
            !json_object_object_get_ex(f, "client_message_id_dedupe", &dedupe))
                return DEFAULT_MAX_AGE_HOURS;
        if (json_object_object_get_ex(dedupe, "mode", &v) && streq(json_object_get_string(v), "permanent"))
                return outbox_max_age_hours(0, true);
        if (!json_object_object_get_ex(dedupe, "dedupe_retention_days", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int(v) < 1)
                return DEFAULT_MAX_AGE_HOURS;
        return outbox_max_age_hours((unsigned) json_object_get_int(v), false);
}

static void manager_expire_outbox(Manager *m) {
        usec_t now = now_usec(CLOCK_REALTIME);

        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];
                unsigned hours = mesh_max_age_hours(mesh);
                int r;

                if (!mesh->entry->mesh_id)
                        continue;
                r = outbox_expire(m->outbox, mesh->entry->mesh_id, now, (usec_t) hours * 3600 * USEC_PER_SEC);
                if (r < 0)
                        log_warning_errno(r, "Cannot retire outbox rows past their max age: %m");
                else if (r > 0)
                        log_notice("Mesh %s: gave up on %d send(s) older than %u hours (max_age)", mesh->entry->slug, r,
                                   hours);
        }
}

static int on_expire_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        manager_expire_outbox(m);
        return sd_event_source_set_time_relative(s, EXPIRE_INTERVAL_USEC);
}

void manager_drain_all(Manager *m) {
        assert(m);

        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->link)
                        mesh_link_drain(m->meshes[i]->link);
}

static int on_drain_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        manager_drain_all(userdata);
        return 0;
}

void manager_schedule_drain(Manager *m) {
        usec_t next, now = now_usec(CLOCK_REALTIME);

        assert(m);

        /* Only rows due later need the timer: rows due now go out when a link connects or an
         * ack frees a slot, so a full link never spins the loop. Rows due now (of a mesh that is
         * not connected, say) must not hide the next row due later of another. */
        if (!m->outbox || outbox_next_attempt_at(m->outbox, now, &next) < 0) {
                (void) sd_event_source_set_enabled(m->drain_timer, SD_EVENT_OFF);
                return;
        }
        if (!m->drain_timer) {
                if (sd_event_add_time(m->event, &m->drain_timer, CLOCK_REALTIME, next, 10 * USEC_PER_MSEC,
                                      on_drain_timer, m) < 0)
                        return;
        } else
                (void) sd_event_source_set_time(m->drain_timer, next);
        (void) sd_event_source_set_enabled(m->drain_timer, SD_EVENT_ONESHOT);
}

static void on_sends_committed(void *userdata, unsigned n_queued) {
        Manager *m = userdata;

        /* The store took a write: what waits for it goes on now, not on its backoff timer. */
        transition_queue_kick(m->transitions);
        manager_drain_all(m);
}

static void on_store_recovered(void *userdata) {
        manager_drain_all(userdata);
}

void manager_attach_links(Manager *m) {
        assert(m);

        for (size_t i = 0; i < m->n_meshes; i++) {
                Mesh *mesh = m->meshes[i];
                bool attached = !m->offline && !mesh->entry->error && m->host_state != HOST_FINGERPRINT_MISMATCH;

                if (attached && !mesh->link) {
                        if (mesh_link_new(mesh, &mesh->link) < 0)
                                mesh->link = NULL;
                } else if (!attached && mesh->link)
                        mesh->link = mesh_link_free(mesh->link);
        }
        manager_refresh(m);
}

/* Opens outbox.db and inbox.db with the recovery of DECISIONS §8. A store that cannot open is
 * reported (Status, method errors); the daemon stays up. */
static int manager_open_stores(Manager *m) {
        _cleanup_free_ char *path = NULL, *error = NULL;
        bool recreated = false;
        int r;

        if (asprintf(&path, "%s/outbox.db", m->state_dir) < 0)
                return -ENOMEM;
        r = outbox_open(path, m->synchronous_full, &m->outbox, &error);
        if (r < 0) {
                if (!error && asprintf(&error, "Cannot open %s: %s", path, STRERROR(r)) < 0)
                        return -ENOMEM;
                log_error("Sends are refused: %s", error);
                m->outbox_error = TAKE_PTR(error);
        } else {
                r = outbox_recover(m->outbox, now_usec(CLOCK_REALTIME));
                if (r > 0)
                        log_notice("Recovered %d in-flight outbox row(s) from the last run; they will be retried", r);
                else if (r < 0)
                        log_warning_errno(r, "Cannot recover in-flight outbox rows: %m");
                r = transition_queue_new(m->event, m->outbox, link_transition_landed, on_store_recovered, m,
                                         &m->transitions);
                if (r < 0)
                        return r;
                r = send_queue_new(m->event, m->outbox, on_sends_committed, m, &m->send_queue);
                if (r < 0)
                        return r;
                r = sd_event_add_time_relative(m->event, &m->expire_timer, CLOCK_MONOTONIC, EXPIRE_INTERVAL_USEC,
                                               60 * USEC_PER_SEC, on_expire_timer, m);
                if (r < 0)
                        return r;
        }

        path = mfree(path);
        if (asprintf(&path, "%s/inbox.db", m->state_dir) < 0)
                return -ENOMEM;
        r = inbox_open(path, m->synchronous_full, &m->inbox, &recreated, &error);
        if (r < 0) {
                if (!error && asprintf(&error, "Cannot open %s: %s", path, STRERROR(r)) < 0)
                        return -ENOMEM;
                log_error("The inbox is unavailable: %s", error);
                m->inbox_error = TAKE_PTR(error);
        } else if (recreated)
                log_warning("%s was corrupt: set aside as %s.corrupt-<time> and started afresh", path, path);
        return 0;
}

static Mesh *find_mesh_by_slug(Manager *m, const char *slug) {
        for (size_t i = 0; i < m->n_meshes; i++)
                if (streq(m->meshes[i]->entry->slug, slug))
                        return m->meshes[i];
        return NULL;
}

static Mesh *manager_find_mesh(Manager *m, const char *name) {
        for (size_t i = 0; i < m->n_meshes; i++) {
                const MeshEntry *e = m->meshes[i]->entry;
                if (streq(e->slug, name) || (e->mesh_id && streq(e->mesh_id, name)))
                        return m->meshes[i];
        }
        return NULL;
}

/* No name: the only mesh, else the only attached one, else config.json's defaultMesh. */
static Mesh *manager_default_mesh(Manager *m) {
        Mesh *attached = NULL;
        size_t n_attached = 0;

        if (m->n_meshes == 1)
                return m->meshes[0];
        for (size_t i = 0; i < m->n_meshes; i++)
                if (m->meshes[i]->state != MESH_INVALID && m->meshes[i]->state != MESH_DETACHED) {
                        attached = m->meshes[i];
                        n_attached++;
                }
        if (n_attached == 1)
                return attached;
        if (m->config && m->config->default_mesh)
                return manager_find_mesh(m, m->config->default_mesh);
        return NULL;
}

int manager_lookup_mesh(Manager *m, const char *name, Mesh **ret, CmError *error) {
        char names[512] = "";
        Mesh *mesh;

        assert(m);

        mesh = name[0] ? manager_find_mesh(m, name) : manager_default_mesh(m);
        if (mesh) {
                *ret = mesh;
                return 0;
        }
        for (size_t i = 0; i < m->n_meshes; i++) {
                size_t len = strlen(names);
                snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", m->meshes[i]->entry->slug);
        }
        if (m->n_meshes == 0)
                return cm_error_setf(error, CM_ERR_NO_SUCH_MESH, "No meshes are configured in %s.",
                                         m->config_path);
        if (!name[0] && m->config && m->config->default_mesh)
                return cm_error_setf(error, CM_ERR_NO_SUCH_MESH,
                                         "defaultMesh \"%s\" in %s names no configured mesh; configured: %s.",
                                         m->config->default_mesh, m->config_path, names);
        if (!name[0])
                return cm_error_setf(error, CM_ERR_NO_SUCH_MESH,
                                         "Several meshes are attached; name one, or set \"defaultMesh\" in %s: %s.",
                                         m->config_path, names);
        return cm_error_setf(error, CM_ERR_NO_SUCH_MESH, "No mesh \"%s\"; configured: %s.", name, names);
}

Mesh *manager_find_mesh_by_path(Manager *m, const char *path) {
        assert(m);

        for (size_t i = 0; i < m->n_meshes; i++)
                if (streq(m->meshes[i]->path, path))
                        return m->meshes[i];
        return NULL;
}

/* "; "-joined errors of every invalid entry, or "" */
static char *config_problems(const MeshConfig *c) {
        size_t len = 1;
        char *s;

        for (size_t i = 0; i < c->n_meshes; i++)
                if (c->meshes[i].error)
                        len += strlen(c->meshes[i].error) + 2;
        s = calloc(1, len);
        if (!s)
                return NULL;
        for (size_t i = 0; i < c->n_meshes; i++)
                if (c->meshes[i].error) {
                        if (s[0])
                                strcat(s, "; ");
                        strcat(s, c->meshes[i].error);
                }
        return s;
}

static void set_config_error(Manager *m, char *error) {
        free(m->config_error);
        m->config_error = error;
        if (error[0])
                log_event(LOG_ERR, CM_MESSAGE_CONFIG_ERROR,
                          LOG_FIELDS({ "CLAUDEMESH_CONFIG_FILE", m->config_path }), "%s", error);
}

static int mesh_compare_config_order(const void *a, const void *b) {
        const Mesh *x = *(Mesh *const *) a, *y = *(Mesh *const *) b;
        return x->entry->index < y->entry->index ? -1 : x->entry->index > y->entry->index;
}

/* Moves the mesh objects over to the entries of config c, which the manager then owns. Objects
 * whose slug stays keep their path; nothing changes when allocation fails half-way. */
static int manager_apply_config(Manager *m, MeshConfig *c) {
        _cleanup_free_ Mesh **meshes = NULL, **removed = NULL, **added = NULL;
        size_t n = 0, n_removed = 0;
        int r;

        meshes = calloc(c->n_meshes + 1, sizeof(Mesh *));
        added = calloc(c->n_meshes + 1, sizeof(Mesh *));
        removed = calloc(m->n_meshes + 1, sizeof(Mesh *));
        if (!meshes || !added || !removed) {
                mesh_config_free(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < c->n_meshes; i++) {
                const MeshEntry *e = &c->meshes[i];
                if (!e->slug || find_mesh_by_slug(m, e->slug))
                        continue;
                r = mesh_new(m, e, &meshes[n]);
                if (r < 0) {
                        while (n > 0)
                                mesh_free(meshes[--n]);
                        mesh_config_free(c);
                        return r;
                }
                n++;
        }
        size_t n_added = n;
        memcpy(added, meshes, n_added * sizeof(Mesh *));

        for (size_t k = 0; k < m->n_meshes; k++) {
                Mesh *mesh = m->meshes[k];
                const MeshEntry *e = mesh_config_find_slug(c, mesh->entry->slug);
                if (!e) {
                        removed[n_removed++] = mesh;
                        continue;
                }
                /* A link talks to the broker with the entry it started with: restart it on a change. */
                if (mesh->link && (!streq(strempty(mesh->entry->broker_url), strempty(e->broker_url)) ||
                                   !streq(strempty(mesh->entry->pubkey_hex), strempty(e->pubkey_hex)) ||
                                   !streq(strempty(mesh->entry->member_id), strempty(e->member_id)) ||
                                   !streq(strempty(mesh->entry->mesh_id), strempty(e->mesh_id)) || e->error))
                        mesh->link = mesh_link_free(mesh->link);
                MeshState before = mesh->state;
                mesh->entry = e;
                if (mesh_update_state(mesh))
                        (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_STATE, .mesh = mesh, .before = before });
                meshes[n++] = mesh;
        }
        qsort(meshes, n, sizeof(Mesh *), mesh_compare_config_order);

        /* Swap first: signal emission looks the objects up through m->meshes. */
        free(m->meshes);
        m->meshes = TAKE_PTR(meshes);
        m->n_meshes = n;
        mesh_config_free(m->config);
        m->config = c;

        session_end_orphans(m);
        for (size_t k = 0; k < n_removed; k++) {
                (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_REMOVED, .mesh = removed[k] });
                mesh_free(removed[k]);
        }
        for (size_t k = 0; k < n_added; k++)
                (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_ADDED, .mesh = added[k] });
        for (size_t k = 0; k < m->n_meshes; k++) {
                bool is_added = false;
                for (size_t j = 0; j < n_added; j++)
                        is_added = is_added || m->meshes[k] == added[j];
                if (!is_added)
                        (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_CHANGED, .mesh = m->meshes[k] });
        }
        return 0;
}

int manager_reload_config(Manager *m, CmError *ret_error) {
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        _cleanup_free_ char *error = NULL;
        char *problems;
        int r;

        assert(m);

        r = mesh_config_load(m->config_path, getuid(), &c, &error);
        if (r < 0) {
                /* Keep the meshes we have: a typo in the file must not drop working links. */
                if (!error && asprintf(&error, "%s: %s", m->config_path, STRERROR(r)) < 0)
                        return -ENOMEM;
                problems = strdup(error);
                if (!problems)
                        return -ENOMEM;
                set_config_error(m, problems);
                manager_refresh(m);
                return cm_error_setf(ret_error, CM_ERR_CONFIG_INVALID, "%s", error);
        }

        problems = config_problems(c);
        if (!problems)
                return -ENOMEM;
        r = manager_apply_config(m, TAKE_PTR(c));
        if (r < 0) {
                free(problems);
                return r;
        }
        set_config_error(m, problems);
        if (m->bus) {
                manager_attach_links(m);
                manager_announce_stored(m); /* rows of a mesh configured again */
        }
        manager_refresh(m);
        log_info("Loaded %s: %zu mesh(es), %zu invalid", m->config_path, m->config->n_meshes,
                 m->config->n_invalid);
        if (m->config_error[0])
                return cm_error_setf(ret_error, CM_ERR_CONFIG_INVALID, "%s", m->config_error);
        return 0;
}

int manager_accept_host(Manager *m, CmError *error) {
        int r;

        assert(m);

        r = host_identity_derive(m->host_root, &m->host);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot write %s/host_fingerprint.json: %s", m->state_dir,
                                     STRERROR(r));
        if (!m->host.fingerprint[0])
                return cm_error_setf(error, CM_ERR_HOST_FINGERPRINT_UNAVAILABLE,
                                     "This host has neither a machine-id nor a stable MAC address, so there is no "
                                     "fingerprint to accept; clone detection stays off.");
        r = host_fingerprint_accept(m->state_dir, &m->host);
        if (r < 0)
                return cm_error_setf(error, CM_ERR_STORAGE, "Cannot write %s/host_fingerprint.json: %s", m->state_dir,
                                     STRERROR(r));
        m->host_state = HOST_FINGERPRINT_MATCH;
        m->host_reason = mfree(m->host_reason);
        log_event(LOG_NOTICE, CM_MESSAGE_HOST_ACCEPTED,
                  LOG_FIELDS({ "CLAUDEMESH_HOST_FINGERPRINT", m->host.fingerprint }),
                  "Accepted host fingerprint %.16s; meshes attach", m->host.fingerprint);
        manager_attach_links(m);
        return 0;
}

_printf_(2, 3) static void status_append(char *buf, const char *fmt, ...) {
        size_t len = strlen(buf);
        va_list ap;

        if (len >= STATUS_MAX - 1)
                return;
        va_start(ap, fmt);
        vsnprintf(buf + len, STATUS_MAX - len, fmt, ap);
        va_end(ap);
}

static char *manager_compute_status(Manager *m) {
        char buf[STATUS_MAX] = "";
        size_t counts[_MESH_STATE_MAX] = { 0 };

        for (size_t i = 0; i < m->n_meshes; i++)
                counts[m->meshes[i]->state]++;

        if (m->host_state == HOST_FINGERPRINT_MISMATCH)
                status_append(buf, "%s", "Host fingerprint mismatch, meshes detached (run 'claudemeshctl accept-host'); ");
        if (m->n_meshes == 0)
                status_append(buf, "No meshes in %s", m->config_path);
        else {
                status_append(buf, "%zu mesh%s:", m->n_meshes, m->n_meshes == 1 ? "" : "es");
                for (size_t i = 0; i < m->n_meshes; i++) {
                        status_append(buf, " %s (%s)", m->meshes[i]->entry->slug,
                                      mesh_state_to_string(m->meshes[i]->state));
                }
        }
        if (m->config_error[0])
                status_append(buf, "; config error: %s", m->config_error);
        if (m->outbox_error)
                status_append(buf, "; outbox unavailable: %s", m->outbox_error);
        if (m->inbox_error)
                status_append(buf, "; inbox unavailable: %s", m->inbox_error);
        return strdup(buf);
}

void manager_refresh(Manager *m) {
        _cleanup_free_ char *status = NULL;

        assert(m);

        for (size_t i = 0; i < m->n_meshes; i++) {
                MeshState before = m->meshes[i]->state;
                if (mesh_update_state(m->meshes[i])) {
                        (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_CHANGED, .mesh = m->meshes[i] });
                        (void) manager_emit(m, &(Event) { .kind = EVENT_MESH_STATE, .mesh = m->meshes[i],
                                                          .before = before });
                }
        }

        status = manager_compute_status(m);
        if (!status || streq(status, m->status))
                return;
        free(m->status);
        m->status = TAKE_PTR(status);
        (void) sd_notifyf(false, "STATUS=%s", m->status);
        (void) manager_emit(m, &(Event) { .kind = EVENT_STATUS_CHANGED });
}

static int on_config_dir_event(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Manager *m = userdata;

        if (ev->mask & IN_IGNORED) {
                /* The folder is gone; the parent's watch sees the next one appear. */
                m->config_watch = sd_event_source_disable_unref(m->config_watch);
                log_info("%s was removed, reloading", m->config_dir);
                (void) manager_reload_config(m, NULL);
                return 0;
        }
        /* IN_ATTRIB: a chmod decides whether config.json may be read at all. */
        if (ev->len > 0 && streq(ev->name, "config.json")) {
                log_info("%s changed, reloading", m->config_path);
                (void) manager_reload_config(m, NULL);
        if (m->outbox)
                manager_expire_outbox(m);
        }
        return 0;
}

static int manager_watch_config_dir(Manager *m) {
        return sd_event_add_inotify(m->event, &m->config_watch, m->config_dir,
                                    IN_CLOSE_WRITE | IN_MOVED_TO | IN_DELETE | IN_ATTRIB | IN_ONLYDIR,
                                    on_config_dir_event, m);
}

static int on_config_parent_event(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Manager *m = userdata;
        const char *name = strrchr(m->config_dir, '/') + 1;

        if (m->config_watch || ev->len == 0 || !streq(ev->name, name))
                return 0;
        if (manager_watch_config_dir(m) < 0)
                return 0;
        log_info("%s appeared, reloading", m->config_dir);
        (void) manager_reload_config(m, NULL);
        return 0;
}

int manager_startup(Manager *m) {
        int r;

        assert(m);

        r = manager_setup_paths(m);
        if (r < 0)
                return r;
        manager_check_host(m);
        manager_load_archive(m);
        r = manager_open_stores(m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the stores: %m");
        (void) manager_reload_config(m, NULL);

        /* Upstream's CLI writes config.json.tmp and renames it; pick up joins without a restart.
         * The parent's watch covers a config folder created (first join) after we started. */
        _cleanup_free_ char *parent = strdup(m->config_dir);
        if (!parent)
                return -ENOMEM;
        char *slash = strrchr(parent, '/'); /* config_dir is absolute */
        slash[slash == parent ? 1 : 0] = '\0';
        r = sd_event_add_inotify(m->event, &m->config_parent_watch, parent,
                                 IN_CREATE | IN_MOVED_TO | IN_ONLYDIR, on_config_parent_event, m);
        if (r < 0)
                log_debug_errno(r, "Not watching %s: %m", parent);
        r = manager_watch_config_dir(m);
        if (r < 0 && !(r == -ENOENT && m->config_parent_watch))
                log_notice_errno(r, "Not watching %s (%m); use Reload or SIGHUP after editing config.json",
                           m->config_dir);

        return 0;
}

void manager_start(Manager *m) {
        assert(m);

        manager_attach_links(m);
        /* Once the front-ends listen, so that they hear what the last run stored but did not say. */
        manager_announce_stored(m);
        session_fail_orphan_sends(m);
}
