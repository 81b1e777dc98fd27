/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

typedef struct MeshLink MeshLink;

/*
 * The mesh's shared key/value state on its broker (wire protocol §3.6): get_state answered by
 * state_result, list_state by state_list, set_state by nothing (an error frame when refused).
 * Each query carries a _reqId of its own and is matched to the answer of the same link with that
 * id; it waits at most LINK_STATE_TIMEOUT_USEC, and at most LINK_STATE_QUERIES_MAX are out at once
 * in the daemon.
 */

#define LINK_STATE_QUERIES_MAX 64
#define LINK_STATE_KEY_MAX 256     /* bytes, as our broker takes them */

/* 1 to LINK_STATE_KEY_MAX bytes without control characters: what our broker takes. */
bool link_state_key_ok(const char *key);

/* The end of a query, exactly once. result 0: answer is the broker's state_result or state_list
 * frame; -EPROTO: answer is the broker's error frame; -ENOTCONN: the link is not connected (done
 * ran before the call returned); -ETIMEDOUT: no answer in time (also when the link went away);
 * -ECANCELED: the daemon stops. answer is borrowed for the call. */
typedef void (*LinkStateDone)(int result, json_object *answer, void *userdata);

/* 0: done runs. -EBUSY with LINK_STATE_QUERIES_MAX out, -EINVAL for a key that is empty, longer
 * than LINK_STATE_KEY_MAX or holds a control character, -ENOMEM: done never runs. */
int link_state_get(MeshLink *l, const char *key, LinkStateDone done, void *userdata);
int link_state_list(MeshLink *l, LinkStateDone done, void *userdata);

/* Sends set_state {key, value} (value NULL: JSON null). -ENOTCONN, -EINVAL for a key as above,
 * -EMSGSIZE when the frame would not fit one broker frame. */
int link_state_set(MeshLink *l, const char *key, json_object *value);

/* The link's receive path hands every broker frame here first: true when it answered a query
 * (and is consumed). */
bool link_state_receive(MeshLink *l, json_object *frame);

/* Ends every query with -ECANCELED (the front-end that asked stops). */
void link_state_cancel_all(void);
