/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Several broker nodes on one PostgreSQL database. A node that accepts a message for a key
 * none of its own connections holds notifies the others (NOTIFY at the commit); a node that
 * hears it drains its connections that own the key. The delivery rows stay the truth: a
 * periodic catch-up drains every connection, so a lost notification, a dropped LISTEN
 * connection or a node that died mid-stream delays a message by at most one period.
 * Nothing here runs on SQLite (one process owns that file).
 */

#include <stdbool.h>

#include "server.h"

int nodes_start(Server *s);
void nodes_stop(Server *s);

/* The LISTEN connection's descriptor became readable, or its wsi went away. */
bool nodes_owns(const Server *s, const struct lws *wsi);
int nodes_readable(Server *s);
void nodes_wsi_destroyed(Server *s, struct lws *wsi);

/* Within the accepting transaction: wakes the other nodes for recipient_key in mesh_id. */
void nodes_wake(Server *s, const char *mesh_id, const char *recipient_key);
