/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "hex-util.h"
#include "keypair-archive.h"
#include "log.h"
#include "message-ids.h"
#include "secret-util.h"

/* Eight entries take about 5 KiB; anything near this limit is not an archive we wrote. */
#define ARCHIVE_FILE_MAX (1024 * 1024)
/* Upper bound of one serialized entry, and of the text around the entries. */
#define ENTRY_TEXT_MAX 1024
#define HEADER_TEXT_MAX 256
#define KEY_B64_LEN (sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL))

static void archived_keys_wipe(ArchivedKey *keys, size_t n) {
        if (keys)
                sodium_memzero(keys, n * sizeof *keys);
}

KeypairArchive *keypair_archive_free(KeypairArchive *a) {
        if (!a)
                return NULL;
        archived_keys_wipe(a->keys, a->n_keys);
        free(a->keys);
        free(a);
        return NULL;
}

static void archive_clear(KeypairArchive *a) {
        archived_keys_wipe(a->keys, a->n_keys);
        a->keys = mfree(a->keys);
        a->n_keys = 0;
        a->max_archived_keys = KEYPAIR_ARCHIVE_MAX_KEYS;
}

void keypair_archive_report_done(KeypairArchiveReport *r) {
        if (!r)
                return;
        free(r->quarantine_path);
        *r = (KeypairArchiveReport) { 0 };
}

int keypair_archive_new(KeypairArchive **ret) {
        KeypairArchive *a = calloc(1, sizeof *a);

        if (!a)
                return -ENOMEM;
        a->max_archived_keys = KEYPAIR_ARCHIVE_MAX_KEYS;
        *ret = a;
        return 0;
}

/* Restricted so that the file can be written without escaping. */
static bool key_id_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n >= sizeof ((ArchivedKey *) NULL)->key_id)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && *s != '_' && *s != '-')
                        return false;
        return true;
}

/* Removes entry i, keeping the order of the rest, and wipes the slot that fell free. */
static void archive_remove(KeypairArchive *a, size_t i) {
        memmove(a->keys + i, a->keys + i + 1, (a->n_keys - i - 1) * sizeof *a->keys);
        a->n_keys--;
        archived_keys_wipe(a->keys + a->n_keys, 1);
}

static unsigned archive_force_expire(KeypairArchive *a) {
        unsigned n = 0;

        while (a->n_keys > a->max_archived_keys) {
                size_t oldest = 0;

                for (size_t i = 1; i < a->n_keys; i++)
                        if (a->keys[i].rotated_out_at < a->keys[oldest].rotated_out_at)
                                oldest = i;
                log_event(LOG_WARNING, CM_MESSAGE_KEY_ARCHIVE_PROBLEM,
                          LOG_FIELDS({ "CLAUDEMESH_KEY_ID", a->keys[oldest].key_id }),
                          "Key archive holds more than %u keys; force-expiring the oldest, %s: messages sealed "
                          "to it can no longer be opened.",
                          a->max_archived_keys, a->keys[oldest].key_id);
                archive_remove(a, oldest);
                n++;
        }
        return n;
}

int keypair_archive_add(KeypairArchive *a, const ArchivedKey *key) {
        ArchivedKey *keys;

        assert(a);

        if (!key_id_is_valid(key->key_id))
                return -EINVAL;
        for (size_t i = 0; i < a->n_keys; i++)
                if (streq(a->keys[i].key_id, key->key_id))
                        return -EEXIST;

        /* Not realloc(): it would free the old copy of the private keys without wiping it. */
        keys = calloc(a->n_keys + 1, sizeof *keys);
        if (!keys)
                return -ENOMEM;
        if (a->n_keys > 0)
                memcpy(keys, a->keys, a->n_keys * sizeof *keys);
        keys[a->n_keys] = *key;
        archived_keys_wipe(a->keys, a->n_keys);
        free(a->keys);
        a->keys = keys;
        a->n_keys++;
        return (int) archive_force_expire(a);
}

static int decode_key(const char *b64, size_t len, uint8_t ret[static 32]) {
        const char *end;
        size_t n;

        if (sodium_base642bin(ret, 32, b64, len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) < 0 ||
            end != b64 + len || n != 32)
                return -EINVAL;
        return 0;
}

static int malformed(const char **ret_why, const char *why) {
        *ret_why = why;
        return -EBADMSG;
}

static const char *string_member(json_object *o, const char *key, size_t *ret_len) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        if (ret_len)
                *ret_len = (size_t) json_object_get_string_len(v);
        return json_object_get_string(v);
}

static int time_member(json_object *o, const char *key, usec_t *ret) {
        const char *s = string_member(o, key, NULL);

        return s ? parse_iso8601(s, ret) : -EINVAL;
}

/* Fills k from one "keys" element; on failure *ret_why names the problem. */
static int parse_entry(json_object *e, ArchivedKey *k, const char **ret_why) {
        uint8_t derived[crypto_scalarmult_BYTES];
        const char *s;
        size_t len;

        if (!json_object_is_type(e, json_type_object))
                return malformed(ret_why, "is not an object");

        s = string_member(e, "key_id", NULL);
        if (!s || !key_id_is_valid(s))
                return malformed(ret_why, "has no valid key_id");
        snprintf(k->key_id, sizeof k->key_id, "%s", s);

        s = string_member(e, "ed25519_pubkey", NULL);
        if (!s || !hex_string(s, 64, HEX_ANY_CASE))
                return malformed(ret_why, "has no valid ed25519_pubkey (64 hex digits)");
        for (size_t i = 0; i < 64; i++)
                k->ed25519_pubkey[i] = (char) tolower((unsigned char) s[i]);

        s = string_member(e, "x25519_pubkey", &len);
        if (!s || decode_key(s, len, k->x25519_pubkey) < 0)
                return malformed(ret_why, "has no valid x25519_pubkey (base64 of 32 bytes)");
        s = string_member(e, "x25519_privkey", &len);
        if (!s || decode_key(s, len, k->x25519_privkey) < 0)
                return malformed(ret_why, "has no valid x25519_privkey (base64 of 32 bytes)");
        if (crypto_scalarmult_base(derived, k->x25519_privkey) < 0 ||
            sodium_memcmp(derived, k->x25519_pubkey, sizeof derived) != 0)
                return malformed(ret_why, "has an x25519_privkey that does not belong to its x25519_pubkey");

        if (time_member(e, "created_at", &k->created_at) < 0 ||
            time_member(e, "rotated_out_at", &k->rotated_out_at) < 0 ||
            time_member(e, "expires_at", &k->expires_at) < 0)
                return malformed(ret_why, "has a missing or invalid created_at, rotated_out_at or expires_at");
        return 0;
}

/* Parses the file text into a; -EBADMSG with *ret_why (static or in why_buf) if malformed.
 * *ret_clamped tells that the file asked for more than KEYPAIR_ARCHIVE_MAX_KEYS. */
static int parse_archive(const char *text, size_t size, KeypairArchive *a, bool *ret_clamped, char *why_buf,
                         size_t why_size, const char **ret_why) {
        _cleanup_(json_tokener_free_wipedp) struct json_tokener *tok = NULL;
        _cleanup_(json_object_put_wipedp) json_object *o = NULL;
        json_object *v, *keys;
        int64_t max;
        size_t n;
        int r;

        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        o = json_tokener_parse_ex(tok, text, (int) size);
        if (!o || json_tokener_get_error(tok) != json_tokener_success)
                return malformed(ret_why, "is not valid JSON");
        for (size_t i = json_tokener_get_parse_end(tok); i < size; i++)
                if (!isspace((unsigned char) text[i]))
                        return malformed(ret_why, "has trailing data after the JSON object");
        if (!json_object_is_type(o, json_type_object))
                return malformed(ret_why, "is not a JSON object");

        if (!json_object_object_get_ex(o, "schema_version", &v) || !json_object_is_type(v, json_type_int))
                return malformed(ret_why, "has no integer schema_version");
        if (json_object_get_int64(v) != KEYPAIR_ARCHIVE_SCHEMA_VERSION) {
                snprintf(why_buf, why_size, "has schema_version %" PRId64 ", which this version does not know",
                         json_object_get_int64(v));
                return malformed(ret_why, why_buf);
        }

        a->max_archived_keys = KEYPAIR_ARCHIVE_MAX_KEYS;
        *ret_clamped = false;
        if (json_object_object_get_ex(o, "max_archived_keys", &v)) {
                if (!json_object_is_type(v, json_type_int) || (max = json_object_get_int64(v)) < 1)
                        return malformed(ret_why, "has a max_archived_keys that is not a positive integer");
                *ret_clamped = max > KEYPAIR_ARCHIVE_MAX_KEYS;
                if (*ret_clamped)
                        log_warning("Key archive asks for max_archived_keys=%" PRId64 "; the limit is %u.", max,
                                    KEYPAIR_ARCHIVE_MAX_KEYS);
                else
                        a->max_archived_keys = (unsigned) max;
        }

        if (!json_object_object_get_ex(o, "keys", &keys) || !json_object_is_type(keys, json_type_array))
                return malformed(ret_why, "has no keys array");
        n = json_object_array_length(keys);
        if (n == 0)
                return 0;
        a->keys = calloc(n, sizeof *a->keys);
        if (!a->keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *why;

                /* Counted as it goes, so that keypair_archive_free() wipes a partial parse too. */
                a->n_keys = i + 1;
                r = parse_entry(json_object_array_get_idx(keys, i), &a->keys[i], &why);
                if (r < 0) {
                        snprintf(why_buf, why_size, "has a key entry (#%zu) that %s", i + 1, why);
                        return malformed(ret_why, why_buf);
                }
        }
        return 0;
}

/* Returns true if it dropped anything. */
static bool drop_duplicates(KeypairArchive *a, KeypairArchiveReport *report) {
        bool dropped = false;

        for (size_t i = 1; i < a->n_keys;) {
                size_t j = 0;

                while (j < i && !streq(a->keys[j].key_id, a->keys[i].key_id))
                        j++;
                if (j == i) {
                        i++;
                        continue;
                }
                log_event(LOG_WARNING, CM_MESSAGE_KEY_ARCHIVE_PROBLEM,
                          LOG_FIELDS({ "CLAUDEMESH_KEY_ID", a->keys[i].key_id }),
                          "Key archive lists key_id %s more than once; keeping the first entry, dropping a later one.",
                          a->keys[i].key_id);
                archive_remove(a, i);
                report->rejected_duplicates++;
                dropped = true;
        }
        return dropped;
}

static bool drop_expired(KeypairArchive *a, usec_t now, KeypairArchiveReport *report) {
        bool dropped = false;

        for (size_t i = 0; i < a->n_keys;) {
                if (a->keys[i].expires_at > now) {
                        i++;
                        continue;
                }
                log_info("Archived key %s expired; removing it from the key archive.", a->keys[i].key_id);
                archive_remove(a, i);
                report->dropped_expired++;
                dropped = true;
        }
        return dropped;
}

/* chmod()s the file we read, and only that one: it may have been replaced since. */
static int fix_mode(const char *path, const struct stat *st) {
        _cleanup_close_ int fd = -1;
        struct stat now;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &now) < 0)
                return negative_errno();
        if (now.st_dev != st->st_dev || now.st_ino != st->st_ino)
                return -ESTALE;
        return fchmod(fd, 0600) < 0 ? negative_errno() : 0;
}

int keypair_archive_load(const char *path, usec_t now, KeypairArchive **ret, KeypairArchiveReport *ret_report) {
        _cleanup_(keypair_archive_freep) KeypairArchive *a = NULL;
        _cleanup_(secret_buffer_done) SecretBuffer file = { 0 };
        KeypairArchiveReport report = { 0 };
        char why_buf[256];
        const char *why = NULL;
        bool changed, clamped = false;
        struct stat st;
        int r;

        if (ret_report)
                *ret_report = (KeypairArchiveReport) { 0 };
        if (sodium_init() < 0)
                return -EIO;
        r = keypair_archive_new(&a);
        if (r < 0)
                return r;

        r = read_full_file(path, ARCHIVE_FILE_MAX, &file.data, &file.size, &st);
        if (r == -ENOENT)
                goto done;
        if (r == -EFBIG)
                why = "is implausibly large";
        else if (r < 0)
                return log_warning_errno(r, "Cannot read key archive %s: %m", path);

        if (!why && (st.st_mode & 07777) != 0600) {
                char mode[8];

                snprintf(mode, sizeof mode, "%04o", (unsigned) (st.st_mode & 07777));
                r = fix_mode(path, &st);
                log_event(LOG_WARNING, CM_MESSAGE_KEY_ARCHIVE_PROBLEM, LOG_FIELDS({ "CLAUDEMESH_FILE_MODE", mode }),
                          "Key archive %s has mode %s, not 0600%s. %s", path, mode,
                          st.st_mode & 0077 ? ": others may have read the archived private keys" : "",
                          r < 0 ? "Could not fix the mode." : "Mode fixed to 0600.");
                report.mode_fixed = r >= 0;
        }

        if (!why) {
                r = parse_archive(file.data, file.size, a, &clamped, why_buf, sizeof why_buf, &why);
                if (r < 0 && r != -EBADMSG)
                        return r;
        }
        if (why) {
                r = quarantine_file(path, "malformed", &report.quarantine_path);
                if (r < 0)
                        return log_error_errno(r, "Key archive %s %s, and it cannot be set aside: %m", path, why);
                report.quarantined = true;
                log_event(LOG_WARNING, CM_MESSAGE_KEY_ARCHIVE_PROBLEM,
                          LOG_FIELDS({ "CLAUDEMESH_QUARANTINE_PATH", report.quarantine_path }),
                          "Key archive %s %s. Moved it to %s and continuing without archived keys: messages "
                          "sealed to rotated-out keys cannot be opened until it is repaired and moved back.",
                          path, why, report.quarantine_path);
                archive_clear(a);
                goto done;
        }

        changed = drop_duplicates(a, &report);
        changed = drop_expired(a, now, &report) || changed;
        report.force_expired = archive_force_expire(a);
        changed = changed || report.force_expired > 0 || clamped;

        if (changed) {
                r = keypair_archive_save(path, a);
                if (r < 0)
                        log_event_errno(LOG_WARNING, r, CM_MESSAGE_KEY_ARCHIVE_PROBLEM, NULL,
                                        "Cannot rewrite key archive %s, will retry on next load: %m", path);
                else if (a->n_keys == 0)
                        report.deleted = true;
                else
                        report.rewritten = true;
        }

done:
        *ret = TAKE_PTR(a);
        if (ret_report)
                *ret_report = report;
        else
                keypair_archive_report_done(&report);
        return 0;
}

_printf_(3, 4) static int append_text(SecretBuffer *b, size_t *pos, const char *format, ...) {
        va_list ap;
        int n;

        va_start(ap, format);
        n = vsnprintf(b->data + *pos, b->size - *pos, format, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= b->size - *pos)
                return -ENOBUFS;
        *pos += (size_t) n;
        return 0;
}

static int append_entry(SecretBuffer *b, size_t *pos, const ArchivedKey *k, bool last) {
        char pub[KEY_B64_LEN], priv[KEY_B64_LEN];
        char created[ISO8601_MAX], rotated[ISO8601_MAX], expires[ISO8601_MAX];
        int r;

        if (!key_id_is_valid(k->key_id) || !hex_string(k->ed25519_pubkey, 64, HEX_ANY_CASE))
                return -EINVAL;
        if ((r = format_iso8601(k->created_at, created)) < 0 ||
            (r = format_iso8601(k->rotated_out_at, rotated)) < 0 ||
            (r = format_iso8601(k->expires_at, expires)) < 0)
                return r;
        sodium_bin2base64(pub, sizeof pub, k->x25519_pubkey, sizeof k->x25519_pubkey,
                          sodium_base64_VARIANT_ORIGINAL);
        sodium_bin2base64(priv, sizeof priv, k->x25519_privkey, sizeof k->x25519_privkey,
                          sodium_base64_VARIANT_ORIGINAL);
        /* The layout of JSON.stringify(x, null, 2). */
        r = append_text(b, pos,
                        "    {\n"
                        "      \"ed25519_pubkey\": \"%s\",\n"
                        "      \"x25519_pubkey\": \"%s\",\n"
                        "      \"x25519_privkey\": \"%s\",\n"
                        "      \"key_id\": \"%s\",\n"
                        "      \"created_at\": \"%s\",\n"
                        "      \"rotated_out_at\": \"%s\",\n"
                        "      \"expires_at\": \"%s\"\n"
                        "    }%s\n",
                        k->ed25519_pubkey, pub, priv, k->key_id, created, rotated, expires, last ? "" : ",");
        sodium_memzero(priv, sizeof priv);
        return r;
}

int keypair_archive_save(const char *path, const KeypairArchive *a) {
        _cleanup_(secret_buffer_done) SecretBuffer b = { 0 };
        unsigned max = a->max_archived_keys;
        size_t pos = 0;
        int r;

        if (a->n_keys == 0)
                return unlink(path) < 0 && errno != ENOENT ? negative_errno() : 0;

        if (max == 0 || max > KEYPAIR_ARCHIVE_MAX_KEYS)
                max = KEYPAIR_ARCHIVE_MAX_KEYS;
        /* Sized up front: a growing buffer would leave unwiped copies behind in freed memory. */
        b.size = HEADER_TEXT_MAX + a->n_keys * ENTRY_TEXT_MAX;
        b.data = malloc(b.size);
        if (!b.data)
                return -ENOMEM;

        r = append_text(&b, &pos, "{\n  \"schema_version\": %d,\n  \"max_archived_keys\": %u,\n  \"keys\": [\n",
                        KEYPAIR_ARCHIVE_SCHEMA_VERSION, max);
        if (r < 0)
                return r;
        for (size_t i = 0; i < a->n_keys; i++) {
                r = append_entry(&b, &pos, &a->keys[i], i + 1 == a->n_keys);
                if (r < 0)
                        return r;
        }
        r = append_text(&b, &pos, "  ]\n}\n");
        if (r < 0)
                return r;
        return write_file_atomic(path, b.data, pos, 0600);
}
