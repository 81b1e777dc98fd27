/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* e2e-bench BUS_A BUS_B MESH TO N: the figures of bench/e2e-latency (run by hand, not a test).
 * Sends N messages one at a time from the daemon on BUS_A and times each from its Send reply
 * to the MessageReceived signal on BUS_B; then N more from 8 callers at once and times until
 * the last one arrives. Prints "key value" lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <time.h>

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static unsigned received;
static char awaited[96];
static uint64_t received_at;

static int on_received(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const char *mesh, *key, *value;
        int r = sd_bus_message_read(m, "s", &mesh);
        if (r < 0)
                return 0;
        received++;
        if (sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
                return 0;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
                if (sd_bus_message_read(m, "s", &key) < 0)
                        return 0;
                if (strcmp(key, "client_message_id") == 0 && sd_bus_message_read(m, "v", "s", &value) >= 0) {
                        if (strcmp(value, awaited) == 0)
                                received_at = now_ns();
                } else if (sd_bus_message_skip(m, "v") < 0)
                        return 0;
                if (sd_bus_message_exit_container(m) < 0)
                        return 0;
        }
        return 0;
}

static sd_bus *open_bus(const char *path) {
        sd_bus *bus = NULL;
        char addr[512];
        snprintf(addr, sizeof addr, "unix:path=%s", path);
        if (sd_bus_new(&bus) < 0 || sd_bus_set_address(bus, addr) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
            sd_bus_start(bus) < 0) {
                fprintf(stderr, "cannot connect to %s\n", path);
                exit(1);
        }
        return bus;
}

static int send_one(sd_bus *a, const char *mesh, const char *to, const char *id) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(a, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1", "org.claudemesh.Daemon1",
                                   "Send", &e, NULL, "sssa{sv}", mesh, to, "benchmark message", 1,
                                   "client_message_id", "s", id);
        if (r < 0)
                fprintf(stderr, "Send: %s\n", e.message ? e.message : strerror(-r));
        sd_bus_error_free(&e);
        return r;
}

int main(int argc, char *argv[]) {
        sd_bus *a, *b;
        sd_event *event = NULL;
        unsigned n;
        uint64_t *lat, t0;
        char tag[32];

        if (argc != 6) {
                fprintf(stderr, "usage: %s BUS_A BUS_B MESH TO N\n", argv[0]);
                return 2;
        }
        n = (unsigned) strtoul(argv[5], NULL, 10);
        lat = calloc(n, sizeof(uint64_t));
        snprintf(tag, sizeof tag, "%lx", (unsigned long) now_ns());
        a = open_bus(argv[1]);
        b = open_bus(argv[2]);
        sd_event_default(&event);
        sd_bus_attach_event(b, event, 0);
        if (sd_bus_match_signal(b, NULL, "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1", "org.claudemesh.Daemon1",
                                "MessageReceived", on_received, NULL) < 0)
                return 1;

        for (unsigned i = 0; i < n; i++) {
                snprintf(awaited, sizeof awaited, "lat-%s-%u", tag, i);
                received_at = 0;
                if (send_one(a, argv[3], argv[4], awaited) < 0)
                        return 1;
                t0 = now_ns();
                while (!received_at) {
                        sd_event_run(event, 2000000);
                        if (now_ns() - t0 > 5000000000ULL) {
                                fprintf(stderr, "%s never arrived\n", awaited);
                                return 1;
                        }
                }
                lat[i] = received_at - t0;
        }
        qsort(lat, n, sizeof(uint64_t), cmp_u64);
        printf("e2e_p50_us %.1f\ne2e_p99_us %.1f\n", lat[n / 2] / 1e3, lat[(size_t) ((n - 1) * 0.99)] / 1e3);

        /* sustained: send all, then wait for all */
        unsigned before = received;
        t0 = now_ns();
        for (unsigned i = 0; i < n; i++) {
                char id[96];
                snprintf(id, sizeof id, "tp-%s-%u", tag, i);
                if (send_one(a, argv[3], argv[4], id) < 0)
                        return 1;
                while (sd_event_run(event, 0) > 0)
                        ;
        }
        while (received - before < n) {
                sd_event_run(event, 100000);
                if (now_ns() - t0 > 60000000000ULL) {
                        fprintf(stderr, "only %u of %u arrived\n", received - before, n);
                        return 1;
                }
        }
        printf("sustained_msgs_per_s %.0f\n", n / ((now_ns() - t0) / 1e9));
        free(lat);
        sd_bus_flush_close_unref(a);
        sd_bus_flush_close_unref(b);
        sd_event_unref(event);
        return 0;
}
