/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* org.claudemesh.Session1, one object per registered session under
 * /org/claudemesh/Daemon1/session/, and Daemon1.RegisterSession that makes them. A session is its
 * owner's: callers of another uid neither see the object nor call it. */
#include <string.h>

#include "bus-errors.h"
#include "bus-options.h"
#include "log.h"
#include "manager-dbus.h"
#include "manager-store.h"
#include "manager.h"
#include "session-dbus.h"
#include "strv.h"

/* The session at path if the caller of the message being dispatched may see it. */
static Session *session_for_caller(sd_bus *bus, Manager *m, const char *path) {
        sd_bus_message *call = sd_bus_get_current_message(bus);
        Session *s = session_find_by_path(m, path);
        Caller caller;

        if (!s || !call)
                return s;
        if (polkit_message_caller(m->polkit, call, &caller) < 0 || session_check_owner(s, &caller, NULL) < 0)
                return NULL;
        return s;
}

static int session_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                               sd_bus_error *error) {
        Session *s = session_for_caller(bus, userdata, path);

        if (!s)
                return 0;
        *found = s;
        return 1;
}

static int session_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes,
                                   sd_bus_error *error) {
        _cleanup_strv_free_ char **l = NULL;
        Manager *m = userdata;
        size_t n = 0;

        l = calloc(m->n_sessions + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_sessions; i++) {
                if (!session_for_caller(bus, m, m->sessions[i]->path))
                        continue;
                l[n] = strdup(m->sessions[i]->path);
                if (!l[n])
                        return -ENOMEM;
                n++;
        }
        *nodes = TAKE_PTR(l);
        return 1;
}

static int property_get_pid(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        return sd_bus_message_append(reply, "u", (uint32_t) s->owner.pid);
}

static int property_get_public_key(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        return sd_bus_message_append(reply, "s", s->public_key_hex);
}

static int property_get_groups(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        return sd_bus_message_append_strv(reply, s->groups);
}

/* The caller of a Session1 method, which must be the session's uid. 1 go on, < 0 refused. */
static int session_call(sd_bus_message *msg, Session *s, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Caller caller;
        int r;

        r = polkit_message_caller(s->manager->polkit, msg, &caller);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller: %s",
                                         STRERROR(r));
        r = session_check_owner(s, &caller, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return 1;
}

static int method_session_set_profile(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Session *s = userdata;
        const char *status = NULL, *summary = NULL;
        const BusOption fields[] = {
                { "status", "s", &status },
                { "summary", "s", &summary },
        };
        int r;

        r = bus_read_options(msg, fields, ELEMENTSOF(fields), error);
        if (r < 0)
                return r;
        r = session_call(msg, s, error);
        if (r < 0)
                return r;
        r = bus_verify_polkit(s->manager->polkit, msg, POLKIT_ACTION_SET_PROFILE, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = session_set_profile(s, status, summary, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}

/* Daemon1.Send's contract, from the session's identity: its key seals and its connection sends,
 * and its ids are its own (DECISIONS §17). */
static int method_session_send(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        const char *to, *message;
        int r;

        r = sd_bus_message_read(msg, "ss", &to, &message);
        if (r < 0)
                return r;
        r = session_call(msg, s, error);
        if (r < 0)
                return r;
        return manager_dbus_send(msg, s->manager, s->mesh_id, to, message, s->public_key_hex, error);
}

static int method_session_list_inbox(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        InboxListRequest q = { .mesh = s->mesh_id, .recipient_pubkey = s->public_key_hex };
        int r;

        r = bus_read_inbox_filter(msg, &q, error);
        if (r < 0)
                return r;
        r = session_call(msg, s, error);
        if (r < 0)
                return r;
        return manager_dbus_list_inbox(msg, s->manager, &q, error);
}

static int method_session_mark_read(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        Manager *m = s->manager;
        int r;

        r = session_call(msg, s, error);
        if (r < 0)
                return r;
        if (!m->inbox)
                return sd_bus_error_setf(error, cm_error_dbus_name(CM_ERR_STORAGE), "%s", m->inbox_error);
        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_READ, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = inbox_mark_seen_for(m->inbox, s->public_key_hex, now_usec(CLOCK_REALTIME), NULL);
        if (r < 0)
                return sd_bus_error_setf(error, cm_error_dbus_name(CM_ERR_STORAGE), "Cannot mark the inbox read: %s",
                                         STRERROR(r));
        session_refresh_unread(s);
        return sd_bus_reply_method_return(msg, NULL);
}

/* Only the owner's uid gets here, and ending a session only takes away: no polkit question. */
static int method_session_close(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Session *s = userdata;
        int r;

        r = session_call(msg, s, error);
        if (r < 0)
                return r;
        r = sd_bus_reply_method_return(msg, NULL);
        session_end(s, "closed by its owner");
        return r;
}

/* UnreadCount is read from unread as sd-bus reads a "u": as a uint32_t. */
_Static_assert(sizeof(((Session *) NULL)->unread) == sizeof(uint32_t), "Session.unread is not 32 bits");

static const sd_bus_vtable session_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "s", NULL, offsetof(Session, id), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Mesh", "s", NULL, offsetof(Session, mesh_slug), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("DisplayName", "s", NULL, offsetof(Session, display_name), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PublicKey", "s", property_get_public_key, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Pid", "u", property_get_pid, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Cwd", "s", NULL, offsetof(Session, cwd), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Groups", "as", property_get_groups, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", NULL, offsetof(Session, status), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Summary", "s", NULL, offsetof(Session, summary), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("State", "s", NULL, offsetof(Session, state), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("UnreadCount", "u", NULL, offsetof(Session, unread), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Send", SD_BUS_ARGS("s", to, "s", message, "a{sv}", options),
                                SD_BUS_RESULT("s", client_message_id, "s", status, "s", broker_message_id),
                                method_session_send, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListInbox", SD_BUS_ARGS("a{sv}", filter), SD_BUS_RESULT("aa{sv}", messages),
                                method_session_list_inbox, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkRead", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_session_mark_read,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("MessageReceived", SD_BUS_ARGS("a{sv}", message), 0),
        SD_BUS_METHOD_WITH_ARGS("SetProfile", SD_BUS_ARGS("a{sv}", profile), SD_BUS_NO_RESULT,
                                method_session_set_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Close", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_session_close,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int session_dbus_method_register(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        _cleanup_strv_free_ char **groups = NULL;
        Manager *m = userdata;
        SessionRegistration reg = { .mesh = NULL };
        const BusOption options[] = {
                { "display_name", "s", &reg.display_name },
                { "session_id", "s", &reg.session_id },
                { "cwd", "s", &reg.cwd },
                { "groups", "as", &groups },
        };
        Caller caller;
        Session *s;
        int r;

        assert(msg);
        assert(m);

        r = sd_bus_message_read(msg, "s", &reg.mesh);
        if (r < 0)
                return r;
        r = bus_read_options(msg, options, ELEMENTSOF(options), error);
        if (r < 0)
                return r;
        reg.groups = groups;
        r = session_register_check(m, &reg, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        /* Registering gives the caller an identity to send with: the send action covers it. */
        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_SEND, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = polkit_message_caller(m->polkit, msg, &caller);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller: %s",
                                         STRERROR(r));
        r = session_register(m, &reg, &caller, &s, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, "o", s->path);
}

int session_dbus_register(Manager *m) {
        int r;

        assert(m);

        r = sd_bus_add_fallback_vtable(m->bus, NULL, SESSION_OBJECT_PREFIX, SESSION_INTERFACE, session_vtable,
                                       session_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the session objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, SESSION_OBJECT_PREFIX, session_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register the session enumerator: %m");
        return 0;
}

int session_dbus_on_event(Manager *m, const Event *e) {
        assert(m);
        assert(e);

        switch (e->kind) {
        case EVENT_SESSION_ADDED:
                return sd_bus_emit_interfaces_added(m->bus, e->session->path, SESSION_INTERFACE, NULL);
        case EVENT_SESSION_REMOVED:
                return sd_bus_emit_interfaces_removed(m->bus, e->session->path, SESSION_INTERFACE, NULL);
        case EVENT_SESSION_CHANGED:
                return sd_bus_emit_properties_changed(m->bus, e->session->path, SESSION_INTERFACE, "Status",
                                                      "Summary", "State", "UnreadCount", NULL);
        default:
                return 0;
        }
}

int session_dbus_emit_message(Manager *m, const Session *s, const InboxMessage *im) {
        assert(m);
        assert(s);
        assert(im);

        return bus_emit_inbox_message(m, s->path, SESSION_INTERFACE, NULL, im);
}
