/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "config-build.h"
#include "inbox.h"

typedef struct Manager Manager;
typedef struct Mesh Mesh;

/* A desktop notification (org.freedesktop.Notifications on the session bus) for a message just
 * stored: direct messages and mentions of our display name, or every message when config.json
 * says "notifications": {"dmsOnly": false}; none when "enabled" is false or our profile status on
 * that mesh is dnd. Private by default: the sender and the first line, no actions. */
#if ENABLE_NOTIFICATIONS
void notify_message(Manager *m, Mesh *mesh, const InboxMessage *im, bool direct);
#else
/* Built with -Dnotifications=disabled. */
static inline void notify_message(Manager *m, Mesh *mesh, const InboxMessage *im, bool direct) {}
#endif
