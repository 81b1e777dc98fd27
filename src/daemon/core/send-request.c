/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "error-message.h"
#include "jcs.h"
#include "send-request.h"
#include "ulid.h"
#include "wire-send.h"

void send_request_done(SendRequest *r) {
        free(r->client_message_id);
        destination_done(&r->destination);
        free(r->meta_json);
        free(r->reply_to);
        free(r->body);
        free(r->sender_pubkey);
        *r = (SendRequest) { 0 };
}

static const char *priority_normalize(const char *p) {
        static const char *const priorities[] = { "now", "next", "low" };
        if (!p)
                return "next";
        for (size_t i = 0; i < ELEMENTSOF(priorities); i++)
                if (streq(p, priorities[i]))
                        return priorities[i];
        return NULL;
}

/* meta must be a JSON object; its canonical form, or NULL for {} (the fingerprint treats
 * absent, null and {} alike, so the store does too). */
static int meta_normalize(const char *text, char **ret, char **ret_error) {
        _cleanup_free_ char *canonical = NULL, *why = NULL;
        size_t size;
        int r;

        *ret = NULL;
        if (!text)
                return 0;
        r = jcs_canonicalize_text(text, strlen(text), &canonical, &size, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_setf(ret_error, -EINVAL, "Option \"meta\" is not valid JSON: %s", strna(why));
        if (streq(canonical, "null") || streq(canonical, "{}"))
                return 0;
        if (canonical[0] != '{')
                return error_setf(ret_error, -EINVAL, "Option \"meta\" must be a JSON object, not %.64s.", canonical);
        /* It is stored with every row and fingerprinted: bounded like the message. */
        if (size > SEND_META_MAX)
                return error_setf(ret_error, -EMSGSIZE, "Option \"meta\" is too large: %zu bytes as canonical JSON, "
                                  "at most %d (16 KiB) are stored.", size, SEND_META_MAX);
        *ret = TAKE_PTR(canonical);
        return 0;
}

int send_request_prepare(const char *mesh_slug, const char *to, const char *message, const SendOptions *opts,
                         const PeerName *peers, size_t n_peers, const TopicName *topics, size_t n_topics, usec_t now,
                         SendRequest *ret, char **ret_error) {
        _cleanup_(send_request_done) SendRequest req = { 0 };
        _cleanup_free_ char *why = NULL;
        size_t frame;
        int r;

        if (!message[0])
                return error_setf(ret_error, -EINVAL, "The message is empty.");
        req.priority = priority_normalize(opts->priority);
        if (!req.priority)
                return error_setf(ret_error, -EINVAL, "Option \"priority\" must be \"now\", \"next\" or \"low\", "
                                  "not \"%s\".", opts->priority);
        if (opts->reply_to_id && !outbox_client_message_id_is_valid(opts->reply_to_id))
                return error_setf(ret_error, -EINVAL, "Option \"reply_to_id\" must be 1 to %d printable ASCII "
                                  "characters.", OUTBOX_CLIENT_MESSAGE_ID_MAX);
        if (opts->client_message_id && !outbox_client_message_id_is_valid(opts->client_message_id))
                return error_setf(ret_error, -EINVAL, "Option \"client_message_id\" must be 1 to %d printable "
                                  "ASCII characters.", OUTBOX_CLIENT_MESSAGE_ID_MAX);
        r = meta_normalize(opts->meta, &req.meta_json, ret_error);
        if (r < 0)
                return r;
        r = destination_parse(to, mesh_slug, peers, n_peers, topics, n_topics, &req.destination, ret_error);
        if (r < 0)
                return r;

        if (opts->client_message_id)
                req.client_message_id = strdup(opts->client_message_id);
        else {
                char id[ULID_MAX];
                r = ulid_new(now, id);
                if (r < 0)
                        return r;
                req.client_message_id = strdup(id);
        }
        req.body_size = strlen(message);
        req.body = strdup(message);
        req.reply_to = opts->reply_to_id ? strdup(opts->reply_to_id) : NULL;
        if (!req.client_message_id || !req.body || (opts->reply_to_id && !req.reply_to))
                return -ENOMEM;

        frame = wire_send_frame_size(req.client_message_id, req.destination.target_spec, req.priority,
                                     req.reply_to, req.body_size, streq(req.destination.kind, "dm"));
        if (frame > WIRE_FRAME_MAX)
                return error_setf(ret_error, -EMSGSIZE, "The message is too large: its frame would be %zu bytes, "
                                  "the broker accepts at most %d. Shorten it by %zu bytes or more.", frame,
                                  WIRE_FRAME_MAX, (frame - WIRE_FRAME_MAX) * 3 / 4 + 1);

        r = request_fingerprint(&(RequestFingerprintInput) {
                                        .kind = req.destination.kind,
                                        .ref = req.destination.ref,
                                        .reply_to = req.reply_to,
                                        .priority = req.priority,
                                        .meta_json = req.meta_json,
                                        .body = req.body,
                                        .body_size = req.body_size,
                                },
                                req.fingerprint, &why);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_setf(ret_error, -EINVAL, "%s", strna(why));

        *ret = req;
        req = (SendRequest) { 0 };
        return 0;
}
