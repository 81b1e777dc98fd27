/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <inttypes.h>
#include <string.h>

#include "bus-json.h"
#include "json-util.h"
#include "mcp.h"

/* Shapes from upstream's apps/cli/src/mcp/server.ts (1.37): the message line
 * "${badge}${name}${topic}: ${body}" and the peer line "[system] Peer \"name\" (abcd1234) [g] joined
 * the mesh"; meta is a record of strings. */

static int meta_add(json_object *meta, const char *key, const char *value) {
        json_object *v = json_object_new_string(value);

        if (!v)
                return -ENOMEM;
        if (json_object_object_add(meta, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int meta_add_if(json_object *meta, const char *key, const char *value) {
        return value && value[0] ? meta_add(meta, key, value) : 0;
}

static int params_new(const char *content, json_object *meta, json_object **ret) {
        _cleanup_(json_object_putp) json_object *params = json_object_new_object(), *c = json_object_new_string(content);

        if (!params || !c)
                return -ENOMEM;
        if (json_object_object_add(params, "content", TAKE_PTR(c)) < 0)
                return -ENOMEM;
        if (json_object_object_add(params, "meta", json_object_get(meta)) < 0) {
                json_object_put(meta);
                return -ENOMEM;
        }
        *ret = TAKE_PTR(params);
        return 0;
}

/* The row's priority: its own key where the daemon has one, else what it kept in meta. */
static const char *row_priority(json_object *row, json_object **meta_holder) {
        const char *p = json_get_string(row, "priority"), *meta_text = json_get_string(row, "meta");

        if (p[0])
                return p;
        if (meta_text[0] && json_parse_strict(meta_text, strlen(meta_text), meta_holder) >= 0) {
                p = json_get_string(*meta_holder, "priority");
                if (p[0])
                        return p;
        }
        return "next";
}

static const char *row_sender_member(json_object *row) {
        const char *member = json_get_string(row, "sender_member_pubkey");

        return member[0] ? member : json_get_string(row, "sender_pubkey");
}

static int content_of(json_object *row, const char *priority, char **ret) {
        const char *name = json_get_string(row, "sender_name"), *topic = json_get_string(row, "topic"),
                   *badge = streq(priority, "now") ? "[URGENT] " : streq(priority, "low") ? "[low] " : "";

        if (asprintf(ret, "%s%s%s%s%s: %s", badge, name[0] ? name : "unknown", topic[0] ? " (#" : "", topic,
                     topic[0] ? ")" : "", json_get_string(row, "body")) < 0)
                return -ENOMEM;
        return 0;
}

int mcp_format_content(json_object *row, char **ret) {
        _cleanup_(json_object_putp) json_object *meta_holder = NULL;

        assert(row && ret);
        return content_of(row, row_priority(row, &meta_holder), ret);
}

int mcp_format_message(json_object *row, const char *slug, json_object **ret_params) {
        _cleanup_(json_object_putp) json_object *meta = json_object_new_object(), *meta_holder = NULL;
        _cleanup_free_ char *content = NULL;
        const char *priority = row_priority(row, &meta_holder), *broker_id = json_get_string(row, "broker_message_id");
        int r;

        assert(row && slug && ret_params);
        if (!meta)
                return -ENOMEM;
        r = content_of(row, priority, &content);
        if (r < 0)
                return r;
        const struct {
                const char *key, *value;
                bool always;
        } fields[] = {
                { "from_id", row_sender_member(row), true },
                { "from_pubkey", row_sender_member(row), true },
                { "from_session_pubkey", json_get_string(row, "sender_pubkey"), true },
                { "from_name", json_get_string(row, "sender_name"), true },
                { "mesh_slug", slug, true },
                { "priority", priority, true },
                { "message_id", broker_id[0] ? broker_id : json_get_string(row, "id"), true },
                { "client_message_id", json_get_string(row, "client_message_id"), true },
                { "topic", json_get_string(row, "topic"), false },
                { "reply_to_id", json_get_string(row, "reply_to_id"), false },
                { "subtype", json_get_string(row, "subtype"), false },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = fields[i].always ? meta_add(meta, fields[i].key, fields[i].value)
                                     : meta_add_if(meta, fields[i].key, fields[i].value);
                if (r < 0)
                        return r;
        }
        return params_new(content, meta, ret_params);
}

/* groups arrive as JSON text (s) from older daemons, as an array (as) from newer ones; an entry
 * is a name or upstream's {"name", "role"}. */
static int groups_array(json_object *groups, json_object **ret) {
        const char *text;

        if (json_object_is_type(groups, json_type_array)) {
                *ret = json_object_get(groups);
                return 0;
        }
        if (!json_object_is_type(groups, json_type_string))
                return -ENOENT;
        text = json_object_get_string(groups);
        _cleanup_(json_object_putp) json_object *parsed = NULL;
        if (json_parse_strict(text, strlen(text), &parsed) < 0 || !json_object_is_type(parsed, json_type_array))
                return -ENOENT;
        *ret = TAKE_PTR(parsed);
        return 0;
}

int mcp_format_groups(json_object *groups, char **ret) {
        _cleanup_(json_object_putp) json_object *list = NULL;
        _cleanup_free_ char *s = NULL;
        size_t size = 0;
        FILE *f;
        bool first = true;

        assert(ret);
        if (!groups || groups_array(groups, &list) < 0) {
                *ret = strdup("");
                return *ret ? 0 : -ENOMEM;
        }
        f = open_memstream(&s, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < json_object_array_length(list); i++) {
                json_object *g = json_object_array_get_idx(list, i);
                const char *name = json_object_is_type(g, json_type_string) ? json_object_get_string(g)
                                                                           : json_get_string(g, "name");
                if (!name[0])
                        continue;
                fprintf(f, "%s%s", first ? "" : ", ", name);
                first = false;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

int mcp_format_scalar(json_object *o, const char *key, char **ret) {
        json_object *v;

        assert(ret);
        if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
                *ret = strdup("");
        else if (json_object_is_type(v, json_type_string))
                *ret = strdup(json_object_get_string(v));
        else if (json_object_is_type(v, json_type_int)) {
                if (asprintf(ret, "%" PRIu64, json_object_get_uint64(v)) < 0)
                        *ret = NULL;
        } else
                *ret = strdup(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
        return *ret ? 0 : -ENOMEM;
}

int mcp_format_peer(json_object *peer, const char *slug, bool joined, json_object **ret_params) {
        _cleanup_(json_object_putp) json_object *meta = json_object_new_object(), *groups = NULL;
        _cleanup_free_ char *names = NULL, *content = NULL;
        const char *name = json_get_string(peer, "display_name"), *pubkey = json_get_string(peer, "pubkey");
        json_object *v = NULL;
        int r;

        assert(peer && slug && ret_params);
        if (!meta)
                return -ENOMEM;
        r = mcp_format_groups(json_object_object_get_ex(peer, "groups", &v) ? v : NULL, &names);
        if (r < 0)
                return r;
        if (asprintf(&content, "[system] Peer \"%s\"%s%.8s%s%s%s%s %s the mesh", name[0] ? name : "unknown",
                     pubkey[0] ? " (" : "", pubkey, pubkey[0] ? ")" : "", names[0] ? " [" : "", names,
                     names[0] ? "]" : "", joined ? "joined" : "left") < 0)
                return -ENOMEM;

        const struct {
                const char *key, *value;
        } fields[] = {
                { "kind", "system" },
                { "event", joined ? "peer_joined" : "peer_left" },
                { "mesh_slug", slug },
                { "peer_name", name },
                { "peer_pubkey", pubkey },
                { "peer_summary", json_get_string(peer, "summary") },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                r = meta_add_if(meta, fields[i].key, fields[i].value);
                if (r < 0)
                        return r;
        }
        if (v && groups_array(v, &groups) >= 0) {
                r = meta_add(meta, "peer_groups", json_object_to_json_string_ext(groups, JSON_C_TO_STRING_PLAIN |
                                                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
                if (r < 0)
                        return r;
        }
        return params_new(content, meta, ret_params);
}

int mcp_format_system(const char *content, const char *event, const char *slug, json_object **ret_params) {
        _cleanup_(json_object_putp) json_object *meta = json_object_new_object();
        int r;

        assert(content && event && slug && ret_params);
        if (!meta)
                return -ENOMEM;
        r = meta_add(meta, "kind", "system");
        if (r < 0)
                return r;
        r = meta_add(meta, "event", event);
        if (r < 0)
                return r;
        r = meta_add(meta, "mesh_slug", slug);
        if (r < 0)
                return r;
        return params_new(content, meta, ret_params);
}
