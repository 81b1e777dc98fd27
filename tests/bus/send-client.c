/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* send-client: drives org.claudemesh.Daemon1.Send for tests and benchmarks.
 *
 *   send-client [--mesh M] [--to T] [--count N] [--callers K] [--prefix P | --minted]
 *               [--message TEXT] [--priority P] [--meta JSON] [--retry]
 *
 * K callers, each on its own bus connection, keep one call in flight each until N calls are
 * done. Every answer is printed as one line, flushed at once (tests parse them):
 *   ok <client_message_id> <status> <broker_message_id or ->
 *   error <client_message_id> <error name> <message>
 * With --retry a call that failed for a reason other than a refusal of the request itself
 * (daemon killed, not running yet, ...) is repeated with the same id until it succeeds. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#define CALLERS_MAX 64

typedef struct Caller Caller;
struct Caller {
        sd_bus *bus;
        char id[160];
};

static const char *arg_mesh = "", *arg_to = "*", *arg_prefix = "id", *arg_message = "hello",
                  *arg_priority, *arg_meta;
static unsigned arg_count = 1, arg_callers = 1;
static bool arg_retry, arg_minted;
static unsigned next_index, n_done, n_ok, n_errors;
static sd_event *event;

static int start_call(Caller *c);

static bool refusal(const char *name) {
        /* errors about the request itself: repeating it cannot help */
        return strstr(name, "org.claudemesh.Daemon1.Error.") && !strstr(name, "Storage") &&
               !strstr(name, "Unavailable");
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Caller *c = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        if (e) {
                if (arg_retry && !refusal(e->name)) {
                        /* the daemon is gone or restarting (D-Bus activation may bring it back):
                         * try again shortly rather than spin */
                        usleep(20000);
                        return start_call(c);
                }
                printf("error %s %s %s\n", c->id, e->name, e->message ? e->message : "");
                n_errors++;
        } else {
                const char *cmid, *status, *bmid;
                int r = sd_bus_message_read(reply, "sss", &cmid, &status, &bmid);
                if (r < 0)
                        return r;
                printf("ok %s %s %s\n", cmid, status, bmid[0] ? bmid : "-");
                n_ok++;
        }
        fflush(stdout);
        n_done++;
        if (next_index < arg_count) {
                if (arg_minted)
                        c->id[0] = '\0';
                else
                        snprintf(c->id, sizeof c->id, "%s-%u", arg_prefix, next_index);
                next_index++;
                return start_call(c);
        }
        if (n_done == arg_count)
                return sd_event_exit(event, n_errors > 0);
        return 0;
}

static int start_call(Caller *c) {
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(c->bus, &m, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                                           "org.claudemesh.Daemon1", "Send");
        if (r >= 0)
                r = sd_bus_message_append(m, "sss", arg_mesh, arg_to, arg_message);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && c->id[0])
                r = sd_bus_message_append(m, "{sv}", "client_message_id", "s", c->id);
        if (r >= 0 && arg_priority)
                r = sd_bus_message_append(m, "{sv}", "priority", "s", arg_priority);
        if (r >= 0 && arg_meta)
                r = sd_bus_message_append(m, "{sv}", "meta", "s", arg_meta);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_call_async(c->bus, NULL, m, on_reply, c, 10 * 1000000ULL);
        sd_bus_message_unref(m);
        return r;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "mesh", required_argument, NULL, 'm' },     { "to", required_argument, NULL, 't' },
                { "count", required_argument, NULL, 'n' },    { "callers", required_argument, NULL, 'k' },
                { "prefix", required_argument, NULL, 'p' },   { "message", required_argument, NULL, 'M' },
                { "priority", required_argument, NULL, 'P' }, { "meta", required_argument, NULL, 'j' },
                { "retry", no_argument, NULL, 'r' },          { "minted", no_argument, NULL, 'i' },
                { NULL, 0, NULL, 0 },
        };
        Caller callers[CALLERS_MAX] = { { NULL, "" } };
        int c, r;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 'm': arg_mesh = optarg; break;
                case 't': arg_to = optarg; break;
                case 'n': arg_count = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'k': arg_callers = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'p': arg_prefix = optarg; break;
                case 'M': arg_message = optarg; break;
                case 'P': arg_priority = optarg; break;
                case 'j': arg_meta = optarg; break;
                case 'r': arg_retry = true; break;
                case 'i': arg_minted = true; break;
                default: return 2;
                }
        if (arg_callers < 1 || arg_callers > CALLERS_MAX || arg_count < 1) {
                fprintf(stderr, "--callers takes 1..%d, --count at least 1\n", CALLERS_MAX);
                return 2;
        }
        if (arg_callers > arg_count)
                arg_callers = arg_count;

        r = sd_event_default(&event);
        for (unsigned i = 0; r >= 0 && i < arg_callers; i++) {
                r = sd_bus_open_user(&callers[i].bus);
                if (r >= 0)
                        r = sd_bus_attach_event(callers[i].bus, event, 0);
                if (!arg_minted)
                        snprintf(callers[i].id, sizeof callers[i].id, "%s-%u", arg_prefix, next_index);
                next_index++;
        }
        for (unsigned i = 0; r >= 0 && i < arg_callers; i++)
                r = start_call(&callers[i]);
        if (r < 0) {
                fprintf(stderr, "send-client: %s\n", strerror(-r));
                return 1;
        }
        r = sd_event_loop(event);
        fprintf(stderr, "send-client: %u ok, %u errors\n", n_ok, n_errors);
        for (unsigned i = 0; i < arg_callers; i++)
                sd_bus_flush_close_unref(callers[i].bus);
        sd_event_unref(event);
        return r < 0 ? 1 : r;
}
