/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>

#include "cm-error.h"

#define DBUS_PREFIX "org.claudemesh.Daemon1.Error."

static const struct {
        const char *dbus_name;
        unsigned http_status;
        const char *upstream; /* upstream's error string, where it has one */
        int errnum;           /* what the core function returns with it */
} table[_CM_ERR_MAX] = {
        [CM_ERR_INVALID_ARGUMENT]         = { DBUS_PREFIX "InvalidArgument", 400, NULL, EINVAL },
        [CM_ERR_NO_SUCH_MESH]             = { DBUS_PREFIX "NoSuchMesh", 400, NULL, ENXIO },
        [CM_ERR_UNKNOWN_PEER]             = { DBUS_PREFIX "UnknownPeer", 400, NULL, ENXIO },
        [CM_ERR_AMBIGUOUS_PEER]           = { DBUS_PREFIX "AmbiguousPeer", 400, NULL, ENOTUNIQ },
        [CM_ERR_PAYLOAD_TOO_LARGE]        = { DBUS_PREFIX "PayloadTooLarge", 413, NULL, EMSGSIZE },
        [CM_ERR_NO_SUCH_MESSAGE]          = { DBUS_PREFIX "NoSuchMessage", 404, NULL, ENOENT },
        [CM_ERR_IDEMPOTENCY_CONFLICT]     = { DBUS_PREFIX "IdempotencyConflict", 409, "idempotency_key_reused", EEXIST },
        [CM_ERR_NOT_REQUEUEABLE]          = { DBUS_PREFIX "NotRequeueable", 409, NULL, EBUSY },
        [CM_ERR_CLIENT_MESSAGE_ID_IN_USE] = { DBUS_PREFIX "ClientMessageIdInUse", 409, NULL, EEXIST },
        [CM_ERR_ACCESS_DENIED]            = { "org.freedesktop.DBus.Error.AccessDenied", 403, NULL, EACCES },
        [CM_ERR_INTERACTIVE_AUTHORIZATION_REQUIRED] = {
                "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", 403, NULL, EACCES },
        [CM_ERR_AUTHORIZATION_UNAVAILABLE] = { DBUS_PREFIX "AuthorizationUnavailable", 403, NULL, EACCES },
        [CM_ERR_TIMEOUT]                  = { "org.freedesktop.DBus.Error.Timeout", 503, NULL, ETIMEDOUT },
        [CM_ERR_MESH_UNAVAILABLE]         = { DBUS_PREFIX "MeshUnavailable", 503, NULL, EHOSTDOWN },
        [CM_ERR_OUTBOX_UNAVAILABLE]       = { DBUS_PREFIX "OutboxUnavailable", 503, NULL, EIO },
        [CM_ERR_STORAGE]                  = { DBUS_PREFIX "StorageFailure", 503, NULL, EIO },
        [CM_ERR_STORAGE_FULL]             = { DBUS_PREFIX "StorageFull", 503, NULL, ENOSPC },
        [CM_ERR_NOT_CONNECTED]            = { DBUS_PREFIX "NotConnected", 503, NULL, ENOTCONN },
        [CM_ERR_CONFIG_INVALID]           = { DBUS_PREFIX "ConfigInvalid", 500, NULL, EINVAL },
        [CM_ERR_HOST_FINGERPRINT_UNAVAILABLE] = { DBUS_PREFIX "HostFingerprintUnavailable", 500, NULL, ENODATA },
        [CM_ERR_SESSION_IN_USE]           = { DBUS_PREFIX "SessionInUse", 409, NULL, EBUSY },
        [CM_ERR_TOO_MANY_SESSIONS]        = { DBUS_PREFIX "TooManySessions", 503, NULL, EUSERS },
};

int cm_error_setf(CmError *e, CmErrorCode code, const char *format, ...) {
        va_list ap;

        assert(code > CM_ERR_NONE && code < _CM_ERR_MAX);
        assert(format);

        if (e && !cm_error_is_set(e)) {
                e->code = code;
                va_start(ap, format);
                if (vasprintf(&e->message, format, ap) < 0)
                        e->message = NULL;
                va_end(ap);
        }
        return -table[code].errnum;
}

void cm_error_move(CmError *dst, CmError *src) {
        assert(dst && !cm_error_is_set(dst));
        assert(src);
        *dst = *src;
        *src = CM_ERROR_NULL;
}

void cm_error_done(CmError *e) {
        assert(e);
        free(e->message);
        *e = CM_ERROR_NULL;
}

const char *cm_error_dbus_name(CmErrorCode code) {
        assert(code > CM_ERR_NONE && code < _CM_ERR_MAX);
        return table[code].dbus_name;
}

unsigned cm_error_http_status(CmErrorCode code) {
        assert(code > CM_ERR_NONE && code < _CM_ERR_MAX);
        return table[code].http_status;
}

const char *cm_error_upstream(CmErrorCode code) {
        assert(code > CM_ERR_NONE && code < _CM_ERR_MAX);
        return table[code].upstream;
}

const char *cm_error_message(const CmError *e) {
        assert(cm_error_is_set(e));
        return e->message ? e->message : table[e->code].dbus_name;
}
