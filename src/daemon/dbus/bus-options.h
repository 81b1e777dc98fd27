/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <systemd/sd-bus.h>

/*
 * The a{sv} options and filters of the D-Bus methods, read into typed slots. Each option has one
 * D-Bus type; a value of another type, an unknown key and a repeated key are refused with
 * org.freedesktop.DBus.Error.InvalidArgs naming the option (and, for a type, the expected and the
 * given one), so a typo never silently changes what a call does.
 */
typedef struct BusOption {
        const char *name;
        const char *type; /* "s" (const char **), "u" (uint32_t *), "t" (uint64_t *), "b" (int *), "as" (char ***) */
        void *ret;        /* left untouched when the option is absent */
} BusOption;

int bus_read_options(sd_bus_message *msg, const BusOption *options, size_t n_options, sd_bus_error *error);

/* The InvalidArgs answer for an option whose value has the wrong type. */
int bus_option_type_error(sd_bus_error *error, const char *name, const char *expected, const char *got);
/* The InvalidArgs answer for an option nobody knows; known lists the valid names. */
int bus_option_unknown_error(sd_bus_error *error, const char *name, const BusOption *known, size_t n_known);
