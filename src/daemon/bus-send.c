/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "log.h"
#include "manager.h"
#include "mesh-link.h"

/* Reads an a{sv} of string options into the given slots; unknown keys and wrong types are refused,
 * so a typo never silently changes what is sent. */
int bus_read_string_options(sd_bus_message *msg, const char *const *keys, const char **values, size_t n_keys,
                            sd_bus_error *error) {
        const char *key, *value;
        int r;

        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                size_t i;

                r = sd_bus_message_read(msg, "s", &key);
                if (r < 0)
                        return r;
                for (i = 0; i < n_keys; i++)
                        if (streq(key, keys[i]))
                                break;
                if (i == n_keys)
                        return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT, "Unknown option \"%s\".", key);
                r = sd_bus_message_enter_container(msg, 'v', "s");
                if (r == -ENXIO)
                        return sd_bus_error_setf(error, CM_ERROR_INVALID_ARGUMENT,
                                                 "Option \"%s\" must be a string (variant type s).", key);
                if (r < 0)
                        return r;
                r = sd_bus_message_read(msg, "s", &value);
                if (r < 0)
                        return r;
                values[i] = value;
                r = sd_bus_message_exit_container(msg);
                if (r >= 0)
                        r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);
}

static int send_error(int r, const char *why, sd_bus_error *error) {
        switch (r) {
        case -ENOENT:
                return sd_bus_error_set(error, CM_ERROR_UNKNOWN_PEER, why);
        case -ENOTUNIQ:
                return sd_bus_error_set(error, CM_ERROR_AMBIGUOUS_PEER, why);
        case -EMSGSIZE:
                return sd_bus_error_set(error, CM_ERROR_PAYLOAD_TOO_LARGE, why);
        case -EINVAL:
                return sd_bus_error_set(error, CM_ERROR_INVALID_ARGUMENT, why);
        default:
                return r;
        }
}

int method_send(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        static const char *const keys[] = { "priority", "meta", "reply_to_id", "client_message_id" };
        Manager *m = userdata;
        const char *mesh_name, *to, *message, *values[ELEMENTSOF(keys)] = { NULL };
        _cleanup_(send_request_done) SendRequest req = { 0 };
        _cleanup_free_ char *why = NULL;
        _cleanup_free_ PeerName *peers = NULL;
        size_t n_peers = 0;
        Mesh *mesh;
        int r;

        r = sd_bus_message_read(msg, "sss", &mesh_name, &to, &message);
        if (r < 0)
                return r;
        r = bus_read_string_options(msg, keys, values, ELEMENTSOF(keys), error);
        if (r < 0)
                return r;
        r = manager_lookup_mesh(m, mesh_name, &mesh, error);
        if (r < 0)
                return r;
        if (mesh->state == MESH_INVALID)
                return sd_bus_error_setf(error, CM_ERROR_MESH_UNAVAILABLE, "Mesh \"%s\" cannot send: %s",
                                         mesh->entry->slug, mesh->last_error);
        if (!m->outbox)
                return sd_bus_error_setf(error, CM_ERROR_OUTBOX_UNAVAILABLE, "%s", m->outbox_error);

        /* Validation writes nothing, so a refused request leaves its id free. */
        if (mesh->link) {
                r = mesh_link_peer_names(mesh->link, &peers, &n_peers);
                if (r < 0)
                        return r;
        }
        r = send_request_prepare(mesh->entry->slug, to, message,
                                 &(SendOptions) {
                                         .priority = values[0],
                                         .meta = values[1],
                                         .reply_to_id = values[2],
                                         .client_message_id = values[3],
                                 },
                                 peers, n_peers, now_usec(CLOCK_REALTIME), &req, &why);
        if (r < 0)
                return send_error(r, why, error);

        r = polkit_verify_async(m->polkit, msg, POLKIT_ACTION_SEND, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = send_queue_add(m->send_queue, msg, mesh->entry->mesh_id, &req);
        return r < 0 ? r : 1;
}
