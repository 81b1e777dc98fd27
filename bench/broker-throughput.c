/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Broker throughput benchmark, run by hand through bench/broker-throughput.
 *
 * Starts claudemesh-broker on a free loopback port with a fresh database and the rate limiter
 * off, creates 2·K members, and connects K sender/receiver pairs with a minimal blocking
 * WebSocket client (one thread per socket). Each sender pushes DMs to its receiver's session
 * key with a window of in-flight sends; each receiver acknowledges every push with
 * client_ack, as an at-least-once client does. The send time travels in the nonce field, so
 * the receiver measures send→push latency. Reports DMs/s, p50/p99 latency, broker CPU per
 * message and resident memory, with their ratios to design/PERFORMANCE.md's targets.
 *
 * The sessions case (issue 13): 20 members with 10 sessions each, all connected through
 * session_hello (200 presences, a parent attestation each), K pairs of sessions of different
 * members exchanging DMs sealed to session keys while the other sessions stay connected; the
 * same figures and targets as the member case.
 *
 * On PostgreSQL (--db postgresql://…, issue 15): the same runs against one database with
 * --nodes K brokers, pair i's sockets on node i mod K, plus one pair whose sender and
 * receiver are on different nodes; --pg-pid names the postmaster so the CPU of its
 * processes is reported per DM beside the brokers'. The sessions and history runs are
 * SQLite's only.
 */
#include <poll.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 16
#define MAX_NODES 4
#define SESSION_MEMBERS 20
#define SESSIONS_PER_MEMBER 10
#define SESSIONS (SESSION_MEMBERS * SESSIONS_PER_MEMBER)
#define FRAME_MAX (1 << 17)

static const char *broker_path;
static char tmpdir[64], db_path[512];
static int port;
static pid_t broker_pid;
static unsigned n_nodes = 1;
static int ports[MAX_NODES];
static pid_t broker_pids[MAX_NODES];
static pid_t pg_pid;                    /* the postmaster, 0 when unknown or SQLite */
static char db_pool[16];                 /* --db-pool for the brokers, "" for their default */
static bool on_postgresql;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void die(const char *what) {
        fprintf(stderr, "broker-throughput: %s\n", what);
        for (unsigned i = 0; i < n_nodes; i++)
                if (broker_pids[i] > 0)
                        kill(broker_pids[i], SIGTERM);
        exit(EXIT_FAILURE);
}

/* ---- a minimal blocking WebSocket client ---- */

/* Outgoing frames collect in out[] and leave in one write() when the client is about to
 * block on a read (or the buffer is full), as a non-blocking event-loop client would. */
typedef struct Ws {
        int fd;
        unsigned char buf[FRAME_MAX * 2];
        size_t start, end;
        char out[FRAME_MAX];
        size_t out_len;
} Ws;

static void write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        die("socket write failed");
                c += k;
                n -= (size_t) k;
        }
}

static void ws_flush(Ws *w) {
        write_all(w->fd, w->out, w->out_len);
        w->out_len = 0;
}

static void ws_fill(Ws *w) {
        if (w->out_len)
                ws_flush(w);
        if (w->start > 0) {
                memmove(w->buf, w->buf + w->start, w->end - w->start);
                w->end -= w->start;
                w->start = 0;
        }
        ssize_t k = read(w->fd, w->buf + w->end, sizeof w->buf - w->end);
        if (k <= 0)
                die("connection closed by the broker");
        w->end += (size_t) k;
}

static void ws_send_frame(Ws *w, int opcode, const char *data, size_t n) {
        unsigned char h[14];
        size_t hl = 0;

        h[hl++] = (unsigned char) (0x80 | opcode);
        if (n < 126)
                h[hl++] = (unsigned char) (0x80 | n);
        else {
                h[hl++] = 0x80 | 126;
                h[hl++] = (unsigned char) (n >> 8);
                h[hl++] = (unsigned char) n;
        }
        /* An all-zero masking key: legal, and the payload needs no XOR pass. */
        memset(h + hl, 0, 4);
        hl += 4;
        if (w->out_len + hl + n > sizeof w->out)
                ws_flush(w);
        if (hl + n > sizeof w->out)
                die("frame too large for the benchmark client");
        memcpy(w->out + w->out_len, h, hl);
        memcpy(w->out + w->out_len + hl, data, n);
        w->out_len += hl + n;
}

/* Returns the next text frame's payload (not NUL-terminated; valid until the next call),
 * answering pings on the way. */
static char *ws_recv(Ws *w, size_t *ret_len) {
        for (;;) {
                while (w->end - w->start < 2)
                        ws_fill(w);
                unsigned char *p = w->buf + w->start;
                int opcode = p[0] & 0x0f;
                size_t len = p[1] & 0x7f, hl = 2;
                if (len == 126) {
                        while (w->end - w->start < 4)
                                ws_fill(w);
                        p = w->buf + w->start;
                        len = (size_t) p[2] << 8 | p[3];
                        hl = 4;
                } else if (len == 127)
                        die("unexpected 64-bit frame length");
                while (w->end - w->start < hl + len)
                        ws_fill(w);
                p = w->buf + w->start;
                char *payload = (char *) p + hl;
                w->start += hl + len;
                if (opcode == 0x9) {
                        ws_send_frame(w, 0xA, payload, len);
                        continue;
                }
                if (opcode == 0x8)
                        die("the broker closed the connection");
                if (opcode != 0x1)
                        continue;
                *ret_len = len;
                return payload;
        }
}

static void ws_connect_node(Ws *w, unsigned node) {
        int node_port = ports[node];
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) node_port) };
        char req[512];
        int one = 1;

        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        w->start = w->end = w->out_len = 0;
        w->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (w->fd < 0 || connect(w->fd, (struct sockaddr *) &a, sizeof a) < 0)
                die("cannot connect to the broker");
        setsockopt(w->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int n = snprintf(req, sizeof req,
                         "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", node_port);
        write_all(w->fd, req, (size_t) n);
        for (;;) {
                ws_fill(w);
                unsigned char *end = memmem(w->buf, w->end, "\r\n\r\n", 4);
                if (end) {
                        if (!memmem(w->buf, w->end, " 101 ", 5))
                                die("WebSocket upgrade refused");
                        w->start = (size_t) (end + 4 - w->buf);
                        return;
                }
        }
}

static void ws_connect(Ws *w) {
        ws_connect_node(w, 0);
}

/* ---- setup through the admin commands ---- */

typedef struct Member {
        char mesh_id[64], member_id[64], pubkey[65];
        unsigned char sk[crypto_sign_SECRETKEYBYTES];
        unsigned char session_pk[crypto_sign_PUBLICKEYBYTES];
        char session_hex[65];
} Member;

static json_object *admin(const char *args) {
        char cmd[1024], out[8192];
        size_t n;

        /* Quoted: a PostgreSQL URI holds ? and &. */
        snprintf(cmd, sizeof cmd, "%s --db '%s' --listen 127.0.0.1:%d %s", broker_path, db_path, port, args);
        FILE *f = popen(cmd, "r");
        if (!f)
                die("cannot run the admin command");
        n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        if (pclose(f) != 0)
                die("admin command failed");
        json_object *o = json_tokener_parse(out);
        if (!o)
                die("admin command printed no JSON");
        return o;
}

static const char *jstr(json_object *o, const char *k) {
        json_object *v;
        if (!json_object_object_get_ex(o, k, &v))
                die("admin output lacks a field");
        return json_object_get_string(v);
}

static void member_add(const char *mesh, const char *name, Member *m) {
        char args[256];
        unsigned char sk_session[crypto_sign_SECRETKEYBYTES];

        snprintf(args, sizeof args, "member add %s %s", mesh, name);
        json_object *o = admin(args);
        snprintf(m->mesh_id, sizeof m->mesh_id, "%s", jstr(o, "meshId"));
        snprintf(m->member_id, sizeof m->member_id, "%s", jstr(o, "memberId"));
        snprintf(m->pubkey, sizeof m->pubkey, "%s", jstr(o, "pubkey"));
        if (sodium_hex2bin(m->sk, sizeof m->sk, jstr(o, "secretKey"), 128, NULL, NULL, NULL) != 0)
                die("bad secretKey");
        json_object_put(o);
        crypto_sign_keypair(m->session_pk, sk_session);
        sodium_bin2hex(m->session_hex, sizeof m->session_hex, m->session_pk, sizeof m->session_pk);
}

static void hello(Ws *w, const Member *m, const char *session_id) {
        char signed_text[512], sig_hex[129], frame[2048];
        unsigned char sig[crypto_sign_BYTES];
        struct timespec ts;
        size_t len;

        clock_gettime(CLOCK_REALTIME, &ts);
        long long ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        int n = snprintf(signed_text, sizeof signed_text, "%s|%s|%s|%lld", m->mesh_id, m->member_id, m->pubkey, ms);
        crypto_sign_detached(sig, NULL, (unsigned char *) signed_text, (size_t) n, m->sk);
        sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
        n = snprintf(frame, sizeof frame,
                     "{\"type\":\"hello\",\"meshId\":\"%s\",\"memberId\":\"%s\",\"pubkey\":\"%s\","
                     "\"sessionPubkey\":\"%s\",\"sessionId\":\"%s\",\"pid\":%d,\"cwd\":\"/\",\"timestamp\":%lld,"
                     "\"signature\":\"%s\"}",
                     m->mesh_id, m->member_id, m->pubkey, m->session_hex, session_id, (int) getpid(), ms, sig_hex);
        ws_send_frame(w, 0x1, frame, (size_t) n);
        for (;;) {
                char *p = ws_recv(w, &len);
                if (memmem(p, len, "\"type\":\"hello_ack\"", 18))
                        return;
                if (memmem(p, len, "\"type\":\"error\"", 14))
                        die("hello rejected");
        }
}

typedef struct Session {
        const Member *parent;
        unsigned char sk[crypto_sign_SECRETKEYBYTES];
        char pk_hex[65];
        Ws ws;
} Session;

static void session_hello(Session *se, const char *session_id) {
        char text[512], att_hex[129], sig_hex[129], frame[2048];
        unsigned char sig[crypto_sign_BYTES];
        const Member *m = se->parent;
        struct timespec ts;
        size_t len;

        clock_gettime(CLOCK_REALTIME, &ts);
        long long ms = (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000, expires = ms + 12 * 3600 * 1000LL;
        int n = snprintf(text, sizeof text, "claudemesh-session-attest|%s|%s|%lld", m->pubkey, se->pk_hex, expires);
        crypto_sign_detached(sig, NULL, (unsigned char *) text, (size_t) n, m->sk);
        sodium_bin2hex(att_hex, sizeof att_hex, sig, sizeof sig);
        n = snprintf(text, sizeof text, "claudemesh-session-hello|%s|%s|%s|%lld", m->mesh_id, m->pubkey, se->pk_hex, ms);
        crypto_sign_detached(sig, NULL, (unsigned char *) text, (size_t) n, se->sk);
        sodium_bin2hex(sig_hex, sizeof sig_hex, sig, sizeof sig);
        n = snprintf(frame, sizeof frame,
                     "{\"type\":\"session_hello\",\"meshId\":\"%s\",\"parentMemberId\":\"%s\","
                     "\"parentMemberPubkey\":\"%s\",\"sessionPubkey\":\"%s\",\"parentAttestation\":{"
                     "\"sessionPubkey\":\"%s\",\"parentMemberPubkey\":\"%s\",\"expiresAt\":%lld,\"signature\":\"%s\"},"
                     "\"sessionId\":\"%s\",\"pid\":%d,\"cwd\":\"/\",\"peerType\":\"ai\","
                     "\"channel\":\"claudemesh-session\",\"timestamp\":%lld,\"signature\":\"%s\"}",
                     m->mesh_id, m->member_id, m->pubkey, se->pk_hex, se->pk_hex, m->pubkey, expires, att_hex,
                     session_id, (int) getpid(), ms, sig_hex);
        ws_send_frame(&se->ws, 0x1, frame, (size_t) n);
        for (;;) {
                char *p = ws_recv(&se->ws, &len);
                if (memmem(p, len, "\"type\":\"hello_ack\"", 18))
                        return;
                if (memmem(p, len, "\"type\":\"error\"", 14))
                        die("session_hello rejected");
        }
}

/* ---- one run: K pairs, N messages each ---- */

typedef struct Pair {
        Ws sender, receiver;
        Ws *send_ws, *recv_ws;          /* &sender/&receiver, or two sessions' sockets */
        const char *target;             /* the receiver's session key */
        Member from, to;
        unsigned n, window;
        uint64_t *latency_ns;
        unsigned received;
        unsigned stale;                 /* pushes of messages sent before this run: redeliveries */
        uint64_t t0_ns;
        uint64_t last_push_ns;
} Pair;

static void *sender_main(void *arg) {
        Pair *p = arg;
        char frame[512];
        unsigned sent = 0, acked = 0;
        size_t len;

        while (acked < p->n) {
                while (sent < p->n && sent - acked < p->window) {
                        int k = snprintf(frame, sizeof frame,
                                         "{\"type\":\"send\",\"id\":\"%u\",\"targetSpec\":\"%s\",\"priority\":\"next\","
                                         "\"nonce\":\"%" PRIu64 "\",\"ciphertext\":\"YmVuY2htYXJrIG1lc3NhZ2U=\"}",
                                         sent, p->target, now_ns());
                        ws_send_frame(p->send_ws, 0x1, frame, (size_t) k);
                        sent++;
                }
                char *f = ws_recv(p->send_ws, &len);
                if (memmem(f, len, "\"type\":\"ack\"", 12)) {
                        if (!memmem(f, len, "\"queued\":true", 13))
                                die("a send was refused");
                        acked++;
                }
        }
        return NULL;
}

static void *receiver_main(void *arg) {
        Pair *p = arg;
        char ack[256];
        size_t len;

        while (p->received < p->n) {
                char *f = ws_recv(p->recv_ws, &len);
                uint64_t t = now_ns();
                if (!memmem(f, len, "\"type\":\"push\"", 13) || memmem(f, len, "\"subtype\"", 9))
                        continue;
                char *id = memmem(f, len, "\"messageId\":\"", 13), *nonce = memmem(f, len, "\"nonce\":\"", 9);
                if (!id || !nonce)
                        die("push without messageId or nonce");
                /* A message of an earlier run (unacknowledged when its sockets closed) is
                 * acknowledged and counted apart, not as one of this run's. */
                uint64_t sent_ns = strtoull(nonce + 9, NULL, 10);
                if (sent_ns < p->t0_ns)
                        p->stale++;
                else {
                        p->latency_ns[p->received++] = t - sent_ns;
                        p->last_push_ns = t;
                }
                int k = snprintf(ack, sizeof ack, "{\"type\":\"client_ack\",\"brokerMessageId\":\"%.32s\"}", id + 13);
                ws_send_frame(p->recv_ws, 0x1, ack, (size_t) k);
        }
        return NULL;
}

static double pid_cpu(pid_t pid, pid_t *ret_ppid) {
        char path[64], buf[4096];
        unsigned long ut = 0, st = 0;
        int ppid = 0;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        f = fopen(path, "r");
        if (!f)
                return 0;
        if (fgets(buf, sizeof buf, f)) {
                char *p = strrchr(buf, ')');
                if (p)
                        sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid, &ut, &st);
        }
        fclose(f);
        if (ret_ppid)
                *ret_ppid = ppid;
        return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* The postmaster and its children (backends, writers): the database's CPU. */
static double pg_cpu(void) {
        double sum;
        DIR *d;
        struct dirent *e;

        if (pg_pid <= 0)
                return 0;
        sum = pid_cpu(pg_pid, NULL);
        d = opendir("/proc");
        if (!d)
                return sum;
        while ((e = readdir(d))) {
                pid_t pid = (pid_t) atoi(e->d_name), ppid = 0;
                if (pid <= 0 || pid == pg_pid)
                        continue;
                double c = pid_cpu(pid, &ppid);
                if (ppid == pg_pid)
                        sum += c;
        }
        closedir(d);
        return sum;
}

static void proc_stats_one(double *cpu_s, double *rss_mib, double *hwm_mib);

/* Every node's CPU, summed; RSS and peak RSS, summed over the nodes. */
static void proc_stats(double *cpu_s, double *rss_mib, double *hwm_mib) {
        *cpu_s = *rss_mib = *hwm_mib = 0;
        for (unsigned i = 0; i < n_nodes; i++) {
                pid_t saved = broker_pid;
                double c, r, h;
                broker_pid = broker_pids[i];
                proc_stats_one(&c, &r, &h);
                broker_pid = saved;
                *cpu_s += c;
                *rss_mib += r;
                *hwm_mib += h;
        }
}

static void proc_stats_one(double *cpu_s, double *rss_mib, double *hwm_mib) {
        char path[64], buf[4096];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) broker_pid);
        f = fopen(path, "r");
        if (!f)
                die("cannot read the broker's /proc/PID/stat");
        unsigned long ut = 0, st = 0;
        if (fgets(buf, sizeof buf, f)) {
                char *p = strrchr(buf, ')');
                if (p)
                        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
        }
        fclose(f);
        *cpu_s = (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);

        snprintf(path, sizeof path, "/proc/%d/status", (int) broker_pid);
        f = fopen(path, "r");
        if (!f)
                die("cannot read the broker's /proc/PID/status");
        while (fgets(buf, sizeof buf, f)) {
                unsigned long kb;
                if (sscanf(buf, "VmRSS: %lu kB", &kb) == 1)
                        *rss_mib = (double) kb / 1024;
                if (sscanf(buf, "VmHWM: %lu kB", &kb) == 1)
                        *hwm_mib = (double) kb / 1024;
        }
        fclose(f);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct Result {
        double rate, p50_ms, p99_ms, cpu_ms_per_msg, pg_cpu_ms_per_msg, hwm_mib;
} Result;

static Pair pairs[MAX_PAIRS];
static Member members[SESSION_MEMBERS > 2 * MAX_PAIRS ? SESSION_MEMBERS : 2 * MAX_PAIRS];
static unsigned session_counter;

static Result measure(unsigned k, unsigned n, unsigned window, const char *label);

/* Pair i's sender is on node i mod K, its receiver on the next node when across. */
static Result run_on(unsigned k, unsigned n, unsigned window, bool across, const char *label) {
        char sid[64];

        for (unsigned i = 0; i < k; i++) {
                Pair *p = &pairs[i];
                p->from = members[2 * i];
                p->to = members[2 * i + 1];
                p->send_ws = &p->sender;
                p->recv_ws = &p->receiver;
                p->target = p->to.session_hex;
                ws_connect_node(&p->sender, i % n_nodes);
                ws_connect_node(&p->receiver, (i + across) % n_nodes);
                snprintf(sid, sizeof sid, "bench-%u", session_counter++);
                hello(&p->sender, &p->from, sid);
                snprintf(sid, sizeof sid, "bench-%u", session_counter++);
                hello(&p->receiver, &p->to, sid);
        }
        Result r = measure(k, n, window, label);
        for (unsigned i = 0; i < k; i++) {
                close(pairs[i].sender.fd);
                close(pairs[i].receiver.fd);
        }
        usleep(300 * 1000); /* the broker notices the closed sockets */
        return r;
}

static Result run(unsigned k, unsigned n, unsigned window, const char *label) {
        return run_on(k, n, window, false, label);
}

static Session sessions[SESSIONS];
static volatile bool idle_stop;

/* The sessions not in a pair only read (and drop) what the broker sends them. */
static void *idle_main(void *arg) {
        const bool *busy = arg;
        struct pollfd fds[SESSIONS];
        unsigned char buf[65536];
        nfds_t n = 0;

        for (unsigned i = 0; i < SESSIONS; i++)
                if (!busy[i])
                        fds[n++] = (struct pollfd) { .fd = sessions[i].ws.fd, .events = POLLIN };
        while (!idle_stop)
                if (poll(fds, n, 100) > 0)
                        for (nfds_t i = 0; i < n; i++)
                                if (fds[i].revents & POLLIN && read(fds[i].fd, buf, sizeof buf) <= 0)
                                        fds[i].fd = -1;
        return NULL;
}

/* 200 sessions of 20 members connected; k pairs of sessions of different members exchange DMs. */
static Result run_sessions(unsigned k, unsigned n, unsigned window, const char *label, double *ret_rss_connected) {
        static bool busy[SESSIONS];
        double cpu, hwm;
        pthread_t idle;
        char sid[64];

        for (unsigned i = 0; i < SESSIONS; i++) {
                Session *se = &sessions[i];
                unsigned char pk[crypto_sign_PUBLICKEYBYTES];
                se->parent = &members[i % SESSION_MEMBERS];
                crypto_sign_keypair(pk, se->sk);
                sodium_bin2hex(se->pk_hex, sizeof se->pk_hex, pk, sizeof pk);
                ws_connect(&se->ws);
                snprintf(sid, sizeof sid, "bench-session-%u", i);
                session_hello(se, sid);
        }
        usleep(300 * 1000);
        proc_stats(&cpu, ret_rss_connected, &hwm);
        /* Sessions i and i+1 belong to members i and i+1 (mod 20): never the same member. */
        for (unsigned i = 0; i < k; i++) {
                Pair *p = &pairs[i];
                busy[2 * i] = busy[2 * i + 1] = true;
                p->send_ws = &sessions[2 * i].ws;
                p->recv_ws = &sessions[2 * i + 1].ws;
                p->target = sessions[2 * i + 1].pk_hex;
        }
        /* Whatever the broker sent before (peer_joined of later sessions) is read first by the
         * pair's own threads, which skip system pushes. */
        idle_stop = false;
        pthread_create(&idle, NULL, idle_main, busy);
        Result r = measure(k, n, window, label);
        idle_stop = true;
        pthread_join(idle, NULL);
        for (unsigned i = 0; i < SESSIONS; i++)
                close(sessions[i].ws.fd);
        usleep(300 * 1000);
        return r;
}

static Result measure(unsigned k, unsigned n, unsigned window, const char *label) {
        pthread_t threads[2 * MAX_PAIRS];
        double cpu0, cpu1, rss, hwm;

        for (unsigned i = 0; i < k; i++) {
                Pair *p = &pairs[i];
                p->n = n;
                p->window = window;
                p->received = 0;
                p->stale = 0;
                p->last_push_ns = 0;
                p->latency_ns = calloc(n, sizeof(uint64_t));
                if (!p->latency_ns)
                        die("out of memory");
        }

        proc_stats(&cpu0, &rss, &hwm);
        double pg0 = pg_cpu();
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < k; i++)
                pairs[i].t0_ns = t0;
        for (unsigned i = 0; i < k; i++) {
                pthread_create(&threads[2 * i], NULL, receiver_main, &pairs[i]);
                pthread_create(&threads[2 * i + 1], NULL, sender_main, &pairs[i]);
        }
        for (unsigned i = 0; i < 2 * k; i++)
                pthread_join(threads[i], NULL);
        uint64_t t1 = 0;
        for (unsigned i = 0; i < k; i++)
                if (pairs[i].last_push_ns > t1)
                        t1 = pairs[i].last_push_ns;
        /* Let the last client_acks land before reading the CPU counters. */
        usleep(200 * 1000);
        proc_stats(&cpu1, &rss, &hwm);
        double pg1 = pg_cpu();

        size_t total = (size_t) k * n;
        uint64_t *all = calloc(total, sizeof(uint64_t));
        if (!all)
                die("out of memory");
        for (unsigned i = 0; i < k; i++) {
                memcpy(all + (size_t) i * n, pairs[i].latency_ns, n * sizeof(uint64_t));
                free(pairs[i].latency_ns);
        }
        qsort(all, total, sizeof *all, cmp_u64);
        Result r = {
                .rate = (double) total / ((double) (t1 - t0) / 1e9),
                .p50_ms = (double) all[total / 2] / 1e6,
                .p99_ms = (double) all[total * 99 / 100] / 1e6,
                .cpu_ms_per_msg = (cpu1 - cpu0) * 1000 / (double) total,
                .pg_cpu_ms_per_msg = (pg1 - pg0) * 1000 / (double) total,
                .hwm_mib = hwm,
        };
        free(all);
        printf("%-34s %8.0f DMs/s  p50 %7.3f ms  p99 %7.3f ms  broker CPU %.4f ms/msg (%.2f s)  peak RSS %.1f MiB",
               label, r.rate, r.p50_ms, r.p99_ms, r.cpu_ms_per_msg, cpu1 - cpu0, r.hwm_mib);
        if (pg_pid > 0)
                printf("  PostgreSQL CPU %.4f ms/msg", r.pg_cpu_ms_per_msg);
        unsigned stale = 0;
        for (unsigned i = 0; i < k; i++)
                stale += pairs[i].stale;
        if (stale > 0)
                printf("  (+%u redelivered from earlier runs)", stale);
        printf("\n");
        fflush(stdout);
        return r;
}

static int free_port(void) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t l = sizeof a;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        if (fd < 0 || bind(fd, (struct sockaddr *) &a, sizeof a) < 0 || getsockname(fd, (struct sockaddr *) &a, &l) < 0)
                die("no free port");
        close(fd);
        return ntohs(a.sin_port);
}

int main(int argc, char *argv[]) {
        unsigned n = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 20000;
        char portarg[64];
        double cpu, rss_rest, hwm;

        if (argc < 2) {
                fprintf(stderr, "usage: broker-throughput-bin BROKER-BINARY [MESSAGES-PER-PAIR]"
                                " [--db postgresql://… [--nodes K] [--pg-pid POSTMASTER-PID] [--db-pool N]]\n");
                return EXIT_FAILURE;
        }
        broker_path = argv[1];
        for (int i = 3; i + 1 < argc; i += 2) {
                if (strcmp(argv[i], "--db") == 0) {
                        snprintf(db_path, sizeof db_path, "%s", argv[i + 1]);
                        on_postgresql = true;
                } else if (strcmp(argv[i], "--nodes") == 0)
                        n_nodes = (unsigned) strtoul(argv[i + 1], NULL, 10);
                else if (strcmp(argv[i], "--pg-pid") == 0)
                        pg_pid = (pid_t) atoi(argv[i + 1]);
                else if (strcmp(argv[i], "--db-pool") == 0)
                        snprintf(db_pool, sizeof db_pool, "%s", argv[i + 1]);
                else
                        die("unknown option");
        }
        if (n_nodes < 1 || n_nodes > MAX_NODES || (n_nodes > 1 && !on_postgresql))
                die("--nodes takes 1..4, and more than one needs --db postgresql://…");
        if (sodium_init() < 0 || n == 0)
                die("bad setup");
        signal(SIGPIPE, SIG_IGN);

        snprintf(tmpdir, sizeof tmpdir, "/tmp/broker-bench-XXXXXX");
        if (!mkdtemp(tmpdir))
                die("mkdtemp failed");
        if (!on_postgresql)
                snprintf(db_path, sizeof db_path, "%s/broker.db", tmpdir);
        for (unsigned i = 0; i < n_nodes; i++)
                ports[i] = free_port();
        port = ports[0];

        json_object *mesh = admin("mesh create bench");
        char mesh_id[64];
        snprintf(mesh_id, sizeof mesh_id, "%s", jstr(mesh, "id"));
        json_object_put(mesh);
        for (unsigned i = 0; i < SESSION_MEMBERS; i++) {
                char name[32];
                snprintf(name, sizeof name, "peer%u", i);
                member_add(mesh_id, name, &members[i]);
        }

        for (unsigned node = 0; node < n_nodes; node++) {
                snprintf(portarg, sizeof portarg, "127.0.0.1:%d", ports[node]);
                broker_pids[node] = fork();
                if (broker_pids[node] == 0) {
                        setenv("CLAUDEMESH_LOG_LEVEL", "warning", 1);
                        if (db_pool[0])
                                execl(broker_path, broker_path, "--db", db_path, "--listen", portarg, "--rate-limit",
                                      "0", "--max-connections-per-mesh", "1000", "--db-pool", db_pool, (char *) NULL);
                        else
                                execl(broker_path, broker_path, "--db", db_path, "--listen", portarg, "--rate-limit",
                                      "0", "--max-connections-per-mesh", "1000", (char *) NULL);
                        _exit(127);
                }
                for (int i = 0; i < 200; i++) {
                        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t) ports[node]) };
                        int fd = socket(AF_INET, SOCK_STREAM, 0);
                        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
                        int ok = connect(fd, (struct sockaddr *) &a, sizeof a) == 0;
                        close(fd);
                        if (ok)
                                break;
                        usleep(10 * 1000);
                }
        }
        broker_pid = broker_pids[0];
        usleep(100 * 1000);
        proc_stats(&cpu, &rss_rest, &hwm);

        printf("claudemesh-broker throughput, %u DMs per pair, limiter off, loopback, client_ack on every push\n", n);
        printf("broker resident memory at rest: %.1f MiB\n\n", rss_rest);

        if (on_postgresql) {
                printf("on PostgreSQL, %u node%s\n", n_nodes, n_nodes > 1 ? "s" : "");
                Result pg_one = run(1, n < 2000 ? n : 2000, 1, "1 pair, one at a time");
                Result pg_r1 = run(1, n, 64, "1 pair, flood (window 64)");
                Result pg_r4 = run(4, n, 64, "4 pairs, flood (window 64)");
                if (n_nodes > 1)
                        (void) run_on(1, n, 64, true, "1 pair across nodes, flood");
                printf("\nratios to issue 15's targets (>= 1.00 meets the target)\n");
                printf("  DMs/s, 4 pairs / 5000:                %.2f\n", pg_r4.rate / 5000);
                printf("  CPU per DM 0.3 ms / broker + database: %.2f (4 pairs)%s\n",
                       0.3 / (pg_r4.cpu_ms_per_msg + pg_r4.pg_cpu_ms_per_msg),
                       pg_pid > 0 ? "" : " (database CPU unknown: --pg-pid)");
                printf("  upstream one-at-a-time 236 DMs/s, p50 4.0 ms: ours %.0f DMs/s, p50 %.3f ms\n",
                       pg_one.rate, pg_one.p50_ms);
                printf("  1 pair flood: %.0f DMs/s\n", pg_r1.rate);
                for (unsigned i = 0; i < n_nodes; i++) {
                        kill(broker_pids[i], SIGTERM);
                        waitpid(broker_pids[i], NULL, 0);
                }
                rmdir(tmpdir);
                return EXIT_SUCCESS;
        }

        Result one_by_one = run(1, n < 2000 ? n : 2000, 1, "1 pair, one at a time");
        Result r1 = run(1, n, 64, "1 pair, flood (window 64)");
        Result r4 = run(4, n, 64, "4 pairs, flood (window 64)");
        Result again = run(1, n, 64, "1 pair, flood, after the history");
        double rss_sessions;
        Result rs = run_sessions(4, n, 64, "200 sessions, 4 pairs, flood", &rss_sessions);
        printf("broker resident memory with 200 sessions of 20 members connected: %.1f MiB\n", rss_sessions);

        char cmd[512];
        printf("\nmessage rows in history before the \"after the history\" run: %u\n", (n < 2000 ? n : 2000) + 5 * n);

        printf("\nratios to design/PERFORMANCE.md targets (>= 1.00 meets the target)\n");
        printf("  DMs/s, 1 pair / 20000:                %.2f\n", r1.rate / 20000);
        printf("  DMs/s, 4 pairs / 20000:               %.2f\n", r4.rate / 20000);
        printf("  flat with history (after / before):   %.2f (target >= 0.90)\n", again.rate / r1.rate);
        printf("  CPU per message 0.05 ms / measured:   %.2f (4 pairs)\n", 0.05 / r4.cpu_ms_per_msg);
        printf("  RSS at rest 16 MiB / measured:        %.2f\n", 16 / rss_rest);
        printf("  RSS under 4-pair flood 64 MiB / peak: %.2f\n", 64 / r4.hwm_mib);
        printf("  sessions: DMs/s, 4 pairs / 20000:     %.2f\n", rs.rate / 20000);
        printf("  sessions: CPU per DM 0.05 ms / meas.: %.2f\n", 0.05 / rs.cpu_ms_per_msg);
        printf("  sessions: RSS under flood 64 MiB / peak: %.2f\n", 64 / rs.hwm_mib);
        printf("  one at a time p50 0.5 ms / measured:  %.2f\n", 0.5 / one_by_one.p50_ms);
        printf("  one at a time p99 2 ms / measured:    %.2f\n", 2 / one_by_one.p99_ms);
        printf("  upstream one-at-a-time p50 4.0 ms / ours: %.1fx faster\n", 4.0 / one_by_one.p50_ms);

        kill(broker_pid, SIGTERM);
        waitpid(broker_pid, NULL, 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        return EXIT_SUCCESS;
}
