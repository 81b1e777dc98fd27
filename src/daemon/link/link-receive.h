/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

typedef struct Manager Manager;
typedef struct MeshLink MeshLink;

/* A broker frame the worker validated: acks move the outbox on, pushes land in the inbox (or
 * change the peer list), peers_list refreshes the peer cache. */
void link_receive_frame(MeshLink *l, json_object *frame);

/* Announces every inbox row of a configured mesh that was stored but not announced (the daemon
 * died in between), oldest first, as a new arrival is (signal, /v1 event, notification), and
 * marks it. Needs the inbox and the bus name; rows of meshes not configured wait for them. */
void manager_announce_stored(Manager *m);
