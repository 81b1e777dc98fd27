/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "broker-features.h"
#include "hello-oracle.h"
#include "json-util.h"
#include "link-receive.h"
#include "log.h"
#include "manager-link.h"
#include "manager.h"
#include "mesh-link-internal.h"
#include "message-ids.h"
#include "request-fingerprint.h"
#include "seal.h"
#include "session.h"
#include "strv.h"

#define ACK_TIMEOUT_USEC (15 * USEC_PER_SEC)
#define RESTART_MAX_USEC (30 * USEC_PER_SEC)

static const char *const link_state_table[_LINK_STATE_MAX] = {
        [LINK_CONNECTING] = "connecting",
        [LINK_CONNECTED] = "connected",
        [LINK_BACKOFF] = "backoff",
        [LINK_FAILED] = "failed",
};

const char *link_state_to_string(LinkState s) {
        return s >= 0 && s < _LINK_STATE_MAX ? link_state_table[s] : NULL;
}

LinkState mesh_link_state(const MeshLink *l) {
        assert(l);

        return l->state;
}

const char *mesh_link_detail(const MeshLink *l) {
        assert(l);

        return strempty(l->detail);
}

const char *mesh_link_features(const MeshLink *l) {
        assert(l);

        return strempty(l->features_json);
}

char *const *mesh_link_feature_names(const MeshLink *l) {
        assert(l);

        return l->feature_names;
}

/* The names of the features hello_ack advertises (its object's keys), in the broker's order. */
static char **feature_names_new(json_object *features) {
        _cleanup_strv_free_ char **names = NULL;
        size_t n = 0;

        names = calloc((features ? json_object_object_length(features) : 0) + 1, sizeof(char *));
        if (!names)
                return NULL;
        if (!features)
                return TAKE_PTR(names);
        json_object_object_foreach(features, key, value) {
                (void) value;
                names[n] = strdup(key);
                if (!names[n])
                        return NULL;
                n++;
        }
        return TAKE_PTR(names);
}

const char *json_string_member(json_object *o, const char *key) {
        json_object *v;
        if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static unsigned env_ms(const char *name, unsigned def) {
        const char *v = getenv(name);
        char *end;
        unsigned long n;

        if (!v)
                return def;
        n = strtoul(v, &end, 10);
        return *end || n == 0 || n > 3600000 ? def : (unsigned) n;
}

void mesh_link_set_state(MeshLink *l, LinkState state, const char *detail) {
        Mesh *mesh = l->mesh;
        char *copy = strdup(strempty(detail));

        assert(l);

        if (!copy)
                return;
        free(l->detail);
        l->detail = copy;
        if (state != l->state)
                log_info("Mesh %s: %s%s%s", mesh->entry->slug, link_state_to_string(state), detail && detail[0] ? ": " : "",
                         strempty(detail));
        l->state = state;
        manager_refresh(mesh->manager);
}

int link_send_packet(MeshLink *l, json_object *packet) {
        if (!l->worker)
                return -ENOTCONN;
        return worker_process_send(l->worker, packet);
}

int link_send_frame_conn(MeshLink *l, unsigned conn, json_object *frame) {
        _cleanup_(json_object_putp) json_object *p = NULL;

        assert(l);
        assert(conn <= SESSIONS_MAX);

        if (conn == 0 ? l->state != LINK_CONNECTED : !l->conns[conn] || !streq(l->conns[conn]->state, "connected"))
                return -ENOTCONN;
        p = json_object_new_object();
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "type", json_object_new_string("send"));
        if (conn > 0)
                json_object_object_add(p, "conn", json_object_new_int((int) conn));
        json_object_object_add(p, "frame", json_object_get(frame));
        return link_send_packet(l, p);
}

int mesh_link_send_frame(MeshLink *l, json_object *frame) {
        assert(l);

        return link_send_frame_conn(l, 0, frame);
}

static void link_send_start(MeshLink *l) {
        const MeshEntry *e = l->mesh->entry;
        const MeshConfig *c = l->mesh->manager->config;
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        char host[256] = "";

        if (!p)
                return;
        (void) gethostname(host, sizeof host - 1);
        json_object_object_add(p, "type", json_object_new_string("start"));
        json_object_object_add(p, "broker_url", json_object_new_string(e->broker_url));
        json_object_object_add(p, "mesh_id", json_object_new_string(e->mesh_id));
        json_object_object_add(p, "mesh_slug", json_object_new_string(e->slug));
        json_object_object_add(p, "member_id", json_object_new_string(e->member_id));
        json_object_object_add(p, "pubkey", json_object_new_string(e->pubkey_hex));
        json_object_object_add(p, "session_pubkey", json_object_new_string(l->session.public_key_hex));
        json_object_object_add(p, "session_id", json_object_new_string(l->session.session_id));
        if (c && c->display_name)
                json_object_object_add(p, "display_name", json_object_new_string(c->display_name));
        json_object_object_add(p, "hostname", json_object_new_string(host));
        if (c && c->n_groups > 0) {
                /* config.json's top-level groups, the upstream CLI's initial groups for hello */
                json_object *groups = json_object_new_array();
                for (size_t i = 0; groups && i < c->n_groups; i++) {
                        json_object *g = json_object_new_object();
                        if (!g)
                                break;
                        json_object_object_add(g, "name", json_object_new_string(c->groups[i].name));
                        if (c->groups[i].role)
                                json_object_object_add(g, "role", json_object_new_string(c->groups[i].role));
                        json_object_array_add(groups, g);
                }
                json_object_object_add(p, "groups", groups);
        }
        json_object_object_add(p, "cwd", json_object_new_string("/"));
        json_object_object_add(p, "pid", json_object_new_int((int) getpid()));
        /* Test knobs: production keeps the protocol's 30 s ping and 75 s liveness cut. */
        json_object_object_add(p, "ping_interval_ms",
                               json_object_new_int((int) env_ms("CLAUDEMESH_PING_INTERVAL_MS", 30000)));
        json_object_object_add(p, "liveness_timeout_ms",
                               json_object_new_int((int) env_ms("CLAUDEMESH_LIVENESS_TIMEOUT_MS", 75000)));
        json_object_object_add(p, "allow_self_signed",
                               json_object_new_boolean(getenv("CLAUDEMESH_ALLOW_SELF_SIGNED") &&
                                                       streq(getenv("CLAUDEMESH_ALLOW_SELF_SIGNED"), "1")));
        if (link_send_packet(l, p) < 0)
                log_warning("Mesh %s: could not hand the worker its start packet", e->slug);
}

void link_reply_signature(MeshLink *l, json_object *request, const char *signature, const char *refusal,
                          const char *whose) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();
        json_object *id;

        assert(l);
        assert(request);
        assert(signature || refusal);

        if (!p || !json_object_object_get_ex(request, "request_id", &id))
                return;
        json_object_object_add(p, "type", json_object_new_string("signature"));
        json_object_object_add(p, "request_id", json_object_get(id));
        if (signature)
                json_object_object_add(p, "signature", json_object_new_string(signature));
        else {
                log_warning("Mesh %s: refused to sign for %s: %s", l->mesh->entry->slug, whose, refusal);
                json_object_object_add(p, "error", json_object_new_string(refusal));
        }
        (void) link_send_packet(l, p);
}

static void link_answer_sign(MeshLink *l, json_object *packet) {
        const MeshEntry *e = l->mesh->entry;
        const char *payload = json_string_member(packet, "payload");
        _cleanup_free_ char *why = NULL;
        char signature[129];
        int r;

        r = payload ? hello_oracle_sign(payload, e->mesh_id, e->member_id, e->pubkey_hex, e->secret_key,
                                        now_usec(CLOCK_REALTIME), signature, &why)
                    : -EPERM;
        link_reply_signature(l, packet, r < 0 ? NULL : signature, why ? why : "no payload", "the worker");
}

static void link_hello_ack(MeshLink *l, json_object *packet) {
        json_object *features = NULL, *list;
        FeatureVerdict verdict;
        const char *text;
        bool offered;

        (void) json_object_object_get_ex(packet, "features", &features);
        offered = features && json_object_is_type(features, json_type_object) &&
                  json_object_object_length(features) > 0;
        if (!offered) {
                if (!l->legacy_said)
                        log_notice("Mesh %s: the broker advertises no features; delivery is at-least-once and "
                                   "receivers drop duplicates", l->mesh->entry->slug);
                l->legacy_said = true;
                text = "{}";
        } else
                text = json_object_to_json_string_ext(features, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        free(l->features_json);
        l->features_json = strdup(text);
        strv_free(l->feature_names);
        l->feature_names = feature_names_new(offered ? features : NULL);
        l->client_ack = features && json_object_is_type(features, json_type_object) &&
                        json_object_object_get_ex(features, "client_ack", NULL);

        features_check(features, l->mesh->entry->required_features, &verdict);
        if (verdict.close_code != 0) {
                /* DECISIONS §11: this mesh stops (others go on); no restart loop. */
                _cleanup_(json_object_putp) json_object *p = json_object_new_object();
                char detail[256];

                snprintf(detail, sizeof detail, "closed %d: %s", verdict.close_code, verdict.reason);
                log_warning("Mesh %s: a required broker feature is missing, %s", l->mesh->entry->slug, detail);
                if (p) {
                        json_object_object_add(p, "type", json_object_new_string("close"));
                        json_object_object_add(p, "code", json_object_new_int(verdict.close_code));
                        json_object_object_add(p, "reason", json_object_new_string(verdict.reason));
                        (void) link_send_packet(l, p);
                }
                mesh_link_set_state(l, LINK_FAILED, detail);
                return;
        }
        l->restarts = 0;
        mesh_link_set_state(l, LINK_CONNECTED, NULL);
        mesh_profile_resend(l->mesh); /* before list_peers, so our own row shows it */

        list = json_object_new_object();
        if (list) {
                json_object_object_add(list, "type", json_object_new_string("list_peers"));
                json_object_object_add(list, "_reqId", json_object_new_string("daemon-peers"));
                (void) mesh_link_send_frame(l, list);
                json_object_put(list);
        }
        /* "#name" sends resolve against it; a name not in it asks again. */
        (void) link_topics_request(l);
        mesh_link_drain(l);
}

static void link_worker_state(MeshLink *l, json_object *packet) {
        const char *state = json_string_member(packet, "state"), *detail = json_string_member(packet, "detail");
        LinkState s;

        if (!state)
                return;
        if (streq(state, "connected"))
                return; /* hello_ack says it with the features */
        s = streq(state, "backoff") ? LINK_BACKOFF : streq(state, "failed") ? LINK_FAILED : LINK_CONNECTING;
        if (l->state == LINK_CONNECTED)
                link_requeue_inflight(l, "broker connection lost");
        /* After we closed for a missing feature, the worker's own "failed" must not hide why. */
        if (l->state == LINK_FAILED && s == LINK_FAILED)
                return;
        mesh_link_set_state(l, s, detail);
}

static void link_on_packet(void *userdata, json_object *packet) {
        MeshLink *l = userdata;
        const char *type = worker_channel_type(packet);
        json_object *conn;

        if (json_object_object_get_ex(packet, "conn", &conn)) {
                int64_t c = json_object_is_type(conn, json_type_int) ? json_object_get_int64(conn) : -1;

                if (c < 0 || c > SESSIONS_MAX) {
                        log_warning("Mesh %s: the worker sent a \"%s\" packet for no valid connection; dropped",
                                    l->mesh->entry->slug, type);
                        return;
                }
                if (c > 0) {
                        link_session_packet(l, (unsigned) c, packet);
                        return;
                }
        }
        if (streq(type, "sign"))
                link_answer_sign(l, packet);
        else if (streq(type, "state"))
                link_worker_state(l, packet);
        else if (streq(type, "hello_ack"))
                link_hello_ack(l, packet);
        else if (streq(type, "frame") &&
                 streq(worker_channel_type(json_object_object_get(packet, "frame")), "topic_list_response"))
                link_topics_replace(l, json_object_object_get(json_object_object_get(packet, "frame"), "topics"));
        else if (streq(type, "frame"))
                link_receive_frame(l, 0, json_object_object_get(packet, "frame"));
        else
                log_debug("Mesh %s: unknown worker packet \"%s\"", l->mesh->entry->slug, type);
}

static int link_start_worker(MeshLink *l);

static int on_restart(sd_event_source *s, uint64_t usec, void *userdata) {
        MeshLink *l = userdata;
        if (link_start_worker(l) < 0)
                mesh_link_set_state(l, LINK_FAILED, "cannot start claudemesh-worker");
        return 0;
}

static void link_on_exit(void *userdata, const char *how) {
        MeshLink *l = userdata;
        usec_t delay;
        char detail[160];

        /* The dead worker is freed when the next one starts: we are inside its handler here. */
        link_requeue_inflight(l, "worker exited");
        /* Its session connections went with it; the next worker opens them again. */
        for (unsigned conn = 1; conn <= SESSIONS_MAX; conn++)
                if (l->conns[conn])
                        session_set_state(l->conns[conn], "backoff");
        /* Restart with exponential backoff and full jitter: a crash loop must not spin. */
        delay = (usec_t) randombytes_uniform(
                (uint32_t) (l->restarts >= 5 ? RESTART_MAX_USEC : USEC_PER_SEC << l->restarts) / 1000 + 1) * 1000;
        l->restarts++;
        snprintf(detail, sizeof detail, "claudemesh-worker %s; restarting in %.1f s", how, (double) delay / 1e6);
        log_warning("Mesh %s: %s", l->mesh->entry->slug, detail);
        mesh_link_set_state(l, LINK_BACKOFF, detail);
        if (sd_event_add_time_relative(l->mesh->manager->event, &l->restart_timer, CLOCK_MONOTONIC, delay, 0,
                                       on_restart, l) >= 0)
                (void) sd_event_source_set_enabled(l->restart_timer, SD_EVENT_ONESHOT);
}

static int link_start_worker(MeshLink *l) {
        static const WorkerHandlers handlers = {
                .on_packet = link_on_packet,
                .on_exit = link_on_exit,
        };
        int r;

        l->restart_timer = sd_event_source_disable_unref(l->restart_timer);
        l->worker = worker_process_free(l->worker);
        if (access(worker_binary_path(), X_OK) < 0) {
                char detail[256];
                snprintf(detail, sizeof detail, "claudemesh-worker is missing (%s: %s); reinstall claudemesh",
                         worker_binary_path(), STRERROR(errno));
                mesh_link_set_state(l, LINK_FAILED, detail);
                return 0;
        }
        r = worker_process_start(l->mesh->manager->event, &handlers, l, &l->worker);
        if (r < 0)
                return log_error_errno(r, "Mesh %s: cannot start %s: %m", l->mesh->entry->slug, worker_binary_path());
        mesh_link_set_state(l, LINK_CONNECTING, NULL);
        link_send_start(l);
        link_sessions_reopen(l);
        return 0;
}

/* Whether host (as in a URL: a name, an IPv4 address, or an IPv6 one in brackets) is this machine. */
static bool host_is_loopback(const char *host, size_t n) {
        char buf[64];
        struct in6_addr a6;
        struct in_addr a4;

        if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
                host++;
                n -= 2;
        }
        if (n == 0 || n >= sizeof buf)
                return false;
        memcpy(buf, host, n);
        buf[n] = '\0';
        if (strcasecmp(buf, "localhost") == 0 || strcasecmp(buf, "localhost.") == 0)
                return true;
        if (inet_pton(AF_INET, buf, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* Plain ws:// beyond this machine lets anyone on the path read posts and replay the signed hello
 * (about a minute on upstream's broker): said once per link, where operators look. */
static void warn_plaintext_broker(const MeshEntry *e) {
        const char *url = e->broker_url, *host;
        size_t n;

        if (!url || strncasecmp(url, "ws://", 5) != 0)
                return;
        host = url + 5;
        if (host[0] == '[')
                n = strcspn(host, "]") + 1;
        else
                n = strcspn(host, ":/?#");
        if (host_is_loopback(host, n))
                return;
        log_event(LOG_WARNING, CM_MESSAGE_PLAINTEXT_BROKER, LOG_FIELDS({ "CLAUDEMESH_BROKER_URL", url }),
                  "Mesh %s: the broker URL %s is plain ws:// to another host: posts can be read and the signed "
                  "hello captured and replayed on the way. Use wss://.", e->slug, url);
}

int mesh_link_new(Mesh *mesh, MeshLink **ret) {
        _cleanup_(mesh_link_freep) MeshLink *l = NULL;
        int r;

        assert(mesh);

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->mesh = mesh;
        l->state = LINK_CONNECTING;
        r = mesh_session_load(mesh->manager->state_dir, mesh->entry->mesh_id, &l->session);
        if (r < 0)
                return log_error_errno(r, "Mesh %s: cannot load its session key: %m", mesh->entry->slug);
        warn_plaintext_broker(mesh->entry);
        r = link_start_worker(l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < mesh->manager->n_sessions; i++)
                if (streq(mesh->manager->sessions[i]->mesh_id, mesh->entry->mesh_id))
                        mesh_link_session_open(l, mesh->manager->sessions[i]);
        *ret = TAKE_PTR(l);
        return 0;
}

MeshLink *mesh_link_free(MeshLink *l) {
        if (!l)
                return NULL;
        link_requeue_inflight(l, "mesh detached");
        link_sessions_detach(l);
        worker_process_free(l->worker);
        sd_event_source_disable_unref(l->restart_timer);
        sd_event_source_disable_unref(l->ack_timer);
        sd_event_source_disable_unref(l->drain_more);
        link_peers_clear(l);
        link_peers_cancel(l);
        link_topics_cancel(l);
        link_topics_clear(l);
        sd_event_source_disable_unref(l->topics_timer);
        mesh_session_done(&l->session);
        free(l->detail);
        strv_free(l->feature_names);
        free(l->features_json);
        free(l);
        return NULL;
}

int mesh_link_reconnect(MeshLink *l) {
        _cleanup_(json_object_putp) json_object *p = json_object_new_object();

        assert(l);

        if (!l->worker || l->state == LINK_FAILED)
                return link_start_worker(l);
        if (!p)
                return -ENOMEM;
        json_object_object_add(p, "type", json_object_new_string("reconnect"));
        return link_send_packet(l, p);
}
