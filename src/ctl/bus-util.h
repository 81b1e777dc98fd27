/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-bus.h>

#define DAEMON_SERVICE     "org.claudemesh.Daemon1"
#define DAEMON_PATH        "/org/claudemesh/Daemon1"
#define DAEMON_INTERFACE   "org.claudemesh.Daemon1"
#define MESH_INTERFACE     "org.claudemesh.Mesh1"
#define MESH_PATH_PREFIX   "/org/claudemesh/Daemon1/mesh"
#define SESSION_INTERFACE  "org.claudemesh.Session1"
#define SESSION_PATH_PREFIX "/org/claudemesh/Daemon1/session"

/* Connects to the session bus; returns an exit code (0 on success), having said what went wrong. */
int bus_connect(sd_bus **ret);

/* A new call of a Daemon1 method on the manager object. Negative errno on failure. */
int bus_new_daemon_call(sd_bus *bus, const char *method, sd_bus_message **ret);

/* Appends {key: <value as string>} to an open a{sv}; nothing when value is NULL. */
int bus_append_string_option(sd_bus_message *m, const char *key, const char *value);
/* Appends {key: <as>} to an open a{sv}; nothing when value is NULL. */
int bus_append_strv_option(sd_bus_message *m, const char *key, char **value);
/* Appends {key: <u>} from a whole number main.c checked; nothing when value is NULL. */
int bus_append_u32_option(sd_bus_message *m, const char *key, const char *value);
/* Appends {key: <t>}, µs since the epoch, from µs or an ISO 8601 time (time_option_parse()). */
int bus_append_time_option(sd_bus_message *m, const char *key, const char *value);
/* µs since the epoch from "µs" or ISO 8601; -EINVAL on anything else. */
int time_option_parse(const char *s, uint64_t *ret);

/* Sends the call and waits for the answer. On failure prints "Cannot <what>: <reason>" and a hint,
 * and returns the matching exit code; 0 on success. */
int bus_call(sd_bus *bus, sd_bus_message *m, const char *what, sd_bus_message **ret_reply);

/* Prints why <what> failed and what to do; returns the exit code for the error. */
int bus_report_error(const sd_bus_error *e, int r, const char *what);

/* Properties.GetAll of the manager, as a JSON object keyed by property name. Exit code. */
int bus_get_daemon_properties(sd_bus *bus, json_object **ret);

/* Every mesh object's org.claudemesh.Mesh1 properties, sorted by slug, as a JSON array. Exit code. */
int bus_get_meshes(sd_bus *bus, json_object **ret);

/* The mesh slug of a mesh object path, or NULL when the path is not a mesh object. */
char *bus_mesh_slug_from_path(const char *path);
/* The session id of a Session1 object path; NULL for any other path. */
char *bus_session_id_from_path(const char *path);

/* Runs the event loop with bus attached until SIGINT or SIGTERM (exit 0) or the bus goes away. */
int bus_run_until_interrupted(sd_bus *bus);
