/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * keypair-archive.json (DECISIONS §13): the x25519 private keys rotated out of service, kept
 * until expires_at so messages sealed to an old key can still be opened. The file is 0600 and
 * replaced atomically. Loading repairs what it can (expired, duplicate and surplus entries are
 * dropped, a wrong mode is fixed) and sets a malformed file aside instead of refusing to start.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "time-util.h"

#define KEYPAIR_ARCHIVE_FILE "keypair-archive.json"
#define KEYPAIR_ARCHIVE_SCHEMA_VERSION 1
#define KEYPAIR_ARCHIVE_MAX_KEYS 8u

typedef struct ArchivedKey {
        char key_id[64];                /* "k_<ulid>"; letters, digits, '_' and '-' only */
        char ed25519_pubkey[65];        /* lowercase hex, audit only */
        uint8_t x25519_pubkey[32];
        uint8_t x25519_privkey[32];     /* wiped on free */
        usec_t created_at, rotated_out_at, expires_at;
} ArchivedKey;

typedef struct KeypairArchiveReport {
        bool quarantined;
        char *quarantine_path;          /* where a malformed file was moved */
        unsigned dropped_expired, force_expired, rejected_duplicates;
        bool mode_fixed, rewritten, deleted;
} KeypairArchiveReport;

typedef struct KeypairArchive {
        ArchivedKey *keys;              /* in file order */
        size_t n_keys;
        unsigned max_archived_keys;     /* 1..KEYPAIR_ARCHIVE_MAX_KEYS */
} KeypairArchive;

/* An empty archive with the default limit. */
int keypair_archive_new(KeypairArchive **ret);

/* Loads path as of now. A missing file is an empty archive. Expired, duplicate and surplus
 * entries are dropped and the file rewritten (or deleted once empty); a mode other than 0600
 * is fixed; a malformed file is renamed to "<path>.malformed-<unix ts>" and an empty archive
 * returned. Each of these is logged and counted in ret_report (may be NULL; release it with
 * keypair_archive_report_done()). A failed rewrite is logged, not returned: the archive in
 * memory is still right. Errors: the file cannot be read (-EACCES, -EBADF for a non-regular
 * file, ...) or set aside, -ENOMEM. */
int keypair_archive_load(const char *path, usec_t now, KeypairArchive **ret, KeypairArchiveReport *ret_report);

/* Writes a (0600, atomically); an archive without keys deletes the file instead. */
int keypair_archive_save(const char *path, const KeypairArchive *a);

/* Appends a copy of key. -EEXIST if its key_id is already archived, -EINVAL if key_id is not
 * valid. Beyond max_archived_keys the oldest entries (by rotated_out_at) are force-expired;
 * returns how many. */
int keypair_archive_add(KeypairArchive *a, const ArchivedKey *key);

KeypairArchive *keypair_archive_free(KeypairArchive *a);     /* NULL-safe, returns NULL */
void keypair_archive_report_done(KeypairArchiveReport *r);

DEFINE_TRIVIAL_CLEANUP_FUNC(KeypairArchive *, keypair_archive_free);
