/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The mesh credentials file, $CLAUDEMESH_CONFIG_DIR/config.json, in the upstream CLI's format
 * (wire-protocol.md §6.2). A file-level problem fails the whole parse; a problem in one entry of
 * "meshes" only marks that entry (error != NULL), so one bad mesh never takes the others down.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macro.h"
#include "time-util.h"

/* Larger than any real config by orders of magnitude; refused before parsing. */
#define MESH_CONFIG_MAX_SIZE ((size_t) 1024 * 1024)

typedef struct MeshEntry {
        size_t index;              /* position in "meshes" */
        char *mesh_id;             /* NULL when that field was invalid */
        char *member_id;
        char *slug;                /* NULL when invalid or a duplicate of an earlier entry */
        char *name;
        char *pubkey_hex;          /* 64 lowercase hex */
        uint8_t pubkey[32];
        uint8_t secret_key[64];    /* ed25519 seed‖pk, checked to match pubkey; wiped on free */
        char *broker_url;          /* ws:// or wss:// */
        usec_t joined_at;          /* 0 when absent */
        char *root_key;            /* optional, NULL when absent */
        int invite_version;        /* 0 when absent */
        char *error;               /* NULL when the entry is valid; else one sentence naming file, mesh and field(s) */
        uint8_t root_key_bytes[32]; /* root_key decoded, valid when root_key != NULL; wiped on free */
        unsigned required_features; /* MESH_FEATURE_* bits the broker must offer (our "requiredFeatures") */
} MeshEntry;

/* Broker features a mesh entry may require (DECISIONS §10, §11). */
typedef enum MeshFeature {
        MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE,
        MESH_FEATURE_CLIENT_ACK,
        MESH_FEATURE_MAX_PAYLOAD,
        _MESH_FEATURE_MAX,
} MeshFeature;

const char *mesh_feature_to_string(MeshFeature f);

typedef struct MeshGroup {
        char *name;
        char *role;                /* NULL when absent */
} MeshGroup;

typedef struct MeshConfig {
        char *path;
        MeshEntry *meshes;
        size_t n_meshes;
        char *display_name;        /* optional top-level fields, NULL when absent */
        char *message_mode;        /* "push" | "inbox" | "off" or NULL */
        size_t n_invalid;          /* entries with error != NULL */
        char *role;                /* optional top-level "role", NULL when absent */
        char *account_id;          /* optional top-level "accountId", NULL when absent */
        MeshGroup *groups;         /* optional top-level "groups" (hello's initial groups) */
        size_t n_groups;
        char *default_mesh;        /* our "defaultMesh": slug or id, NULL when absent */
        bool notify;               /* our "notifications": {"enabled"}: desktop notifications, default on */
        bool notify_dms_only;      /* {"dmsOnly"}: only direct messages and mentions, default on */
} MeshConfig;

/* Parses text. File-level problems (not JSON, not an object, "meshes" not an array, bad
 * "version", bad optional top-level field types) → -EBADMSG/-EINVAL with *ret_error (see the error
 * convention in src/shared/macro.h). Per-entry problems do NOT fail the parse: the entry gets
 * error set (valid entries are still usable). path (not NULL) is used only in messages. Text larger than
 * MESH_CONFIG_MAX_SIZE → -EFBIG, also with *ret_error. */
int mesh_config_parse(const char *text, size_t size, const char *path, MeshConfig **ret, char **ret_error);

/* Reads and parses path. A missing file → 0 and an empty config (that is how upstream treats it).
 * Checks: regular file, not a symlink, owned by expected_uid, mode without group/other bits;
 * the containing directory owned by expected_uid and without group/other bits; size ≤ 1 MiB.
 * Each violation → -EPERM (or the matching errno: -ELOOP for a symlink, -EISDIR/-EBADF for a
 * directory or another non-regular file, -EFBIG when too large) with a sentence saying what to
 * run to fix it (e.g. "chmod 600 /path/config.json"). Unlike the general convention, *ret_error
 * is set on every failure but -ENOMEM, so the daemon can always show why a config was refused. */
int mesh_config_load(const char *path, uid_t expected_uid, MeshConfig **ret, char **ret_error);

MeshConfig *mesh_config_free(MeshConfig *c);   /* returns NULL; accepts NULL */
DEFINE_TRIVIAL_CLEANUP_FUNC(MeshConfig *, mesh_config_free);   /* gives mesh_config_freep */

/* The entry with that slug, or NULL. The entry may be invalid (error != NULL): the caller can
 * then say why that mesh is unusable instead of claiming it does not exist. */
const MeshEntry *mesh_config_find_slug(const MeshConfig *c, const char *slug);

/* Likewise, by meshId; the first entry with that meshId (later duplicates are invalid). */
const MeshEntry *mesh_config_find_mesh_id(const MeshConfig *c, const char *mesh_id);

/* 1-64 of A-Z, a-z, 0-9, '.', '_' and '-': config.json's rule for a mesh slug. */
bool mesh_slug_valid(const char *slug);
