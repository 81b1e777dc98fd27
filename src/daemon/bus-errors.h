/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Named errors of org.claudemesh.Daemon1; each is documented in org.claudemesh.Daemon1(5). */
#define CM_ERROR_PREFIX "org.claudemesh.Daemon1.Error."
#define CM_ERROR_AUTHORIZATION_UNAVAILABLE CM_ERROR_PREFIX "AuthorizationUnavailable"
#define CM_ERROR_CONFIG_INVALID            CM_ERROR_PREFIX "ConfigInvalid"
#define CM_ERROR_HOST_FINGERPRINT_UNAVAILABLE CM_ERROR_PREFIX "HostFingerprintUnavailable"
#define CM_ERROR_STORAGE                   CM_ERROR_PREFIX "StorageFailure"
#define CM_ERROR_STORAGE_FULL              CM_ERROR_PREFIX "StorageFull"
#define CM_ERROR_OUTBOX_UNAVAILABLE        CM_ERROR_PREFIX "OutboxUnavailable"
#define CM_ERROR_IDEMPOTENCY_CONFLICT      CM_ERROR_PREFIX "IdempotencyConflict"
#define CM_ERROR_INVALID_ARGUMENT          CM_ERROR_PREFIX "InvalidArgument"
#define CM_ERROR_NO_SUCH_MESH              CM_ERROR_PREFIX "NoSuchMesh"
#define CM_ERROR_MESH_UNAVAILABLE          CM_ERROR_PREFIX "MeshUnavailable"
#define CM_ERROR_UNKNOWN_PEER              CM_ERROR_PREFIX "UnknownPeer"
#define CM_ERROR_AMBIGUOUS_PEER            CM_ERROR_PREFIX "AmbiguousPeer"
#define CM_ERROR_PAYLOAD_TOO_LARGE         CM_ERROR_PREFIX "PayloadTooLarge"
#define CM_ERROR_NO_SUCH_MESSAGE           CM_ERROR_PREFIX "NoSuchMessage"
#define CM_ERROR_NOT_REQUEUEABLE           CM_ERROR_PREFIX "NotRequeueable"
#define CM_ERROR_CLIENT_MESSAGE_ID_IN_USE  CM_ERROR_PREFIX "ClientMessageIdInUse"
#define CM_ERROR_NOT_CONNECTED             CM_ERROR_PREFIX "NotConnected"
