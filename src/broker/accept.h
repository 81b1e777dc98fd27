/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The hardened accept path for `send`:
 *   B1  validate the frame (no row on failure);
 *   B0  a send whose client_message_id is already in the dedupe table is answered from it —
 *       duplicate or conflict — before the rate limiter is consulted;
 *   B1  the idempotent rate limiter;
 *   B2  one BEGIN IMMEDIATE transaction: claim the dedupe row, check the destination exists
 *       (rollback otherwise), insert the message, topic history, delivery and mention index
 *       rows, commit. A dedupe row exists iff the accept committed.
 * Then the ack, then the pushes.
 *
 * On PostgreSQL the same steps are one statement, cm_accept (store-pg.c), sent on the pool
 * without waiting (pool.h); the ack and the pushes follow when its result comes back. The
 * rows a send creates are those of the SQLite path, in one transaction likewise.
 */

#include "protocol.h"
#include "server.h"

void accept_handle_send(Conn *c, const Frame *f);

/* True when p is in group (name without "@") or one of its subgroups "group/...". */
bool conn_in_group(const Conn *p, const char *group);
/* The same for a groups array as a hello carries it ([{"name":…}, …]); NULL has none. */
bool groups_include(json_object *groups, const char *group);
