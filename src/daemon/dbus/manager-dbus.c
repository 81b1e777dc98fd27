/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-errors.h"
#include "bus-methods.h"
#include "config-build.h"
#include "log.h"
#include "manager-store.h"
#include "manager.h"
#include "mesh-link.h"

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
}

static int property_get_host_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", host_fingerprint_state_to_string(m->host_state));
}

static int property_get_host_fingerprint(sd_bus *bus, const char *path, const char *interface,
                                         const char *property, sd_bus_message *reply, void *userdata,
                                         sd_bus_error *error) {
        Manager *m = userdata;
        return sd_bus_message_append(reply, "s", m->host.fingerprint);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        int r;

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_RELOAD, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_reload_config(m, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_accept_host(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Manager *m = userdata;
        int r;

        r = bus_verify_polkit(m->polkit, msg, POLKIT_ACTION_ACCEPT_HOST, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        r = manager_accept_host(m, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return sd_bus_reply_method_return(msg, NULL);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Status", "s", NULL, offsetof(Manager, status), SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostFingerprintState", "s", property_get_host_state, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("HostFingerprint", "s", property_get_host_fingerprint, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ConfigFile", "s", NULL, offsetof(Manager, config_path), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ConfigError", "s", NULL, offsetof(Manager, config_error),
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateDirectory", "s", NULL, offsetof(Manager, state_dir), SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("Send",
                                SD_BUS_ARGS("s", mesh, "s", to, "s", message, "a{sv}", options),
                                SD_BUS_RESULT("s", client_message_id, "s", status, "s", broker_message_id),
                                method_send, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListOutbox", SD_BUS_ARGS("s", mesh, "a{sv}", filter),
                                SD_BUS_RESULT("aa{sv}", rows), method_list_outbox, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Requeue", SD_BUS_ARGS("s", row_id, "a{sv}", options),
                                SD_BUS_RESULT("s", new_row_id, "s", new_client_message_id), method_requeue,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListInbox", SD_BUS_ARGS("s", mesh, "a{sv}", filter),
                                SD_BUS_RESULT("aa{sv}", messages), method_list_inbox, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("MarkRead", SD_BUS_ARGS("s", mesh), SD_BUS_NO_RESULT, method_mark_read,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPeers", SD_BUS_ARGS("s", mesh), SD_BUS_RESULT("aa{sv}", peers),
                                method_list_peers, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SetProfile", SD_BUS_ARGS("s", mesh, "a{sv}", profile), SD_BUS_NO_RESULT,
                                method_set_profile, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reconnect", SD_BUS_ARGS("s", mesh), SD_BUS_NO_RESULT, method_reconnect,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AcceptHost", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_accept_host,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Delivered",
                                SD_BUS_ARGS("s", mesh, "s", client_message_id, "s", broker_message_id), 0),
        SD_BUS_SIGNAL_WITH_ARGS("SendFailed", SD_BUS_ARGS("s", mesh, "s", client_message_id, "s", reason), 0),
        SD_BUS_SIGNAL_WITH_ARGS("MessageReceived", SD_BUS_ARGS("s", mesh, "a{sv}", message), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PeerJoined", SD_BUS_ARGS("s", mesh, "a{sv}", peer), 0),
        SD_BUS_SIGNAL_WITH_ARGS("PeerLeft", SD_BUS_ARGS("s", mesh, "a{sv}", peer), 0),
        SD_BUS_VTABLE_END,
};

static int emit_message_received(Manager *m, Mesh *mesh, const InboxMessage *im) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &s, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, "MessageReceived");
        if (r < 0)
                return r;
        r = sd_bus_message_append(s, "s", mesh->entry->slug);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(s, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_inbox_message(s, m, im);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(s);
        if (r < 0)
                return r;
        return sd_bus_send(m->bus, s, NULL);
}

static int emit_peer(Manager *m, const char *signal, Mesh *mesh, const MeshLink *l, const Peer *p) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *s = NULL;
        int r;

        r = sd_bus_message_new_signal(m->bus, &s, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, signal);
        if (r < 0)
                return r;
        r = sd_bus_message_append(s, "s", mesh->entry->slug);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(s, 'a', "{sv}");
        if (r < 0)
                return r;
        r = bus_append_peer(s, l, p);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(s);
        if (r < 0)
                return r;
        return sd_bus_send(m->bus, s, NULL);
}

/* The core's events as signals and PropertiesChanged. Only a MessageReceived that did not go out
 * fails (the row is announced again at the next start); the rest are best effort, as D-Bus
 * signals are. */
static int bus_on_event(Manager *m, const Event *e, void *userdata) {
        int r = 0;

        if (!m->bus)
                return e->kind == EVENT_MESSAGE_RECEIVED ? -ENOTCONN : 0;

        switch (e->kind) {
        case EVENT_DELIVERED:
        case EVENT_SEND_FAILED:
                r = sd_bus_emit_signal(m->bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE,
                                       e->kind == EVENT_DELIVERED ? "Delivered" : "SendFailed", "sss",
                                       manager_mesh_slug(m, e->mesh_id), e->client_message_id, e->detail);
                break;
        case EVENT_MESSAGE_RECEIVED:
                r = emit_message_received(m, e->mesh, e->message);
                if (r < 0)
                        return log_warning_errno(r, "Mesh %s: cannot emit MessageReceived for %s: %s",
                                                 e->mesh->entry->slug, e->message->id, STRERROR(r));
                break;
        case EVENT_UNREAD_CHANGED:
                r = sd_bus_emit_properties_changed(m->bus, e->mesh->path, MESH_INTERFACE, "UnreadCount", NULL);
                break;
        case EVENT_PEER_JOINED:
        case EVENT_PEER_LEFT:
                r = emit_peer(m, e->kind == EVENT_PEER_JOINED ? "PeerJoined" : "PeerLeft", e->mesh, e->link, e->peer);
                break;
        case EVENT_MESH_ADDED:
                r = mesh_bus_emit_added(e->mesh);
                break;
        case EVENT_MESH_REMOVED:
                r = mesh_bus_emit_removed(e->mesh);
                break;
        case EVENT_MESH_CHANGED:
                r = mesh_bus_emit_changed(e->mesh);
                break;
        case EVENT_STATUS_CHANGED:
                r = sd_bus_emit_properties_changed(m->bus, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, "Status",
                                                   "ConfigError", "HostFingerprintState", "HostFingerprint", NULL);
                break;
        case EVENT_MESH_STATE: /* PropertiesChanged of EVENT_MESH_CHANGED says it */
        default:
                break;
        }
        if (r < 0)
                log_debug_errno(r, "Cannot emit a D-Bus signal: %s", STRERROR(r));
        return 0;
}

int manager_bus_register(Manager *m) {
        int r;

        r = sd_bus_open_user_with_description(&m->bus, "claudemeshd");
        if (r < 0)
                return log_error_errno(r, "Cannot connect to the session bus (is DBUS_SESSION_BUS_ADDRESS "
                                          "set?): %s", STRERROR(r));
        r = sd_bus_add_object_vtable(m->bus, NULL, DAEMON_OBJECT_PATH, DAEMON_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Cannot register %s: %s", DAEMON_OBJECT_PATH, STRERROR(r));
        r = sd_bus_add_object_manager(m->bus, NULL, DAEMON_OBJECT_PATH);
        if (r < 0)
                return log_error_errno(r, "Cannot register the object manager: %s", STRERROR(r));
        r = mesh_bus_register(m);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Cannot attach the bus to the event loop: %s", STRERROR(r));
        /* Losing the session bus ends the session; leave rather than run unreachable. */
        r = sd_bus_set_exit_on_disconnect(m->bus, true);
        if (r < 0)
                return r;

        r = manager_subscribe(m, bus_on_event, NULL);
        if (r < 0)
                return log_error_errno(r, "Cannot subscribe the bus to the daemon's events: %s", STRERROR(r));

        r = sd_bus_request_name(m->bus, DAEMON_BUS_NAME, 0);
        if (r == -EEXIST)
                return log_error_errno(r, "%s is already owned on this bus: another claudemeshd runs for this "
                                          "session (systemctl --user status claudemesh)", DAEMON_BUS_NAME);
        if (r < 0)
                return log_error_errno(r, "Cannot own %s: %s", DAEMON_BUS_NAME, STRERROR(r));
        return 0;
}
