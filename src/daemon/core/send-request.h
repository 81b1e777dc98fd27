/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "destination.h"
#include "outbox.h"
#include "request-fingerprint.h"
#include "time-util.h"

/* The most meta a send stores: its canonical JSON (RFC 8785) in bytes. */
#define SEND_META_MAX 16384

/* What a caller asked for, as received (NULL = not given). */
typedef struct SendOptions {
        const char *priority;
        const char *meta;               /* JSON text of an object */
        const char *reply_to_id;
        const char *client_message_id;
} SendOptions;

/* A validated, normalized send: what the outbox stores and the fingerprint covers. */
typedef struct SendRequest {
        char *client_message_id;
        Destination destination;
        const char *priority;           /* static: "now" | "next" | "low" */
        char *meta_json;                /* RFC 8785 form, NULL when absent, null or {} */
        char *reply_to;
        char *body;
        size_t body_size;
        uint8_t fingerprint[REQUEST_FINGERPRINT_SIZE];
        char *sender_pubkey;            /* the session key it goes out as; NULL: the member (its id's scope) */
} SendRequest;

void send_request_done(SendRequest *r);

/* Validates everything before anything is written (a rejected request does not consume its id):
 * -EINVAL, -ENOENT/-ENOTUNIQ (destination), -EMSGSIZE (the frame would exceed WIRE_FRAME_MAX, or
 * meta SEND_META_MAX),
 * each with a sentence. Mints a ULID when no client_message_id is given. */
int send_request_prepare(const char *mesh_slug, const char *to, const char *message, const SendOptions *opts,
                         const PeerName *peers, size_t n_peers, const TopicName *topics, size_t n_topics, usec_t now,
                         SendRequest *ret, char **ret_error);
