/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The worker's confinement (issue 5): it holds a socket to the internet and parses what
 * comes over it, so once set up it must not be able to touch the filesystem, start
 * programs, reach local services over AF_UNIX, or gain privileges. */

typedef enum SandboxProfile {
        /* The worker: sockets AF_INET/AF_INET6 and its existing descriptors, nothing else. */
        SANDBOX_WORKER,
        /* The resolver helper (resolver.c): additionally reads files (read-only, Landlock
         * keeps it in /etc), for /etc/hosts and /etc/resolv.conf, which getaddrinfo opens on
         * every lookup, and may open an rtnetlink socket (AI_ADDRCONFIG). */
        SANDBOX_RESOLVER,
} SandboxProfile;

/* Closes every descriptor above 2 except keep_fd (-1: none). */
int close_other_fds(int keep_fd);

/* PR_SET_NO_NEW_PRIVS, rlimits, Landlock (no filesystem access for SANDBOX_WORKER, read-only
 * /etc for SANDBOX_RESOLVER) where the kernel has it, and the seccomp allow-list. A missing
 * or refused Landlock is not an error: *ret_landlock (static string) says what happened.
 * Any other failure is returned and the caller must not go on. */
int sandbox_apply(SandboxProfile profile, const char **ret_landlock);
