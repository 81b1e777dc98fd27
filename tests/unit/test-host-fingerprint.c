/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "host-fingerprint.h"
#include "macro.h"
#include "tests.h"
#include "time-util.h"

#define MACHINE_ID   "0123456789abcdef0123456789abcdef"
#define MACHINE_ID_2 "fedcba9876543210fedcba9876543210"
#define MAC          "3c:97:0e:12:34:56"
#define MAC_2        "3c:97:0e:65:43:21"

/* From `printf '<id>\0<mac>' | sha256sum` and its degraded variants, computed outside this code. */
#define FP_BOTH     "b33342597794d77a9a7cfa85eca41cbc41149ce48a5549af3e57de1da9c29f2d"
#define FP_ID_ONLY  "d66a1cf445ba646ab92da0b4c381bfd68034e0fc93bb33024f97af37711f5f4c"
#define FP_MAC_ONLY "a72a8b26955a74032da6478027043890cf9c6fb331407a1438530f719eabbb84"

enum {
        IF_NO_DEVICE   = 1 << 0,
        IF_BRIDGE      = 1 << 1,
        IF_TUN         = 1 << 2,
        IF_TYPE_OTHER  = 1 << 3, /* ARPHRD_LOOPBACK */
        IF_NO_TYPE     = 1 << 4,
        IF_ASSIGN_PERM = 1 << 5,
        IF_ASSIGN_RAND = 1 << 6,
        IF_ASSIGN_SET  = 1 << 7,
};

/* A fresh, empty fake root per scenario. */
static const char *new_root(void) {
        static unsigned counter;
        static char path[4096];

        snprintf(path, sizeof path, "%s/root%u", test_tmpdir(), counter++);
        ASSERT_OK(mkdir_parents_mode(path, 0755));
        return path;
}

static void write_text(const char *root, const char *rel, const char *text) {
        char path[4096];
        char *slash;

        snprintf(path, sizeof path, "%s/%s", root, rel);
        slash = strrchr(path, '/');
        *slash = '\0';
        ASSERT_OK(mkdir_parents_mode(path, 0755));
        *slash = '/';
        ASSERT_OK(write_file_atomic(path, text, strlen(text), 0644));
}

static void add_iface(const char *root, const char *name, const char *mac, unsigned flags) {
        char rel[512], path[4096];

        snprintf(rel, sizeof rel, "sys/class/net/%s/address", name);
        write_text(root, rel, mac);
        snprintf(rel, sizeof rel, "sys/class/net/%s/type", name);
        if (!(flags & IF_NO_TYPE))
                write_text(root, rel, flags & IF_TYPE_OTHER ? "772\n" : "1\n");
        snprintf(rel, sizeof rel, "sys/class/net/%s/addr_assign_type", name);
        if (flags & (IF_ASSIGN_PERM | IF_ASSIGN_RAND | IF_ASSIGN_SET))
                write_text(root, rel, flags & IF_ASSIGN_PERM ? "0\n" : flags & IF_ASSIGN_RAND ? "1\n" : "3\n");
        snprintf(rel, sizeof rel, "sys/class/net/%s/tun_flags", name);
        if (flags & IF_TUN)
                write_text(root, rel, "0x1002\n");
        if (flags & IF_BRIDGE) {
                snprintf(path, sizeof path, "%s/sys/class/net/%s/bridge", root, name);
                ASSERT_OK(mkdir_parents_mode(path, 0755));
        }
        if (!(flags & IF_NO_DEVICE)) {
                /* Dangling, as an lstat()-level check must not care where it points. */
                snprintf(path, sizeof path, "%s/sys/class/net/%s/device", root, name);
                ASSERT_OK(symlink("../../../devices/pci0000:00/0000:00:1f.6", path));
        }
}

static void remove_file(const char *root, const char *rel) {
        char path[4096];

        snprintf(path, sizeof path, "%s/%s", root, rel);
        ASSERT_OK(unlink(path));
}

static void test_state_strings(void) {
        ASSERT_STREQ(host_fingerprint_state_to_string(HOST_FINGERPRINT_FIRST_RUN), "first-run");
        ASSERT_STREQ(host_fingerprint_state_to_string(HOST_FINGERPRINT_MATCH), "match");
        ASSERT_STREQ(host_fingerprint_state_to_string(HOST_FINGERPRINT_MISMATCH), "mismatch");
        ASSERT_STREQ(host_fingerprint_state_to_string(HOST_FINGERPRINT_UNAVAILABLE), "unavailable");
        ASSERT_TRUE(host_fingerprint_state_to_string(_HOST_FINGERPRINT_STATE_MAX) == NULL);
        ASSERT_TRUE(host_fingerprint_state_to_string((HostFingerprintState) -1) == NULL);
}

static void test_fingerprint_bytes(void) {
        static const char id[] = MACHINE_ID, mac[] = MAC;
        unsigned char buf[sizeof id + sizeof mac], digest[crypto_hash_sha256_BYTES];
        char expected[65], fp[65];

        /* host_id, one 0x00, stable_mac, no terminator. */
        memcpy(buf, id, strlen(id));
        buf[strlen(id)] = 0x00;
        memcpy(buf + strlen(id) + 1, mac, strlen(mac));
        ASSERT_OK(crypto_hash_sha256(digest, buf, strlen(id) + 1 + strlen(mac)));
        sodium_bin2hex(expected, sizeof expected, digest, sizeof digest);

        host_fingerprint_compute(MACHINE_ID, MAC, fp);
        ASSERT_STREQ(fp, expected);
        ASSERT_STREQ(fp, FP_BOTH);
        host_fingerprint_compute(MACHINE_ID, "", fp);
        ASSERT_STREQ(fp, FP_ID_ONLY);
        host_fingerprint_compute("", MAC, fp);
        ASSERT_STREQ(fp, FP_MAC_ONLY);
}

static void test_derive_full(void) {
        const char *root = new_root();
        HostIdentity id;
        char slash_root[4096];

        write_text(root, "etc/machine-id", MACHINE_ID "\n");
        add_iface(root, "enp3s0", MAC, 0);
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID);
        ASSERT_STREQ(id.stable_mac, MAC);
        ASSERT_STREQ(id.fingerprint, FP_BOTH);

        /* A trailing slash on the root changes nothing. */
        snprintf(slash_root, sizeof slash_root, "%s/", root);
        ASSERT_OK(host_identity_derive(slash_root, &id));
        ASSERT_STREQ(id.fingerprint, FP_BOTH);
}

static void test_host_id_sources(void) {
        const char *root = new_root();
        HostIdentity id;
        char link[4096];

        write_text(root, "etc/machine-id", "  " MACHINE_ID "  \n");
        write_text(root, "var/lib/dbus/machine-id", MACHINE_ID_2 "\n");
        write_text(root, "sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8052-B4C04F4E3732\n");

        /* /etc/machine-id first, trimmed. */
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID);

        /* Not 32 hex characters: absent, so the D-Bus copy is next. */
        write_text(root, "etc/machine-id", "uninitialized\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);
        write_text(root, "etc/machine-id", "0123456789abcdef0123456789abcdeg\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);
        write_text(root, "etc/machine-id", "0123456789abcdef0123456789abcde\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);
        write_text(root, "etc/machine-id", "");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);
        remove_file(root, "etc/machine-id");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);

        /* Followed through a symlink, as the D-Bus copy often is one. */
        remove_file(root, "var/lib/dbus/machine-id");
        write_text(root, "run/machine-id", MACHINE_ID_2 "\n");
        snprintf(link, sizeof link, "%s/var/lib/dbus/machine-id", root);
        ASSERT_OK(symlink("../../../run/machine-id", link));
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID_2);
        remove_file(root, "var/lib/dbus/machine-id");

        /* Neither machine-id: the DMI UUID, lowercased. */
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, "4c4c4544-0042-3510-8052-b4c04f4e3732");
        write_text(root, "var/lib/dbus/machine-id", "uninitialized\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, "4c4c4544-0042-3510-8052-b4c04f4e3732");
        remove_file(root, "var/lib/dbus/machine-id");

        /* An uppercase machine-id is still one, normalized to lowercase. */
        write_text(root, "etc/machine-id", "0123456789ABCDEF0123456789ABCDEF\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID);
        remove_file(root, "etc/machine-id");

        /* An empty DMI UUID is no UUID. */
        write_text(root, "sys/class/dmi/id/product_uuid", "\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, "");
        remove_file(root, "sys/class/dmi/id/product_uuid");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, "");
        ASSERT_STREQ(id.stable_mac, "");
        ASSERT_STREQ(id.fingerprint, "");
}

static const char *derive_mac(const char *root) {
        static HostIdentity id;

        ASSERT_OK(host_identity_derive(root, &id));
        return id.stable_mac;
}

static void test_interface_order(void) {
        const char *root = new_root();

        /* en and eth share the first class and go by name; the class beats the name. */
        add_iface(root, "abc0", "00:00:00:00:00:0a", 0);
        add_iface(root, "wlp2s0", "00:00:00:00:00:0b", 0);
        add_iface(root, "eth1", "00:00:00:00:00:0c", 0);
        add_iface(root, "enp3s0", "00:00:00:00:00:0d", 0);
        ASSERT_STREQ(derive_mac(root), "00:00:00:00:00:0d");

        root = new_root();
        add_iface(root, "abc0", "00:00:00:00:00:0a", 0);
        add_iface(root, "wlp2s0", "00:00:00:00:00:0b", 0);
        add_iface(root, "eth1", "00:00:00:00:00:0c", 0);
        add_iface(root, "eth0", "00:00:00:00:00:0e", 0);
        ASSERT_STREQ(derive_mac(root), "00:00:00:00:00:0e");

        /* wl before any other physical interface, whatever the names. */
        root = new_root();
        add_iface(root, "abc0", "00:00:00:00:00:0a", 0);
        add_iface(root, "wlp2s0", "00:00:00:00:00:0b", 0);
        add_iface(root, "wlan0", "00:00:00:00:00:0f", 0);
        ASSERT_STREQ(derive_mac(root), "00:00:00:00:00:0f");

        /* Any other physical ethernet interface as the last resort, by name. */
        root = new_root();
        add_iface(root, "usb1", "00:00:00:00:00:01", 0);
        add_iface(root, "abc0", "00:00:00:00:00:0a", 0);
        ASSERT_STREQ(derive_mac(root), "00:00:00:00:00:0a");

        /* The MAC is reported in lowercase. */
        root = new_root();
        add_iface(root, "eth0", "3C:97:0E:AB:CD:EF\n", 0);
        ASSERT_STREQ(derive_mac(root), "3c:97:0e:ab:cd:ef");
}

/* name (with flags and mac) would win if it were eligible; "zzz9" is the fallback that must. */
static void check_excluded(const char *name, unsigned flags, const char *mac) {
        const char *root = new_root();

        add_iface(root, name, mac, flags);
        add_iface(root, "zzz9", MAC_2, 0);
        if (!streq(derive_mac(root), MAC_2)) {
                fprintf(stderr, "interface %s (flags 0x%x, %s) was not excluded\n", name, flags, mac);
                abort();
        }
}

static void test_interface_exclusions(void) {
        static const char *const names[] = {
                "lo", "docker0", "veth1a2b3c", "br-0123abcd", "virbr0", "vnet3", "tap0", "tun0",
                "tailscale0", "wg0", "zt5u4y6j", "vboxnet0", "vmnet8", "ppp0",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                check_excluded(names[i], 0, MAC);

        check_excluded("eth0", IF_NO_DEVICE, MAC);
        check_excluded("eth0", IF_BRIDGE, MAC);
        check_excluded("eth0", IF_TUN, MAC);
        check_excluded("eth0", IF_TYPE_OTHER, MAC);
        check_excluded("eth0", IF_NO_TYPE, MAC);
        check_excluded("eth0", IF_ASSIGN_RAND, MAC);
        check_excluded("eth0", IF_ASSIGN_SET, MAC);
        check_excluded("eth0", 0, "00:00:00:00:00:00");
        check_excluded("eth0", 0, "02:42:ac:11:00:02");  /* docker-style, locally administered */
        check_excluded("eth0", 0, "3e:22:fb:01:02:03");  /* randomized Wi-Fi style */
        check_excluded("eth0", 0, "01:00:5e:00:00:01");  /* multicast */
        check_excluded("eth0", 0, "not-a-mac");
        check_excluded("eth0", 0, "3c:97:0e:12:34");

        /* A permanent address, stated as such, is fine. */
        {
                const char *root = new_root();
                add_iface(root, "eth0", MAC, IF_ASSIGN_PERM);
                add_iface(root, "zzz9", MAC_2, 0);
                ASSERT_STREQ(derive_mac(root), MAC);
        }
}

static void test_degraded(void) {
        const char *root = new_root();
        HostIdentity id;

        /* No MAC: host_id alone. */
        write_text(root, "etc/machine-id", MACHINE_ID "\n");
        add_iface(root, "docker0", "02:42:00:00:00:01", 0);
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, MACHINE_ID);
        ASSERT_STREQ(id.stable_mac, "");
        ASSERT_STREQ(id.fingerprint, FP_ID_ONLY);

        /* No host_id: MAC alone. */
        root = new_root();
        add_iface(root, "eno1", MAC, 0);
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.host_id, "");
        ASSERT_STREQ(id.stable_mac, MAC);
        ASSERT_STREQ(id.fingerprint, FP_MAC_ONLY);
}

static void test_unavailable(void) {
        char state[1024], path[4096];
        const char *root = new_root();
        HostIdentity id, stored;
        HostFingerprintState s;
        char *reason = (char *) "untouched";

        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_STREQ(id.fingerprint, "");

        snprintf(state, sizeof state, "%s/state-unavailable", test_tmpdir());
        ASSERT_OK(mkdir_parents_mode(state, 0700));
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_UNAVAILABLE);
        ASSERT_TRUE(reason == NULL);
        ASSERT_STREQ(stored.fingerprint, "");
        snprintf(path, sizeof path, "%s/" HOST_FINGERPRINT_FILE, state);
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);
        ASSERT_EQ(host_fingerprint_accept(state, &id), -ENODATA);
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);
}

static void test_real_system(void) {
        HostIdentity a, b;

        /* Whatever this machine has, reading it works and is repeatable. */
        ASSERT_OK(host_identity_derive(NULL, &a));
        ASSERT_OK(host_identity_derive("/", &b));
        ASSERT_STREQ(a.fingerprint, b.fingerprint);
        ASSERT_TRUE(a.fingerprint[0] == '\0' || strlen(a.fingerprint) == 64);
}

static char *read_state(const char *state) {
        char path[4096];
        char *buf = NULL;

        snprintf(path, sizeof path, "%s/" HOST_FINGERPRINT_FILE, state);
        ASSERT_OK(read_full_file(path, 65536, &buf, NULL, NULL));
        return buf;
}

static void test_first_run_match_mismatch_accept(void) {
        _cleanup_free_ char *text = NULL, *expected = NULL, *reason = NULL, *after = NULL;
        char state[1024], path[4096], written_at[ISO8601_MAX];
        const char *root = new_root(), *p;
        HostIdentity id, stored;
        HostFingerprintState s;
        struct stat st;
        usec_t t, now = now_usec(CLOCK_REALTIME);

        write_text(root, "etc/machine-id", MACHINE_ID "\n");
        add_iface(root, "enp3s0", MAC, IF_ASSIGN_PERM);
        ASSERT_OK(host_identity_derive(root, &id));

        /* No state directory: the first-run write fails and says so. */
        snprintf(state, sizeof state, "%s/state-missing", test_tmpdir());
        ASSERT_EQ(host_fingerprint_check(state, &id, &s, NULL, NULL), -ENOENT);

        snprintf(state, sizeof state, "%s/state", test_tmpdir());
        ASSERT_OK(mkdir_parents_mode(state, 0700));
        snprintf(path, sizeof path, "%s/" HOST_FINGERPRINT_FILE, state);

        /* First run: written, 0600, the exact JSON shape. */
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_FIRST_RUN);
        ASSERT_TRUE(reason == NULL);
        ASSERT_STREQ(stored.fingerprint, "");
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        text = read_state(state);
        p = strstr(text, "\"written_at\": \"");
        ASSERT_TRUE(p);
        p += strlen("\"written_at\": \"");
        ASSERT_TRUE(strlen(p) > ISO8601_MAX - 1);
        memcpy(written_at, p, ISO8601_MAX - 1);
        written_at[ISO8601_MAX - 1] = '\0';
        ASSERT_OK(parse_iso8601(written_at, &t));
        ASSERT_TRUE(t + USEC_PER_SEC >= now && t <= now_usec(CLOCK_REALTIME));
        ASSERT_TRUE(asprintf(&expected,
                             "{\n"
                             "  \"schema_version\": 1,\n"
                             "  \"fingerprint\": \"" FP_BOTH "\",\n"
                             "  \"host_id\": \"" MACHINE_ID "\",\n"
                             "  \"stable_mac\": \"" MAC "\",\n"
                             "  \"written_at\": \"%s\"\n"
                             "}\n",
                             written_at) > 0);
        ASSERT_STREQ(text, expected);

        /* Same machine. */
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MATCH);
        ASSERT_TRUE(reason == NULL);
        ASSERT_STREQ(stored.fingerprint, FP_BOTH);
        ASSERT_STREQ(stored.host_id, MACHINE_ID);
        ASSERT_STREQ(stored.stable_mac, MAC);

        /* Another machine-id: mismatch, file untouched, the reason explains. */
        write_text(root, "etc/machine-id", MACHINE_ID_2 "\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MISMATCH);
        ASSERT_STREQ(stored.fingerprint, FP_BOTH);
        ASSERT_STREQ(stored.host_id, MACHINE_ID);
        ASSERT_CONTAINS(reason, "b33342597794d77a");
        ASSERT_TRUE(!strstr(reason, FP_BOTH));
        {
                char prefix[17];
                snprintf(prefix, sizeof prefix, "%.16s", id.fingerprint);
                ASSERT_CONTAINS(reason, prefix);
        }
        ASSERT_CONTAINS(reason, "machine ID changed");
        ASSERT_TRUE(!strstr(reason, "MAC address changed"));
        ASSERT_CONTAINS(reason, "claudemeshctl accept-host");
        ASSERT_CONTAINS(reason, "AcceptHost");
        after = read_state(state);
        ASSERT_STREQ(after, text);
        free(TAKE_PTR(after));
        free(TAKE_PTR(reason));

        /* Back to the first machine-id but another NIC. */
        write_text(root, "etc/machine-id", MACHINE_ID "\n");
        write_text(root, "sys/class/net/enp3s0/address", MAC_2 "\n");
        ASSERT_OK(host_identity_derive(root, &id));
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MISMATCH);
        ASSERT_CONTAINS(reason, "MAC address changed (" MAC " → " MAC_2 ")");
        ASSERT_TRUE(!strstr(reason, "machine ID"));
        after = read_state(state);
        ASSERT_STREQ(after, text);
        free(TAKE_PTR(after));
        free(TAKE_PTR(reason));

        /* AcceptHost records the new identity, which then matches. */
        ASSERT_OK(host_fingerprint_accept(state, &id));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0600);
        after = read_state(state);
        ASSERT_CONTAINS(after, "\"stable_mac\": \"" MAC_2 "\"");
        ASSERT_CONTAINS(after, id.fingerprint);
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MATCH);
        ASSERT_TRUE(reason == NULL);
        ASSERT_STREQ(stored.stable_mac, MAC_2);
}

static void check_corrupt(const char *content, const char *why) {
        _cleanup_free_ char *reason = NULL, *after = NULL;
        char state[1024], path[4096];
        static unsigned counter;
        HostIdentity id, stored;
        HostFingerprintState s;
        const char *root = new_root();

        write_text(root, "etc/machine-id", MACHINE_ID "\n");
        ASSERT_OK(host_identity_derive(root, &id));
        snprintf(state, sizeof state, "%s/state-corrupt%u", test_tmpdir(), counter++);
        ASSERT_OK(mkdir_parents_mode(state, 0700));
        snprintf(path, sizeof path, "%s/" HOST_FINGERPRINT_FILE, state);
        ASSERT_OK(write_file_atomic(path, content, strlen(content), 0600));

        memset(&stored, 'x', sizeof stored);
        ASSERT_OK(host_fingerprint_check(state, &id, &s, &stored, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MISMATCH);
        ASSERT_STREQ(stored.fingerprint, "");
        ASSERT_STREQ(stored.host_id, "");
        ASSERT_STREQ(stored.stable_mac, "");
        ASSERT_CONTAINS(reason, why);
        ASSERT_CONTAINS(reason, path);
        ASSERT_CONTAINS(reason, "claudemeshctl accept-host");
        ASSERT_CONTAINS(reason, "d66a1cf445ba646a");
        after = read_state(state);
        ASSERT_STREQ(after, content);

        /* Accepting replaces the bad file. */
        ASSERT_OK(host_fingerprint_accept(state, &id));
        ASSERT_OK(host_fingerprint_check(state, &id, &s, NULL, NULL));
        ASSERT_EQ(s, HOST_FINGERPRINT_MATCH);
}

static void test_corrupt(void) {
        check_corrupt("{\"schema_version\": 1, \"fingerprint\": ", "is not valid JSON");
        check_corrupt("", "is not valid JSON");
        check_corrupt("[1, 2]\n", "is not a JSON object");
        check_corrupt("{\"fingerprint\": \"" FP_ID_ONLY "\"}\n", "has no schema_version");
        check_corrupt("{\"schema_version\": 2, \"fingerprint\": \"" FP_ID_ONLY "\", \"host_id\": \"" MACHINE_ID
                      "\", \"stable_mac\": \"\", \"written_at\": \"2026-05-03T19:24:32.123Z\"}\n",
                      "schema_version 2");
        check_corrupt("{\"schema_version\": 1, \"fingerprint\": \"D66A1CF4\", \"host_id\": \"" MACHINE_ID
                      "\", \"stable_mac\": \"\", \"written_at\": \"2026-05-03T19:24:32.123Z\"}\n",
                      "no valid fingerprint");
        check_corrupt("{\"schema_version\": 1, \"fingerprint\": \"" FP_ID_ONLY "\", \"host_id\": 5, "
                      "\"stable_mac\": \"\", \"written_at\": \"2026-05-03T19:24:32.123Z\"}\n",
                      "no valid host_id or stable_mac");
        check_corrupt("{\"schema_version\": 1, \"fingerprint\": \"" FP_ID_ONLY "\", \"host_id\": \"" MACHINE_ID
                      "\", \"stable_mac\": \"\", \"written_at\": \"yesterday\"}\n",
                      "no valid written_at");
}

static void test_unreadable(void) {
        _cleanup_free_ char *reason = NULL;
        char state[1024], path[4096];
        HostIdentity id = { 0 };
        HostFingerprintState s;
        struct stat st;

        snprintf(id.host_id, sizeof id.host_id, MACHINE_ID);
        host_fingerprint_compute(id.host_id, "", id.fingerprint);
        snprintf(state, sizeof state, "%s/state-unreadable", test_tmpdir());
        snprintf(path, sizeof path, "%s/" HOST_FINGERPRINT_FILE, state);
        ASSERT_OK(mkdir_parents_mode(path, 0700));

        ASSERT_OK(host_fingerprint_check(state, &id, &s, NULL, &reason));
        ASSERT_EQ(s, HOST_FINGERPRINT_MISMATCH);
        ASSERT_CONTAINS(reason, "cannot be read");
        ASSERT_CONTAINS(reason, "AcceptHost");
        ASSERT_OK(stat(path, &st));
        ASSERT_TRUE(S_ISDIR(st.st_mode));
}

int main(void) {
        ASSERT_TRUE(sodium_init() >= 0);
        test_state_strings();
        test_fingerprint_bytes();
        test_derive_full();
        test_host_id_sources();
        test_interface_order();
        test_interface_exclusions();
        test_degraded();
        test_unavailable();
        test_real_system();
        test_first_run_match_mismatch_accept();
        test_corrupt();
        test_unreadable();
        return 0;
}
