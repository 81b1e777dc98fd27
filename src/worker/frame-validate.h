/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include <json-c/json.h>

/* The broker frames the worker hands to the daemon; everything else it drops. */
typedef enum FrameKind {
        FRAME_HELLO_ACK,
        FRAME_ACK,
        FRAME_PUSH,
        FRAME_PEERS_LIST,
        FRAME_ERROR,
        FRAME_TOPIC_LIST_RESPONSE,
        FRAME_STATE_RESULT,
        FRAME_STATE_LIST,
        _FRAME_KIND_MAX,
} FrameKind;

#define FRAME_MAX_BYTES 65536

const char *frame_kind_to_string(FrameKind k);

/* Parses one WebSocket text message from the broker and checks it against the wire protocol
 * (JSON object with a string "type", at most FRAME_MAX_BYTES, field types, sizes and shapes of
 * hello_ack, ack, push, peers_list, error, topic_list_response, state_result and state_list; unknown fields
 * are allowed, wire fields are
 * additive). Pure: no I/O, no logging. Returns the FrameKind and the object in *ret; -EBADMSG
 * for an invalid frame and -EOPNOTSUPP for a well-formed frame of a type the worker does not
 * pass on, each with a sentence in *ret_error (if not NULL); -ENOMEM. */
int frame_validate(const void *data, size_t size, json_object **ret, char **ret_error);
