/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "macro.h"

/*
 * The errors a user can act on, for every front-end. Core functions return a negative errno and,
 * where the caller can do something about it, fill a CmError: a code and a sentence saying what
 * is wrong and what to do. One table (cm-error.c) maps each code to its D-Bus error name (each
 * documented in org.claudemesh.Daemon1(5)), its /v1 HTTP status and, where upstream's daemon
 * has one, upstream's error string; the front-ends only look them up.
 */
typedef enum CmErrorCode {
        CM_ERR_NONE = 0,
        CM_ERR_INVALID_ARGUMENT,
        CM_ERR_NO_SUCH_MESH,
        CM_ERR_UNKNOWN_PEER,
        CM_ERR_AMBIGUOUS_PEER,
        CM_ERR_PAYLOAD_TOO_LARGE,
        CM_ERR_NO_SUCH_MESSAGE,
        CM_ERR_IDEMPOTENCY_CONFLICT,
        CM_ERR_NOT_REQUEUEABLE,
        CM_ERR_CLIENT_MESSAGE_ID_IN_USE,
        CM_ERR_ACCESS_DENIED,
        CM_ERR_INTERACTIVE_AUTHORIZATION_REQUIRED,
        CM_ERR_AUTHORIZATION_UNAVAILABLE,
        CM_ERR_TIMEOUT,
        CM_ERR_MESH_UNAVAILABLE,
        CM_ERR_OUTBOX_UNAVAILABLE,
        CM_ERR_STORAGE,
        CM_ERR_STORAGE_FULL,
        CM_ERR_NOT_CONNECTED,
        CM_ERR_CONFIG_INVALID,
        CM_ERR_HOST_FINGERPRINT_UNAVAILABLE,
        CM_ERR_SESSION_IN_USE,
        CM_ERR_TOO_MANY_SESSIONS,
        _CM_ERR_MAX,
} CmErrorCode;

typedef struct CmError {
        CmErrorCode code; /* CM_ERR_NONE: not set */
        char *message;    /* malloc'd sentence; NULL when set without one (out of memory) */
} CmError;

#define CM_ERROR_NULL ((CmError) { .code = CM_ERR_NONE })

/* Sets e (when it is not set yet) and returns the code's negative errno, so a function can
 * `return cm_error_setf(error, CM_ERR_NO_SUCH_MESH, "No mesh \"%s\".", name);`. e may be NULL. */
int cm_error_setf(CmError *e, CmErrorCode code, const char *format, ...) _printf_(3, 4);
/* Moves src into dst (dst must be unset); src is left unset. */
void cm_error_move(CmError *dst, CmError *src);
void cm_error_done(CmError *e);

static inline bool cm_error_is_set(const CmError *e) {
        return e && e->code != CM_ERR_NONE;
}

/* The columns of the table. code must be a set code. */
const char *cm_error_dbus_name(CmErrorCode code);
unsigned cm_error_http_status(CmErrorCode code);
/* Upstream's daemon's error string for the code, or NULL where it has none. */
const char *cm_error_upstream(CmErrorCode code);
/* The sentence, or the D-Bus name when there is none. */
const char *cm_error_message(const CmError *e);
