/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "caller.h"
#include "cm-error.h"

typedef struct Manager Manager;

/*
 * A session: one agent process with its own identity on one mesh (an ed25519 keypair the daemon
 * holds; the process never sees it). It lives exactly as long as the process that registered it:
 * the daemon watches a pidfd of that process and ends the session when it becomes readable.
 *
 * With a session_id the key is kept, so the same id gets the same key back:
 *
 *   <state_dir>/sessions/<hex SHA-256 of mesh_id NUL session_id>.session-key   (0600, 32-byte seed)
 *
 * Without one the key lives only as long as the session.
 */

#define SESSION_OBJECT_PREFIX "/org/claudemesh/Daemon1/session"
#define SESSIONS_MAX 256          /* per daemon: each holds a pidfd and an object */
#define SESSION_ID_MAX 128
#define SESSION_NAME_MAX 64
#define SESSION_GROUPS_MAX 32
#define SESSION_GROUP_MAX 64
#define SESSION_SUMMARY_MAX 512

typedef struct Session {
        Manager *manager;
        char *id;                 /* the caller's session_id, or a random one */
        char *path;               /* SESSION_OBJECT_PREFIX/<escaped id> */
        char *mesh_id;            /* copies: the mesh entry may be replaced on reload */
        char *mesh_slug;
        char *display_name;
        char *cwd;                /* "" when not given */
        char **groups;
        char *status;             /* idle, working or dnd */
        char *summary;
        Caller owner;             /* the registering process: pid, uid, start time */
        int pidfd;
        sd_event_source *exit_source;
        bool persistent;          /* the key is kept under session_id */
        unsigned conn;            /* its broker connection in the mesh's worker, 1..SESSIONS_MAX; 0: none */
        const char *state;        /* static: connecting, connected, backoff, failed or closed */
        unsigned unread;          /* its rows not yet seen (UnreadCount) */
        char public_key_hex[65];
        uint8_t secret_key[64];   /* seed‖pk; wiped on free */
} Session;

typedef struct SessionRegistration {
        const char *mesh;         /* slug or id, "" for the default mesh */
        const char *display_name; /* NULL: the config's displayName */
        const char *session_id;   /* NULL: a fresh identity, not kept */
        const char *cwd;
        char **groups;
} SessionRegistration;

/* What session_register() checks before polkit is asked: the mesh, the options, the count.
 * InvalidArgument, NoSuchMesh, TooManySessions. */
int session_register_check(Manager *m, const SessionRegistration *reg, CmError *error);

/* Checks the registration (InvalidArgument, NoSuchMesh, SessionInUse, TooManySessions), loads or
 * makes the key (StorageFailure), takes a pidfd of the caller and announces the session
 * (EVENT_SESSION_ADDED). */
int session_register(Manager *m, const SessionRegistration *reg, const Caller *caller, Session **ret,
                     CmError *error);

/* Ends s: EVENT_SESSION_REMOVED, then it is freed. */
void session_end(Session *s, const char *why);
/* Ends the sessions whose mesh id no configured mesh has any more (after a reload). */
void session_end_orphans(Manager *m);
/* Frees every session without announcing (shutdown). */
void session_drop_all(Manager *m);

Session *session_find_by_path(Manager *m, const char *path);

/* AccessDenied unless caller has the session's uid. */
int session_check_owner(const Session *s, const Caller *caller, CmError *error);

/* At start: the queued sends of session keys that are neither kept nor registered (a session
 * without session_id, and the daemon died before they went out) fail with session_ended. */
void session_fail_orphan_sends(Manager *m);
/* The session registered on mesh_id with public key pubkey_hex, or NULL. */
Session *session_find_by_key(Manager *m, const char *mesh_id, const char *pubkey_hex);
/* A new connection state (static text), announced as EVENT_SESSION_CHANGED when it differs. */
void session_set_state(Session *s, const char *state);
/* Counts its unseen rows again and announces UnreadCount when it changed. */
void session_refresh_unread(Session *s);

/* status (idle, working, dnd) and summary, each NULL to keep; EVENT_SESSION_CHANGED. */
int session_set_profile(Session *s, const char *status, const char *summary, CmError *error);
