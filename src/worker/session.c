/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Session connections: opened and closed by the daemon ("session_open", "session_close"), one
 * per session it registered, each its own presence on the broker. Once open, a session's
 * connection lives exactly like the member's (connection.c). */
#include <assert.h>
#include <stdio.h>

#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "worker.h"

/* "conn" of a session packet, 1…WORKER_SESSIONS_MAX; anything else is logged, answered with
 * "failed" when report is set and the number can be named, and 0 returned. */
static unsigned session_conn(Worker *w, json_object *msg, bool report) {
        json_object *v;
        int64_t id;
        char detail[128];

        if (!json_object_object_get_ex(msg, "conn", &v) || !json_object_is_type(v, json_type_int)) {
                log_warning("Ignoring a \"%s\" packet without an integer conn.", worker_channel_type(msg));
                return 0;
        }
        id = json_object_get_int64(v);
        if (id >= 1 && id <= WORKER_SESSIONS_MAX)
                return (unsigned) id;
        log_warning("Ignoring a \"%s\" packet for conn %lld: sessions are 1…%d.", worker_channel_type(msg),
                    (long long) id, WORKER_SESSIONS_MAX);
        /* conn 0 is the member's: a "failed" for it would be about the member's connection. */
        if (report && id > WORKER_SESSIONS_MAX && id <= UINT32_MAX) {
                snprintf(detail, sizeof detail, "conn %lld is out of range: sessions are 1…%d", (long long) id,
                         WORKER_SESSIONS_MAX);
                worker_send_state(w, (unsigned) id, "failed", detail, -1, 0);
        }
        return 0;
}

void session_open(Worker *w, json_object *msg) {
        _cleanup_(session_config_freep) SessionConfig *s = NULL;
        _cleanup_free_ char *error = NULL;
        unsigned id, open = 0;
        char detail[160];
        Conn *c;
        int r;

        assert(w);
        assert(msg);

        id = session_conn(w, msg, true);
        if (id == 0)
                return;
        if (w->conns[id]) {
                snprintf(detail, sizeof detail, "conn %u is already open", id);
                log_warning("Refusing session_open: %s.", detail);
                worker_send_state(w, id, "failed", detail, -1, 0);
                return;
        }
        /* Bounds the sockets: the open sessions and those still closing. */
        for (size_t i = 1; i < ELEMENTSOF(w->conns); i++)
                open += !!w->conns[i];
        if (open + w->n_closing >= WORKER_SESSIONS_MAX + CLOSING_MAX) {
                log_warning("Refusing session_open for conn %u: %u connections still closing.", id, w->n_closing);
                worker_send_state(w, id, "failed", "too many session connections still closing; try again", -1, 0);
                return;
        }
        r = session_config_from_open(msg, &s, &error);
        if (r < 0) {
                if (error)
                        log_warning("Refusing session_open for conn %u: %s.", id, error);
                else
                        log_warning_errno(r, "Refusing session_open for conn %u: %m", id);
                worker_send_state(w, id, "failed", error ? error : "cannot open the session connection", -1, 0);
                return;
        }
        r = conn_new(w, id, s, &c);
        if (r < 0) {
                log_error_errno(r, "Cannot open the session connection %u: %m", id);
                worker_send_state(w, id, "failed", "cannot open the session connection; see the worker's log", -1, 0);
                return;
        }
        TAKE_PTR(s);
        log_info("conn %u: opening the connection of session %s (%s).", id, c->session->session_id,
                 c->session->session_pubkey);
        connection_start(c);
}

void session_close(Worker *w, json_object *msg) {
        unsigned id;
        Conn *c;

        assert(w);
        assert(msg);

        id = session_conn(w, msg, false);
        if (id == 0)
                return;
        c = w->conns[id];
        if (!c) {
                log_warning("Ignoring session_close for conn %u: not open.", id);
                return;
        }
        w->conns[id] = NULL;
        c->forget = true;
        log_info("conn %u: closing the connection of session %s.", id, c->session->session_id);
        if (!connection_is_live(c) || !c->wsi) {
                c->wsi = NULL;
                conn_release(c);
                return;
        }
        /* The socket goes first, with a proper close frame; session_socket_gone() follows. */
        c->closing_next = w->closing;
        w->closing = c;
        w->n_closing++;
        c->close_is_final = true;
        c->close_code = 1000;
        snprintf(c->close_reason, sizeof c->close_reason, "session closed");
        connection_kill(c, "session closed");
}

void session_socket_gone(Conn *c) {
        Worker *w = c->worker;

        for (Conn **p = &w->closing; *p; p = &(*p)->closing_next)
                if (*p == c) {
                        *p = c->closing_next;
                        w->n_closing--;
                        break;
                }
        conn_release(c);
}
