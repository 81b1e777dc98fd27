/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-options.h"
#include "log.h"

int bus_option_type_error(sd_bus_error *error, const char *name, const char *expected, const char *got) {
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Option '%s' must be of type '%s', got '%s'.",
                                 name, expected, got);
}

int bus_option_unknown_error(sd_bus_error *error, const char *name, const BusOption *known, size_t n_known) {
        char list[256] = "";
        size_t used = 0;

        for (size_t i = 0; i < n_known && used < sizeof(list); i++) {
                int k = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", known[i].name);
                if (k < 0)
                        break;
                used += (size_t) k;
        }
        if (n_known == 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s': none are taken.", name);
        return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown option '%s'; known: %s.", name, list);
}

/* Reads the variant's value into the slot of type o->type; the variant is entered already. */
static int read_value(sd_bus_message *msg, const BusOption *o) {
        uint32_t u;
        uint64_t t;
        int b, r;

        switch (o->type[0]) {
        case 's':
                return sd_bus_message_read(msg, "s", (const char **) o->ret);
        case 'u':
                r = sd_bus_message_read(msg, "u", &u);
                if (r < 0)
                        return r;
                *(uint32_t *) o->ret = u;
                return 0;
        case 't':
                r = sd_bus_message_read(msg, "t", &t);
                if (r < 0)
                        return r;
                *(uint64_t *) o->ret = t;
                return 0;
        case 'b':
                r = sd_bus_message_read(msg, "b", &b);
                if (r < 0)
                        return r;
                *(int *) o->ret = b;
                return 0;
        case 'a':
                return sd_bus_message_read_strv(msg, (char ***) o->ret);
        }
        assert(!"unknown option type");
        return -EINVAL;
}

int bus_read_options(sd_bus_message *msg, const BusOption *options, size_t n_options, sd_bus_error *error) {
        uint64_t seen = 0;
        int r;

        assert(msg);
        assert(options || n_options == 0);
        assert(n_options <= 64);

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                const char *key, *contents;
                size_t i;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                for (i = 0; i < n_options; i++)
                        if (streq(key, options[i].name))
                                break;
                if (i == n_options)
                        return bus_option_unknown_error(error, key, options, n_options);
                if (seen & (UINT64_C(1) << i))
                        return bus_error_setf(error, CM_ERR_INVALID_ARGUMENT, "Option \"%s\" is given twice.", key);
                seen |= UINT64_C(1) << i;

                r = sd_bus_message_peek_type(msg, NULL, &contents);
                if (r < 0)
                        return r;
                if (!streq(contents, options[i].type))
                        return bus_option_type_error(error, key, options[i].type, contents);
                r = sd_bus_message_enter_container(msg, 'v', contents);
                if (r < 0)
                        return r;
                r = read_value(msg, &options[i]);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}
