/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bus-json.h"
#include "json-util.h"
#include "macro.h"

static int read_basic(sd_bus_message *m, char type, json_object **ret) {
        union {
                uint8_t u8;
                int b;
                int16_t s16;
                uint16_t u16;
                int32_t s32;
                uint32_t u32;
                int64_t s64;
                uint64_t u64;
                double d;
                const char *s;
        } v;
        json_object *o;
        int r;

        r = sd_bus_message_read_basic(m, type, &v);
        if (r <= 0)
                return r < 0 ? r : -EBADMSG;

        switch (type) {
        case SD_BUS_TYPE_BYTE:        o = json_object_new_int64(v.u8); break;
        case SD_BUS_TYPE_BOOLEAN:     o = json_object_new_boolean(v.b); break;
        case SD_BUS_TYPE_INT16:       o = json_object_new_int64(v.s16); break;
        case SD_BUS_TYPE_UINT16:      o = json_object_new_int64(v.u16); break;
        case SD_BUS_TYPE_INT32:       o = json_object_new_int64(v.s32); break;
        case SD_BUS_TYPE_UINT32:      o = json_object_new_int64(v.u32); break;
        case SD_BUS_TYPE_INT64:       o = json_object_new_int64(v.s64); break;
        case SD_BUS_TYPE_UINT64:      o = json_object_new_uint64(v.u64); break;
        case SD_BUS_TYPE_DOUBLE:      o = json_object_new_double(v.d); break;
        case SD_BUS_TYPE_UNIX_FD:     o = json_object_new_int64(v.s32); break;
        default:                      o = json_object_new_string(v.s); break; /* s, o, g */
        }
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 1;
}

/* Inside an a{..}: each entry's key becomes the member name. */
static int read_dict(sd_bus_message *m, const char *entry_signature, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *inner = NULL;
        size_t n = strlen(entry_signature);
        int r;

        if (!o)
                return -ENOMEM;
        /* "{sv}" -> "sv": the entry's own signature, as enter_container wants it */
        if (n < 2)
                return -EBADMSG;
        inner = strndup(entry_signature + 1, n - 2);
        if (!inner)
                return -ENOMEM;

        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, inner)) > 0) {
                _cleanup_(json_object_putp) json_object *key = NULL, *value = NULL;

                r = bus_message_read_json(m, &key);
                if (r > 0)
                        r = bus_message_read_json(m, &value);
                if (r == 0)
                        r = -EBADMSG;
                if (r < 0)
                        return r;
                r = json_object_object_add(o, json_object_get_string(key), TAKE_PTR(value));
                if (r < 0)
                        return -ENOMEM;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 1;
}

static int read_list(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        int r;

        if (!a)
                return -ENOMEM;
        for (;;) {
                json_object *item = NULL;

                r = bus_message_read_json(m, &item);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                if (json_object_array_add(a, item) < 0) {
                        json_object_put(item);
                        return -ENOMEM;
                }
        }
        *ret = TAKE_PTR(a);
        return 1;
}

int bus_message_read_json(sd_bus_message *m, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r <= 0)
                return r;
        if (!strchr("avr", type))
                return read_basic(m, type, ret);

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;
        if (type == SD_BUS_TYPE_VARIANT) {
                r = bus_message_read_json(m, &o);
                if (r == 0)
                        r = -EBADMSG;
        } else if (type == SD_BUS_TYPE_ARRAY && contents[0] == SD_BUS_TYPE_DICT_ENTRY_BEGIN)
                r = read_dict(m, contents, &o);
        else
                r = read_list(m, &o);
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 1;
}

int bus_message_read_json_args(sd_bus_message *m, json_object **ret) {
        return read_list(m, ret);
}

const char *json_get_string(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return "";
        return json_object_get_string(v);
}

uint64_t json_get_uint64(json_object *o, const char *key) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return 0;
        return json_object_get_uint64(v);
}

bool json_get_bool(json_object *o, const char *key) {
        json_object *v;

        return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
               json_object_get_boolean(v);
}
