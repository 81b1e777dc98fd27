/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "bus-map.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"
#include "strv.h"

static const BusField *find_field(const BusMap *map, const char *key) {
        for (size_t i = 0; i < map->n_fields; i++)
                if (streq(map->fields[i].key, key))
                        return &map->fields[i];
        return NULL;
}

/* The meta string is the sender's JSON object; anything else (an older daemon's peer could have
 * sent other text) stays the string it is rather than being dropped. */
static json_object *json_object_or_string(const char *s) {
        json_object *o = json_tokener_parse(s);

        if (o && json_object_is_type(o, json_type_object))
                return o;
        json_object_put(o);
        return json_object_new_string(s);
}

/* Reads the value inside the variant m is in, of the field's (checked) signature. 1 with *ret
 * set, 0 for an empty meta (left out), negative errno on failure. */
static int read_value(sd_bus_message *m, const BusField *field, json_object **ret) {
        const char *sig = field->signature;
        json_object *o;
        int r;

        if (streq(sig, "s")) {
                const char *s;

                r = sd_bus_message_read_basic(m, 's', &s);
                if (r < 0)
                        return r;
                if (field->flags & BUS_FIELD_JSON_OBJECT) {
                        if (!s[0])
                                return 0;
                        o = json_object_or_string(s);
                } else
                        o = json_object_new_string(s);
        } else if (streq(sig, "b")) {
                int b;

                r = sd_bus_message_read_basic(m, 'b', &b);
                if (r < 0)
                        return r;
                o = json_object_new_boolean(b);
        } else if (streq(sig, "u")) {
                uint32_t u;

                r = sd_bus_message_read_basic(m, 'u', &u);
                if (r < 0)
                        return r;
                o = json_object_new_int64(u);
        } else if (streq(sig, "t")) {
                uint64_t t;

                r = sd_bus_message_read_basic(m, 't', &t);
                if (r < 0)
                        return r;
                o = json_object_new_uint64(t);
        } else if (streq(sig, "as")) {
                _cleanup_strv_free_ char **l = NULL;

                r = sd_bus_message_read_strv(m, &l);
                if (r < 0)
                        return r;
                o = json_object_new_array();
                for (char **s = l; o && s && *s; s++)
                        if (json_object_array_add(o, json_object_new_string(*s)) < 0) {
                                json_object_put(o);
                                return -ENOMEM;
                        }
        } else
                return -EINVAL; /* a map declares a type this reader lacks: a bug here */
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 1;
}

static int map_error(BusMapError *error, const char *key, const char *got, const char *want) {
        snprintf(error->key, sizeof error->key, "%s", key);
        snprintf(error->got, sizeof error->got, "%s", strempty(got));
        error->want = want;
        return -EBADMSG;
}

static int read_entry(sd_bus_message *m, const BusMap *map, json_object *o, BusMapError *error) {
        _cleanup_(json_object_putp) json_object *value = NULL;
        const BusField *field;
        const char *key, *contents;
        int r;

        r = sd_bus_message_read_basic(m, 's', &key);
        if (r < 0)
                return r;
        field = find_field(map, key);
        if (!field)
                return sd_bus_message_skip(m, "v");
        r = sd_bus_message_peek_type(m, NULL, &contents);
        if (r < 0)
                return r;
        if (!streq(contents, field->signature))
                return map_error(error, key, contents, field->signature);
        r = sd_bus_message_enter_container(m, 'v', contents);
        if (r < 0)
                return r;
        r = read_value(m, field, &value);
        if (r < 0)
                return r;
        if (r > 0 && json_object_object_add(o, field->key, TAKE_PTR(value)) < 0)
                return -ENOMEM;
        return sd_bus_message_exit_container(m);
}

static int map_dict(sd_bus_message *m, const BusMap *map, bool partial, json_object **ret, BusMapError *error) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r <= 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = read_entry(m, map, o, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        for (size_t i = 0; !partial && i < map->n_fields; i++)
                if ((map->fields[i].flags & BUS_FIELD_REQUIRED) &&
                    !json_object_object_get_ex(o, map->fields[i].key, NULL))
                        return map_error(error, map->fields[i].key, NULL, NULL);
        *ret = TAKE_PTR(o);
        return 1;
}

int bus_map_dict(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error) {
        assert(m);
        assert(map);
        assert(ret);
        assert(error);

        return map_dict(m, map, false, ret, error);
}

int bus_map_changed(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error) {
        assert(m);
        assert(map);
        assert(ret);
        assert(error);

        return map_dict(m, map, true, ret, error);
}

int bus_map_dict_array(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        int r;

        assert(m);
        assert(map);
        assert(ret);
        assert(error);

        if (!a)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "a{sv}");
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;
        for (;;) {
                json_object *item = NULL;

                r = bus_map_dict(m, map, &item, error);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (json_object_array_add(a, item) < 0) {
                        json_object_put(item);
                        return -ENOMEM;
                }
        }
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a);
        return 1;
}

int bus_map_report(int r, const BusMapError *error, const BusMap *map, const char *what) {
        assert(map);
        assert(what);

        if (r != -EBADMSG || !error->key[0])
                return ctl_error_errno(r, "Cannot %s: %m", what);
        if (error->want)
                ctl_error("Cannot %s: the daemon sent '%s' of %s as %s, where this claudemeshctl expects %s.",
                          what, error->key, map->what, error->got, error->want);
        else
                ctl_error("Cannot %s: the daemon sent %s without '%s'.", what, map->what, error->key);
        ctl_hint("claudemeshctl and claudemeshd come from different versions? 'claudemeshctl --version' "
                 "and 'busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1 "
                 "org.claudemesh.Daemon1 Version' tell.");
        return CTL_EXIT_FAILURE;
}

#define R BUS_FIELD_REQUIRED
#define MAP(name, text, ...)                                                   \
        static const BusField name##_fields[] = { __VA_ARGS__ };               \
        const BusMap bus_map_##name = { text, name##_fields, ELEMENTSOF(name##_fields) }

MAP(daemon_properties, "its properties",
    { "Version", "s", R }, { "Status", "s", R }, { "HostFingerprintState", "s", R },
    { "HostFingerprint", "s", R }, { "ConfigFile", "s", R }, { "ConfigError", "s", R },
    { "StateDirectory", "s", R });

/* UnreadCount and OutboxDepth came later than the rest: an older daemon's mesh has none. */
MAP(mesh_properties, "a mesh",
    { "Id", "s", R }, { "Slug", "s", R }, { "Name", "s", R }, { "MemberId", "s", R },
    { "MemberPubkey", "s", R }, { "BrokerUrl", "s", R }, { "State", "s", R }, { "LastError", "s", R },
    { "Features", "as", R }, { "UnreadCount", "u", 0 }, { "OutboxDepth", "u", 0 });

MAP(session_properties, "a session",
    { "Id", "s", R }, { "Mesh", "s", R }, { "DisplayName", "s", R }, { "PublicKey", "s", R }, { "Pid", "u", R },
    { "Cwd", "s", R }, { "Groups", "as", R }, { "Status", "s", R }, { "Summary", "s", R }, { "State", "s", R },
    { "UnreadCount", "u", R });

MAP(peer, "a peer",
    { "pubkey", "s", R }, { "member_pubkey", "s", 0 }, { "display_name", "s", R }, { "status", "s", 0 },
    { "summary", "s", 0 }, { "groups", "as", 0 }, { "session_id", "s", 0 }, { "connected_at", "t", 0 },
    { "hostname", "s", 0 }, { "self", "b", 0 }, { "stale", "b", 0 }, { "updated_at", "t", 0 });

MAP(inbox_message, "a message",
    { "id", "s", R }, { "client_message_id", "s", 0 }, { "broker_message_id", "s", 0 }, { "mesh_id", "s", R },
    { "mesh", "s", R }, { "topic", "s", 0 }, { "sender_pubkey", "s", R }, { "sender_name", "s", 0 },
    { "body", "s", 0 }, { "meta", "s", BUS_FIELD_JSON_OBJECT }, { "received_at", "t", R },
    { "reply_to_id", "s", 0 });

MAP(outbox_row, "an outbox row",
    { "id", "s", R }, { "client_message_id", "s", R }, { "mesh_id", "s", R }, { "mesh", "s", R },
    { "status", "s", R }, { "target", "s", R }, { "priority", "s", 0 }, { "attempts", "u", 0 },
    { "enqueued_at", "t", R }, { "next_attempt_at", "t", 0 }, { "delivered_at", "t", 0 },
    { "broker_message_id", "s", 0 }, { "last_error", "s", 0 }, { "aborted_at", "t", 0 },
    { "aborted_by", "s", 0 }, { "superseded_by", "s", 0 }, { "reply_to_id", "s", 0 },
    { "payload_bytes", "t", 0 });
