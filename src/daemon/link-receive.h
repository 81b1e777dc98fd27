/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

typedef struct MeshLink MeshLink;

/* A broker frame the worker validated: acks move the outbox on, pushes land in the inbox (or
 * change the peer list), peers_list refreshes the peer cache. */
void link_receive_frame(MeshLink *l, json_object *frame);
