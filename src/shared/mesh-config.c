/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "error-message.h"
#include "fileio.h"
#include "hex-util.h"
#include "log.h"
#include "mesh-config.h"
#include "secret-util.h"

#define MESH_ID_MAX      128
#define MESH_SLUG_MAX    64
#define MESH_NAME_MAX    256
#define BROKER_URL_MAX   2048

/* Appends one problem to a "; "-separated list, so a message names every bad field at once. */
static int problem_add(char **list, const char *format, ...) _printf_(2, 3);
static int problem_add(char **list, const char *format, ...) {
        _cleanup_free_ char *p = NULL;
        char *joined;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&p, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        if (!*list) {
                *list = TAKE_PTR(p);
                return 0;
        }
        if (asprintf(&joined, "%s; %s", *list, p) < 0)
                return -ENOMEM;
        free(*list);
        *list = joined;
        return 0;
}

static bool mem_is(const char *s, size_t n, const char *literal) {
        return n == strlen(literal) && memcmp(s, literal, n) == 0;
}

/* Ends up in the signed hello string "meshId|memberId|pubkey|timestamp", so no '|'. */
static bool mesh_id_valid(const char *s, size_t n) {
        if (n == 0 || n > MESH_ID_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '|')
                        return false;
        return true;
}

static bool slug_valid(const char *s, size_t n) {
        if (n == 0 || n > MESH_SLUG_MAX)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-'))
                        return false;
        }
        return true;
}

bool mesh_slug_valid(const char *slug) {
        assert(slug);
        return slug_valid(slug, strlen(slug));
}

/* Valid UTF-8 without NUL: these strings end up on D-Bus, which refuses anything else. */
static bool utf8_text_valid(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s, *end = p + n;

        while (p < end) {
                uint32_t c = *p;
                size_t len;

                if (c == 0)
                        return false;
                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        len = 2;
                        c &= 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        len = 3;
                        c &= 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        len = 4;
                        c &= 0x07;
                } else
                        return false;
                if ((size_t) (end - p) < len)
                        return false;
                for (size_t i = 1; i < len; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        c = (c << 6) | (p[i] & 0x3f);
                }
                /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
                if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) || c > 0x10ffff ||
                    (c >= 0xd800 && c <= 0xdfff))
                        return false;
                p += len;
        }
        return true;
}

static bool mesh_name_valid(const char *s, size_t n) {
        return n > 0 && n <= MESH_NAME_MAX && utf8_text_valid(s, n);
}

/* The broker matches pubkey by exact string compare, so only the lowercase form it stores works. */
static bool pubkey_hex_valid(const char *s, size_t n) {
        return n == 2 * crypto_sign_PUBLICKEYBYTES && hex_digits(s, n, HEX_LOWER);
}

static bool port_valid(const char *s, size_t n) {
        unsigned v = 0;

        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned) (s[i] - '0');
        }
        return v >= 1 && v <= 65535;
}

/* ws:// or wss://, a host (name, IPv4 or [IPv6]) with an optional port, then anything but a
 * fragment. Credentials are refused: the URL is logged and shown on the bus. */
static bool broker_url_valid(const char *s, size_t n) {
        size_t host, authority_end, host_end;

        if (n > BROKER_URL_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((uint8_t) s[i] <= ' ' || (uint8_t) s[i] >= 0x7f || s[i] == '#')
                        return false;
        if (n >= 6 && strneq(s, "wss://", 6))
                host = 6;
        else if (n >= 5 && strneq(s, "ws://", 5))
                host = 5;
        else
                return false;

        for (authority_end = host; authority_end < n && s[authority_end] != '/' && s[authority_end] != '?';
             authority_end++)
                if (s[authority_end] == '@')
                        return false;

        if (host < authority_end && s[host] == '[') {
                for (host_end = host + 1; host_end < authority_end && s[host_end] != ']'; host_end++)
                        ;
                if (host_end == authority_end || host_end == host + 1)
                        return false;
                host_end++;
        } else {
                for (host_end = host; host_end < authority_end && s[host_end] != ':'; host_end++)
                        ;
                if (host_end == host)
                        return false;
        }
        if (host_end == authority_end)
                return true;
        return s[host_end] == ':' && port_valid(s + host_end + 1, authority_end - host_end - 1);
}

static bool message_mode_valid(const char *s, size_t n) {
        return mem_is(s, n, "push") || mem_is(s, n, "inbox") || mem_is(s, n, "off");
}

static const char *json_type_article(json_type type) {
        switch (type) {
        case json_type_string:
                return "a string";
        case json_type_int:
                return "an integer";
        case json_type_array:
                return "an array";
        case json_type_object:
                return "an object";
        default:
                return "of another type";
        }
}

/* 1 with *ret set when key is present with that type; 0 when absent (a problem if required) or
 * of another type (always a problem). */
static int field_get(json_object *o, const char *key, json_type type, bool required, json_object **ret,
                     char **problems) {
        json_object *v;
        int r;

        if (!json_object_object_get_ex(o, key, &v)) {
                if (!required)
                        return 0;
                r = problem_add(problems, "%s is missing", key);
                return r < 0 ? r : 0;
        }
        if (!json_object_is_type(v, type)) {
                r = problem_add(problems, "%s must be %s", key, json_type_article(type));
                return r < 0 ? r : 0;
        }
        *ret = v;
        return 1;
}

/* A string field whose value passes check is copied to *ret (1); otherwise a problem saying
 * "<key> must be <rule>" is recorded (0). */
static int field_string(json_object *o, const char *key, bool required, bool (*check)(const char *s, size_t n),
                        const char *rule, char **ret, char **problems) {
        json_object *v;
        const char *s;
        size_t n;
        int r;

        r = field_get(o, key, json_type_string, required, &v, problems);
        if (r <= 0)
                return r;
        s = json_object_get_string(v);
        n = (size_t) json_object_get_string_len(v);
        if (!check(s, n)) {
                r = problem_add(problems, "%s must be %s", key, rule);
                return r < 0 ? r : 0;
        }
        /* Every check refuses NUL, so strdup() copies all n bytes. */
        *ret = strdup(s);
        return *ret ? 1 : -ENOMEM;
}

static int entry_parse_secret_key(MeshEntry *e, json_object *o, char **problems) {
        uint8_t sk[crypto_sign_SECRETKEYBYTES], derived_sk[crypto_sign_SECRETKEYBYTES];
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], derived_pk[crypto_sign_PUBLICKEYBYTES];
        const char *problem = NULL;
        json_object *v;
        const char *s;
        size_t n;
        int r;

        r = field_get(o, "secretKey", json_type_string, true, &v, problems);
        if (r <= 0)
                return r;
        s = json_object_get_string(v);
        n = (size_t) json_object_get_string_len(v);
        if (n != 2 * sizeof sk || !hex_digits(s, n, HEX_ANY_CASE))
                return problem_add(problems, "secretKey must be 128 hex characters");
        /* Without a usable pubkey there is nothing to match; that problem is already recorded. */
        if (!e->pubkey_hex)
                return 0;

        /* Cannot fail: the length and every digit were checked above. */
        (void) sodium_hex2bin(sk, sizeof sk, s, n, NULL, NULL, NULL);
        /* sk is seed‖pk: check the stored public half and, since that half is only a copy, that
         * the seed really derives the pubkey. */
        crypto_sign_ed25519_sk_to_pk(pk, sk);
        crypto_sign_seed_keypair(derived_pk, derived_sk, sk);
        if (sodium_memcmp(pk, e->pubkey, sizeof pk) != 0)
                problem = "secretKey does not match pubkey (its last 32 bytes differ)";
        else if (sodium_memcmp(derived_pk, e->pubkey, sizeof derived_pk) != 0)
                problem = "secretKey does not match pubkey (its seed derives another public key)";
        else
                memcpy(e->secret_key, sk, sizeof sk);
        sodium_memzero(sk, sizeof sk);
        sodium_memzero(derived_sk, sizeof derived_sk);
        return problem ? problem_add(problems, "%s", problem) : 1;
}

static int entry_parse_optionals(MeshEntry *e, json_object *o, char **problems) {
        json_object *v;
        int r;

        r = field_get(o, "joinedAt", json_type_string, false, &v, problems);
        if (r < 0)
                return r;
        if (r > 0 && ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)) ||
                      parse_iso8601(json_object_get_string(v), &e->joined_at) < 0)) {
                r = problem_add(problems, "joinedAt must be an ISO 8601 time such as 2026-05-03T19:24:32.123Z");
                if (r < 0)
                        return r;
        }

        r = field_get(o, "rootKey", json_type_string, false, &v, problems);
        if (r < 0)
                return r;
        if (r > 0) {
                const char *s = json_object_get_string(v), *end = NULL;
                size_t n = (size_t) json_object_get_string_len(v), len = 0;

                if (sodium_base642bin(e->root_key_bytes, sizeof e->root_key_bytes, s, n, NULL, &len, &end,
                                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) < 0 ||
                    len != sizeof e->root_key_bytes || end != s + n) {
                        sodium_memzero(e->root_key_bytes, sizeof e->root_key_bytes);
                        r = problem_add(problems, "rootKey must be 32 bytes in unpadded base64url (43 characters)");
                        if (r < 0)
                                return r;
                } else {
                        e->root_key = strdup(s);
                        if (!e->root_key)
                                return -ENOMEM;
                }
        }

        r = field_get(o, "inviteVersion", json_type_int, false, &v, problems);
        if (r < 0)
                return r;
        if (r > 0) {
                int64_t version = json_object_get_int64(v);

                if (version != 1 && version != 2)
                        return problem_add(problems, "inviteVersion must be 1 or 2");
                e->invite_version = (int) version;
        }

        /* Our extension: broker features without which this mesh must not run (DECISIONS §11). */
        r = field_get(o, "requiredFeatures", json_type_array, false, &v, problems);
        if (r < 0)
                return r;
        for (size_t i = 0; r > 0 && i < json_object_array_length(v); i++) {
                json_object *f = json_object_array_get_idx(v, i);
                MeshFeature k;

                for (k = 0; k < _MESH_FEATURE_MAX; k++)
                        if (json_object_is_type(f, json_type_string) &&
                            streq(json_object_get_string(f), mesh_feature_to_string(k)))
                                break;
                if (k == _MESH_FEATURE_MAX)
                        return problem_add(problems, "requiredFeatures[%zu] must be one of client_message_id_dedupe, "
                                           "client_ack, max_payload", i);
                e->required_features |= 1u << k;
        }
        return 0;
}

const char *mesh_feature_to_string(MeshFeature f) {
        static const char *const table[_MESH_FEATURE_MAX] = {
                [MESH_FEATURE_CLIENT_MESSAGE_ID_DEDUPE] = "client_message_id_dedupe",
                [MESH_FEATURE_CLIENT_ACK] = "client_ack",
                [MESH_FEATURE_MAX_PAYLOAD] = "max_payload",
        };
        return f >= 0 && f < _MESH_FEATURE_MAX ? table[f] : NULL;
}

static int entry_parse(MeshEntry *e, json_object *o, char **problems) {
        int r;

        if (!json_object_is_type(o, json_type_object))
                return problem_add(problems, "must be an object");

        r = field_string(o, "meshId", true, mesh_id_valid,
                         "1-128 printable ASCII characters without '|'", &e->mesh_id, problems);
        if (r < 0)
                return r;
        r = field_string(o, "memberId", true, mesh_id_valid,
                         "1-128 printable ASCII characters without '|'", &e->member_id, problems);
        if (r < 0)
                return r;
        r = field_string(o, "slug", true, slug_valid, "1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
                         &e->slug, problems);
        if (r < 0)
                return r;
        r = field_string(o, "name", true, mesh_name_valid, "non-empty UTF-8 text of at most 256 bytes", &e->name,
                         problems);
        if (r < 0)
                return r;
        r = field_string(o, "pubkey", true, pubkey_hex_valid, "64 lowercase hex characters", &e->pubkey_hex,
                         problems);
        if (r < 0)
                return r;
        if (r > 0)
                /* Cannot fail: pubkey_hex_valid() checked length and digits. */
                (void) sodium_hex2bin(e->pubkey, sizeof e->pubkey, e->pubkey_hex, strlen(e->pubkey_hex), NULL,
                                      NULL, NULL);
        r = entry_parse_secret_key(e, o, problems);
        if (r < 0)
                return r;
        r = field_string(o, "brokerUrl", true, broker_url_valid,
                         "a ws:// or wss:// URL with a host and no whitespace, credentials or fragment",
                         &e->broker_url, problems);
        if (r < 0)
                return r;
        return entry_parse_optionals(e, o, problems);
}

static const char *entry_key(const MeshEntry *e, size_t offset) {
        return *(char *const *) ((const uint8_t *) e + offset);
}

/* By key (absent keys first), then by position, so the first entry of a run is the earliest. */
static int entry_compare(const void *a, const void *b, void *userdata) {
        const MeshEntry *x = *(MeshEntry *const *) a, *y = *(MeshEntry *const *) b;
        size_t offset = *(const size_t *) userdata;
        const char *kx = entry_key(x, offset), *ky = entry_key(y, offset);
        int d = kx && ky ? strcmp(kx, ky) : (kx != NULL) - (ky != NULL);

        if (d != 0)
                return d;
        return (x->index > y->index) - (x->index < y->index);
}

/* Sorts by_key by the string field at offset and records "<field> duplicates meshes[N]" on every
 * entry that repeats an earlier one's value: the first one wins. Sorting, not comparing every pair,
 * keeps a pathological file with thousands of entries from stalling the daemon. */
static int mark_duplicates(MeshConfig *c, MeshEntry **by_key, size_t offset, const char *field) {
        size_t first = 0;
        int r;

        for (size_t i = 0; i < c->n_meshes; i++)
                by_key[i] = &c->meshes[i];
        qsort_r(by_key, c->n_meshes, sizeof *by_key, entry_compare, &offset);
        for (size_t i = 1; i < c->n_meshes; i++) {
                const char *k = entry_key(by_key[i], offset), *k_first = entry_key(by_key[first], offset);

                if (!k_first || !streq(k, k_first)) {
                        first = i;
                        continue;
                }
                r = problem_add(&by_key[i]->error, "%s duplicates meshes[%zu]", field, by_key[first]->index);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int config_parse_meshes(MeshConfig *c, json_object *meshes) {
        _cleanup_free_ MeshEntry **by_slug = NULL;
        size_t n = json_object_array_length(meshes);
        int r;

        if (n == 0)
                return 0;
        c->meshes = calloc(n, sizeof(MeshEntry));
        by_slug = calloc(n, sizeof(MeshEntry *));
        if (!c->meshes || !by_slug)
                return -ENOMEM;
        c->n_meshes = n;

        /* error collects the bare list of problems first and becomes the sentence at the end. */
        for (size_t i = 0; i < n; i++) {
                c->meshes[i].index = i;
                r = entry_parse(&c->meshes[i], json_object_array_get_idx(meshes, i), &c->meshes[i].error);
                if (r < 0)
                        return r;
        }
        /* by_slug serves both passes; the second leaves it sorted by slug for the clean-up below. */
        r = mark_duplicates(c, by_slug, offsetof(MeshEntry, mesh_id), "meshId");
        if (r < 0)
                return r;
        r = mark_duplicates(c, by_slug, offsetof(MeshEntry, slug), "slug");
        if (r < 0)
                return r;

        for (size_t i = 0; i < n; i++) {
                MeshEntry *e = &c->meshes[i];
                _cleanup_free_ char *problems = TAKE_PTR(e->error);

                if (!problems)
                        continue;
                if (e->slug)
                        r = asprintf(&e->error, "%s: mesh \"%s\" (meshes[%zu]): %s", c->path, e->slug, i, problems);
                else
                        r = asprintf(&e->error, "%s: meshes[%zu]: %s", c->path, i, problems);
                if (r < 0) {
                        e->error = NULL;
                        return -ENOMEM;
                }
                /* An unusable entry must not keep key material around. */
                sodium_memzero(e->secret_key, sizeof e->secret_key);
                c->n_invalid++;
        }

        /* Only now, with the messages naming them, drop the slugs that repeat an earlier entry's, so
         * mesh_config_find_slug() finds the first one only. */
        for (size_t i = 1, first = 0; i < n; i++) {
                MeshEntry *e = by_slug[i];

                if (!by_slug[first]->slug || !streq(e->slug, by_slug[first]->slug)) {
                        first = i;
                        continue;
                }
                free(e->slug);
                e->slug = NULL;
        }
        return 0;
}

static int config_parse_groups(MeshConfig *c, json_object *groups, char **problems) {
        size_t n = json_object_array_length(groups);
        int r;

        if (n == 0)
                return 0;
        c->groups = calloc(n, sizeof(MeshGroup));
        if (!c->groups)
                return -ENOMEM;

        for (size_t i = 0; i < n; i++) {
                json_object *g = json_object_array_get_idx(groups, i), *name, *role = NULL;
                MeshGroup *group = &c->groups[c->n_groups];

                if (!json_object_is_type(g, json_type_object)) {
                        r = problem_add(problems, "groups[%zu] must be an object", i);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!json_object_object_get_ex(g, "name", &name) || !json_object_is_type(name, json_type_string) ||
                    !mesh_name_valid(json_object_get_string(name), (size_t) json_object_get_string_len(name))) {
                        r = problem_add(problems,
                                        "groups[%zu].name must be non-empty UTF-8 text of at most 256 bytes", i);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (json_object_object_get_ex(g, "role", &role) &&
                    (!json_object_is_type(role, json_type_string) ||
                     !utf8_text_valid(json_object_get_string(role), (size_t) json_object_get_string_len(role)))) {
                        r = problem_add(problems, "groups[%zu].role must be a string of UTF-8 text", i);
                        if (r < 0)
                                return r;
                        continue;
                }

                group->name = strdup(json_object_get_string(name));
                if (!group->name)
                        return -ENOMEM;
                c->n_groups++;
                if (role) {
                        group->role = strdup(json_object_get_string(role));
                        if (!group->role)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int config_parse_top(MeshConfig *c, json_object *root, json_object **ret_meshes, char **problems) {
        json_object *v;
        int r;

        r = field_get(root, "version", json_type_int, false, &v, problems);
        if (r < 0)
                return r;
        if (r > 0 && json_object_get_int64(v) != 1) {
                r = problem_add(problems,
                                "version must be 1 (a newer claudemesh wrote this file; upgrade claudemeshd)");
                if (r < 0)
                        return r;
        }

        r = field_get(root, "meshes", json_type_array, false, ret_meshes, problems);
        if (r < 0)
                return r;
        r = field_string(root, "displayName", false, utf8_text_valid, "a string of UTF-8 text", &c->display_name,
                         problems);
        if (r < 0)
                return r;
        r = field_string(root, "messageMode", false, message_mode_valid, "one of push, inbox, off",
                         &c->message_mode, problems);
        if (r < 0)
                return r;
        r = field_string(root, "role", false, utf8_text_valid, "a string of UTF-8 text", &c->role, problems);
        if (r < 0)
                return r;
        r = field_string(root, "accountId", false, utf8_text_valid, "a string of UTF-8 text", &c->account_id,
                         problems);
        if (r < 0)
                return r;
        /* Our extension: the mesh meant when a caller names none and several are attached. */
        r = field_string(root, "defaultMesh", false, utf8_text_valid, "a string of UTF-8 text", &c->default_mesh,
                         problems);
        if (r < 0)
                return r;
        /* Our extension: {"notifications": {"enabled": bool, "dmsOnly": bool}}. */
        r = field_get(root, "notifications", json_type_object, false, &v, problems);
        if (r < 0)
                return r;
        if (r > 0) {
                static const char *const keys[] = { "enabled", "dmsOnly" };
                bool *slots[] = { &c->notify, &c->notify_dms_only };
                json_object *b;

                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        r = field_get(v, keys[i], json_type_boolean, false, &b, problems);
                        if (r < 0)
                                return r;
                        if (r > 0)
                                *slots[i] = json_object_get_boolean(b);
                }
        }
        r = field_get(root, "groups", json_type_array, false, &v, problems);
        if (r < 0)
                return r;
        return r > 0 ? config_parse_groups(c, v, problems) : 0;
}

static int mesh_config_new(const char *path, MeshConfig **ret) {
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;

        c = calloc(1, sizeof(MeshConfig));
        if (!c)
                return -ENOMEM;
        c->notify = true;
        c->notify_dms_only = true;
        c->path = strdup(path);
        if (!c->path)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

static bool only_whitespace(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
                        return false;
        return true;
}

int mesh_config_parse(const char *text, size_t size, const char *path, MeshConfig **ret, char **ret_error) {
        _cleanup_(json_tokener_free_wipedp) json_tokener *tok = NULL;
        _cleanup_(json_object_put_wipedp) json_object *root = NULL;
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        _cleanup_free_ char *problems = NULL;
        json_object *meshes = NULL;
        enum json_tokener_error jerr;
        int r;

        if (size > MESH_CONFIG_MAX_SIZE)
                return error_setf(ret_error, -EFBIG, "%s: larger than 1 MiB, which no mesh config is; move it aside "
                                 "and join your meshes again.", path);
        if (sodium_init() < 0)
                return error_setf(ret_error, -EIO, "%s: libsodium failed to initialize.", path);

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        /* Upstream reads the file with JSON.parse(): refuse comments, bare keys and trailing commas
         * as it does. json-c still accepts NaN and single quotes, which is harmless: every value we
         * use is checked on its own. */
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        root = json_tokener_parse_ex(tok, text, (int) size);
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_continue)
                return error_setf(ret_error, -EBADMSG, "%s: not valid JSON: the text ends before a complete "
                                 "top-level object; fix the file or move it aside and join your meshes again.",
                                 path);
        if (jerr != json_tokener_success)
                return error_setf(ret_error, -EBADMSG, "%s: not valid JSON: %s at byte %zu; fix the file or move it "
                                 "aside and join your meshes again.", path, json_tokener_error_desc(jerr),
                                 json_tokener_get_parse_end(tok));
        if (!only_whitespace(text + json_tokener_get_parse_end(tok), size - json_tokener_get_parse_end(tok)))
                return error_setf(ret_error, -EBADMSG, "%s: not valid JSON: unexpected data after the top-level "
                                 "object at byte %zu; fix the file.", path, json_tokener_get_parse_end(tok));
        if (!json_object_is_type(root, json_type_object))
                return error_setf(ret_error, -EINVAL, "%s: the top level must be a JSON object with a \"meshes\" "
                                 "array; fix the file or move it aside and join your meshes again.", path);

        r = mesh_config_new(path, &c);
        if (r < 0)
                return r;
        r = config_parse_top(c, root, &meshes, &problems);
        if (r < 0)
                return r;
        if (problems)
                return error_setf(ret_error, -EINVAL, "%s: %s. Correct these top-level fields.", path, problems);
        if (meshes) {
                r = config_parse_meshes(c, meshes);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

static int dir_of(const char *path, char **ret) {
        const char *slash = strrchr(path, '/');

        if (!slash)
                *ret = strdup(".");
        else if (slash == path)
                *ret = strdup("/");
        else
                *ret = strndup(path, (size_t) (slash - path));
        return *ret ? 0 : -ENOMEM;
}

/* read_full_file() says only "not a regular file"; look again to say which kind and what to do. */
static int refuse_irregular(const char *path, char **ret_error) {
        struct stat st;

        if (lstat(path, &st) < 0)
                return error_setf(ret_error, -EBADF, "%s is not a regular file; replace it with the config file "
                                 "itself.", path);
        if (S_ISLNK(st.st_mode))
                return error_setf(ret_error, -ELOOP, "%s is a symbolic link, which is refused for a file holding "
                                 "secret keys; replace the link with the file it points to: "
                                 "mv \"$(readlink -f %s)\" %s",
                                 path, path, path);
        if (S_ISDIR(st.st_mode))
                return error_setf(ret_error, -EISDIR, "%s is a directory, not a config file; move it aside: "
                                 "mv %s %s.bak", path, path, path);
        return error_setf(ret_error, -EBADF, "%s is not a regular file; replace it with the config file itself.",
                         path);
}

static int check_owner_and_mode(const char *what, const char *path, const struct stat *st, uid_t expected_uid,
                                const char *mode, char **ret_error) {
        if (st->st_uid != expected_uid)
                return error_setf(ret_error, -EPERM, "%s %s is owned by uid %u, but claudemeshd runs as uid %u and "
                                 "trusts only its own files; run as root: chown %u %s",
                                 what, path, (unsigned) st->st_uid, (unsigned) expected_uid,
                                 (unsigned) expected_uid, path);
        if (st->st_mode & 077)
                return error_setf(ret_error, -EPERM, "%s %s is accessible by group or others (mode %04o) and guards "
                                 "secret keys; run: chmod %s %s",
                                 what, path, (unsigned) (st->st_mode & 07777), mode, path);
        return 0;
}

int mesh_config_load(const char *path, uid_t expected_uid, MeshConfig **ret, char **ret_error) {
        _cleanup_(secret_buffer_done) SecretBuffer text = { 0 };
        _cleanup_free_ char *dir = NULL;
        struct stat st, dir_st;
        int r;

        r = read_full_file(path, MESH_CONFIG_MAX_SIZE, &text.data, &text.size, &st);
        if (r == -ENOENT)
                return mesh_config_new(path, ret);
        if (r == -EBADF)
                return refuse_irregular(path, ret_error);
        if (r == -EFBIG)
                return error_setf(ret_error, r, "%s is larger than 1 MiB, which no mesh config is; move it aside: "
                                 "mv %s %s.bak", path, path, path);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return error_setf(ret_error, r, "Failed to read %s: %s.", path, STRERROR(r));

        r = check_owner_and_mode("File", path, &st, expected_uid, "600", ret_error);
        if (r < 0)
                return r;

        r = dir_of(path, &dir);
        if (r < 0)
                return r;
        if (stat(dir, &dir_st) < 0) {
                r = negative_errno();
                return error_setf(ret_error, r, "Failed to check directory %s: %s.", dir, STRERROR(r));
        }
        r = check_owner_and_mode("Directory", dir, &dir_st, expected_uid, "700", ret_error);
        if (r < 0)
                return r;

        return mesh_config_parse(text.data, text.size, path, ret, ret_error);
}

static void mesh_entry_done(MeshEntry *e) {
        free(e->mesh_id);
        free(e->member_id);
        free(e->slug);
        free(e->name);
        free(e->pubkey_hex);
        free(e->broker_url);
        if (e->root_key) {
                sodium_memzero(e->root_key, strlen(e->root_key));
                free(e->root_key);
        }
        free(e->error);
        sodium_memzero(e->secret_key, sizeof e->secret_key);
        sodium_memzero(e->root_key_bytes, sizeof e->root_key_bytes);
}

MeshConfig *mesh_config_free(MeshConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_meshes; i++)
                mesh_entry_done(&c->meshes[i]);
        free(c->meshes);
        for (size_t i = 0; i < c->n_groups; i++) {
                free(c->groups[i].name);
                free(c->groups[i].role);
        }
        free(c->groups);
        free(c->path);
        free(c->display_name);
        free(c->message_mode);
        free(c->role);
        free(c->default_mesh);
        free(c->account_id);
        free(c);
        return NULL;
}

const MeshEntry *mesh_config_find_slug(const MeshConfig *c, const char *slug) {
        if (!c || !slug)
                return NULL;
        for (size_t i = 0; i < c->n_meshes; i++)
                if (c->meshes[i].slug && streq(c->meshes[i].slug, slug))
                        return &c->meshes[i];
        return NULL;
}

const MeshEntry *mesh_config_find_mesh_id(const MeshConfig *c, const char *mesh_id) {
        if (!c || !mesh_id)
                return NULL;
        for (size_t i = 0; i < c->n_meshes; i++)
                if (c->meshes[i].mesh_id && streq(c->meshes[i].mesh_id, mesh_id))
                        return &c->meshes[i];
        return NULL;
}
