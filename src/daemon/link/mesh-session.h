/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The daemon's presence in one mesh (DECISIONS §3): an ed25519 session keypair and a stable
 * sessionId, persisted so that restarts and reconnects come back as the same peer instead of
 * leaving ghosts behind. One file per mesh,
 *
 *   <state_dir>/sessions/<hex SHA-256 of mesh_id>.json     (directory 0700, file 0600)
 *   {"schema_version":1,"session_id":"claudemeshd-<32 hex>","secret_key":"<128 hex>"}
 *
 * where secret_key is libsodium's seed‖pk. The public key is derived, never stored.
 */

#include <json-c/json.h>
#include <stdint.h>

#define MESH_SESSION_SCHEMA_VERSION 1
#define MESH_SESSION_ID_PREFIX "claudemeshd-"

typedef struct MeshSession {
        char session_id[64];            /* "claudemeshd-" + 32 lowercase hex */
        uint8_t public_key[32];
        char public_key_hex[65];        /* lowercase, as the hello's sessionPubkey wants it */
        uint8_t secret_key[64];         /* seed‖pk; wiped by mesh_session_done() */
} MeshSession;

/* Loads the session of mesh_id (opaque text from config.json), creating it when missing. A
 * malformed file, or one whose secret key does not hold together, is renamed to
 * "<file>.malformed-<unix ts>", logged and replaced by a new session; a file mode other than
 * 0600 is logged and fixed. Errors: -EINVAL for an empty mesh_id, -EIO when libsodium cannot
 * start, -ENOMEM, or what creating the directory or reading, setting aside or writing the file
 * failed with. */
int mesh_session_load(const char *state_dir, const char *mesh_id, MeshSession *ret);

/* Wipes s (sodium_memzero). */
void mesh_session_done(MeshSession *s);

/*
 * Our profile in one mesh (what SetProfile set), kept so that it survives reconnects and
 * restarts: the broker forgets it with the connection. Beside the session file,
 *
 *   <state_dir>/sessions/<hex SHA-256 of mesh_id>.profile.json     (0600, written atomically)
 *   {"schema_version":1,"summary":"…","status":"idle|working|dnd","visible":true,
 *    "profile":{"avatar":"…","title":"…","bio":"…","capabilities":["…"]}}
 *
 * every member but schema_version optional.
 */

/* The profile of mesh_id without schema_version, or *ret NULL when none was saved. A file that is
 * not exactly that (unknown members, wrong types, an unknown status, NUL in a string, more than
 * 64 KiB, trailing data) is renamed to "<file>.malformed-<unix ts>", logged, and taken as none. */
int mesh_profile_load(const char *state_dir, const char *mesh_id, json_object **ret);
/* Writes profile (the form mesh_profile_load() returns); -EINVAL when it is not one. */
int mesh_profile_save(const char *state_dir, const char *mesh_id, json_object *profile);
