/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "escape.h"
#include "log.h"
#include "manager-send.h"
#include "manager-store.h"
#include "manager.h"
#include "notify-desktop.h"
#include "session.h"

/* Columns shown: a notification is a glance, the inbox has the rest. */
#define SUMMARY_MAX 120
#define BODY_MAX 120
/* Sender threads whose notification id is kept (the least recently used is dropped first). */
#define THREADS_MAX 64

#define NOTIFY_NAME  "org.freedesktop.Notifications"
#define NOTIFY_PATH  "/org/freedesktop/Notifications"
#define NOTIFY_IFACE "org.freedesktop.Notifications"
/* KDE Plasma offers a text field in the notification for the action with this key. */
#define ACTION_REPLY     "inline-reply"
/* Elsewhere "Reply" becomes the ReplyRequested signal, offered only while something that opens a
 * reply dialog on it (the GNOME Shell extension) owns EXTENSION_NAME on the session bus. */
#define ACTION_REPLY_ASK "reply"
#define ACTION_MARK_READ "mark-read"
#define EXTENSION_NAME   "org.claudemesh.ShellExtension"
/* A server that has taken the name may not have its object yet (gnome-shell's
 * org.gnome.Shell.Notifications owns the name first): GetCapabilities is asked again after
 * 250 ms, 500 ms, … this many times. */
#define CAPS_RETRIES 5
#define CAPS_RETRY_USEC (250 * USEC_PER_MSEC)
/* The width of the "how to reply" line: the command is long (a 64-hex key), nothing is cut. */
#define HINT_MAX 400

typedef struct Notifier Notifier;

static void replace_str(char **p, char *s) {
        free(*p);
        *p = s;
}

/* A core refusal with its sentence when there is one. */
static void log_refused(int r, const char *what, const CmError *e) {
        if (e && e->message)
                log_warning("%s: %s", what, e->message);
        else
                log_warning_errno(r, "%s: %m", what);
}

/* One notification we show: the server's id, and what to show once the id is known when a newer
 * message came while Notify was still on its way (so it replaces rather than stacks). */
typedef struct Shown {
        Notifier *notifier;
        uint32_t id;            /* 0: none known */
        sd_bus_slot *call;      /* Notify in flight */
        char *again_summary, *again_body;
        bool again_actions;
} Shown;

/* The notification of one sender on one mesh, and the message a reply answers. */
typedef struct Thread {
        Shown shown;
        char *mesh_id, *sender_pubkey, *message_id;
        uint64_t used;          /* LRU stamp; 0: free */
} Thread;

struct Notifier {
        Manager *manager;
        Caller self;            /* a reply is the user's, sent by the daemon's own process */
        Thread threads[THREADS_MAX];
        uint64_t clock;

        sd_bus_slot *owner_match, *closed_match, *action_match, *replied_match, *caps_call;
        bool caps_actions, caps_inline_reply;
        sd_event_source *caps_retry;
        unsigned caps_attempts;

        sd_bus_slot *extension_match, *extension_call;
        bool extension;         /* EXTENSION_NAME has an owner */

        /* org.freedesktop.login1 on the system bus; NULL when unreachable (taken as unlocked) */
        sd_bus *system;
        sd_bus_slot *lock_match, *lock_call;
        bool locked;
        unsigned locked_count;  /* messages that came while locked */
        Shown count;            /* the "N new messages" notification */
};

static void shown_done(Shown *s) {
        s->call = sd_bus_slot_unref(s->call);
        s->again_summary = mfree(s->again_summary);
        s->again_body = mfree(s->again_body);
        s->id = 0;
}

static void thread_done(Thread *t) {
        shown_done(&t->shown);
        t->mesh_id = mfree(t->mesh_id);
        t->sender_pubkey = mfree(t->sender_pubkey);
        t->message_id = mfree(t->message_id);
        t->used = 0;
}

static Notifier *notifier_free(Notifier *n) {
        if (!n)
                return NULL;
        for (size_t i = 0; i < THREADS_MAX; i++)
                thread_done(&n->threads[i]);
        shown_done(&n->count);
        sd_bus_slot_unref(n->owner_match);
        sd_bus_slot_unref(n->closed_match);
        sd_bus_slot_unref(n->action_match);
        sd_bus_slot_unref(n->replied_match);
        sd_bus_slot_unref(n->caps_call);
        sd_event_source_disable_unref(n->caps_retry);
        sd_bus_slot_unref(n->extension_match);
        sd_bus_slot_unref(n->extension_call);
        sd_bus_slot_unref(n->lock_match);
        sd_bus_slot_unref(n->lock_call);
        sd_bus_flush_close_unref(n->system);
        free(n);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Notifier *, notifier_free);

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

static int shown_send(Shown *s, const char *summary, const char *body, bool actions);

static int on_notify_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_free_ char *summary = NULL, *body = NULL;
        Shown *s = userdata;
        uint32_t id;
        int r;

        s->call = sd_bus_slot_unref(s->call);
        if (sd_bus_message_is_method_error(reply, NULL)) {
                log_debug("Cannot show a desktop notification: %s", strempty(sd_bus_message_get_error(reply)->message));
                return 0;
        }
        r = sd_bus_message_read(reply, "u", &id);
        if (r < 0) {
                log_debug_errno(r, "The notification server answered Notify oddly: %m");
                return 0;
        }
        s->id = id;
        if (!s->again_summary)
                return 0;
        /* A newer message came meanwhile: it replaces this one, now that the id is known. */
        summary = TAKE_PTR(s->again_summary);
        body = TAKE_PTR(s->again_body);
        r = shown_send(s, summary, body, s->again_actions);
        if (r < 0)
                log_debug_errno(r, "Cannot send a desktop notification: %m");
        return 0;
}

/* Notify, replacing s's notification when its id is known; when a Notify for s is still on its
 * way, this one waits for its id. */
static int shown_send(Shown *s, const char *summary, const char *body, bool actions) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        Notifier *n = s->notifier;
        bool reply = actions && n->caps_actions && n->caps_inline_reply;
        bool ask = actions && n->caps_actions && !n->caps_inline_reply && n->extension;
        int r;

        if (s->call) {
                char *a = strdup(summary), *b = strdup(body);
                if (!a || !b) {
                        free(a);
                        free(b);
                        return -ENOMEM;
                }
                replace_str(&s->again_summary, a);
                replace_str(&s->again_body, b);
                s->again_actions = actions;
                return 0;
        }

        r = sd_bus_message_new_method_call(n->manager->bus, &call, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE, "Notify");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "susss", "claudemesh", s->id, "mail-message-new", summary, body);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', "s");
        if (r < 0)
                return r;
        if (reply || ask) {
                r = sd_bus_message_append(call, "ss", reply ? ACTION_REPLY : ACTION_REPLY_ASK, "Reply");
                if (r < 0)
                        return r;
        }
        if (actions && n->caps_actions) {
                r = sd_bus_message_append(call, "ss", ACTION_MARK_READ, "Mark read");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(call, 'a', "{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "{sv}{sv}", "category", "s", "im.received", "desktop-entry", "s",
                                  "claudemesh");
        if (r < 0)
                return r;
        if (reply) {
                r = sd_bus_message_append(call, "{sv}", "x-kde-reply-placeholder-text", "s", "Reply");
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(call);
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "i", -1);
        if (r < 0)
                return r;
        return sd_bus_call_async(n->manager->bus, &s->call, call, on_notify_reply, s, 0);
}

/* The thread of (mesh, sender), taking the least recently used slot for a new one. */
static Thread *thread_get(Notifier *n, const char *mesh_id, const char *sender) {
        Thread *oldest = &n->threads[0];

        for (size_t i = 0; i < THREADS_MAX; i++) {
                Thread *t = &n->threads[i];
                if (t->used != 0 && streq(t->mesh_id, mesh_id) && streq(t->sender_pubkey, sender))
                        return t;
                if (t->used < oldest->used)
                        oldest = t;
        }
        thread_done(oldest);
        oldest->mesh_id = strdup(mesh_id);
        oldest->sender_pubkey = strdup(sender);
        if (!oldest->mesh_id || !oldest->sender_pubkey) {
                thread_done(oldest);
                return NULL;
        }
        oldest->shown.notifier = n;
        oldest->used = ++n->clock;
        return oldest;
}

static Thread *thread_by_id(Notifier *n, uint32_t id) {
        if (id == 0)
                return NULL;
        for (size_t i = 0; i < THREADS_MAX; i++)
                if (n->threads[i].used != 0 && n->threads[i].shown.id == id)
                        return &n->threads[i];
        return NULL;
}

/* While the session is locked: one notification with the count, replaced as it grows. */
static void notify_locked(Notifier *n) {
        _cleanup_free_ char *summary = NULL;
        int r;

        n->locked_count++;
        if (asprintf(&summary, "%u new message%s", n->locked_count, n->locked_count == 1 ? "" : "s") < 0) {
                log_debug_errno(-ENOMEM, "Cannot build a desktop notification: %m");
                return;
        }
        r = shown_send(&n->count, summary, "", false);
        if (r < 0)
                log_debug_errno(r, "Cannot send a desktop notification: %m");
}

/* Whether a notification can take a reply: typed in it, or through the extension's dialog. */
static bool can_reply(const Notifier *n) {
        return n->caps_actions && (n->caps_inline_reply || n->extension);
}

/* The first line of the message and, where the notification cannot take a reply, the command
 * that sends one. The id is the broker's text: escaped as the rest. */
static char *notification_body(const Notifier *n, const Mesh *mesh, const InboxMessage *im, const char *message_id) {
        _cleanup_free_ char *first = NULL, *raw_hint = NULL, *hint = NULL;
        char *body;

        first = escape_text(strempty(im->body), strlen(strempty(im->body)), BODY_MAX, ESCAPE_FIRST_LINE | ESCAPE_MARKUP);
        if (!first)
                return NULL;
        if (can_reply(n))
                return TAKE_PTR(first);
        if (asprintf(&raw_hint, "Reply: claudemeshctl send --mesh %s --reply-to %s %s '…'", mesh->entry->slug,
                     message_id, im->sender_pubkey) < 0)
                return NULL;
        hint = escape_text(raw_hint, strlen(raw_hint), HINT_MAX, ESCAPE_MARKUP);
        if (!hint || asprintf(&body, "%s\n%s", first, hint) < 0)
                return NULL;
        return body;
}

/* session: the registered session whose row this is (NULL for the member's). */
static void notify_message(Notifier *n, Mesh *mesh, const Session *session, const InboxMessage *im, bool direct) {
        _cleanup_free_ char *summary = NULL, *raw_summary = NULL, *body = NULL, *message_id = NULL;
        Manager *m = n->manager;
        const MeshConfig *c = m->config;
        bool mentioned;
        Thread *t;
        int r;

        if (!m->bus || !c || !c->notify || mesh->dnd)
                return;
        mentioned = c->display_name && mentions(strempty(im->body), c->display_name);
        /* A session's rows are its agent's mail, which its MCP server already puts before the agent:
         * a popup for each would be noise (and a broadcast would pop once per session). The user
         * still hears of what names them. */
        if (im->recipient_kind && streq(im->recipient_kind, "session") && !mentioned)
                return;
        if (c->notify_dms_only && !direct && !mentioned)
                return;
        if (n->locked) {
                notify_locked(n);
                return;
        }

        /* The sender's name and the body are the peer's: nothing in them may act on the desktop. The
         * summary is plain text; the body is read as markup, so & < > become entities there. A
         * session's row names the session it reached, or the user would take it for a message to
         * them (it came only for the mention); without its session it reads as the member's would. */
        if (session)
                r = asprintf(&raw_summary, "Mentioned by %s to session %s (%s)", strempty(im->sender_name),
                             session->display_name, mesh->entry->slug);
        else
                r = asprintf(&raw_summary, "%s%s (%s)", direct ? "" : "Mentioned by ", strempty(im->sender_name),
                             mesh->entry->slug);
        if (r < 0) {
                log_debug_errno(-ENOMEM, "Cannot build a desktop notification: %m");
                return;
        }
        summary = escape_text(raw_summary, strlen(raw_summary), SUMMARY_MAX, 0);
        /* A reply answers the id the sender knows: the broker's, else ours (as the MCP server says). */
        message_id = strdup(im->broker_message_id ?: im->id);
        body = message_id ? notification_body(n, mesh, im, message_id) : NULL;
        t = thread_get(n, im->mesh_id, im->sender_pubkey);
        if (!summary || !body || !message_id || !t) {
                log_debug_errno(-ENOMEM, "Cannot build a desktop notification: %m");
                return;
        }
        t->used = ++n->clock;
        replace_str(&t->message_id, TAKE_PTR(message_id));
        r = shown_send(&t->shown, summary, body, true);
        if (r < 0)
                log_debug_errno(r, "Cannot send a desktop notification: %m");
}

static int notify_on_event(Manager *m, const Event *e, void *userdata) {
        if (e->kind == EVENT_MESSAGE_RECEIVED)
                notify_message(userdata, e->mesh, e->session, e->message, e->direct);
        return 0;
}

static int query_caps(Notifier *n);

static int on_caps_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Notifier *n = userdata;
        int r;

        n->caps_retry = sd_event_source_disable_unref(n->caps_retry);
        r = query_caps(n);
        if (r < 0)
                log_debug_errno(r, "Cannot ask the notification server for its capabilities: %m");
        return 0;
}

static int on_caps(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *cap;
        int r;

        n->caps_call = sd_bus_slot_unref(n->caps_call);
        n->caps_actions = n->caps_inline_reply = false;
        if (sd_bus_message_is_method_error(reply, NULL)) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);

                /* No server (yet): plain notifications until one takes the name. A server that has
                 * the name but not its object yet is asked again, a few times. */
                log_debug("No notification capabilities: %s", strempty(e->message));
                if (sd_bus_error_has_name(e, SD_BUS_ERROR_SERVICE_UNKNOWN) ||
                    sd_bus_error_has_name(e, SD_BUS_ERROR_NAME_HAS_NO_OWNER) || n->caps_attempts >= CAPS_RETRIES)
                        return 0;
                r = sd_event_add_time_relative(n->manager->event, &n->caps_retry, CLOCK_MONOTONIC,
                                               CAPS_RETRY_USEC << n->caps_attempts, 0, on_caps_retry, n);
                if (r < 0)
                        log_debug_errno(r, "Cannot ask the notification server again: %m");
                n->caps_attempts++;
                return 0;
        }
        r = sd_bus_message_enter_container(reply, 'a', "s");
        if (r < 0)
                goto oddly;
        while ((r = sd_bus_message_read(reply, "s", &cap)) > 0) {
                if (streq(cap, "actions"))
                        n->caps_actions = true;
                else if (streq(cap, "inline-reply"))
                        n->caps_inline_reply = true;
        }
        if (r < 0)
                goto oddly;
        log_debug("Notification server: actions %s, inline reply %s", n->caps_actions ? "yes" : "no",
                  n->caps_inline_reply ? "yes" : "no");
        return 0;
oddly:
        n->caps_actions = n->caps_inline_reply = false;
        log_debug_errno(r, "The notification server answered GetCapabilities oddly: %m");
        return 0;
}

static int query_caps(Notifier *n) {
        n->caps_call = sd_bus_slot_unref(n->caps_call);
        return sd_bus_call_method_async(n->manager->bus, &n->caps_call, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE,
                                        "GetCapabilities", on_caps, n, NULL);
}

/* A new notification server knows none of our ids and may offer other capabilities. */
static int on_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        int r;

        for (size_t i = 0; i < THREADS_MAX; i++)
                thread_done(&n->threads[i]);
        shown_done(&n->count);
        n->caps_actions = n->caps_inline_reply = false;
        n->caps_retry = sd_event_source_disable_unref(n->caps_retry);
        n->caps_attempts = 0;
        r = query_caps(n);
        if (r < 0)
                log_debug_errno(r, "Cannot ask the notification server for its capabilities: %m");
        return 0;
}

static int on_extension_owner(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        n->extension = new_owner[0] != '\0';
        log_debug("The GNOME Shell extension is %s", n->extension ? "there" : "gone");
        return 0;
}

static int on_extension_has_owner(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        int has = false;

        n->extension_call = sd_bus_slot_unref(n->extension_call);
        if (sd_bus_message_is_method_error(reply, NULL) || sd_bus_message_read(reply, "b", &has) < 0)
                return 0;
        n->extension = has;
        return 0;
}

/* The match goes out before NameHasOwner, so no change of owner falls between the two. */
static int watch_extension(Notifier *n) {
        int r;

        r = sd_bus_add_match_async(n->manager->bus, &n->extension_match,
                                   "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                   "member='NameOwnerChanged',arg0='" EXTENSION_NAME "'",
                                   on_extension_owner, NULL, n);
        if (r < 0)
                return r;
        return sd_bus_call_method_async(n->manager->bus, &n->extension_call, "org.freedesktop.DBus",
                                        "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner",
                                        on_extension_has_owner, n, "s", EXTENSION_NAME);
}

static int on_closed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        uint32_t id, reason;
        Thread *t;

        if (sd_bus_message_read(msg, "uu", &id, &reason) < 0)
                return 0;
        t = thread_by_id(n, id);
        if (t)
                thread_done(t);
        if (id != 0 && n->count.id == id)
                shown_done(&n->count);
        return 0;
}

static int on_action(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Notifier *n = userdata;
        const char *key;
        uint32_t id;
        Thread *t;
        int r;

        if (sd_bus_message_read(msg, "us", &id, &key) < 0)
                return 0;
        t = thread_by_id(n, id);
        if (!t)
                return 0; /* another program's notification */
        if (streq(key, ACTION_REPLY_ASK)) {
                /* The daemon cannot know which terminal or window the user wants: whoever owns
                 * EXTENSION_NAME opens its dialog on the signal. */
                if (!t->message_id)
                        return 0;
                (void) manager_emit(n->manager, &(Event) { .kind = EVENT_REPLY_REQUESTED,
                                                           .mesh_id = t->mesh_id,
                                                           .message_id = t->message_id,
                                                           .sender = t->sender_pubkey });
                return 0;
        }
        if (!streq(key, ACTION_MARK_READ))
                return 0; /* the reply field opening */
        r = manager_mark_read(n->manager, t->mesh_id, &e);
        if (r < 0)
                log_refused(r, "Cannot mark the mesh read from its notification", &e);
        return 0;
}

static void on_reply_sent(const SendRequest *req, const OutboxAcceptResult *res, int result, const CmError *error,
                          void *userdata) {
        if (result < 0)
                log_refused(result, "The reply typed in a notification was not queued", error);
        else
                log_debug("Queued the reply typed in a notification as %s", req->client_message_id);
}

static int on_replied(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        Notifier *n = userdata;
        const char *text;
        uint32_t id;
        Thread *t;
        int r;

        if (sd_bus_message_read(msg, "us", &id, &text) < 0)
                return 0;
        t = thread_by_id(n, id);
        if (!t || text[0] == '\0' || !t->message_id)
                return 0;
        /* The Send path as the bus method takes it: validation (size, UTF-8), polkit, the outbox. */
        r = manager_send(n->manager,
                         &(SendCall) {
                                 .caller = &n->self,
                                 .mesh = t->mesh_id,
                                 .to = t->sender_pubkey,
                                 .message = text,
                                 .options.reply_to_id = t->message_id,
                         },
                         on_reply_sent, NULL, &e);
        if (r < 0)
                log_refused(r, "The reply typed in a notification was refused", &e);
        return 0;
}

static int on_locked_hint(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        int locked = false, r;

        n->lock_call = sd_bus_slot_unref(n->lock_call);
        if (sd_bus_message_is_method_error(reply, NULL))
                log_debug("Cannot read the session's LockedHint, taking it as unlocked: %s",
                          strempty(sd_bus_message_get_error(reply)->message));
        else {
                r = sd_bus_message_read(reply, "v", "b", &locked);
                if (r < 0) {
                        log_debug_errno(r, "logind answered LockedHint oddly, taking it as unlocked: %m");
                        locked = false;
                }
        }
        if (n->locked && !locked)
                n->locked_count = 0; /* the next lock counts anew */
        n->locked = locked;
        return 0;
}

/* session/auto is the caller's session or, for a user service outside any, the user's display
 * session. Its PropertiesChanged come from the session's own path, so any session's change has it
 * read again. */
static int query_locked(Notifier *n) {
        n->lock_call = sd_bus_slot_unref(n->lock_call);
        return sd_bus_call_method_async(n->system, &n->lock_call, "org.freedesktop.login1",
                                        "/org/freedesktop/login1/session/auto", "org.freedesktop.DBus.Properties",
                                        "Get", on_locked_hint, n, "ss", "org.freedesktop.login1.Session",
                                        "LockedHint");
}

/* Whether a PropertiesChanged names LockedHint, changed or invalidated: IdleHint and the others
 * change far more often and say nothing about the lock. */
static int names_locked_hint(sd_bus_message *msg) {
        const char *name;
        int r;

        r = sd_bus_message_skip(msg, "s");
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(msg, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sv")) > 0) {
                r = sd_bus_message_read(msg, "s", &name);
                if (r < 0)
                        return r;
                if (streq(name, "LockedHint"))
                        return 1;
                r = sd_bus_message_skip(msg, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(msg);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(msg, 'a', "s");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(msg, "s", &name)) > 0)
                if (streq(name, "LockedHint"))
                        return 1;
        return r;
}

static int on_session_changed(sd_bus_message *msg, void *userdata, sd_bus_error *ret_error) {
        Notifier *n = userdata;
        int r;

        r = names_locked_hint(msg);
        if (r == 0)
                return 0;
        if (r < 0)
                log_debug_errno(r, "logind sent an odd PropertiesChanged, reading LockedHint again: %m");
        r = query_locked(n);
        if (r < 0)
                log_debug_errno(r, "Cannot read the session's LockedHint: %m");
        return 0;
}

static int watch_lock(Notifier *n) {
        int r;

        r = sd_bus_open_system(&n->system);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(n->system, n->manager->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* The match goes out before the first Get, so no change falls between the two. */
        r = sd_bus_add_match_async(n->system, &n->lock_match,
                                   "type='signal',sender='org.freedesktop.login1',"
                                   "interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',"
                                   "arg0='org.freedesktop.login1.Session'",
                                   on_session_changed, NULL, n);
        if (r < 0)
                return r;
        return query_locked(n);
}

static int on_loop_exit(sd_event_source *s, void *userdata) {
        Notifier *n = userdata;

        manager_unsubscribe(n->manager, notify_on_event, n);
        notifier_free(n);
        return 0;
}

/* Our own process as a caller: SO_PEERCRED of a socket pair names the process that made it. */
static int caller_self(Caller *ret) {
        int fds[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
                return -errno;
        r = caller_from_socket(fds[0], ret);
        (void) close(fds[0]);
        (void) close(fds[1]);
        return r;
}

int notify_subscribe(Manager *m) {
        _cleanup_(notifier_freep) Notifier *n = NULL;
        int r;

        assert(m);

        if (!m->bus)
                return 0;
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        n->manager = m;
        n->count.notifier = n;
        r = caller_self(&n->self);
        if (r < 0)
                return r;

        r = sd_bus_add_match_async(m->bus, &n->owner_match,
                                   "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                                   "member='NameOwnerChanged',arg0='" NOTIFY_NAME "'",
                                   on_owner_changed, NULL, n);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(m->bus, &n->closed_match, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE,
                                      "NotificationClosed", on_closed, NULL, n);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(m->bus, &n->action_match, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE,
                                      "ActionInvoked", on_action, NULL, n);
        if (r < 0)
                return r;
        r = sd_bus_match_signal_async(m->bus, &n->replied_match, NOTIFY_NAME, NOTIFY_PATH, NOTIFY_IFACE,
                                      "NotificationReplied", on_replied, NULL, n);
        if (r < 0)
                return r;
        r = query_caps(n);
        if (r < 0)
                return r;
        r = watch_extension(n);
        if (r < 0)
                return r;
        r = watch_lock(n);
        if (r < 0) {
                log_debug_errno(r, "Cannot watch the session's lock through logind, taking it as unlocked: %m");
                n->system = sd_bus_flush_close_unref(n->system);
                n->lock_match = sd_bus_slot_unref(n->lock_match);
                n->lock_call = sd_bus_slot_unref(n->lock_call);
        }

        r = manager_subscribe(m, notify_on_event, n);
        if (r < 0)
                return r;
        /* Freed while the manager and its bus are still there; later events are not ours. */
        r = sd_event_add_exit(m->event, NULL, on_loop_exit, n);
        if (r < 0) {
                manager_unsubscribe(m, notify_on_event, n);
                return r;
        }
        TAKE_PTR(n);
        return 0;
}
