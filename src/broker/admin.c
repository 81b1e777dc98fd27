/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "retention.h"
#include "time-util.h"

_printf_(1, 2) static int usage_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "claudemesh-broker: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nSee claudemesh-broker --help.\n");
        return EXIT_USAGE;
}

static int fail(int code, const char *what, const char *arg) {
        fprintf(stderr, "claudemesh-broker: %s%s%s\n", what, arg ? ": " : "", strempty(arg));
        return code;
}

static int print_json(json_object *o, int flags) {
        const char *text = json_object_to_json_string_ext(o, flags | JSON_C_TO_STRING_NOSLASHESCAPE);

        if (!text || printf("%s\n", text) < 0 || fflush(stdout) != 0)
                return fail(EXIT_FAILURE, "cannot write to stdout", NULL);
        return EXIT_SUCCESS;
}

typedef struct MeshRow {
        char id[BROKER_ID_LEN + 1];
        char slug[128];
        char name[256];
} MeshRow;

/* 1 = found by id or slug, 0 = not found. */
static int mesh_lookup(Store *s, const char *id_or_slug, MeshRow *ret) {
        StoreStmt *st = store_stmt(s, "SELECT id, slug, name FROM mesh WHERE id = ?1 OR slug = ?1");
        int r = 0;

        if (!st)
                return -EIO;
        store_bind_text(st, 1, id_or_slug);
        int rc = store_step(st);
        if (rc == STORE_ROW) {
                snprintf(ret->id, sizeof ret->id, "%s", store_col_text(st, 0));
                snprintf(ret->slug, sizeof ret->slug, "%s", store_col_text(st, 1));
                snprintf(ret->name, sizeof ret->name, "%s", store_col_text(st, 2));
                r = 1;
        } else if (rc != STORE_DONE)
                r = rc;
        store_reset(st);
        return r;
}

static int need_mesh(Store *s, const char *id_or_slug, MeshRow *ret) {
        int r = mesh_lookup(s, id_or_slug, ret);
        if (r < 0)
                return fail(EXIT_FAILURE, "database error", store_errmsg(s));
        if (r == 0)
                return fail(EXIT_NOT_FOUND, "no mesh with this id or slug", id_or_slug);
        return EXIT_SUCCESS;
}

static void slugify(const char *name, char *ret, size_t size) {
        size_t n = 0;
        bool dash = false;

        for (const char *p = name; *p && n + 1 < size; p++) {
                if (isalnum((unsigned char) *p)) {
                        if (dash && n > 0)
                                ret[n++] = '-';
                        if (n + 1 < size)
                                ret[n++] = (char) tolower((unsigned char) *p);
                        dash = false;
                } else
                        dash = true;
        }
        ret[n] = '\0';
}

static int cmd_mesh_create(Store *s, int argc, char **argv) {
        static const struct option options[] = {
                { "slug", required_argument, NULL, 's' },
                { NULL, 0, NULL, 0 }
        };
        char slug[128] = "";
        char id[BROKER_ID_LEN + 1];
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        snprintf(slug, sizeof slug, "%s", optarg);
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind != 1)
                return usage_error("%s", "usage: mesh create NAME [--slug SLUG]");
        const char *name = argv[optind];
        if (!*name || strlen(name) > 200)
                return usage_error("mesh name must be 1-200 bytes: \"%s\"", name);
        if (!*slug)
                slugify(name, slug, sizeof slug);
        if (!*slug)
                return usage_error("cannot derive a slug from \"%s\"; give --slug", name);

        broker_id_generate(id);
        StoreStmt *st = store_stmt(s, "INSERT INTO mesh (id, slug, name, created_at) VALUES (?1, ?2, ?3, ?4)");
        if (!st)
                return EXIT_FAILURE;
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, slug);
        store_bind_text(st, 3, name);
        store_bind_int64(st, 4, now_ms());
        int r = store_step_done(s, st);
        if (r == -EEXIST)
                return fail(EXIT_EXISTS, "a mesh with this slug exists already", slug);
        if (r < 0)
                return fail(EXIT_FAILURE, "cannot create mesh", store_errmsg(s));

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "slug", json_object_new_string(slug));
        json_object_object_add(o, "name", json_object_new_string(name));
        return print_json(o, JSON_C_TO_STRING_PLAIN);
}

static int cmd_mesh_list(Store *s, int argc, char **argv) {
        if (argc != 1)
                return usage_error("%s", "usage: mesh list");
        StoreStmt *st = store_stmt(s,
                "SELECT mesh.id, mesh.slug, mesh.name,"
                "  (SELECT COUNT(*) FROM member m WHERE m.mesh_id = mesh.id AND m.revoked_at IS NULL)"
                "  FROM mesh ORDER BY mesh.created_at, mesh.slug");
        if (!st)
                return EXIT_FAILURE;
        printf("%-32s  %-20s  %7s  %s\n", "ID", "SLUG", "MEMBERS", "NAME");
        while (store_step(st) == STORE_ROW)
                printf("%-32s  %-20s  %7d  %s\n", store_col_text(st, 0),
                       store_col_text(st, 1), store_col_int(st, 3),
                       store_col_text(st, 2));
        store_reset(st);
        return EXIT_SUCCESS;
}

/* 1 = the mesh has an active member of this display name, 0 = not, < 0 = error. */
static int active_member_named(Store *s, const char *mesh_id, const char *display_name) {
        StoreStmt *st = store_stmt(s, "SELECT 1 FROM member WHERE mesh_id = ?1 AND display_name = ?2"
                                      " AND revoked_at IS NULL LIMIT 1");
        if (!st)
                return -EIO;
        store_bind_text(st, 1, mesh_id);
        store_bind_text(st, 2, display_name);
        int r = store_step(st);
        store_reset(st);
        return r < 0 ? r : r == STORE_ROW;
}

/* `member add ... > bob.json` leaves a secret key in a file of the user's umask (often 0644). */
static void warn_if_stdout_shared(void) {
        struct stat st;

        if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077))
                fprintf(stderr, "claudemesh-broker: warning: stdout is a file others can read (mode %04o) and this "
                        "entry holds a secret key; --output FILE writes it 0600\n", (unsigned) (st.st_mode & 07777));
}

static int cmd_member_add(const BrokerOptions *opts, Store *s, int argc, char **argv) {
        static const struct option options[] = {
                { "pubkey",     required_argument, NULL, 'p' },
                { "role",       required_argument, NULL, 'r' },
                { "broker-url", required_argument, NULL, 'u' },
                { "output",     required_argument, NULL, 'o' },
                { "allow-duplicate", no_argument,  NULL, 'd' },
                { NULL, 0, NULL, 0 }
        };
        const char *pubkey_arg = NULL, *role = "member", *output = NULL;
        bool allow_duplicate = false;
        char broker_url[512], pubkey[PUBKEY_HEX_LEN + 1], secret[2 * crypto_sign_SECRETKEYBYTES + 1] = "";
        char id[BROKER_ID_LEN + 1], joined[ISO8601_MAX];
        MeshRow mesh;
        int c, r;

        snprintf(broker_url, sizeof broker_url, "%s://%s%s%s:%d/ws", opts->tls_cert ? "wss" : "ws",
                 strchr(opts->listen_host, ':') ? "[" : "", opts->listen_host,
                 strchr(opts->listen_host, ':') ? "]" : "", opts->listen_port);
        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        pubkey_arg = optarg;
                        break;
                case 'r':
                        role = optarg;
                        break;
                case 'u':
                        snprintf(broker_url, sizeof broker_url, "%s", optarg);
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'd':
                        allow_duplicate = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
        if (argc - optind != 2)
                return usage_error("%s", "usage: member add MESH DISPLAY-NAME [--pubkey HEX] [--role admin|member] "
                                         "[--broker-url URL] [--output FILE] [--allow-duplicate]");
        if (output && !*output)
                return usage_error("%s", "--output takes a file name");
        const char *display_name = argv[optind + 1];
        if (!*display_name || strlen(display_name) > 200)
                return usage_error("display name must be 1-200 bytes: \"%s\"", display_name);
        if (!streq(role, "admin") && !streq(role, "member"))
                return usage_error("--role must be admin or member, not \"%s\"", role);
        if (pubkey_arg && !hex_string(pubkey_arg, PUBKEY_HEX_LEN, HEX_LOWER))
                return usage_error("--pubkey must be 64 lowercase hex digits (an ed25519 public key): \"%s\"",
                                   pubkey_arg);
        r = need_mesh(s, argv[optind], &mesh);
        if (r != EXIT_SUCCESS)
                return r;
        if (!allow_duplicate) {
                /* Two active members of one name make "send bob" ambiguous for every peer. */
                r = active_member_named(s, mesh.id, display_name);
                if (r < 0)
                        return fail(EXIT_FAILURE, "database error", store_errmsg(s));
                if (r > 0) {
                        fprintf(stderr, "claudemesh-broker: mesh %s has an active member named \"%s\" already; "
                                "--allow-duplicate adds another\n", mesh.slug, display_name);
                        return EXIT_EXISTS;
                }
        }

        if (pubkey_arg)
                snprintf(pubkey, sizeof pubkey, "%s", pubkey_arg);
        else {
                uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
                crypto_sign_keypair(pk, sk);
                hex_encode(pk, sizeof pk, pubkey);
                hex_encode(sk, sizeof sk, secret);
                sodium_memzero(sk, sizeof sk);
        }

        int64_t now = now_ms();
        broker_id_generate(id);
        if (format_iso8601((usec_t) now * USEC_PER_MSEC, joined) < 0)
                joined[0] = '\0';
        /* One entry of the upstream config.json "meshes" array, ready to paste. */
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "meshId", json_object_new_string(mesh.id));
        json_object_object_add(o, "memberId", json_object_new_string(id));
        json_object_object_add(o, "slug", json_object_new_string(mesh.slug));
        json_object_object_add(o, "name", json_object_new_string(mesh.name));
        json_object_object_add(o, "pubkey", json_object_new_string(pubkey));
        if (*secret)
                json_object_object_add(o, "secretKey", json_object_new_string(secret));
        json_object_object_add(o, "brokerUrl", json_object_new_string(broker_url));
        json_object_object_add(o, "joinedAt", json_object_new_string(joined));
        sodium_memzero(secret, sizeof secret);
        const int flags = JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE;
        const char *text = json_object_to_json_string_ext(o, flags);
        if (!text)
                return fail(EXIT_FAILURE, "out of memory", NULL);
        if (output) {
                /* The entry holds the secret key: the file is the member's alone, and it exists
                 * before the member does, so a failed write adds nobody. */
                _cleanup_free_ char *line = NULL;
                if (asprintf(&line, "%s\n", text) < 0)
                        return fail(EXIT_FAILURE, "out of memory", NULL);
                r = write_file_atomic(output, line, strlen(line), 0600);
                if (r < 0) {
                        fprintf(stderr, "claudemesh-broker: cannot write %s: %s\n", output, strerror(-r));
                        return EXIT_FAILURE;
                }
        } else if (!pubkey_arg)
                warn_if_stdout_shared();
        StoreStmt *st = store_stmt(s,
                "INSERT INTO member (id, mesh_id, peer_pubkey, display_name, role, created_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
        if (!st) {
                if (output)
                        (void) unlink(output);
                return EXIT_FAILURE;
        }
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, mesh.id);
        store_bind_text(st, 3, pubkey);
        store_bind_text(st, 4, display_name);
        store_bind_text(st, 5, role);
        store_bind_int64(st, 6, now);
        r = store_step_done(s, st);
        if (r < 0 && output)
                (void) unlink(output);
        if (r == -EEXIST)
                return fail(EXIT_EXISTS, "this pubkey is a member of the mesh already", pubkey);
        if (r < 0)
                return fail(EXIT_FAILURE, "cannot add member", store_errmsg(s));
        if (output) {
                fprintf(stderr, "claudemesh-broker: wrote the config.json mesh entry of %s to %s (mode 0600)\n",
                        display_name, output);
                return EXIT_SUCCESS;
        }
        return print_json(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
}

static int cmd_member_revoke(Store *s, int argc, char **argv) {
        MeshRow mesh;
        int r;

        if (argc != 3)
                return usage_error("%s", "usage: member revoke MESH MEMBER (member id, pubkey or display name)");
        r = need_mesh(s, argv[1], &mesh);
        if (r != EXIT_SUCCESS)
                return r;

        StoreStmt *st = store_stmt(s,
                "SELECT id, revoked_at IS NOT NULL FROM member"
                " WHERE mesh_id = ?1 AND (id = ?2 OR peer_pubkey = ?2 OR display_name = ?2)");
        if (!st)
                return EXIT_FAILURE;
        store_bind_text(st, 1, mesh.id);
        store_bind_text(st, 2, argv[2]);
        char id[BROKER_ID_LEN + 1] = "";
        bool revoked = false;
        unsigned matches = 0;
        while (store_step(st) == STORE_ROW) {
                snprintf(id, sizeof id, "%s", store_col_text(st, 0));
                revoked = store_col_int(st, 1) != 0;
                matches++;
        }
        store_reset(st);
        if (matches == 0)
                return fail(EXIT_NOT_FOUND, "no such member in the mesh", argv[2]);
        if (matches > 1)
                return fail(EXIT_USAGE, "several members match; give the member id or pubkey", argv[2]);
        if (revoked) {
                printf("%s already revoked\n", id);
                return EXIT_SUCCESS;
        }

        st = store_stmt(s, "UPDATE member SET revoked_at = ?1 WHERE id = ?2");
        if (!st)
                return EXIT_FAILURE;
        store_bind_int64(st, 1, now_ms());
        store_bind_text(st, 2, id);
        if (store_step_done(s, st) < 0)
                return fail(EXIT_FAILURE, "cannot revoke member", store_errmsg(s));
        printf("%s revoked\n", id);
        return EXIT_SUCCESS;
}

static int cmd_member_list(Store *s, int argc, char **argv) {
        MeshRow mesh;
        int r;

        if (argc != 2)
                return usage_error("%s", "usage: member list MESH");
        r = need_mesh(s, argv[1], &mesh);
        if (r != EXIT_SUCCESS)
                return r;
        StoreStmt *st = store_stmt(s,
                "SELECT id, peer_pubkey, role, revoked_at IS NOT NULL, display_name FROM member"
                " WHERE mesh_id = ?1 ORDER BY created_at, id");
        if (!st)
                return EXIT_FAILURE;
        store_bind_text(st, 1, mesh.id);
        printf("%-32s  %-64s  %-6s  %-7s  %s\n", "ID", "PUBKEY", "ROLE", "STATE", "NAME");
        while (store_step(st) == STORE_ROW)
                printf("%-32s  %-64s  %-6s  %-7s  %s\n", store_col_text(st, 0),
                       store_col_text(st, 1), store_col_text(st, 2),
                       store_col_int(st, 3) ? "revoked" : "active", store_col_text(st, 4));
        store_reset(st);
        return EXIT_SUCCESS;
}

static int cmd_topic_create(Store *s, int argc, char **argv) {
        char id[BROKER_ID_LEN + 1];
        MeshRow mesh;
        int r;

        if (argc != 3)
                return usage_error("%s", "usage: topic create MESH NAME");
        const char *name = argv[2];
        if (!*name || strlen(name) > 200)
                return usage_error("topic name must be 1-200 bytes: \"%s\"", name);
        r = need_mesh(s, argv[1], &mesh);
        if (r != EXIT_SUCCESS)
                return r;

        broker_id_generate(id);
        StoreStmt *st = store_stmt(s, "INSERT INTO topic (id, mesh_id, name, created_at) VALUES (?1, ?2, ?3, ?4)"
                                         " ON CONFLICT (mesh_id, name) DO NOTHING");
        if (!st)
                return EXIT_FAILURE;
        store_bind_text(st, 1, id);
        store_bind_text(st, 2, mesh.id);
        store_bind_text(st, 3, name);
        store_bind_int64(st, 4, now_ms());
        if (store_step_done(s, st) < 0)
                return fail(EXIT_FAILURE, "cannot create topic", store_errmsg(s));
        bool created = store_changes(s) == 1;

        /* Idempotent on the name, like upstream's topic_create: report the existing topic. */
        st = store_stmt(s, "SELECT id FROM topic WHERE mesh_id = ?1 AND name = ?2");
        if (!st)
                return EXIT_FAILURE;
        store_bind_text(st, 1, mesh.id);
        store_bind_text(st, 2, name);
        if (store_step(st) == STORE_ROW)
                snprintf(id, sizeof id, "%s", store_col_text(st, 0));
        store_reset(st);

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(id));
        json_object_object_add(o, "meshId", json_object_new_string(mesh.id));
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "created", json_object_new_boolean(created));
        return print_json(o, JSON_C_TO_STRING_PLAIN);
}

static int cmd_purge(const BrokerOptions *opts, Store *s, int argc, char **argv) {
        static const struct option options[] = {
                { "now", required_argument, NULL, 'n' },
                { NULL, 0, NULL, 0 }
        };
        int64_t now = now_ms();
        RetentionStats stats;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'n': {
                        usec_t t;
                        char *end;
                        long long ms = strtoll(optarg, &end, 10);
                        if (*optarg && !*end && ms > 0)
                                now = ms;
                        else if (parse_iso8601(optarg, &t) >= 0)
                                now = (int64_t) (t / USEC_PER_MSEC);
                        else
                                return usage_error("--now takes milliseconds since the epoch or an ISO 8601 time, "
                                                   "not \"%s\"", optarg);
                        break;
                }
                default:
                        return EXIT_USAGE;
                }
        if (argc != optind)
                return usage_error("%s", "usage: purge [--now MS|ISO8601]");
        if (retention_purge(s, now, opts->message_retention_days, &stats) < 0)
                return EXIT_FAILURE;

        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object_object_add(o, "messages_pruned", json_object_new_int64(stats.messages_pruned));
        json_object_object_add(o, "dedupe_marked", json_object_new_int64(stats.dedupe_marked));
        json_object_object_add(o, "dedupe_purged", json_object_new_int64(stats.dedupe_purged));
        return print_json(o, JSON_C_TO_STRING_PLAIN);
}

int admin_main(const BrokerOptions *opts, int argc, char **argv) {
        _cleanup_(store_freep) Store *s = NULL;
        const char *noun = argv[0], *verb = argc > 1 ? argv[1] : "";
        enum { MESH_CREATE, MESH_LIST, MEMBER_ADD, MEMBER_REVOKE, MEMBER_LIST, TOPIC_CREATE, PURGE } cmd;

        if (streq(noun, "mesh") && streq(verb, "create"))
                cmd = MESH_CREATE;
        else if (streq(noun, "mesh") && streq(verb, "list"))
                cmd = MESH_LIST;
        else if (streq(noun, "member") && streq(verb, "add"))
                cmd = MEMBER_ADD;
        else if (streq(noun, "member") && streq(verb, "revoke"))
                cmd = MEMBER_REVOKE;
        else if (streq(noun, "member") && streq(verb, "list"))
                cmd = MEMBER_LIST;
        else if (streq(noun, "topic") && streq(verb, "create"))
                cmd = TOPIC_CREATE;
        else if (streq(noun, "purge"))
                cmd = PURGE;
        else if (streq(noun, "mesh"))
                return usage_error("unknown command \"mesh %s\"; mesh takes create or list", verb);
        else if (streq(noun, "member"))
                return usage_error("unknown command \"member %s\"; member takes add, revoke or list", verb);
        else if (streq(noun, "topic"))
                return usage_error("unknown command \"topic %s\"; topic takes create", verb);
        else
                return usage_error("unknown command \"%s\"", noun);

        /* store_open() has said why it failed; saying it again would only repeat it. */
        if (store_open(opts->db_path, &s) < 0)
                return EXIT_FAILURE;

        switch (cmd) {
        case MESH_CREATE:
                return cmd_mesh_create(s, argc - 1, argv + 1);
        case MESH_LIST:
                return cmd_mesh_list(s, argc - 1, argv + 1);
        case MEMBER_ADD:
                return cmd_member_add(opts, s, argc - 1, argv + 1);
        case MEMBER_REVOKE:
                return cmd_member_revoke(s, argc - 1, argv + 1);
        case MEMBER_LIST:
                return cmd_member_list(s, argc - 1, argv + 1);
        case TOPIC_CREATE:
                return cmd_topic_create(s, argc - 1, argv + 1);
        case PURGE:
                return cmd_purge(opts, s, argc, argv);
        }
        return EXIT_FAILURE;
}
