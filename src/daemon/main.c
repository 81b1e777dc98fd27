/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <malloc.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "compat-routes.h"
#include "config-build.h"
#include "log.h"
#include "manager-dbus.h"
#include "manager.h"
#include "message-ids.h"
#include "notify-desktop.h"

static int help(void) {
        printf("%s [OPTIONS...]\n\n"
               "The claudemesh daemon: owns org.claudemesh.Daemon1 on the session bus.\n\n"
               "  -h --help                   Show this help\n"
               "     --version                Show the version\n"
               "     --offline                Keep the meshes attached but connect to no broker:\n"
               "                              sends wait in the outbox\n"
               "     --durability=full|normal Sync the outbox to disk on every commit (full, the\n"
               "                              default) or leave the last commits to a crash of the\n"
               "                              machine, not of the daemon (normal)\n"
               "     --no-compat              Do not serve the upstream /v1 HTTP API on\n"
               "                              $XDG_RUNTIME_DIR/claudemesh/daemon.sock\n\n"
               "See claudemeshd(8) and org.claudemesh.Daemon1(5).\n",
               program_invocation_short_name);
        return 0;
}

static bool arg_synchronous_full = true;
static bool arg_offline;
static bool arg_compat = true;

/* 1: go on; 0: exit successfully (help or version was printed); < 0: bad arguments. */
static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_DURABILITY, ARG_OFFLINE, ARG_NO_COMPAT };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "durability", required_argument, NULL, ARG_DURABILITY },
                { "offline", no_argument, NULL, ARG_OFFLINE },
                { "no-compat", no_argument, NULL, ARG_NO_COMPAT },
                { NULL, 0, NULL, 0 },
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        return help();
                case ARG_VERSION:
                        printf("claudemeshd %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_DURABILITY:
                        if (!streq(optarg, "full") && !streq(optarg, "normal")) {
                                log_error("--durability= takes \"full\" or \"normal\", not \"%s\"", optarg);
                                return -EINVAL;
                        }
                        arg_synchronous_full = streq(optarg, "full");
                        break;
                case ARG_OFFLINE:
                        arg_offline = true;
                        break;
                case ARG_NO_COMPAT:
                        arg_compat = false;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                log_error("%s takes no arguments; see --help", program_invocation_short_name);
                return -EINVAL;
        }
        return 1;
}

/* The soft RLIMIT_NOFILE up to the hard one, as systemd's rlimit_nofile_bump() does: the soft
 * 1024 is for select(), which nothing here uses (sd-event, sd-bus and libmicrohttpd poll with
 * epoll). The /v1 connection cap is derived from the result (compat-http.h); the worker sets its
 * own small limit. */
static void rlimit_nofile_bump(void) {
        struct rlimit rl;
        int r;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
                r = negative_errno();
                log_warning_errno(r, "Cannot read RLIMIT_NOFILE: %m");
                return;
        }
        if (rl.rlim_cur >= rl.rlim_max)
                return;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                r = negative_errno();
                log_warning_errno(r, "Cannot raise the soft RLIMIT_NOFILE to %llu: %m",
                                  (unsigned long long) rl.rlim_max);
        } else
                log_debug("Raised the soft RLIMIT_NOFILE to %llu", (unsigned long long) rl.rlim_max);
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        (void) sd_notify(false, "STOPPING=1\nSTATUS=Shutting down");
        log_event(LOG_INFO, CM_MESSAGE_DAEMON_STOPPING, NULL, "Stopping on %s", strsignal((int) si->ssi_signo));
        return sd_event_exit(m->event, 0);
}

static int on_reload_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Manager *m = userdata;

        log_info("SIGHUP: reloading %s", m->config_path);
        (void) sd_notify(false, "RELOADING=1");
        (void) manager_reload_config(m, NULL);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", m->status);
        return 0;
}

#define EXIT_USAGE 2

/* The core and the front-ends that are not part of it, torn down in order: the links and queues
 * first, whose waiting callers are answered through the front-ends, then the front-ends. */
typedef struct Daemon {
        Manager *m;
        CompatServer *compat;
} Daemon;

static void daemon_done(Daemon *d) {
        if (d->m)
                manager_shutdown(d->m);
        d->compat = compat_server_free(d->compat);
        d->m = manager_free(d->m);
}

static int run(int argc, char *argv[]) {
        _cleanup_(daemon_done) Daemon d = { .m = NULL };
        Manager *m;
        sigset_t mask;
        int r;

        log_setup();
        r = parse_argv(argc, argv);
        if (r < 0)
                return EXIT_USAGE; /* as every other tool on a bad command line */
        if (r == 0)
                return 0;

        rlimit_nofile_bump();

        log_event(LOG_INFO, CM_MESSAGE_DAEMON_STARTED, LOG_FIELDS({ "CLAUDEMESH_VERSION", PACKAGE_VERSION }),
                  "claudemeshd %s starting", PACKAGE_VERSION);

        /* sd-event takes signals through a signalfd, which only sees blocked signals. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD); /* sd_event_add_child() watches the workers through it */
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return negative_errno();

        r = manager_new(&d.m);
        if (r < 0)
                return log_error_errno(r, "Cannot set up: %m");
        m = d.m;
        m->synchronous_full = arg_synchronous_full;
        m->offline = arg_offline;

        r = sd_event_add_signal(m->event, NULL, SIGTERM, on_terminate, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch SIGTERM: %m");
        r = sd_event_add_signal(m->event, NULL, SIGINT, on_terminate, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch SIGINT: %m");
        r = sd_event_add_signal(m->event, NULL, SIGHUP, on_reload_signal, m);
        if (r < 0)
                return log_error_errno(r, "Cannot watch SIGHUP: %m");
        r = sd_event_set_watchdog(m->event, true);
        if (r < 0)
                return log_error_errno(r, "Cannot enable the watchdog: %m");

        r = manager_startup(m);
        if (r < 0)
                return r;
        /* The front-ends, in the order they hear events: the bus first, since a message it could
         * not announce is announced again at the next start (and then to the others too). */
        r = manager_dbus_register(m);
        if (r < 0)
                return r;
        /* The bus is the primary surface: a compat socket that cannot be served costs only itself. */
        if (arg_compat && compat_server_start(m, &d.compat) < 0)
                log_warning("Not serving the /v1 API; D-Bus clients are unaffected");
        r = notify_subscribe(m);
        if (r < 0)
                return log_error_errno(r, "Cannot subscribe desktop notifications: %m");
        r = manager_dbus_request_name(m);
        if (r < 0)
                return r;
        manager_start(m);

        /* Startup's transient allocations (opening and checking the stores) left free pages
         * in the heap that malloc keeps, its trim threshold raised by a freed large block. */
        (void) malloc_trim(0);
        (void) sd_notifyf(false, "READY=1\nSTATUS=%s", m->status);
        log_event(LOG_INFO, CM_MESSAGE_DAEMON_READY, NULL, "Ready: %s", m->status);

        return sd_event_loop(m->event);
}

int main(int argc, char *argv[]) {
        int r = run(argc, argv);
        return r < 0 ? EXIT_FAILURE : r;
}
