/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "hex-util.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "mesh-session.h"
#include "secret-util.h"

#define SESSIONS_DIR "sessions"
/* Our file is about 230 bytes; anything near this limit is not one we wrote. */
#define SESSION_FILE_MAX 4096
#define SESSION_ID_HEX_LEN 32

void mesh_session_done(MeshSession *s) {
        if (s)
                sodium_memzero(s, sizeof *s);
}

/* mesh_id is arbitrary text: the hex of its SHA-256 is a file name that cannot collide. */
static int session_path(const char *dir, const char *mesh_id, char **ret) {
        uint8_t digest[crypto_hash_sha256_BYTES];
        char hex[2 * crypto_hash_sha256_BYTES + 1];

        crypto_hash_sha256(digest, (const unsigned char *) mesh_id, strlen(mesh_id));
        sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
        return asprintf(ret, "%s/%s.json", dir, hex) < 0 ? -ENOMEM : 0;
}

/* The sessions directory, created 0700; an existing one that others can enter is tightened. */
static int sessions_dir(const char *state_dir, char **ret) {
        _cleanup_free_ char *dir = NULL;
        struct stat st;
        int r;

        if (asprintf(&dir, "%s/" SESSIONS_DIR, state_dir) < 0)
                return -ENOMEM;
        r = mkdir_parents_mode(dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", dir);
        if (lstat(dir, &st) < 0)
                return log_error_errno(negative_errno(), "Cannot stat %s: %m", dir);
        if (!S_ISDIR(st.st_mode))
                return log_error_errno(-ENOTDIR, "%s is not a directory.", dir);
        if ((st.st_mode & 0077) != 0) {
                r = chmod(dir, 0700) < 0 ? negative_errno() : 0;
                log_warning("Session directory %s has mode %04o, not 0700: %s", dir,
                            (unsigned) (st.st_mode & 07777), r < 0 ? "could not fix it." : "fixed.");
        }
        *ret = TAKE_PTR(dir);
        return 0;
}

/* Fills s from the file text; -EBADMSG with a static *ret_why when it is not a session we wrote. */
static int session_parse(const char *text, size_t size, MeshSession *s, const char **ret_why) {
        _cleanup_(json_tokener_free_wipedp) struct json_tokener *tok = NULL;
        _cleanup_(json_object_put_wipedp) json_object *o = NULL;
        uint8_t seed_pk[crypto_sign_PUBLICKEYBYTES], seed_sk[crypto_sign_SECRETKEYBYTES];
        json_object *v;
        const char *str;
        bool match;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success || !json_object_is_type(o, json_type_object)) {
                *ret_why = "is not a JSON object";
                return -EBADMSG;
        }
        for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                if (!isspace((unsigned char) text[i])) {
                        *ret_why = "has trailing data after the JSON object";
                        return -EBADMSG;
                }

        if (!json_object_object_get_ex(o, "schema_version", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) != MESH_SESSION_SCHEMA_VERSION) {
                *ret_why = "has no schema_version 1";
                return -EBADMSG;
        }

        if (!json_object_object_get_ex(o, "session_id", &v) || !json_object_is_type(v, json_type_string) ||
            !strneq(str = json_object_get_string(v), MESH_SESSION_ID_PREFIX, strlen(MESH_SESSION_ID_PREFIX)) ||
            !hex_string(str + strlen(MESH_SESSION_ID_PREFIX), SESSION_ID_HEX_LEN, HEX_LOWER)) {
                *ret_why = "has no valid session_id (\"" MESH_SESSION_ID_PREFIX "\" and 32 lowercase hex digits)";
                return -EBADMSG;
        }
        snprintf(s->session_id, sizeof s->session_id, "%s", str);

        if (!json_object_object_get_ex(o, "secret_key", &v) || !json_object_is_type(v, json_type_string) ||
            !hex_string(str = json_object_get_string(v), 2 * crypto_sign_SECRETKEYBYTES, HEX_LOWER) ||
            sodium_hex2bin(s->secret_key, sizeof s->secret_key, str, 2 * crypto_sign_SECRETKEYBYTES, NULL, NULL,
                           NULL) < 0) {
                *ret_why = "has no valid secret_key (128 lowercase hex digits)";
                return -EBADMSG;
        }

        /* The secret key is seed‖pk: the pk half must be the one the seed gives. */
        crypto_sign_seed_keypair(seed_pk, seed_sk, s->secret_key);
        sodium_memzero(seed_sk, sizeof seed_sk);
        match = sodium_memcmp(seed_pk, s->secret_key + crypto_sign_SEEDBYTES, sizeof seed_pk) == 0;
        if (!match) {
                *ret_why = "has a secret_key whose public half does not belong to its seed";
                return -EBADMSG;
        }
        memcpy(s->public_key, seed_pk, sizeof s->public_key);
        sodium_bin2hex(s->public_key_hex, sizeof s->public_key_hex, s->public_key, sizeof s->public_key);
        return 0;
}

static int session_save(const char *path, const MeshSession *s) {
        char secret_hex[2 * crypto_sign_SECRETKEYBYTES + 1], text[256];
        int n, r;

        sodium_bin2hex(secret_hex, sizeof secret_hex, s->secret_key, sizeof s->secret_key);
        n = snprintf(text, sizeof text, "{\"schema_version\":%d,\"session_id\":\"%s\",\"secret_key\":\"%s\"}\n",
                     MESH_SESSION_SCHEMA_VERSION, s->session_id, secret_hex);
        sodium_memzero(secret_hex, sizeof secret_hex);
        r = n > 0 && (size_t) n < sizeof text ? write_file_atomic(path, text, (size_t) n, 0600) : -ENOBUFS;
        sodium_memzero(text, sizeof text);
        return r;
}

static void session_generate(MeshSession *s) {
        uint8_t id[SESSION_ID_HEX_LEN / 2];
        char id_hex[SESSION_ID_HEX_LEN + 1];

        crypto_sign_keypair(s->public_key, s->secret_key);
        sodium_bin2hex(s->public_key_hex, sizeof s->public_key_hex, s->public_key, sizeof s->public_key);
        randombytes_buf(id, sizeof id);
        sodium_bin2hex(id_hex, sizeof id_hex, id, sizeof id);
        snprintf(s->session_id, sizeof s->session_id, MESH_SESSION_ID_PREFIX "%s", id_hex);
}

int mesh_session_load(const char *state_dir, const char *mesh_id, MeshSession *ret) {
        _cleanup_(secret_buffer_done) SecretBuffer file = { 0 };
        _cleanup_(mesh_session_done) MeshSession s = { 0 };
        _cleanup_free_ char *dir = NULL, *path = NULL, *quarantined = NULL;
        const char *why = NULL;
        struct stat st;
        int r;

        if (!mesh_id || !*mesh_id)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;

        r = sessions_dir(state_dir, &dir);
        if (r < 0)
                return r;
        r = session_path(dir, mesh_id, &path);
        if (r < 0)
                return r;

        r = read_full_file(path, SESSION_FILE_MAX, &file.data, &file.size, &st);
        if (r == -EFBIG)
                why = "is implausibly large";
        else if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "Cannot read session file %s of mesh %s: %m", path, mesh_id);
        else if (r >= 0) {
                r = session_parse(file.data, file.size, &s, &why);
                if (r < 0 && r != -EBADMSG)
                        return r;
        }

        if (!why && file.data) {
                if ((st.st_mode & 07777) != 0600) {
                        /* Rewriting replaces the file with a 0600 one holding the same session. */
                        r = session_save(path, &s);
                        log_warning("Session file %s has mode %04o, not 0600%s: %s", path,
                                    (unsigned) (st.st_mode & 07777),
                                    st.st_mode & 0077 ? " (others may have read its secret key)" : "",
                                    r < 0 ? "could not fix it." : "fixed.");
                }
                *ret = s;
                return 0;
        }

        if (why) {
                r = quarantine_file(path, "malformed", &quarantined);
                if (r < 0)
                        return log_error_errno(r, "Session file %s of mesh %s %s, and it cannot be set aside: %m",
                                               path, mesh_id, why);
                log_warning("Session file %s of mesh %s %s; moved it to %s and starting a new session. Until the "
                            "broker drops the old one, peers may see this host twice.",
                            path, mesh_id, why, quarantined);
        }

        mesh_session_done(&s);
        session_generate(&s);
        r = session_save(path, &s);
        if (r < 0)
                return log_error_errno(r, "Cannot write session file %s of mesh %s: %m", path, mesh_id);
        log_info("New session %s (key %s) for mesh %s.", s.session_id, s.public_key_hex, mesh_id);
        *ret = s;
        return 0;
}

#define PROFILE_FILE_MAX 65536 /* the broker's frame limit: a larger profile was never sent */
#define PROFILE_SCHEMA_VERSION 1

static int profile_path(const char *state_dir, const char *mesh_id, char **ret) {
        _cleanup_free_ char *dir = NULL, *session = NULL;
        int r;

        r = sessions_dir(state_dir, &dir);
        if (r < 0)
                return r;
        r = session_path(dir, mesh_id, &session);
        if (r < 0)
                return r;
        /* "<hash>.json" → "<hash>.profile.json" */
        session[strlen(session) - strlen(".json")] = '\0';
        return asprintf(ret, "%s.profile.json", session) < 0 ? -ENOMEM : 0;
}

/* A JSON string member we can hand on: no NUL inside (json-c keeps one as is). */
static bool plain_string(json_object *v) {
        return json_object_is_type(v, json_type_string) &&
               strlen(json_object_get_string(v)) == (size_t) json_object_get_string_len(v);
}

/* NULL when o is a profile as mesh_profile_save() writes it, else why not (static text). */
static const char *profile_check(json_object *o) {
        json_object_object_foreach(o, key, v) {
                if (streq(key, "summary") || streq(key, "status")) {
                        if (!plain_string(v))
                                return "has a summary or status that is not a string";
                        if (streq(key, "status") && !streq(json_object_get_string(v), "idle") &&
                            !streq(json_object_get_string(v), "working") && !streq(json_object_get_string(v), "dnd"))
                                return "has a status other than idle, working or dnd";
                } else if (streq(key, "visible")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                return "has a visible that is not a boolean";
                } else if (streq(key, "profile")) {
                        if (!json_object_is_type(v, json_type_object))
                                return "has a profile that is not an object";
                        json_object_object_foreach(v, field, value) {
                                if (streq(field, "capabilities")) {
                                        if (!json_object_is_type(value, json_type_array))
                                                return "has capabilities that are not an array";
                                        for (size_t i = 0; i < json_object_array_length(value); i++)
                                                if (!plain_string(json_object_array_get_idx(value, i)))
                                                        return "has a capability that is not a string";
                                } else if (streq(field, "avatar") || streq(field, "title") || streq(field, "bio")) {
                                        if (!plain_string(value))
                                                return "has an avatar, title or bio that is not a string";
                                } else
                                        return "has an unknown profile field";
                        }
                } else if (!streq(key, "schema_version"))
                        return "has an unknown member";
        }
        return NULL;
}

int mesh_profile_load(const char *state_dir, const char *mesh_id, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *path = NULL, *text = NULL, *quarantined = NULL;
        const char *why = NULL;
        json_object *v;
        size_t size = 0;
        int r;

        if (!state_dir || !mesh_id || !*mesh_id || !ret)
                return -EINVAL;
        r = profile_path(state_dir, mesh_id, &path);
        if (r < 0)
                return r;
        r = read_full_file(path, PROFILE_FILE_MAX, &text, &size, NULL);
        if (r == -ENOENT) {
                *ret = NULL;
                return 0;
        }
        if (r == -EFBIG)
                why = "is implausibly large";
        else if (r < 0)
                return log_error_errno(r, "Cannot read profile file %s of mesh %s: %m", path, mesh_id);
        else {
                r = json_parse_strict(text, size, &o);
                if (r == -ENOMEM)
                        return r;
                if (r < 0 || !json_object_is_type(o, json_type_object))
                        why = "is not one JSON object in UTF-8";
                else if (!json_object_object_get_ex(o, "schema_version", &v) || !json_object_is_type(v, json_type_int) ||
                         json_object_get_int64(v) != PROFILE_SCHEMA_VERSION)
                        why = "has no schema_version 1";
                else
                        why = profile_check(o);
        }
        if (why) {
                r = quarantine_file(path, "malformed", &quarantined);
                if (r < 0)
                        return log_error_errno(r, "Profile file %s of mesh %s %s, and it cannot be set aside: %m",
                                               path, mesh_id, why);
                log_warning("Profile file %s of mesh %s %s; moved it to %s. Peers see the broker's default "
                            "profile until it is set again.", path, mesh_id, why, quarantined);
                *ret = NULL;
                return 0;
        }
        json_object_object_del(o, "schema_version");
        *ret = TAKE_PTR(o);
        return 0;
}

int mesh_profile_save(const char *state_dir, const char *mesh_id, json_object *profile) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *path = NULL;
        const char *text;
        int r;

        if (!state_dir || !mesh_id || !*mesh_id || !profile || profile_check(profile))
                return -EINVAL;
        r = profile_path(state_dir, mesh_id, &path);
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o || json_object_object_add(o, "schema_version", json_object_new_int(PROFILE_SCHEMA_VERSION)) < 0)
                return -ENOMEM;
        json_object_object_foreach(profile, key, v)
                if (json_object_object_add(o, key, json_object_get(v)) < 0)
                        return -ENOMEM;
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text)
                return -ENOMEM;
        if (strlen(text) + 1 > PROFILE_FILE_MAX)
                return -EMSGSIZE;
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return log_error_errno(r, "Cannot write profile file %s of mesh %s: %m", path, mesh_id);
        return 0;
}
