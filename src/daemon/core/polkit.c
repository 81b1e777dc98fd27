/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "caller.h"
#include "log.h"
#include "macro.h"
#include "message-ids.h"
#include "polkit.h"
#include "time-util.h"

#define POLKIT_TIMEOUT_USEC             (25 * USEC_PER_SEC)
/* An authentication dialog waits for a human. */
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (300 * USEC_PER_SEC)
#define POLKIT_FLAG_ALLOW_USER_INTERACTION 1u

const PolkitAction polkit_actions[] = {
        { POLKIT_ACTION_SEND, true },
        { POLKIT_ACTION_READ, true },
        { POLKIT_ACTION_MANAGE_OUTBOX, true },
        { POLKIT_ACTION_SET_PROFILE, true },
        { POLKIT_ACTION_RECONNECT, true },
        { POLKIT_ACTION_RELOAD, true },
        { POLKIT_ACTION_ACCEPT_HOST, false },
        { NULL, false },
};

typedef struct PolkitQuery PolkitQuery;
struct PolkitQuery {
        PolkitRegistry *registry;
        PolkitQuery *next;
        sd_bus_message *call; /* the bus form: re-dispatched when answered */
        PolkitDone done;      /* the callback form */
        void *userdata;
        const PolkitAction *action;
        uid_t caller_uid;
        bool interactive;
        usec_t timeout;       /* 0: the default for the kind of call */
        sd_bus_slot *slot;
        bool answered;
        int result;         /* 1 authorized, < 0 refused */
        CmError error;      /* set when result < 0 */
};

struct PolkitRegistry {
        sd_event *event;
        CallerCache *callers;
        sd_bus *system_bus;
        usec_t system_bus_failed_at; /* CLOCK_MONOTONIC of the last failed connect, or 0 */
        PolkitQuery *queries;
};

const PolkitAction *polkit_action_find(const char *id) {
        for (const PolkitAction *a = polkit_actions; a->id; a++)
                if (streq(a->id, id))
                        return a;
        return NULL;
}

int polkit_registry_new(sd_event *event, PolkitRegistry **ret) {
        PolkitRegistry *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        if (caller_cache_new(&r->callers) < 0) {
                free(r);
                return -ENOMEM;
        }
        r->event = sd_event_ref(event);
        *ret = r;
        return 0;
}

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->call);
        cm_error_done(&q->error);
        free(q);
        return NULL;
}

static void polkit_query_unlink(PolkitQuery *q) {
        for (PolkitQuery **p = &q->registry->queries; *p; p = &(*p)->next)
                if (*p == q) {
                        *p = q->next;
                        break;
                }
}

PolkitRegistry *polkit_registry_free(PolkitRegistry *r) {
        if (!r)
                return NULL;
        while (r->queries) {
                PolkitQuery *q = r->queries;
                r->queries = q->next;
                if (q->done) { /* answered queries of this form are gone already */
                        (void) cm_error_setf(&q->error, CM_ERR_ACCESS_DENIED,
                                             "The daemon stopped before polkit answered for %s", q->action->id);
                        q->done(-ECANCELED, &q->error, q->userdata);
                }
                polkit_query_free(q);
        }
        sd_bus_flush_close_unref(r->system_bus);
        caller_cache_free(r->callers);
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

static int fallback_decision(const PolkitAction *action, uid_t caller_uid, const char *why, CmError *error) {
        if (action->default_yes && caller_uid == getuid())
                return 1;
        return cm_error_setf(error, CM_ERR_AUTHORIZATION_UNAVAILABLE,
                             "Action %s needs polkit, which is not available (%s). Start polkitd "
                             "on the system bus, or call as the daemon's own user for actions "
                             "allowed by default.",
                             action->id, why);
}

static bool polkit_absent_error(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_DISCONNECTED, SD_BUS_ERROR_NO_SERVER,
                                      "org.freedesktop.DBus.Error.Spawn.ServiceNotFound");
}

static void log_denial(const PolkitQuery *q) {
        char uid[32];
        snprintf(uid, sizeof uid, "%u", (unsigned) q->caller_uid);
        log_event(LOG_NOTICE, CM_MESSAGE_ACCESS_DENIED,
                  LOG_FIELDS({ "CLAUDEMESH_ACTION", q->action->id }, { "CLAUDEMESH_CALLER_UID", uid }),
                  "Refused %s for uid %s: %s", q->action->id, uid, cm_error_message(&q->error));
}

/* The (bb…) of CheckAuthorization's answer: is_authorized, is_challenge. */
static int read_check_result(sd_bus_message *reply, int *authorized, int *challenge) {
        int r;

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r < 0)
                return r;
        return sd_bus_message_read(reply, "bb", authorized, challenge);
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = 0, challenge = 0, r;

        q->slot = sd_bus_slot_unref(q->slot);
        q->answered = true;

        if (e && polkit_absent_error(e))
                q->result = fallback_decision(q->action, q->caller_uid, e->message ? e->message : e->name,
                                              &q->error);
        else if (e && sd_bus_error_has_names(e, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_NO_REPLY))
                q->result = cm_error_setf(&q->error, CM_ERR_TIMEOUT,
                                              "polkit did not answer in time for %s; nothing was done, try "
                                              "again", q->action->id);
        else if (e)
                q->result = cm_error_setf(&q->error, CM_ERR_ACCESS_DENIED,
                                              "polkit could not check action %s: %s", q->action->id,
                                              e->message ? e->message : e->name);
        else {
                r = read_check_result(reply, &authorized, &challenge);
                if (r < 0)
                        q->result = cm_error_setf(&q->error, CM_ERR_ACCESS_DENIED,
                                                      "polkit sent an unreadable answer for %s", q->action->id);
                else if (authorized)
                        q->result = 1;
                else if (challenge && !q->interactive)
                        q->result = cm_error_setf(&q->error, CM_ERR_INTERACTIVE_AUTHORIZATION_REQUIRED,
                                                      "Action %s needs authentication; call again allowing "
                                                      "interactive authorization (busctl "
                                                      "--allow-interactive-authorization=yes)",
                                                      q->action->id);
                else
                        q->result = cm_error_setf(&q->error, CM_ERR_ACCESS_DENIED,
                                                      "Not authorized by polkit for action %s", q->action->id);
        }
        if (q->result < 0)
                log_denial(q);

        if (q->done) {
                polkit_query_unlink(q);
                q->done(q->result, q->result < 0 ? &q->error : NULL, q->userdata);
                polkit_query_free(q);
                return 0;
        }

        /* Re-dispatch the parked call: its handler now finds the answer. */
        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->call), q->call);
        if (r < 0) {
                log_error_errno(r, "Failed to re-queue a method call after the polkit answer: %m");
                polkit_query_unlink(q);
                polkit_query_free(q);
        }
        return 0;
}

static int system_bus_get(PolkitRegistry *r, sd_bus **ret) {
        int k;

        if (r->system_bus && sd_bus_is_open(r->system_bus) > 0) {
                *ret = r->system_bus;
                return 0;
        }
        r->system_bus = sd_bus_flush_close_unref(r->system_bus);
        /* Without a system bus every call would try to connect again: retry at most once a second. */
        if (r->system_bus_failed_at > 0 && now_usec(CLOCK_MONOTONIC) < r->system_bus_failed_at + USEC_PER_SEC)
                return -ENOTCONN;
        k = sd_bus_open_system(&r->system_bus);
        if (k < 0) {
                r->system_bus_failed_at = now_usec(CLOCK_MONOTONIC);
                return k;
        }
        r->system_bus_failed_at = 0;
        k = sd_bus_attach_event(r->system_bus, r->event, SD_EVENT_PRIORITY_NORMAL);
        if (k < 0) {
                r->system_bus = sd_bus_flush_close_unref(r->system_bus);
                return k;
        }
        *ret = r->system_bus;
        return 0;
}

static int polkit_query_send(PolkitQuery *q, pid_t pid, uint64_t start_time) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        bool interactive = q->interactive;
        sd_bus *sys;
        int r;

        r = system_bus_get(q->registry, &sys);
        if (r < 0)
                return -ENOTCONN;
        r = sd_bus_message_new_method_call(sys, &m, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sa{sv})sa{ss}us", "unix-process", 3,
                                  "pid", "u", (uint32_t) pid,
                                  "start-time", "t", start_time,
                                  "uid", "i", (int32_t) q->caller_uid,
                                  q->action->id, 0, interactive ? POLKIT_FLAG_ALLOW_USER_INTERACTION : 0u, "");
        if (r < 0)
                return r;
        r = sd_bus_call_async(sys, &q->slot, m, on_check_reply, q,
                              q->timeout > 0 ? q->timeout :
                              interactive ? POLKIT_INTERACTIVE_TIMEOUT_USEC : POLKIT_TIMEOUT_USEC);
        return r < 0 ? -ENOTCONN : 0;
}

/* Sends the query for caller, or decides at once: 1 / < 0 as polkit_verify_async(), 0 queued. */
static int polkit_query_start(PolkitRegistry *r, const PolkitAction *action, const Caller *caller, bool interactive,
                              usec_t timeout, sd_bus_message *call, PolkitDone done, void *userdata,
                              CmError *error) {
        PolkitQuery *q;
        int k;

        q = calloc(1, sizeof(*q));
        if (!q)
                return -ENOMEM;
        *q = (PolkitQuery) {
                .registry = r,
                .call = sd_bus_message_ref(call),
                .done = done,
                .userdata = userdata,
                .action = action,
                .caller_uid = caller->uid,
                .interactive = interactive,
                .timeout = timeout,
                .error = CM_ERROR_NULL,
        };

        k = polkit_query_send(q, caller->pid, caller->start_time);
        if (k < 0) {
                polkit_query_free(q);
                if (k == -ENOTCONN)
                        return fallback_decision(action, caller->uid, "no system bus", error);
                return k;
        }
        q->next = r->queries;
        r->queries = q;
        return 0;
}

int polkit_message_caller(PolkitRegistry *r, sd_bus_message *call, Caller *ret) {
        assert(r);

        return caller_identify(r->callers, call, ret);
}

int polkit_check_async(PolkitRegistry *r, const Caller *caller, bool interactive, usec_t timeout,
                       const char *action_id, PolkitDone done, void *userdata, CmError *error) {
        const PolkitAction *action = polkit_action_find(action_id);

        assert(r);

        if (!action)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED, "Unknown polkit action %s", action_id);
        return polkit_query_start(r, action, caller, interactive, timeout, NULL, done, userdata, error);
}

int polkit_verify_async(PolkitRegistry *r, sd_bus_message *call, const char *action_id, CmError *error) {
        const PolkitAction *action = polkit_action_find(action_id);
        PolkitQuery *q;
        Caller caller;
        int k;

        assert(r);

        if (!action)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED, "Unknown polkit action %s", action_id);

        for (q = r->queries; q; q = q->next)
                if (q->call == call && q->action == action)
                        break;
        if (q) {
                if (!q->answered)
                        return 0;
                polkit_query_unlink(q);
                k = q->result;
                if (k < 0)
                        cm_error_move(error, &q->error);
                polkit_query_free(q);
                return k;
        }

        k = caller_identify(r->callers, call, &caller);
        if (k < 0)
                return cm_error_setf(error, CM_ERR_ACCESS_DENIED,
                                     "Cannot identify the caller for action %s: %s", action->id, STRERROR(k));
        return polkit_query_start(r, action, &caller, sd_bus_message_get_allow_interactive_authorization(call) > 0,
                                  0, call, NULL, NULL, error);
}
