/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

/*
 * Name resolution for a worker that cannot open files.
 *
 * getaddrinfo() opens /etc/nsswitch.conf, /etc/hosts, /etc/resolv.conf and /etc/gai.conf on
 * lookups (and re-stats them to notice changes), and may dlopen NSS modules: none of that
 * works under the worker's Landlock ruleset and seccomp filter, and a one-off lookup before
 * the sandbox would pin the broker's address for the worker's whole life. So, before
 * sandboxing itself, the worker forks a helper that keeps read-only access to /etc (Landlock)
 * and the file and socket calls the resolver needs (its own seccomp allow-list, still no
 * writes, exec or AF_UNIX), does one warm-up lookup so NSS modules are loaded while that is
 * still possible, and then answers "resolve this host" requests over a socketpair for as long
 * as the worker lives (it dies with it: PR_SET_PDEATHSIG and EOF). The worker resolves before
 * every connect and hands libwebsockets the numeric address, with the hostname kept for the
 * Host header, TLS SNI and certificate name check.
 */

typedef struct Resolver {
        pid_t pid;
        int fd;
        unsigned serial;
} Resolver;

#define RESOLVER_NULL ((Resolver) { .pid = 0, .fd = -1, .serial = 0 })
#define RESOLVER_MAX_ADDRESSES 8

/* Forks the helper; warmup_host is looked up once before it sandboxes itself. */
int resolver_start(Resolver *r, const char *warmup_host);

/* Numeric addresses of host (IPv6 and IPv4, in getaddrinfo's order) into addrs, a
 * NULL-terminated array of up to RESOLVER_MAX_ADDRESSES malloc'd strings. Waits at most
 * timeout_ms. -EHOSTUNREACH with *ret_error when the name does not resolve, -EPIPE when the
 * helper is gone, -ETIMEDOUT. */
int resolver_lookup(Resolver *r, const char *host, int timeout_ms, char ***ret_addrs, char **ret_error);

void resolver_done(Resolver *r);

void strv_free(char **l);
