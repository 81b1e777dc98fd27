/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

typedef struct Manager Manager;

/* Subscribes desktop notifications (org.freedesktop.Notifications on the session bus) to the
 * messages the daemon stores: direct messages and mentions of our display name, or every message
 * when config.json says "notifications": {"dmsOnly": false}; none when "enabled" is false or our profile status on
 * that mesh is dnd. Private by default: the sender and the first line, no actions. */
int notify_subscribe(Manager *m);
