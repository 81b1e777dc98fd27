/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/*
 * For what this client has no map for (bus-map.h), such as the signals and properties of a
 * newer daemon, shown as they come. Reads the next complete value of m, of any D-Bus type, as JSON: a{s*} become objects, other
 * arrays and structs arrays, variants their content, integers numbers, booleans booleans.
 * Returns 1 with *ret set, 0 at the end of the message or container, negative errno on failure.
 */
int bus_message_read_json(sd_bus_message *m, json_object **ret);

/* Reads every remaining argument of m into a JSON array. */
int bus_message_read_json_args(sd_bus_message *m, json_object **ret);

/* Field accessors for objects a map read: a key the map declares optional may be absent,
 * and reads as "" / 0 / false. */
const char *json_get_string(json_object *o, const char *key);
uint64_t json_get_uint64(json_object *o, const char *key);
bool json_get_bool(json_object *o, const char *key);
