/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* send-bench: the figures of bench/send-accept (run by hand, not a test).
 *
 *   send-bench latency N         N sequential Send calls and N sequential no-op calls (Get of
 *                                the Version property) on one connection: p50/p99 of each
 *   send-bench throughput N K    N Send calls from K callers (own connections), each with one
 *                                call in flight: accepted sends per second
 *
 * Prints "key value" lines for bench/send-accept to read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>

#define CALLERS_MAX 64

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static uint64_t percentile(uint64_t *v, size_t n, double p) {
        qsort(v, n, sizeof(uint64_t), cmp_u64);
        return v[(size_t) (p * (double) (n - 1))];
}

static char run_tag[32];

static int send_one(sd_bus *bus, unsigned i) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        char id[96];
        int r;

        snprintf(id, sizeof id, "bench-%s-%u", run_tag, i);
        r = sd_bus_call_method(bus, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1", "org.claudemesh.Daemon1",
                               "Send", &e, &reply, "sssa{sv}", "", "*", "benchmark message", 1,
                               "client_message_id", "s", id);
        if (r < 0)
                fprintf(stderr, "Send: %s\n", e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        sd_bus_message_unref(reply);
        return r;
}

static int noop_one(sd_bus *bus) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        char *v = NULL;
        int r = sd_bus_get_property_string(bus, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                                           "org.claudemesh.Daemon1", "Version", &e, &v);
        free(v);
        sd_bus_error_free(&e);
        return r;
}

static int latency(unsigned n) {
        uint64_t *sends = calloc(n, sizeof(uint64_t)), *noops = calloc(n, sizeof(uint64_t));
        sd_bus *bus = NULL;
        int r = sd_bus_open_user(&bus);

        for (unsigned i = 0; r >= 0 && i < n; i++) {
                uint64_t t0 = now_ns();
                r = noop_one(bus);
                uint64_t t1 = now_ns();
                if (r >= 0)
                        r = send_one(bus, i);
                noops[i] = t1 - t0;
                sends[i] = now_ns() - t1;
        }
        if (r >= 0) {
                printf("send_p50_us %.1f\nsend_p99_us %.1f\n", percentile(sends, n, 0.50) / 1e3,
                       percentile(sends, n, 0.99) / 1e3);
                printf("noop_p50_us %.1f\nnoop_p99_us %.1f\n", percentile(noops, n, 0.50) / 1e3,
                       percentile(noops, n, 0.99) / 1e3);
        }
        sd_bus_flush_close_unref(bus);
        free(sends);
        free(noops);
        return r < 0 ? r : 0;
}

typedef struct Caller {
        sd_bus *bus;
} Caller;

static unsigned next_index, n_total, n_done;
static sd_event *event;

static int start_send(Caller *c);

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        if (sd_bus_message_is_method_error(reply, NULL)) {
                fprintf(stderr, "Send: %s\n", sd_bus_message_get_error(reply)->message);
                return sd_event_exit(event, 1);
        }
        if (++n_done == n_total)
                return sd_event_exit(event, 0);
        return next_index < n_total ? start_send(userdata) : 0;
}

static int start_send(Caller *c) {
        char id[96];
        snprintf(id, sizeof id, "bench-%s-%u", run_tag, next_index++);
        return sd_bus_call_method_async(c->bus, NULL, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                                        "org.claudemesh.Daemon1", "Send", on_reply, c, "sssa{sv}", "", "*",
                                        "benchmark message", 1, "client_message_id", "s", id);
}

static int throughput(unsigned n, unsigned k) {
        Caller callers[CALLERS_MAX] = { { NULL } };
        uint64_t t0;
        int r;

        n_total = n;
        r = sd_event_default(&event);
        for (unsigned i = 0; r >= 0 && i < k; i++) {
                r = sd_bus_open_user(&callers[i].bus);
                if (r >= 0)
                        r = sd_bus_attach_event(callers[i].bus, event, 0);
        }
        t0 = now_ns();
        for (unsigned i = 0; r >= 0 && i < k; i++)
                r = start_send(&callers[i]);
        if (r >= 0)
                r = sd_event_loop(event);
        if (r == 0)
                printf("sends_per_s %.0f\n", (double) n / ((double) (now_ns() - t0) / 1e9));
        for (unsigned i = 0; i < k; i++)
                sd_bus_flush_close_unref(callers[i].bus);
        sd_event_unref(event);
        return r;
}

int main(int argc, char *argv[]) {
        int r;

        snprintf(run_tag, sizeof run_tag, "%lx", (unsigned long) now_ns());
        if (argc == 3 && strcmp(argv[1], "latency") == 0)
                r = latency((unsigned) strtoul(argv[2], NULL, 10));
        else if (argc == 4 && strcmp(argv[1], "throughput") == 0) {
                unsigned k = (unsigned) strtoul(argv[3], NULL, 10);
                if (k < 1 || k > CALLERS_MAX)
                        return 2;
                r = throughput((unsigned) strtoul(argv[2], NULL, 10), k);
        } else {
                fprintf(stderr, "usage: %s latency N | throughput N CALLERS\n", argv[0]);
                return 2;
        }
        if (r < 0)
                fprintf(stderr, "send-bench: %s\n", strerror(-r));
        return r != 0;
}
