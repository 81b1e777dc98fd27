/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "delivery.h"
#include "log.h"
#include "nodes.h"

#define CHANNEL "claudemesh_delivery"

static void catch_up(lws_sorted_usec_list_t *sul);

static void schedule_catch_up(Server *s) {
        lws_sul_schedule(s->ctx, 0, &s->catch_up_sul, catch_up,
                         (lws_usec_t) s->opts.catch_up_interval_ms * LWS_US_PER_MS);
}

static int listen_open(Server *s) {
        lws_sock_file_fd_type desc;
        struct lws_vhost *vh = lws_get_vhost_by_name(s->ctx, "default");
        int fd, r;

        r = store_listen_open(s->store, CHANNEL, &fd);
        if (r < 0)
                return r;
        desc.filefd = fd;
        s->listen_wsi = vh ? lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, desc, NULL, NULL) : NULL;
        if (!s->listen_wsi) {
                /* lws closes what it fails to adopt. */
                store_listen_close(s->store);
                return log_warning_errno(-ENOMEM, "Cannot add the LISTEN connection to the event loop.");
        }
        log_info("Listening for the other nodes' deliveries.");
        return 0;
}

int nodes_start(Server *s) {
        if (store_engine(s->store) != STORE_POSTGRESQL)
                return 0;
        s->nodes_on = true;
        /* Without LISTEN the catch-up still delivers; it retries the connection. */
        (void) listen_open(s);
        schedule_catch_up(s);
        return 0;
}

void nodes_stop(Server *s) {
        if (!s->nodes_on)
                return;
        lws_sul_cancel(&s->catch_up_sul);
        s->nodes_on = false;
}

bool nodes_owns(const Server *s, const struct lws *wsi) {
        return s->listen_wsi && wsi == s->listen_wsi;
}

static bool conn_owns(const Conn *c, const char *mesh_id, const char *key) {
        return conn_is_live(c) && c->hello_done && streq(c->mesh_id, mesh_id) &&
               (streq(conn_routing_key(c), key) || streq(c->member_pubkey, key));
}

static void on_notification(const char *payload, void *userdata) {
        Server *s = userdata;
        const char *space = strchr(payload, ' ');
        char mesh_id[256];

        /* "<mesh id> <recipient key>", as nodes_wake() writes it; anything else is ignored. */
        if (!space || (size_t) (space - payload) >= sizeof mesh_id)
                return;
        memcpy(mesh_id, payload, (size_t) (space - payload));
        mesh_id[space - payload] = '\0';
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_owns(c, mesh_id, space + 1))
                        delivery_drain(c);
}

int nodes_readable(Server *s) {
        int r = store_listen_read(s->store, on_notification, s);

        if (r < 0) {
                log_warning("The LISTEN connection was lost (%s); the catch-up delivers until it is back.",
                            store_errmsg(s->store));
                return -1;     /* lws closes the wsi; nodes_wsi_destroyed() drops the connection */
        }
        return 0;
}

void nodes_wsi_destroyed(Server *s, struct lws *wsi) {
        if (!nodes_owns(s, wsi))
                return;
        s->listen_wsi = NULL;
        store_listen_close(s->store);
}

void nodes_wake(Server *s, const char *mesh_id, const char *recipient_key) {
        char payload[512];

        if (!s->nodes_on)
                return;
        if (snprintf(payload, sizeof payload, "%s %s", mesh_id, recipient_key) >= (int) sizeof payload)
                return;
        if (store_notify(s->store, CHANNEL, payload) < 0)
                log_debug("Could not notify the other nodes of a delivery for %s; the catch-up will.", recipient_key);
}

static void catch_up(lws_sorted_usec_list_t *sul) {
        Server *s = container_of(sul, Server, catch_up_sul);

        if (!s->listen_wsi)
                (void) listen_open(s);
        for (Conn *c = s->conns; c; c = c->next)
                if (conn_is_live(c) && c->hello_done)
                        delivery_drain(c);
        schedule_catch_up(s);
}
