/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "inbox.h"

typedef struct Manager Manager;
typedef struct Mesh Mesh;

/* A desktop notification (org.freedesktop.Notifications on the session bus) for a message just
 * stored: direct messages and mentions of our display name, or every message when config.json
 * says "notifications": {"dmsOnly": false}; none when "enabled" is false or our profile status on
 * that mesh is dnd. Private by default: the sender and the first line, no actions. */
void notify_message(Manager *m, Mesh *mesh, const InboxMessage *im, bool direct);
