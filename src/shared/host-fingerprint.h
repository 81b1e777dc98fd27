/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Host fingerprint (DECISIONS §14): sha256(host_id 0x00 stable_mac), recorded at first run in
 * <state_dir>/host_fingerprint.json and compared on every start, so an accidentally cloned
 * home directory or VM image is noticed before two daemons share one identity. It detects
 * accidents, not attackers: every input is readable and forgeable by the user.
 */

#define HOST_FINGERPRINT_FILE "host_fingerprint.json"
#define HOST_FINGERPRINT_SCHEMA_VERSION 1

typedef enum HostFingerprintState {
        HOST_FINGERPRINT_FIRST_RUN,
        HOST_FINGERPRINT_MATCH,
        HOST_FINGERPRINT_MISMATCH,
        HOST_FINGERPRINT_UNAVAILABLE,
        _HOST_FINGERPRINT_STATE_MAX,
} HostFingerprintState;

typedef struct HostIdentity {
        char host_id[128];      /* "" when absent */
        char stable_mac[18];    /* "" when absent */
        char fingerprint[65];   /* lowercase hex; "" when both inputs absent */
} HostIdentity;

/* "first-run", "match", "mismatch", "unavailable"; NULL for anything else. */
const char *host_fingerprint_state_to_string(HostFingerprintState s);

/* Hex SHA-256 of host_id 0x00 stable_mac (either may be ""). */
void host_fingerprint_compute(const char *host_id, const char *stable_mac, char ret[static 65]);

/* Reads the identity of the machine under root (NULL or "/" = the real system; anything else
 * is a prefix for /etc, /var and /sys, for tests). host_id: /etc/machine-id, else
 * /var/lib/dbus/machine-id (each only if it is 32 hex characters), else the DMI product UUID.
 * stable_mac: the permanent MAC of the first physical ethernet-type interface, en and eth
 * before wl before anything else, by name within each class. Missing inputs are not errors:
 * they leave the field "" (and with both missing, fingerprint ""). -ENOMEM, -ENAMETOOLONG. */
int host_identity_derive(const char *root, HostIdentity *ret);

/* Compares current with <state_dir>/host_fingerprint.json, writing it on first run.
 * ret_stored gets what the file held (zeroed when none/unreadable). On MISMATCH *ret_reason gets a
 * malloc'd sentence for the user (stored vs current fingerprint prefixes and what changed, or why the
 * file is unreadable, and that `AcceptHost` / `claudemeshctl accept-host` fixes it); otherwise NULL.
 * A file that cannot be read or parsed counts as a MISMATCH and is left untouched. With an
 * unavailable current identity nothing is read or written. Errors: -ENOMEM, or the failure to
 * write the first-run file. */
int host_fingerprint_check(const char *state_dir, const HostIdentity *current, HostFingerprintState *ret_state,
                           HostIdentity *ret_stored, char **ret_reason);

/* Rewrites the file with current (AcceptHost). -ENODATA when current has no fingerprint. */
int host_fingerprint_accept(const char *state_dir, const HostIdentity *current);
