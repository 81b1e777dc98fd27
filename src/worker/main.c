/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config-build.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "probe.h"
#include "sandbox.h"
#include "worker-channel.h"
#include "worker.h"

static void help(void) {
        printf("Usage: claudemesh-worker\n"
               "       claudemesh-worker --sandbox-probe\n\n"
               "The broker connection of one mesh, started by claudemeshd with its channel on fd %d.\n\n"
               "  --sandbox-probe   apply the sandbox, try what it must block, report; exit 0 if all\n"
               "                    of it was blocked\n"
               "  -h --help         show this help\n"
               "     --version      show the version\n",
               WORKER_CHANNEL_FD);
}

/* The first packet, "start"; blocking, since nothing else can happen before it. */
static int read_start(json_object **ret) {
        for (;;) {
                struct pollfd p = { .fd = WORKER_CHANNEL_FD, .events = POLLIN };
                int r = worker_channel_recv(WORKER_CHANNEL_FD, ret);

                if (r != -EAGAIN)
                        return r;
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return negative_errno();
        }
}

static void worker_done(Worker *w) {
        connection_teardown(w);
        if (!uv_is_closing((uv_handle_t *) &w->channel_watch) && w->channel_watch.data)
                uv_close((uv_handle_t *) &w->channel_watch, NULL);
        for (size_t i = 0; i < ELEMENTSOF(w->conns); i++)
                if (w->conns[i])
                        conn_release(TAKE_PTR(w->conns[i]));
        while (w->closing) {
                Conn *c = w->closing;
                w->closing = c->closing_next;
                c->wsi = NULL;
                conn_release(c);
        }
        w->n_closing = 0;
        /* Let the close callbacks (ours, which free the connections, and lws's) run, then
         * release the loop. */
        (void) uv_run(&w->loop, UV_RUN_DEFAULT);
        connection_teardown_finish(w);
        (void) uv_run(&w->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&w->loop) < 0)
                log_debug("The event loop still had handles at exit.");
        resolver_done(&w->resolver);
        worker_config_done(&w->config);
}

/* The member's connection, the event loop's handles and the lws context, before the sandbox. */
static int worker_setup(Worker *w) {
        Conn *member;
        int r;

        r = connection_setup(w);
        if (r < 0)
                return r;
        return conn_new(w, 0, NULL, &member);
}

static int run(void) {
        _cleanup_(json_object_putp) json_object *start = NULL;
        _cleanup_free_ char *error = NULL;
        Worker w = {
                .channel_fd = WORKER_CHANNEL_FD,
                .resolver = RESOLVER_NULL,
        };
        struct stat st;
        int r;

        /* Nothing inherited but stdio and the channel: done first, so every descriptor
         * the worker holds later is one it opened itself. */
        if (fstat(WORKER_CHANNEL_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
                return log_error_errno(-EBADF, "fd %d is not a socket: claudemesh-worker is started by claudemeshd.",
                                       WORKER_CHANNEL_FD);
        r = close_other_fds(WORKER_CHANNEL_FD);
        if (r < 0)
                return log_error_errno(r, "Cannot close inherited descriptors: %m");

        r = read_start(&start);
        if (r < 0)
                return log_error_errno(r, "No start packet from the daemon: %m");
        if (!streq(worker_channel_type(start), "start"))
                return log_error_errno(-EBADMSG, "The first packet is \"%s\", not \"start\".",
                                       worker_channel_type(start));
        r = worker_config_from_start(start, &w.config, &error);
        if (r < 0) {
                if (error)
                        log_error("Bad start packet: %s", error);
                else
                        log_error_errno(r, "Bad start packet: %m");
                worker_send_state(&w, 0, "failed", error ? error : "bad start packet", -1, 0);
                worker_config_done(&w.config);
                return r;
        }
        if (w.config.mesh_slug)
                log_set_mesh(w.config.mesh_slug);

        /* Everything from the filesystem now, while it is reachable: the resolver helper,
         * the libuv glue, OpenSSL and the system CA store (in lws_create_context). */
        r = resolver_start(&w.resolver, w.config.host);
        if (r < 0) {
                log_error_errno(r, "Cannot start the resolver helper: %m");
                worker_send_state(&w, 0, "failed", "cannot set up the worker; see its log", -1, 0);
                resolver_done(&w.resolver);
                worker_config_done(&w.config);
                return r;
        }
        if (uv_loop_init(&w.loop) < 0) {
                r = log_error_errno(-ENOMEM, "Cannot set up the event loop.");
                worker_send_state(&w, 0, "failed", "cannot set up the worker; see its log", -1, 0);
                resolver_done(&w.resolver);
                worker_config_done(&w.config);
                return r;
        }
        r = worker_setup(&w);
        if (r < 0) {
                worker_send_state(&w, 0, "failed", "cannot set up the worker; see its log", -1, 0);
                worker_done(&w);
                return r;
        }
        /* localtime() in libraries would open /etc/localtime later; read it now. */
        tzset();
        r = sandbox_apply(SANDBOX_WORKER, &w.landlock);
        if (r < 0) {
                /* Never talk to the network unconfined. */
                worker_send_state(&w, 0, "failed", "cannot set up the worker's sandbox; see its log", -1, 0);
                worker_done(&w);
                return r;
        }
        log_debug("Sandboxed (%s).", strna(w.landlock));

        r = channel_watch_start(&w);
        if (r < 0) {
                w.exiting = true;
                worker_done(&w);
                return r;
        }
        connection_start(w.conns[0]);
        (void) uv_run(&w.loop, UV_RUN_DEFAULT);
        w.exiting = true;
        r = w.exit_error;
        worker_done(&w);
        return r;
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_PROBE };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "sandbox-probe", no_argument, NULL, ARG_PROBE },
                { NULL, 0, NULL, 0 },
        };
        bool probe = false;
        int c;

        log_setup();
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case ARG_VERSION:
                        printf("claudemesh-worker %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case ARG_PROBE:
                        probe = true;
                        break;
                default:
                        return EXIT_FAILURE;
                }
        if (optind < argc) {
                log_error("Unexpected argument \"%s\".", argv[optind]);
                return EXIT_FAILURE;
        }
        if (probe)
                return sandbox_probe();
        return run() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
