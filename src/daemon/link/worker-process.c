/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config-build.h"
#include "json-util.h"
#include "log.h"
#include "worker-channel.h"
#include "worker-process.h"

struct WorkerProcess {
        WorkerHandlers handlers;
        void *userdata;
        int fd;
        pid_t pid;
        sd_event_source *io_source;
        sd_event_source *child_source;
        bool exited;
};

const char *worker_binary_path(void) {
        const char *p = getenv("CLAUDEMESH_WORKER");
        return p && p[0] == '/' ? p : LIBEXECDIR "/claudemesh-worker";
}

static void worker_process_exited(WorkerProcess *w, const char *how) {
        if (w->exited)
                return;
        w->exited = true;
        w->io_source = sd_event_source_disable_unref(w->io_source);
        w->handlers.on_exit(w->userdata, how);
}

static int on_channel(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        WorkerProcess *w = userdata;

        for (;;) {
                _cleanup_(json_object_putp) json_object *packet = NULL;
                int r = worker_channel_recv(fd, &packet);
                if (r == -EAGAIN)
                        return 0;
                if (r == -EBADMSG) {
                        log_warning("Worker %d sent an unreadable packet; ignored", (int) w->pid);
                        continue;
                }
                if (r < 0) {
                        /* The worker closed its end: it is gone or going. Make sure. */
                        if (w->pid > 0)
                                (void) kill(w->pid, SIGKILL);
                        worker_process_exited(w, r == -ECONNRESET ? "closed its channel" : STRERROR(r));
                        return 0;
                }
                w->handlers.on_packet(w->userdata, packet);
                if (w->exited)
                        return 0;
        }
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        WorkerProcess *w = userdata;
        char how[64];

        if (!w) {
                /* A worker we stopped and let go of (worker_process_free): it is reaped now, and
                 * the loop's reference, the only one left, goes with it. */
                sd_event_source_unref(s);
                return 0;
        }

        if (si->si_code == CLD_EXITED)
                snprintf(how, sizeof how, "exited with status %d", si->si_status);
        else
                snprintf(how, sizeof how, "was killed by signal %s", strsignal(si->si_status));
        w->pid = 0;
        worker_process_exited(w, how);
        return 0;
}

/* In the child between fork and exec: only async-signal-safe calls, and _exit on failure. */
static _Noreturn void child_exec(int channel, pid_t parent) {
        sigset_t all;
        char *const argv[] = { (char *) "claudemesh-worker", NULL };

        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        /* The daemon blocks the signals sd-event handles; the worker starts with a clean slate. */
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
        if (channel != WORKER_CHANNEL_FD) {
                if (dup2(channel, WORKER_CHANNEL_FD) < 0)
                        _exit(EXIT_FAILURE);
        } else if (fcntl(channel, F_SETFD, 0) < 0)
                _exit(EXIT_FAILURE);
        /* Everything else stays behind: the bus, the stores, other workers' channels. */
        if (syscall(__NR_close_range, WORKER_CHANNEL_FD + 1, ~0U, 0) < 0)
                _exit(EXIT_FAILURE);
        execv(worker_binary_path(), argv);
        _exit(127);
}

int worker_process_start(sd_event *event, const WorkerHandlers *handlers, void *userdata, WorkerProcess **ret) {
        _cleanup_(worker_process_freep) WorkerProcess *w = NULL;
        int pair[2], r;
        pid_t parent = getpid();

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->handlers = *handlers;
        w->userdata = userdata;
        w->fd = -1;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) < 0)
                return negative_errno();

        w->pid = fork();
        if (w->pid < 0) {
                r = negative_errno();
                close(pair[0]);
                close(pair[1]);
                return r;
        }
        if (w->pid == 0) {
                /* The child's end must block: the worker reads it from its own loop. */
                int flags = fcntl(pair[1], F_GETFL);
                if (flags < 0 || fcntl(pair[1], F_SETFL, flags & ~O_NONBLOCK) < 0)
                        _exit(EXIT_FAILURE);
                child_exec(pair[1], parent);
        }
        close(pair[1]);
        w->fd = pair[0];

        r = sd_event_add_child(event, &w->child_source, w->pid, WEXITED, on_child, w);
        if (r < 0)
                return r;
        r = sd_event_add_io(event, &w->io_source, w->fd, EPOLLIN, on_channel, w);
        if (r < 0)
                return r;
        log_debug("Started %s as pid %d", worker_binary_path(), (int) w->pid);
        *ret = TAKE_PTR(w);
        return 0;
}

WorkerProcess *worker_process_free(WorkerProcess *w) {
        if (!w)
                return NULL;
        if (w->pid > 0)
                (void) kill(w->pid, SIGTERM);
        sd_event_source_disable_unref(w->io_source);
        if (w->child_source) {
                if (w->pid > 0) {
                        /* Still running: hand the source to the event loop, which reaps the
                         * child when it ends (on_child with no userdata). Floating takes a
                         * reference of its own; ours goes. */
                        (void) sd_event_source_set_userdata(w->child_source, NULL);
                        (void) sd_event_source_set_floating(w->child_source, true);
                        sd_event_source_unref(w->child_source);
                } else
                        sd_event_source_unref(w->child_source);
        }
        if (w->fd >= 0)
                close(w->fd);
        free(w);
        return NULL;
}

int worker_process_send(WorkerProcess *w, json_object *packet) {
        assert(w);

        if (w->exited)
                return -ENOTCONN;
        return worker_channel_send(w->fd, packet);
}

pid_t worker_process_pid(const WorkerProcess *w) {
        assert(w);

        return w->pid;
}
