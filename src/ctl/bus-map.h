/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-bus.h>

/*
 * Typed reading of the daemon's dictionaries and properties, in the manner of systemd's
 * bus_map_all_properties(): every key this client uses is declared with its D-Bus type, a value
 * of another type or a missing required key is an error naming the key, and nothing is made up
 * for what the daemon did not send. The result is JSON, the one model both --json and the
 * human output print from: s as strings, b as booleans, u and t as numbers, as as arrays, and
 * the meta key (the sender's own JSON object, by contract) as an object.
 */

typedef enum BusFieldFlags {
        BUS_FIELD_REQUIRED = 1 << 0,
        BUS_FIELD_JSON_OBJECT = 1 << 1,  /* an s carrying a JSON object: embedded as one */
} BusFieldFlags;

typedef struct BusField {
        const char *key;
        const char *signature;
        BusFieldFlags flags;
} BusField;

typedef struct BusMap {
        const char *what;               /* "a peer", for errors */
        const BusField *fields;
        size_t n_fields;
} BusMap;

/* Why a map failed, for the error line: the key and the types. */
typedef struct BusMapError {
        char key[64];
        char got[32];
        const char *want;               /* NULL: the key is missing */
} BusMapError;

/* Reads the a{sv} m is at into a JSON object holding the declared keys that were sent. Keys it
 * does not declare (a newer daemon's) are skipped. 1 on success, 0 at the end of the enclosing
 * container, -EBADMSG with *error filled for a wrong type or a missing required key. */
int bus_map_dict(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error);

/* As bus_map_dict() for PropertiesChanged: only what changed is there, so nothing is required. */
int bus_map_changed(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error);

/* Reads an aa{sv} into a JSON array of such objects. */
int bus_map_dict_array(sd_bus_message *m, const BusMap *map, json_object **ret, BusMapError *error);

/* Prints "Cannot <what>: the daemon sent …" with a hint and returns the exit code. */
int bus_map_report(int r, const BusMapError *error, const BusMap *map, const char *what);

/* The shapes of the daemon's API, as org.claudemesh.Daemon1(5) documents them. */
extern const BusMap bus_map_daemon_properties;
extern const BusMap bus_map_mesh_properties;
extern const BusMap bus_map_session_properties;
extern const BusMap bus_map_peer;
extern const BusMap bus_map_inbox_message;
extern const BusMap bus_map_outbox_row;
