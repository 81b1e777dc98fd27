/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <libgen.h>
#include <sys/stat.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "config-build.h"
#include "log.h"
#include "server.h"

static void help(void) {
        printf("Usage: claudemesh-broker [OPTIONS]                 run the broker\n"
               "       claudemesh-broker [--db PATH] COMMAND ...   administer its database\n"
               "\n"
               "Commands (safe while the broker runs):\n"
               "  mesh create NAME [--slug SLUG]      create a mesh, print {id,slug,name}\n"
               "  mesh list                           list meshes\n"
               "  member add MESH NAME [--pubkey HEX] [--role admin|member] [--broker-url URL]\n"
               "             [--output FILE] [--allow-duplicate]\n"
               "                                      add a member, print its config.json mesh entry\n"
               "                                      (it holds a secret key: --output writes it 0600);\n"
               "                                      a name in use is refused without --allow-duplicate\n"
               "  member revoke MESH MEMBER           revoke a member (id, pubkey or display name)\n"
               "  member list MESH                    list members\n"
               "  topic create MESH NAME              create a topic, print {id,meshId,name,created}\n"
               "  purge [--now MS|ISO8601]            run the retention job once\n"
               "\n"
               "Options:\n"
               "  --listen HOST:PORT               address to serve on (default 127.0.0.1:7900)\n"
               "  --db PATH                        database (default $STATE_DIRECTORY/broker.db)\n"
               "  --tls-cert PATH --tls-key PATH   serve wss:// instead of ws://\n"
               "  --ping-interval SEC              WebSocket ping period (default 30)\n"
               "  --liveness-timeout SEC           drop sockets silent this long (default 75)\n"
               "  --lease-seconds SEC              redeliver pushes not acknowledged within (default 30)\n"
               "  --max-connections-per-mesh N     (default 100)\n"
               "  --rate-limit N                   sends per member per window, 0 = off (default 60)\n"
               "  --rate-window SEC                rate limit window (default 60)\n"
               "  --dedupe-retention-days N        client_message_id memory, >= 3 (default 7)\n"
               "  --legacy                         advertise no features and lease no pushes, as the\n"
               "                                   upstream broker of release 1.22 (for interop tests)\n"
               "  --message-retention-days N       message history kept (default 7)\n"
               "  --purge-interval SEC             retention job period (default 3600)\n"
               "  --presence-grace SEC             peer_left only after this long away (default 90)\n"
               "  --hello-timeout SEC              close connections without a hello after (default 10)\n"
               "  --max-unauthenticated N          connections waiting for their hello (default 256)\n"
               "  --max-unauthenticated-per-address N\n"
               "                                   of them from one address or IPv6 /64 (default 32)\n"
               "  --catch-up-interval MS           PostgreSQL: drain every connection this often, for\n"
               "                                   the other nodes' lost notifications (default 1000)\n"
               "  --db-pool N                      PostgreSQL: connections for sends and client_acks,\n"
               "                                   beside the main one, 1..32 (default 2)\n"
               "  -h --help, --version\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret) {
        char *end;
        unsigned long v;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno != 0 || *end || v < min || v > max)
                return -ERANGE;
        *ret = (unsigned) v;
        return 0;
}

static int parse_listen(const char *s, BrokerOptions *o) {
        const char *colon;
        unsigned port;
        size_t host_len;

        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                colon = close + 1;
                s++;
                host_len = (size_t) (close - s);
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                host_len = (size_t) (colon - s);
        }
        if (host_len == 0 || host_len >= sizeof o->listen_host || parse_uint(colon + 1, 0, 65535, &port) < 0)
                return -EINVAL;
        memcpy(o->listen_host, s, host_len);
        o->listen_host[host_len] = '\0';
        o->listen_port = (int) port;
        return 0;
}

static char *default_db_path(void) {
        const char *dir = getenv("STATE_DIRECTORY");
        char *path;

        if (!dir || !*dir)
                return NULL;
        /* StateDirectory= with several entries gives a colon-separated list; ours is the first. */
        size_t n = strcspn(dir, ":");
        if (asprintf(&path, "%.*s/broker.db", (int) n, dir) < 0)
                return NULL;
        return path;
}

/* SQLite's "unable to open database file" does not say why; a missing folder is the usual one. */
static int check_db_folder(const char *db_path) {
        _cleanup_free_ char *copy = NULL;
        struct stat st;

        /* a connection string (URL or key=value) names no folder */
        if (strstr(db_path, "://") || strchr(db_path, '='))
                return EXIT_SUCCESS;
        copy = strdup(db_path);
        if (!copy)
                return EXIT_FAILURE;
        const char *dir = dirname(copy);
        if (stat(dir, &st) < 0 && errno == ENOENT) {
                fprintf(stderr, "claudemesh-broker: cannot open the database %s: the folder %s does not exist "
                        "(create it, or give another --db)\n", db_path, dir);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}

int main(int argc, char *argv[]) {
        enum {
                ARG_LISTEN = 0x100, ARG_DB, ARG_TLS_CERT, ARG_TLS_KEY, ARG_PING, ARG_LIVENESS, ARG_LEASE,
                ARG_MAX_CONN, ARG_RATE_LIMIT, ARG_RATE_WINDOW, ARG_DEDUPE_DAYS, ARG_MESSAGE_DAYS, ARG_PURGE, ARG_GRACE,
                ARG_LEGACY, ARG_VERSION, ARG_HELLO_TIMEOUT, ARG_MAX_UNAUTH, ARG_MAX_UNAUTH_ADDR,
                ARG_CATCH_UP, ARG_DB_POOL, ARG_TEST_LANE0_HIGH,
        };
        static const struct option options[] = {
                { "listen",                   required_argument, NULL, ARG_LISTEN },
                { "db",                       required_argument, NULL, ARG_DB },
                { "tls-cert",                 required_argument, NULL, ARG_TLS_CERT },
                { "tls-key",                  required_argument, NULL, ARG_TLS_KEY },
                { "ping-interval",            required_argument, NULL, ARG_PING },
                { "liveness-timeout",         required_argument, NULL, ARG_LIVENESS },
                { "lease-seconds",            required_argument, NULL, ARG_LEASE },
                { "max-connections-per-mesh", required_argument, NULL, ARG_MAX_CONN },
                { "rate-limit",               required_argument, NULL, ARG_RATE_LIMIT },
                { "rate-window",              required_argument, NULL, ARG_RATE_WINDOW },
                { "dedupe-retention-days",    required_argument, NULL, ARG_DEDUPE_DAYS },
                { "message-retention-days",   required_argument, NULL, ARG_MESSAGE_DAYS },
                { "purge-interval",           required_argument, NULL, ARG_PURGE },
                { "presence-grace",           required_argument, NULL, ARG_GRACE },
                { "hello-timeout",            required_argument, NULL, ARG_HELLO_TIMEOUT },
                { "max-unauthenticated",      required_argument, NULL, ARG_MAX_UNAUTH },
                { "max-unauthenticated-per-address", required_argument, NULL, ARG_MAX_UNAUTH_ADDR },
                { "catch-up-interval",        required_argument, NULL, ARG_CATCH_UP },
                { "db-pool",                  required_argument, NULL, ARG_DB_POOL },
                /* Not in --help: the tests' way to reach the backpressure without a flood of
                 * thousands. */
                { "test-lane0-high",          required_argument, NULL, ARG_TEST_LANE0_HIGH },
                { "legacy",                   no_argument,       NULL, ARG_LEGACY },
                { "help",                     no_argument,       NULL, 'h' },
                { "version",                  no_argument,       NULL, ARG_VERSION },
                { NULL, 0, NULL, 0 }
        };
        _cleanup_free_ char *db_default = NULL;
        BrokerOptions o;
        unsigned *target;
        unsigned min, max;
        int c, r;

        log_setup();
        broker_options_init(&o);

        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
                target = NULL;
                min = 1;
                max = 86400;
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("claudemesh-broker %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_LISTEN:
                        if (parse_listen(optarg, &o) < 0) {
                                fprintf(stderr, "claudemesh-broker: --listen takes HOST:PORT or [IPV6]:PORT, not \"%s\"\n",
                                        optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case ARG_DB:
                        o.db_path = optarg;
                        break;
                case ARG_TLS_CERT:
                        o.tls_cert = optarg;
                        break;
                case ARG_TLS_KEY:
                        o.tls_key = optarg;
                        break;
                case ARG_PING:
                        target = &o.ping_interval_sec;
                        break;
                case ARG_LIVENESS:
                        target = &o.liveness_timeout_sec;
                        break;
                case ARG_LEASE:
                        target = &o.lease_seconds;
                        break;
                case ARG_MAX_CONN:
                        target = &o.max_connections_per_mesh;
                        max = 1000000;
                        break;
                case ARG_RATE_LIMIT:
                        target = &o.rate_limit;
                        min = 0;
                        max = UINT_MAX;
                        break;
                case ARG_RATE_WINDOW:
                        target = &o.rate_window_sec;
                        break;
                case ARG_DEDUPE_DAYS:
                        /* The daemon contract's floor: fewer days are "below floor" (4012). */
                        target = &o.dedupe_retention_days;
                        min = 3;
                        max = 36500;
                        break;
                case ARG_MESSAGE_DAYS:
                        target = &o.message_retention_days;
                        max = 36500;
                        break;
                case ARG_PURGE:
                        target = &o.purge_interval_sec;
                        break;
                case ARG_GRACE:
                        target = &o.presence_grace_sec;
                        min = 0;
                        break;
                case ARG_HELLO_TIMEOUT:
                        target = &o.hello_timeout_sec;
                        max = 3600;
                        break;
                case ARG_MAX_UNAUTH:
                        target = &o.max_unauthenticated;
                        max = 1000000;
                        break;
                case ARG_MAX_UNAUTH_ADDR:
                        target = &o.max_unauthenticated_per_address;
                        max = 1000000;
                        break;
                case ARG_CATCH_UP:
                        target = &o.catch_up_interval_ms;
                        min = 10;
                        max = 3600000;
                        break;
                case ARG_DB_POOL:
                        target = &o.db_pool;
                        max = STORE_POOL_MAX;
                        break;
                case ARG_TEST_LANE0_HIGH:
                        target = &o.lane0_high;
                        min = 4;
                        max = 1000000;
                        break;
                case ARG_LEGACY:
                        o.legacy = true;
                        break;
                default:
                        return EXIT_USAGE;
                }
                if (target && parse_uint(optarg, min, max, target) < 0) {
                        fprintf(stderr, "claudemesh-broker: %s takes an integer in %u..%u, not \"%s\"\n",
                                argv[optind - 1], min, max, optarg);
                        return EXIT_USAGE;
                }
        }
        if (!!o.tls_cert != !!o.tls_key) {
                fprintf(stderr, "claudemesh-broker: --tls-cert and --tls-key go together\n");
                return EXIT_USAGE;
        }
        if (!o.db_path) {
                db_default = default_db_path();
                if (!db_default) {
                        fprintf(stderr, "claudemesh-broker: no --db given and $STATE_DIRECTORY is not set\n");
                        return EXIT_USAGE;
                }
                o.db_path = db_default;
        }
        r = check_db_folder(o.db_path);
        if (r != EXIT_SUCCESS)
                return r;
        if (sodium_init() < 0) {
                fprintf(stderr, "claudemesh-broker: libsodium failed to initialise\n");
                return EXIT_FAILURE;
        }

        if (optind < argc)
                return admin_main(&o, argc - optind, argv + optind);

        r = server_run(&o);
        /* Everything the broker owns is closed by now; a thread left in libpq must not see
         * the libraries' exit handlers run (store_threads_running()). */
        if (store_threads_running()) {
                log_debug("A LISTEN connect is still under way: leaving without the libraries' exit handlers.");
                fflush(NULL);
                _exit(r < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
        }
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
