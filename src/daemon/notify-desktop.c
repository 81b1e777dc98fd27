/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "manager.h"
#include "notify-desktop.h"

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

/* The first line, cut at BODY_MAX bytes on a UTF-8 character boundary. */
static void first_line(const char *body, char out[static BODY_MAX + 4]) {
        size_t n = strcspn(body, "\n");

        if (n > BODY_MAX) {
                n = BODY_MAX;
                while (n > 0 && ((unsigned char) body[n] & 0xc0) == 0x80)
                        n--;
                snprintf(out, BODY_MAX + 4, "%.*s…", (int) n, body);
        } else
                snprintf(out, BODY_MAX + 4, "%.*s", (int) n, body);
}

void notify_message(Manager *m, Mesh *mesh, const InboxMessage *im, bool direct) {
        const MeshConfig *c = m->config;
        char summary[256], body[BODY_MAX + 4];
        int r;

        if (!m->bus || !c || !c->notify || mesh->dnd)
                return;
        if (c->notify_dms_only && !direct && !(c->display_name && mentions(strempty(im->body), c->display_name)))
                return;

        snprintf(summary, sizeof summary, "%s%s (%s)", direct ? "" : "Mentioned by ", im->sender_name,
                 mesh->entry->slug);
        first_line(strempty(im->body), body);
        /* No reply expected: a missing notification service must not cost anything. */
        r = sd_bus_call_method_async(m->bus, NULL, "org.freedesktop.Notifications", "/org/freedesktop/Notifications",
                                     "org.freedesktop.Notifications", "Notify", NULL, NULL, "susssasa{sv}i",
                                     "claudemesh", (uint32_t) 0, "mail-message-new", summary, body, 0, 2,
                                     "category", "s", "im.received", "desktop-entry", "s", "claudemesh", -1);
        if (r < 0)
                log_debug_errno(r, "Cannot send a desktop notification: %s", STRERROR(r));
}
