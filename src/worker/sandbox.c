/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <linux/sockios.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sandbox.h"
#include "worker.h"

/* Bookworm's <linux/landlock.h> stops at ABI 2 and its struct has one field; the kernel
 * here speaks ABI 7. These are the kernel's own values (include/uapi/linux/landlock.h). */
typedef struct LandlockRulesetAttr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;   /* ABI 4 */
        uint64_t scoped;               /* ABI 6 */
} LandlockRulesetAttr;

typedef struct __attribute__((packed)) LandlockPathBeneathAttr {
        uint64_t allowed_access;
        int32_t parent_fd;
} LandlockPathBeneathAttr;

#define LL_CREATE_RULESET_VERSION   (1U << 0)
#define LL_RULE_PATH_BENEATH        1
#define LL_ACCESS_FS_READ_FILE      (1ULL << 2)
#define LL_ACCESS_FS_READ_DIR       (1ULL << 3)
#define LL_ACCESS_FS_ABI1           ((1ULL << 13) - 1)  /* EXECUTE … MAKE_SYM */
#define LL_ACCESS_FS_REFER          (1ULL << 13)        /* ABI 2 */
#define LL_ACCESS_FS_TRUNCATE       (1ULL << 14)        /* ABI 3 */
#define LL_ACCESS_FS_IOCTL_DEV      (1ULL << 15)        /* ABI 5 */
#define LL_SCOPE_ABSTRACT_UNIX      (1ULL << 0)         /* ABI 6 */
#define LL_SCOPE_SIGNAL             (1ULL << 1)         /* ABI 6 */

/* ASan/LSan builds (tests only): LeakSanitizer's exit-time check starts a tracer that
 * ptrace()s the worker and reads /proc/<pid>/task and /proc/self/maps. Those builds keep the
 * worker dumpable, let it read /proc (nothing else), leave RLIMIT_NPROC alone and allow the
 * extra system calls listed in sanitizer_syscalls below. Release builds get none of this. */
#if defined(__SANITIZE_ADDRESS__)
#  define SANITIZER_BUILD 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define SANITIZER_BUILD 1
#  endif
#endif

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

int close_other_fds(int keep_fd) {
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (keep_fd < 3) {
                if (close_range(3, ~0U, 0) == 0)
                        return 0;
        } else if ((keep_fd == 3 || close_range(3, (unsigned) keep_fd - 1, 0) == 0) &&
                   close_range((unsigned) keep_fd + 1, ~0U, 0) == 0)
                return 0;
        if (errno != ENOSYS)
                return negative_errno();

        /* Kernels before 5.9: walk /proc/self/fd. */
        d = opendir("/proc/self/fd");
        if (!d)
                return negative_errno();
        while ((de = readdir(d))) {
                char *end;
                long fd = strtol(de->d_name, &end, 10);
                if (*end || de->d_name[0] == '.' || fd < 3 || fd == keep_fd || fd == dirfd(d))
                        continue;
                (void) close((int) fd);
        }
        return 0;
}

/* RLIMIT_FSIZE 0 turns every write to a regular file into SIGXFSZ, including the log when
 * stdout or stderr was redirected to one (journald and the daemon give pipes/sockets). Then
 * the limit is left alone: the sandbox lets no other file be opened anyway. */
static bool stdio_is_regular_file(void) {
        struct stat st;

        for (int fd = STDOUT_FILENO; fd <= STDERR_FILENO; fd++)
                if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
                        return true;
        return false;
}

static int set_rlimit(int resource, rlim_t value) {
        struct rlimit rl = { value, value }, cur;

        /* Never raise: a hard limit below ours stays. */
        if (getrlimit(resource, &cur) == 0 && cur.rlim_max < value)
                rl.rlim_cur = rl.rlim_max = cur.rlim_max;
        return setrlimit(resource, &rl) < 0 ? negative_errno() : 0;
}

static int set_rlimits(void) {
        static const struct {
                int resource;
                rlim_t value;
        } limits[] = {
                /* Sockets to the broker (the member's and the sessions'), the channel, libuv's
                 * and lws's own. */
                { RLIMIT_NOFILE, WORKER_FD_MAX },
#ifndef SANITIZER_BUILD
                /* No fork, for a non-root worker (root ignores it; seccomp refuses fork anyway).
                 * Sanitizer builds: LeakSanitizer's tracer is a new process. */
                { RLIMIT_NPROC, 0 },
#endif
                { RLIMIT_CORE, 0 },
                { RLIMIT_MEMLOCK, 0 },
        };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                r = set_rlimit(limits[i].resource, limits[i].value);
                if (r < 0)
                        return r;
        }
        return stdio_is_regular_file() ? 0 : set_rlimit(RLIMIT_FSIZE, 0);
}

static int landlock_allow_read(int ruleset, const char *path) {
        _cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC | O_DIRECTORY);
        LandlockPathBeneathAttr rule = {
                .allowed_access = LL_ACCESS_FS_READ_FILE | LL_ACCESS_FS_READ_DIR,
                .parent_fd = fd,
        };

        if (fd < 0)
                return log_error_errno(negative_errno(), "Cannot open %s: %m", path);
        if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) < 0)
                return log_error_errno(negative_errno(), "landlock_add_rule(%s) failed: %m", path);
        return 0;
}

static int landlock_apply(SandboxProfile profile, const char **ret) {
        LandlockRulesetAttr attr = { .handled_access_fs = LL_ACCESS_FS_ABI1 };
        _cleanup_close_ int ruleset = -1;
        long abi;
        int r;

        abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
        if (abi < 0) {
                *ret = errno == ENOSYS ? "Landlock unavailable: the kernel lacks it (ENOSYS)"
                     : errno == EOPNOTSUPP ? "Landlock unavailable: disabled at boot (EOPNOTSUPP)"
                     : errno == EPERM ? "Landlock unavailable: refused by a seccomp filter of the service (EPERM)"
                     : "Landlock unavailable";
                return 0;
        }
        if (abi >= 2)
                attr.handled_access_fs |= LL_ACCESS_FS_REFER;
        if (abi >= 3)
                attr.handled_access_fs |= LL_ACCESS_FS_TRUNCATE;
        if (abi >= 5)
                attr.handled_access_fs |= LL_ACCESS_FS_IOCTL_DEV;
        /* Network rights stay unhandled (it must connect anywhere); from ABI 6 it can neither
         * reach abstract AF_UNIX sockets nor signal processes outside its domain. */
        if (abi >= 6)
                attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;

        ruleset = (int) syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
        if (ruleset < 0)
                return log_error_errno(negative_errno(), "landlock_create_ruleset (ABI %ld) failed: %m", abi);

        if (profile == SANDBOX_RESOLVER) {
                r = landlock_allow_read(ruleset, "/etc");
                if (r < 0)
                        return r;
        }
#ifdef SANITIZER_BUILD
        r = landlock_allow_read(ruleset, "/proc");
        if (r < 0)
                return r;
#endif

        if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
                return log_error_errno(negative_errno(), "landlock_restrict_self failed: %m");
        *ret = abi >= 6 ? "Landlock: no filesystem access, scoped (ABI >= 6)" : "Landlock: no filesystem access";
        if (profile == SANDBOX_RESOLVER)
                *ret = "Landlock: read-only /etc";
        return 0;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(scmp_filter_ctx, seccomp_release);

/* Everything the event loop (libuv), libwebsockets, OpenSSL and libc need once set up:
 * I/O on descriptors it has, polling, time, memory, signals for itself, randomness. */
static const char *const allowed_syscalls[] = {
        "read", "readv", "write", "writev", "close",
        "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg", "shutdown",
        "connect", "getsockopt", "setsockopt", "getsockname", "getpeername", "fcntl",
        "poll", "ppoll", "select", "pselect6",
        "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "pipe2",
        "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
        "brk", "munmap", "mremap", "madvise",
        "exit", "exit_group", "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
        "getrandom", "futex", "sched_yield", "restart_syscall",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "uname", "fstat",
};

/* The resolver helper also opens files (read-only, and Landlock limits them to /etc) and
 * makes UDP/TCP sockets for DNS; glibc stats /etc/resolv.conf to notice changes. */
static const char *const resolver_syscalls[] = {
        "lseek", "statx", "stat", "access", "faccessat", "faccessat2", "bind",
};

#ifdef SANITIZER_BUILD
static const char *const sanitizer_syscalls[] = {
        "clone", "clone3", "ptrace", "wait4", "waitid", "prctl", "openat", "open", "readlink", "readlinkat",
        "getdents", "getdents64", "sched_getaffinity", "getppid", "set_robust_list", "rseq", "lseek", "pread64",
};
#endif

/* libseccomp's SCMP_A0(op, x) leaves datum_b out, which clang's -Wmissing-field-initializers
 * rejects: every field spelled out here. */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b) {
        return (struct scmp_arg_cmp) { .arg = arg, .op = op, .datum_a = a, .datum_b = b };
}

static int allow(scmp_filter_ctx ctx, const char *name) {
        int nr = seccomp_syscall_resolve_name(name);
        /* A name unknown on this architecture (e.g. "time" on arm64) is just not there. */
        if (nr == __NR_SCMP_ERROR)
                return 0;
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
}

static int seccomp_apply(SandboxProfile profile) {
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = NULL;
        int r;

        /* EPERM rather than a kill for everything else: libraries see an ordinary error and
         * the probe (--sandbox-probe) can report each refusal. */
        ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return -ENOMEM;

        for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++)
                if ((r = allow(ctx, allowed_syscalls[i])) < 0)
                        return log_error_errno(r, "seccomp: cannot allow %s: %m", allowed_syscalls[i]);
        if (profile == SANDBOX_RESOLVER)
                for (size_t i = 0; i < ELEMENTSOF(resolver_syscalls); i++)
                        if ((r = allow(ctx, resolver_syscalls[i])) < 0)
                                return log_error_errno(r, "seccomp: cannot allow %s: %m", resolver_syscalls[i]);
#ifdef SANITIZER_BUILD
        for (size_t i = 0; i < ELEMENTSOF(sanitizer_syscalls); i++)
                if ((r = allow(ctx, sanitizer_syscalls[i])) < 0)
                        return log_error_errno(r, "seccomp: cannot allow %s: %m", sanitizer_syscalls[i]);
#endif

        /* Internet sockets only: no new AF_UNIX (local services), AF_NETLINK, AF_PACKET … */
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  arg_cmp(0, SCMP_CMP_EQ, AF_INET, 0))) < 0 ||
            (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                  arg_cmp(0, SCMP_CMP_EQ, AF_INET6, 0))) < 0)
                return log_error_errno(r, "seccomp: socket rule: %m");

        /* Memory, but never executable: no code can be loaded or made up after setup. */
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                                  arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0 ||
            (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                                  arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0))) < 0)
                return log_error_errno(r, "seccomp: mmap rule: %m");

        /* fstat() by descriptor is newfstatat(fd, "", AT_EMPTY_PATH): the worker gets only
         * that form, the resolver also stats paths (Landlock keeps it in /etc). */
        if (profile == SANDBOX_RESOLVER)
                r = allow(ctx, "newfstatat");
        else
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(newfstatat), 1,
                                     arg_cmp(3, SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
        if (r < 0)
                return log_error_errno(r, "seccomp: newfstatat rule: %m");

        /* Non-blocking mode, pending bytes, and isatty() on stderr. */
        static const unsigned long ioctls[] = { FIONBIO, FIONREAD, TCGETS };
        for (size_t i = 0; i < ELEMENTSOF(ioctls); i++)
                if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                          arg_cmp(1, SCMP_CMP_EQ, ioctls[i], 0))) < 0)
                        return log_error_errno(r, "seccomp: ioctl rule: %m");

        /* abort() and raise() signal the process itself, nobody else. */
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                                  arg_cmp(0, SCMP_CMP_EQ, (scmp_datum_t) getpid(), 0))) < 0)
                return log_error_errno(r, "seccomp: tgkill rule: %m");

        if (profile == SANDBOX_RESOLVER) {
                /* getaddrinfo(AI_ADDRCONFIG) asks the kernel over rtnetlink which address
                 * families have addresses. */
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, arg_cmp(0, SCMP_CMP_EQ, AF_NETLINK, 0));
                if (r < 0)
                        return log_error_errno(r, "seccomp: netlink rule: %m");
                /* Files read-only: openat(…, flags) with O_WRONLY, O_RDWR and O_CREAT all clear. */
                if ((r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                                          arg_cmp(2, SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, O_RDONLY))) < 0)
                        return log_error_errno(r, "seccomp: openat rule: %m");
        }

        r = seccomp_load(ctx);
        if (r < 0)
                return log_error_errno(r, "seccomp_load failed: %m");
        return 0;
}

int sandbox_apply(SandboxProfile profile, const char **ret_landlock) {
        const char *landlock = NULL;
        int r;

        /* Required for an unprivileged seccomp filter and Landlock, and no setuid gains. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(negative_errno(), "PR_SET_NO_NEW_PRIVS failed: %m");
#ifndef SANITIZER_BUILD
        /* Not dumpable: no core, no ptrace by other processes of the same user. */
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return log_error_errno(negative_errno(), "PR_SET_DUMPABLE failed: %m");
#endif
        r = set_rlimits();
        if (r < 0)
                return log_error_errno(r, "Cannot set resource limits: %m");
        r = landlock_apply(profile, &landlock);
        if (r < 0)
                return r;
        r = seccomp_apply(profile);
        if (r < 0)
                return r;
        if (ret_landlock)
                *ret_landlock = landlock;
        return 0;
}
