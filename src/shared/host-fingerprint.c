/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "hex-util.h"
#include "host-fingerprint.h"
#include "log.h"
#include "json-util.h"
#include "macro.h"
#include "time-util.h"

#define ARPHRD_ETHER_TYPE 1
#define FINGERPRINT_PREFIX_LEN 16

#define sizeof_field(type, member) sizeof(((type *) 0)->member)

static inline void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}

static const char *const state_table[_HOST_FINGERPRINT_STATE_MAX] = {
        [HOST_FINGERPRINT_FIRST_RUN] = "first-run",
        [HOST_FINGERPRINT_MATCH] = "match",
        [HOST_FINGERPRINT_MISMATCH] = "mismatch",
        [HOST_FINGERPRINT_UNAVAILABLE] = "unavailable",
};

const char *host_fingerprint_state_to_string(HostFingerprintState s) {
        if ((unsigned) s >= _HOST_FINGERPRINT_STATE_MAX)
                return NULL;
        return state_table[s];
}

void host_fingerprint_compute(const char *host_id, const char *stable_mac, char ret[static 65]) {
        static const unsigned char separator = 0;
        unsigned char digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_state st;

        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, (const unsigned char *) host_id, strlen(host_id));
        crypto_hash_sha256_update(&st, &separator, 1);
        crypto_hash_sha256_update(&st, (const unsigned char *) stable_mac, strlen(stable_mac));
        crypto_hash_sha256_final(&st, digest);
        sodium_bin2hex(ret, 65, digest, sizeof digest);
}

/* "<root><path>", where a NULL or "/" root is the real system. */
static int root_path(const char *root, const char *path, char buf[static PATH_MAX]) {
        size_t n = root ? strlen(root) : 0;

        while (n > 0 && root[n - 1] == '/')
                n--;
        if (snprintf(buf, PATH_MAX, "%.*s%s", (int) n, n > 0 ? root : "", path) >= PATH_MAX)
                return -ENAMETOOLONG;
        return 0;
}

static void strip_whitespace(char *s) {
        size_t n = strlen(s), skip = 0;

        while (n > 0 && isspace((unsigned char) s[n - 1]))
                s[--n] = '\0';
        while (isspace((unsigned char) s[skip]))
                skip++;
        memmove(s, s + skip, n - skip + 1);
}

static void ascii_lowercase(char *s) {
        for (; *s; s++)
                *s = (char) tolower((unsigned char) *s);
}

/* Reads a short text file, following symlinks: /var/lib/dbus/machine-id is often a link to
 * /etc/machine-id, and sysfs attributes are reached through the /sys/class/net links. The
 * content is stripped of surrounding whitespace. -EFBIG when it does not fit. */
static int read_short_file(const char *path, char *buf, size_t size) {
        _cleanup_close_ int fd = -1;
        size_t have = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        for (;;) {
                if (have >= size - 1)
                        return -EFBIG;
                ssize_t k = read(fd, buf + have, size - 1 - have);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        buf[have] = '\0';
        if (strlen(buf) != have)
                return -EBADMSG;
        strip_whitespace(buf);
        return 0;
}

static bool is_machine_id(const char *s) {
        size_t n = strlen(s);

        if (n != 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char) s[i]))
                        return false;
        return true;
}

static bool is_printable_token(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isgraph((unsigned char) *s))
                        return false;
        return true;
}

static int read_host_id(const char *root, char ret[static sizeof_field(HostIdentity, host_id)]) {
        static const char *const machine_id_paths[] = { "/etc/machine-id", "/var/lib/dbus/machine-id" };
        char path[PATH_MAX], buf[256];
        int r;

        ret[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(machine_id_paths); i++) {
                r = root_path(root, machine_id_paths[i], path);
                if (r < 0)
                        return r;
                r = read_short_file(path, buf, sizeof buf);
                if (r < 0) {
                        log_debug_errno(r, "Cannot read %s, ignoring: %m", path);
                        continue;
                }
                /* Catches "uninitialized" (first boot) and empty files in container images. */
                if (!is_machine_id(buf)) {
                        log_debug("%s does not hold a machine ID, ignoring.", path);
                        continue;
                }
                /* machine-id(5) says lowercase; normalizing keeps a hand-edited file stable. */
                ascii_lowercase(buf);
                memcpy(ret, buf, strlen(buf) + 1);
                return 0;
        }

        /* Usually root-only (0400), so an unprivileged daemon rarely gets this far. */
        r = root_path(root, "/sys/class/dmi/id/product_uuid", path);
        if (r < 0)
                return r;
        r = read_short_file(path, buf, sizeof buf);
        if (r < 0) {
                log_debug_errno(r, "Cannot read %s, ignoring: %m", path);
                return 0;
        }
        if (!is_printable_token(buf) || strlen(buf) >= sizeof_field(HostIdentity, host_id)) {
                log_debug("%s does not hold a usable UUID, ignoring.", path);
                return 0;
        }
        ascii_lowercase(buf);
        memcpy(ret, buf, strlen(buf) + 1);
        return 0;
}

/* Container, VM, VPN and tunnel interfaces: their MACs are made up or follow the guest. */
static bool is_virtual_name(const char *name) {
        static const char *const prefixes[] = {
                "docker", "veth", "br-", "virbr", "vnet", "tap", "tun", "tailscale", "wg", "zt",
                "vboxnet", "vmnet", "ppp", "lxc", "lxdbr", "podman", "cni", "flannel", "cali",
                "weave", "vxlan", "macvtap", "utun", "awdl", "llw",
        };

        if (streq(name, "lo"))
                return true;
        for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                if (strneq(name, prefixes[i], strlen(prefixes[i])))
                        return true;
        return false;
}

static int interface_class(const char *name) {
        if (strneq(name, "en", 2) || strneq(name, "eth", 3))
                return 0;
        if (strneq(name, "wl", 2))
                return 1;
        return 2;
}

static bool attribute_exists(const char *dir, const char *attr) {
        char path[PATH_MAX];
        struct stat st;

        if (snprintf(path, sizeof path, "%s/%s", dir, attr) >= (int) sizeof path)
                return false;
        return lstat(path, &st) == 0;
}

static int read_attribute(const char *dir, const char *attr, char *buf, size_t size) {
        char path[PATH_MAX];

        if (snprintf(path, sizeof path, "%s/%s", dir, attr) >= (int) sizeof path)
                return -ENAMETOOLONG;
        return read_short_file(path, buf, size);
}

static int read_attribute_long(const char *dir, const char *attr, long *ret) {
        char buf[64], *end;
        long v;
        int r;

        r = read_attribute(dir, attr, buf, sizeof buf);
        if (r < 0)
                return r;
        errno = 0;
        v = strtol(buf, &end, 0);
        if (errno != 0 || end == buf || *end != '\0')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* Parses "aa:bb:cc:dd:ee:ff" (any case) into lowercase text and the first octet. */
static int parse_mac(const char *s, char ret[static 18], unsigned *ret_first_octet, bool *ret_zero) {
        unsigned first = 0;
        bool zero = true;

        if (strlen(s) != 17)
                return -EINVAL;
        for (size_t i = 0; i < 17; i++) {
                if (i % 3 == 2) {
                        if (s[i] != ':')
                                return -EINVAL;
                        continue;
                }
                if (!isxdigit((unsigned char) s[i]))
                        return -EINVAL;
                if (s[i] != '0')
                        zero = false;
        }
        memcpy(ret, s, 18);
        ascii_lowercase(ret);
        sscanf(ret, "%2x", &first);
        *ret_first_octet = first;
        *ret_zero = zero;
        return 0;
}

/* Returns true and the MAC when dir describes a physical ethernet-type interface with a
 * permanent, globally administered address. */
static bool interface_stable_mac(const char *dir, const char *name, char ret[static 18]) {
        char buf[64];
        unsigned first_octet;
        bool zero;
        long v;
        int r;

        if (is_virtual_name(name)) {
                log_debug("Interface %s: loopback or container/VM/tunnel name, skipping.", name);
                return false;
        }
        /* Software devices (bonds, VLANs, dummies, ...) have no backing device. */
        if (!attribute_exists(dir, "device")) {
                log_debug("Interface %s: virtual (no device link), skipping.", name);
                return false;
        }
        if (attribute_exists(dir, "bridge") || attribute_exists(dir, "tun_flags")) {
                log_debug("Interface %s: bridge or tun/tap, skipping.", name);
                return false;
        }
        if (read_attribute_long(dir, "type", &v) < 0 || v != ARPHRD_ETHER_TYPE) {
                log_debug("Interface %s: not an ethernet-type interface, skipping.", name);
                return false;
        }
        /* 0 = permanent; random (1), stolen (2) and set (3) addresses change under us. */
        r = read_attribute_long(dir, "addr_assign_type", &v);
        if ((r < 0 && r != -ENOENT) || (r >= 0 && v != 0)) {
                log_debug("Interface %s: address is not permanent, skipping.", name);
                return false;
        }
        if (read_attribute(dir, "address", buf, sizeof buf) < 0 || parse_mac(buf, ret, &first_octet, &zero) < 0) {
                log_debug("Interface %s: no readable MAC address, skipping.", name);
                return false;
        }
        if (zero || (first_octet & 0x01)) {
                log_debug("Interface %s: zero or multicast MAC, skipping.", name);
                return false;
        }
        /* The locally administered bit marks randomized and software-chosen addresses. */
        if (first_octet & 0x02) {
                log_debug("Interface %s: locally administered MAC, skipping.", name);
                return false;
        }
        return true;
}

static int read_stable_mac(const char *root, char ret[static sizeof_field(HostIdentity, stable_mac)]) {
        char net[PATH_MAX], dir[PATH_MAX], mac[18], best_name[NAME_MAX + 1] = "";
        _cleanup_(closedirp) DIR *d = NULL;
        int best_class = INT_MAX;
        int r;

        ret[0] = '\0';
        r = root_path(root, "/sys/class/net", net);
        if (r < 0)
                return r;
        d = opendir(net);
        if (!d) {
                log_debug_errno(errno, "Cannot open %s, no MAC address used: %m", net);
                return 0;
        }
        for (struct dirent *de; (de = readdir(d));) {
                int c;

                if (de->d_name[0] == '.')
                        continue;
                c = interface_class(de->d_name);
                if (c > best_class || (c == best_class && strcmp(de->d_name, best_name) >= 0))
                        continue;
                if (snprintf(dir, sizeof dir, "%s/%s", net, de->d_name) >= (int) sizeof dir)
                        continue;
                if (!interface_stable_mac(dir, de->d_name, mac))
                        continue;
                best_class = c;
                snprintf(best_name, sizeof best_name, "%s", de->d_name);
                memcpy(ret, mac, sizeof mac);
        }
        if (ret[0])
                log_debug("Using the MAC address of %s for the host fingerprint.", best_name);
        return 0;
}

int host_identity_derive(const char *root, HostIdentity *ret) {
        HostIdentity id = { 0 };
        int r;

        r = read_host_id(root, id.host_id);
        if (r < 0)
                return r;
        r = read_stable_mac(root, id.stable_mac);
        if (r < 0)
                return r;
        if (id.host_id[0] || id.stable_mac[0])
                host_fingerprint_compute(id.host_id, id.stable_mac, id.fingerprint);
        *ret = id;
        return 0;
}

static int state_file_path(const char *state_dir, char **ret) {
        return asprintf(ret, "%s/%s", state_dir, HOST_FINGERPRINT_FILE) < 0 ? -ENOMEM : 0;
}

static int json_add(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int write_identity(const char *path, const HostIdentity *id) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        char written_at[ISO8601_MAX];
        const char *s;
        int r;

        r = format_iso8601(now_usec(CLOCK_REALTIME), written_at);
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if ((r = json_add(o, "schema_version", json_object_new_int(HOST_FINGERPRINT_SCHEMA_VERSION))) < 0 ||
            (r = json_add(o, "fingerprint", json_object_new_string(id->fingerprint))) < 0 ||
            (r = json_add(o, "host_id", json_object_new_string(id->host_id))) < 0 ||
            (r = json_add(o, "stable_mac", json_object_new_string(id->stable_mac))) < 0 ||
            (r = json_add(o, "written_at", json_object_new_string(written_at))) < 0)
                return r;
        /* The layout JSON.stringify(x, null, 2) gives, as the upstream CLI writes it. */
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s || asprintf(&text, "%s\n", s) < 0)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0600);
}

static const char *string_field(json_object *o, const char *key, size_t max_len) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        if ((size_t) json_object_get_string_len(v) > max_len ||
            strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
                return NULL;
        return json_object_get_string(v);
}

/* 0 with ret filled; -ENOENT when there is no file; -EBADMSG with *ret_why (a clause for the
 * user) when the file cannot be used; -ENOMEM. */
static int read_identity(const char *path, HostIdentity *ret, char **ret_why) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *buf = NULL;
        enum json_tokener_error jerr;
        const char *fingerprint, *host_id, *stable_mac, *written_at;
        json_object *v;
        usec_t t;
        int r;

        r = read_full_file(path, 64 * 1024, &buf, NULL, NULL);
        if (r == -ENOENT || r == -ENOMEM)
                return r;
        if (r < 0)
                return asprintf(ret_why, "cannot be read (%s)", STRERROR(r)) < 0 ? -ENOMEM : -EBADMSG;

        o = json_tokener_parse_verbose(buf, &jerr);
        if (!o)
                return asprintf(ret_why, "is not valid JSON (%s)", json_tokener_error_desc(jerr)) < 0 ? -ENOMEM
                                                                                                      : -EBADMSG;
        if (!json_object_is_type(o, json_type_object))
                return (*ret_why = strdup("is not a JSON object")) ? -EBADMSG : -ENOMEM;
        if (!json_object_object_get_ex(o, "schema_version", &v) || !json_object_is_type(v, json_type_int))
                return (*ret_why = strdup("has no schema_version")) ? -EBADMSG : -ENOMEM;
        if (json_object_get_int64(v) != HOST_FINGERPRINT_SCHEMA_VERSION)
                return asprintf(ret_why, "has schema_version %" PRId64 ", which this version does not know",
                                json_object_get_int64(v)) < 0 ? -ENOMEM : -EBADMSG;

        fingerprint = string_field(o, "fingerprint", 64);
        host_id = string_field(o, "host_id", sizeof ret->host_id - 1);
        stable_mac = string_field(o, "stable_mac", sizeof ret->stable_mac - 1);
        written_at = string_field(o, "written_at", 64);
        if (!fingerprint || !hex_string(fingerprint, 64, HEX_LOWER))
                return (*ret_why = strdup("has no valid fingerprint")) ? -EBADMSG : -ENOMEM;
        if (!host_id || !stable_mac)
                return (*ret_why = strdup("has no valid host_id or stable_mac")) ? -EBADMSG : -ENOMEM;
        if (!written_at || parse_iso8601(written_at, &t) < 0)
                return (*ret_why = strdup("has no valid written_at timestamp")) ? -EBADMSG : -ENOMEM;

        *ret = (HostIdentity) { 0 };
        snprintf(ret->fingerprint, sizeof ret->fingerprint, "%s", fingerprint);
        snprintf(ret->host_id, sizeof ret->host_id, "%s", host_id);
        snprintf(ret->stable_mac, sizeof ret->stable_mac, "%s", stable_mac);
        return 0;
}

static int append(char **s, const char *clause) {
        char *n;

        if (asprintf(&n, "%s%s%s", strempty(*s), *s ? " and " : "", clause) < 0)
                return -ENOMEM;
        free(*s);
        *s = n;
        return 0;
}

/* "the machine ID changed and the MAC address changed (a → b)". */
static int describe_change(const HostIdentity *stored, const HostIdentity *current, char **ret) {
        _cleanup_free_ char *what = NULL, *mac = NULL;
        int r = 0;

        if (!streq(stored->host_id, current->host_id))
                r = append(&what, !stored->host_id[0]  ? "a machine ID appeared where there was none" :
                                  !current->host_id[0] ? "the machine ID is no longer readable" :
                                                         "the machine ID changed");
        if (r < 0)
                return r;
        if (!streq(stored->stable_mac, current->stable_mac)) {
                if (asprintf(&mac, "the MAC address changed (%s → %s)",
                             stored->stable_mac[0] ? stored->stable_mac : "none",
                             current->stable_mac[0] ? current->stable_mac : "none") < 0)
                        return -ENOMEM;
                r = append(&what, mac);
                if (r < 0)
                        return r;
        }
        if (!what) {
                what = strdup("the recorded fingerprint does not match the recorded machine ID and MAC address");
                if (!what)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(what);
        return 0;
}

int host_fingerprint_check(const char *state_dir, const HostIdentity *current, HostFingerprintState *ret_state,
                           HostIdentity *ret_stored, char **ret_reason) {
        _cleanup_free_ char *path = NULL, *why = NULL, *reason = NULL;
        HostIdentity stored = { 0 };
        HostFingerprintState state;
        int r;

        if (!current->fingerprint[0]) {
                state = HOST_FINGERPRINT_UNAVAILABLE;
                goto done;
        }

        r = state_file_path(state_dir, &path);
        if (r < 0)
                return r;
        r = read_identity(path, &stored, &why);
        if (r == -ENOENT) {
                r = write_identity(path, current);
                if (r < 0)
                        return r;
                state = HOST_FINGERPRINT_FIRST_RUN;
        } else if (r == -EBADMSG) {
                stored = (HostIdentity) { 0 };
                state = HOST_FINGERPRINT_MISMATCH;
                if (asprintf(&reason,
                             "The host identity record %s %s, so this machine cannot be checked against the one "
                             "claudemesh first ran on; its meshes stay detached. If this is the same machine, or "
                             "it was moved or restored on purpose, run `claudemeshctl accept-host` (D-Bus "
                             "AcceptHost) to record the current identity (fingerprint %.*s…).",
                             path, why, FINGERPRINT_PREFIX_LEN, current->fingerprint) < 0)
                        return -ENOMEM;
        } else if (r < 0)
                return r;
        else if (streq(stored.fingerprint, current->fingerprint))
                state = HOST_FINGERPRINT_MATCH;
        else {
                state = HOST_FINGERPRINT_MISMATCH;
                r = describe_change(&stored, current, &why);
                if (r < 0)
                        return r;
                if (asprintf(&reason,
                             "This machine (fingerprint %.*s…) is not the one recorded in %s at first run "
                             "(fingerprint %.*s…): %s. Its meshes stay detached. If the machine was moved or "
                             "restored on purpose, run `claudemeshctl accept-host` (D-Bus AcceptHost) to record "
                             "the new identity; if it is a copy of another machine, do not: both would share "
                             "one mesh identity.",
                             FINGERPRINT_PREFIX_LEN, current->fingerprint, path, FINGERPRINT_PREFIX_LEN,
                             stored.fingerprint, why) < 0)
                        return -ENOMEM;
        }

done:
        *ret_state = state;
        if (ret_stored)
                *ret_stored = stored;
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return 0;
}

int host_fingerprint_accept(const char *state_dir, const HostIdentity *current) {
        _cleanup_free_ char *path = NULL;
        int r;

        if (!current->fingerprint[0])
                return -ENODATA;
        r = state_file_path(state_dir, &path);
        if (r < 0)
                return r;
        return write_identity(path, current);
}
