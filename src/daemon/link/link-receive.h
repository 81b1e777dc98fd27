/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

typedef struct Manager Manager;
typedef struct MeshLink MeshLink;
typedef struct Session Session;

/* A broker frame the worker validated, on connection conn (0: the member's, else a session's):
 * acks move the outbox on, pushes land in the inbox (or change the peer list), peers_list
 * refreshes the peer cache. */
void link_receive_frame(MeshLink *l, unsigned conn, json_object *frame);

/* Announces every inbox row of a configured mesh that was stored but not announced (the daemon
 * died in between), oldest first, as a new arrival is (signal, /v1 event, notification), and
 * marks it. Needs the inbox and the bus name; rows of meshes not configured wait for them. */
void manager_announce_stored(Manager *m);

/* The same for the rows of session s that were stored but not announced (it was not registered,
 * or the daemon died in between): on its object, when it registers. */
void session_announce_stored(Session *s);
