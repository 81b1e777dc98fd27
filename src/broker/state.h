/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The mesh's shared key/value state (upstream's set_state, get_state, list_state). Keys are
 * 1-256 bytes, values any JSON of at most 16384 bytes, at most STATE_KEYS_MAX keys a mesh.
 * set_state has no reply on success, as upstream (the CLI does not wait); every other
 * connection of the mesh gets {"type":"state_change","key","value","updatedBy"}. A refused
 * set_state gets an error frame (value_too_large, too_many_keys, invalid_args).
 */

#include "protocol.h"
#include "server.h"

#define STATE_KEYS_MAX 1000

void state_handle_set(Conn *c, const Frame *f);
void state_handle_get(Conn *c, const Frame *f);
void state_handle_list(Conn *c, const Frame *f);
