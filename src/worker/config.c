/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "escape.h"
#include "hex-util.h"
#include "macro.h"
#include "mesh-config.h"

void worker_config_done(WorkerConfig *c) {
        free(c->broker_url);
        free(c->host);
        free(c->path);
        free(c->mesh_id);
        free(c->mesh_slug);
        free(c->member_id);
        free(c->pubkey);
        free(c->session_pubkey);
        free(c->session_id);
        free(c->display_name);
        json_object_put(c->groups);
        free(c->hostname);
        free(c->cwd);
        *c = (WorkerConfig) { .pid = 0 };
}

void session_config_free(SessionConfig *s) {
        if (!s)
                return;
        free(s->session_pubkey);
        free(s->session_id);
        free(s->display_name);
        free(s->cwd);
        json_object_put(s->groups);
        free(s);
}

static int invalid(char **ret_error, const char *format, ...) _printf_(2, 3);
static int invalid(char **ret_error, const char *format, ...) {
        va_list ap;

        if (ret_error) {
                va_start(ap, format);
                if (vasprintf(ret_error, format, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EINVAL;
}

int broker_url_parse(const char *url, WorkerConfig *c, char **ret_error) {
        const char *p, *host_end, *port_start = NULL;
        _cleanup_free_ char *host = NULL, *path = NULL;
        unsigned long port;

        if (strneq(url, "ws://", 5)) {
                c->tls = false;
                p = url + 5;
        } else if (strneq(url, "wss://", 6)) {
                c->tls = true;
                p = url + 6;
        } else
                return invalid(ret_error, "broker URL \"%s\" must start with ws:// or wss://", url);

        if (*p == '[') {
                host_end = strchr(p, ']');
                if (!host_end)
                        return invalid(ret_error, "broker URL \"%s\" has an unterminated IPv6 address", url);
                host = strndup(p + 1, (size_t) (host_end - p - 1));
                host_end++;
        } else {
                host_end = p + strcspn(p, ":/?#");
                host = strndup(p, (size_t) (host_end - p));
        }
        if (!host)
                return -ENOMEM;
        if (host[0] == '\0' || strpbrk(host, "@ \t\r\n"))
                return invalid(ret_error, "broker URL \"%s\" has no usable host", url);

        if (*host_end == ':')
                port_start = host_end + 1;
        p = port_start ? port_start + strspn(port_start, "0123456789") : host_end;
        if (port_start) {
                char *end;
                if (p == port_start)
                        return invalid(ret_error, "broker URL \"%s\" has an empty port", url);
                port = strtoul(port_start, &end, 10);
                if (end != p || port == 0 || port > 65535)
                        return invalid(ret_error, "broker URL \"%s\" has an invalid port", url);
        } else
                port = c->tls ? 443 : 80;

        if (*p == '#')
                return invalid(ret_error, "broker URL \"%s\" must not have a fragment", url);
        if (*p != '\0' && *p != '/')
                return invalid(ret_error, "broker URL \"%s\" has junk after the host", url);
        path = strdup(*p ? p : "/");
        if (!path)
                return -ENOMEM;
        if (strpbrk(path, " \t\r\n#"))
                return invalid(ret_error, "broker URL \"%s\" has an invalid path", url);

        free(c->host);
        free(c->path);
        c->host = TAKE_PTR(host);
        c->path = TAKE_PTR(path);
        c->port = (uint16_t) port;
        return 0;
}

/* Copies a string field of packet "what"; a missing or null optional field leaves *ret NULL. */
static int get_string(json_object *o, const char *what, const char *key, bool required, size_t max, char **ret,
                      char **ret_error) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                if (required)
                        return invalid(ret_error, "%s: \"%s\" is missing", what, key);
                return 0;
        }
        if (!json_object_is_type(v, json_type_string))
                return invalid(ret_error, "%s: \"%s\" must be a string", what, key);
        if ((size_t) json_object_get_string_len(v) > max ||
            strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return invalid(ret_error, "%s: \"%s\" is too long or contains NUL", what, key);
        if (required && json_object_get_string_len(v) == 0)
                return invalid(ret_error, "%s: \"%s\" is empty", what, key);
        *ret = strdup(json_object_get_string(v));
        return *ret ? 0 : -ENOMEM;
}

/* Groups go into the hello as given, so they are checked: an array of {name, role?}. */
static int get_groups(json_object *o, const char *what, json_object **ret, char **ret_error) {
        json_object *v;

        if (!json_object_object_get_ex(o, "groups", &v) || json_object_is_type(v, json_type_null))
                return 0;
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) > 64)
                return invalid(ret_error, "%s: \"groups\" must be an array of at most 64 groups", what);
        for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *g = json_object_array_get_idx(v, i), *name, *role;
                if (!json_object_is_type(g, json_type_object) || !json_object_object_get_ex(g, "name", &name) ||
                    !json_object_is_type(name, json_type_string) || json_object_get_string_len(name) < 1 ||
                    json_object_get_string_len(name) > 64 ||
                    (json_object_object_get_ex(g, "role", &role) && !json_object_is_type(role, json_type_string)))
                        return invalid(ret_error, "%s: \"groups\" entries must be {\"name\": 1-64 "
                                       "characters, \"role\"?: string}", what);
        }
        *ret = json_object_get(v);
        return 0;
}

/* hello's cwd is NOT NULL at the broker. */
static int default_cwd(char **cwd) {
        if (*cwd)
                return 0;
        *cwd = strdup("/");
        return *cwd ? 0 : -ENOMEM;
}

static int get_ms(json_object *o, const char *key, uint64_t def, uint64_t *ret, char **ret_error) {
        json_object *v;
        int64_t ms;

        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) {
                *ret = def;
                return 0;
        }
        if (!json_object_is_type(v, json_type_int))
                return invalid(ret_error, "start: \"%s\" must be an integer", key);
        ms = json_object_get_int64(v);
        /* Below 50 ms the loop would spin; above a day is a typo. */
        if (ms < 50 || ms > 86400000)
                return invalid(ret_error, "start: \"%s\" = %lld is outside 50…86400000", key, (long long) ms);
        *ret = (uint64_t) ms;
        return 0;
}

int worker_config_from_start(json_object *start, WorkerConfig *c, char **ret_error) {
        json_object *v;
        int r;

        if ((r = get_string(start, "start", "broker_url", true, 2048, &c->broker_url, ret_error)) < 0 ||
            (r = get_string(start, "start", "mesh_id", true, 256, &c->mesh_id, ret_error)) < 0 ||
            (r = get_string(start, "start", "mesh_slug", false, 64, &c->mesh_slug, ret_error)) < 0 ||
            (r = get_string(start, "start", "member_id", true, 256, &c->member_id, ret_error)) < 0 ||
            (r = get_string(start, "start", "pubkey", true, 64, &c->pubkey, ret_error)) < 0 ||
            (r = get_string(start, "start", "session_pubkey", false, 64, &c->session_pubkey, ret_error)) < 0 ||
            (r = get_string(start, "start", "session_id", true, 256, &c->session_id, ret_error)) < 0 ||
            (r = get_string(start, "start", "display_name", false, 1024, &c->display_name, ret_error)) < 0 ||
            (r = get_string(start, "start", "hostname", false, 256, &c->hostname, ret_error)) < 0 ||
            (r = get_string(start, "start", "cwd", false, 4096, &c->cwd, ret_error)) < 0)
                return r;
        /* The slug only labels log lines, but it is still the daemon's word: config.json's rule. */
        if (c->mesh_slug && !mesh_slug_valid(c->mesh_slug))
                return invalid(ret_error, "start: \"mesh_slug\" must be 1-64 of A-Z, a-z, 0-9, '.', '_', '-'");
        r = broker_url_parse(c->broker_url, c, ret_error);
        if (r < 0)
                return r;
        /* The broker compares keys as strings and requires lowercase session keys (§2.1). */
        if (!hex_string(c->pubkey, 64, HEX_LOWER))
                return invalid(ret_error, "start: \"pubkey\" must be 64 lowercase hex characters");
        if (c->session_pubkey && c->session_pubkey[0] == '\0')
                c->session_pubkey = mfree(c->session_pubkey);
        if (c->session_pubkey && !hex_string(c->session_pubkey, 64, HEX_LOWER))
                return invalid(ret_error, "start: \"session_pubkey\" must be 64 lowercase hex characters");
        if (c->display_name && c->display_name[0] == '\0')
                c->display_name = mfree(c->display_name);
        r = default_cwd(&c->cwd);
        if (r < 0)
                return r;

        r = get_groups(start, "start", &c->groups, ret_error);
        if (r < 0)
                return r;

        if (json_object_object_get_ex(start, "pid", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
                        return invalid(ret_error, "start: \"pid\" must be a non-negative integer");
                c->pid = json_object_get_int64(v);
        } else
                c->pid = (int64_t) getppid();

        if ((r = get_ms(start, "ping_interval_ms", PING_INTERVAL_MS_DEFAULT, &c->ping_interval_ms, ret_error)) < 0 ||
            (r = get_ms(start, "liveness_timeout_ms", LIVENESS_TIMEOUT_MS_DEFAULT, &c->liveness_timeout_ms,
                        ret_error)) < 0)
                return r;

        if (json_object_object_get_ex(start, "allow_self_signed", &v) && !json_object_is_type(v, json_type_null)) {
                if (!json_object_is_type(v, json_type_boolean))
                        return invalid(ret_error, "start: \"allow_self_signed\" must be a boolean");
                c->allow_self_signed = json_object_get_boolean(v);
        }
        return 0;
}

int session_config_from_open(json_object *open, SessionConfig **ret, char **ret_error) {
        _cleanup_(session_config_freep) SessionConfig *s = NULL;
        json_object *v;
        int r;

        assert(open);
        assert(ret);

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        if ((r = get_string(open, "session_open", "session_pubkey", true, 64, &s->session_pubkey, ret_error)) < 0 ||
            (r = get_string(open, "session_open", "session_id", true, 256, &s->session_id, ret_error)) < 0 ||
            (r = get_string(open, "session_open", "display_name", true, 1024, &s->display_name, ret_error)) < 0 ||
            (r = get_string(open, "session_open", "cwd", false, 4096, &s->cwd, ret_error)) < 0 ||
            (r = get_groups(open, "session_open", &s->groups, ret_error)) < 0)
                return r;
        /* The broker requires lowercase session keys (wire-protocol-head §2). */
        if (!hex_string(s->session_pubkey, 64, HEX_LOWER))
                return invalid(ret_error, "session_open: \"session_pubkey\" must be 64 lowercase hex characters");
        /* These go into a frame other peers see: no control characters. */
        if (string_has_cc(s->session_id) || string_has_cc(s->display_name) || (s->cwd && string_has_cc(s->cwd)))
                return invalid(ret_error, "session_open: \"session_id\", \"display_name\" and \"cwd\" must not "
                               "contain control characters");
        if (!json_object_object_get_ex(open, "pid", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 0 || json_object_get_int64(v) > INT32_MAX)
                return invalid(ret_error, "session_open: \"pid\" must be a non-negative integer");
        s->pid = json_object_get_int64(v);
        r = default_cwd(&s->cwd);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}
