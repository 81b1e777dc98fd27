/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Named errors of org.claudemesh.Daemon1; each is documented in org.claudemesh.Daemon1(5). */
#define CM_ERROR_PREFIX "org.claudemesh.Daemon1.Error."
#define CM_ERROR_AUTHORIZATION_UNAVAILABLE CM_ERROR_PREFIX "AuthorizationUnavailable"
#define CM_ERROR_CONFIG_INVALID            CM_ERROR_PREFIX "ConfigInvalid"
#define CM_ERROR_HOST_FINGERPRINT_UNAVAILABLE CM_ERROR_PREFIX "HostFingerprintUnavailable"
#define CM_ERROR_STORAGE                   CM_ERROR_PREFIX "StorageFailure"
