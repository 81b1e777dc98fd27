/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Topic requests of a connected member. Topics are created by topic_create or the admin command. */

#include "protocol.h"
#include "server.h"

/* topic_list → topic_list_response with upstream's shape. This broker has no per-topic
 * membership or visibility: every topic is "public", its description as created (or null), and its
 * memberCount the mesh's current (not revoked) members, who all receive its messages. */
void topic_handle_list(Conn *c, const Frame *f);

/* topic_create {name, description?, visibility?} → {"type":"topic_created","topic":{id,name,
 * visibility},"created"}; idempotent on the name. Visibility other than "public" is refused
 * (not_supported). */
void topic_handle_create(Conn *c, const Frame *f);
