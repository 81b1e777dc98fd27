/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "escape.h"
#include "log.h"
#include "manager.h"
#include "notify-desktop.h"

/* Columns shown: a notification is a glance, the inbox has the rest. */
#define SUMMARY_MAX 120
#define BODY_MAX 120

/* "@name" in the text, not followed by more of a name */
static bool mentions(const char *body, const char *name) {
        size_t n = strlen(name);

        if (n == 0)
                return false;
        for (const char *p = strchr(body, '@'); p; p = strchr(p + 1, '@'))
                if (strncasecmp(p + 1, name, n) == 0 && !isalnum((unsigned char) p[1 + n]) && p[1 + n] != '_' &&
                    p[1 + n] != '-')
                        return true;
        return false;
}

static void notify_message(Manager *m, Mesh *mesh, const InboxMessage *im, bool direct) {
        _cleanup_free_ char *summary = NULL, *raw_summary = NULL, *body = NULL;
        const MeshConfig *c = m->config;
        int r;

        if (!m->bus || !c || !c->notify || mesh->dnd)
                return;
        if (c->notify_dms_only && !direct && !(c->display_name && mentions(strempty(im->body), c->display_name)))
                return;

        /* The sender's name and the body are the peer's: nothing in them may act on the desktop. The
         * summary is plain text; the body is read as markup, so & < > become entities there. */
        if (asprintf(&raw_summary, "%s%s (%s)", direct ? "" : "Mentioned by ", strempty(im->sender_name),
                     mesh->entry->slug) < 0) {
                log_debug_errno(-ENOMEM, "Cannot build a desktop notification: %m");
                return;
        }
        summary = escape_text(raw_summary, strlen(raw_summary), SUMMARY_MAX, 0);
        body = escape_text(strempty(im->body), strlen(strempty(im->body)), BODY_MAX,
                           ESCAPE_FIRST_LINE | ESCAPE_MARKUP);
        if (!summary || !body) {
                log_debug_errno(-ENOMEM, "Cannot build a desktop notification: %m");
                return;
        }
        /* No reply expected: a missing notification service must not cost anything. */
        r = sd_bus_call_method_async(m->bus, NULL, "org.freedesktop.Notifications", "/org/freedesktop/Notifications",
                                     "org.freedesktop.Notifications", "Notify", NULL, NULL, "susssasa{sv}i",
                                     "claudemesh", (uint32_t) 0, "mail-message-new", summary, body, 0, 2,
                                     "category", "s", "im.received", "desktop-entry", "s", "claudemesh", -1);
        if (r < 0)
                log_debug_errno(r, "Cannot send a desktop notification: %m");
}

static int notify_on_event(Manager *m, const Event *e, void *userdata) {
        if (e->kind == EVENT_MESSAGE_RECEIVED)
                notify_message(m, e->mesh, e->message, e->direct);
        return 0;
}

int notify_subscribe(Manager *m) {
        assert(m);
        return manager_subscribe(m, notify_on_event, NULL);
}
