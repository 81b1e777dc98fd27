/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "config-build.h"

typedef struct Manager Manager;

#if ENABLE_NOTIFICATIONS
/* Subscribes desktop notifications (org.freedesktop.Notifications on the session bus) to the
 * messages the daemon stores: direct messages and mentions of our display name, or every message
 * when config.json says "notifications": {"dmsOnly": false}; none when "enabled" is false or our profile status on
 * that mesh is dnd. Private by default: the sender and the first line. One notification per sender
 * and mesh, replaced by the next message. Where the server lists "actions": "Mark read" (MarkRead
 * of the mesh); where it also lists "inline-reply" (KDE Plasma): "Reply", typed in the
 * notification and sent as Send does, answering the message. While logind says the session is
 * locked (LockedHint), only one "N new messages" notification. Freed when the event loop exits. */
int notify_subscribe(Manager *m);
#else
/* Built with -Dnotifications=disabled. */
static inline int notify_subscribe(Manager *m) {
        return 0;
}
#endif
