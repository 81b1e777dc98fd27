/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* Who sent a method call: what polkit's unix-process subject needs. */
typedef struct Caller {
        pid_t pid;
        uid_t uid;
        uint64_t start_time; /* field 22 of /proc/<pid>/stat: guards against pid reuse */
} Caller;

typedef struct CallerCache CallerCache;

int caller_cache_new(CallerCache **ret);
CallerCache *caller_cache_free(CallerCache *c);

/* On dbus-daemon the bus asks the driver for a sender's credentials with a synchronous call.
 * A unique name is never reused on a bus and belongs to one process for its lifetime, so the
 * answer is kept per unique name and each connection costs that round trip once. */
int caller_identify(CallerCache *c, sd_bus_message *call, Caller *ret);

/* The peer of a connected AF_UNIX socket (SO_PEERCRED), for callers outside the bus. */
int caller_from_socket(int fd, Caller *ret);

/* Field 22 of /proc/<pid>/stat (-ENOENT once the process is gone). */
int caller_start_time(pid_t pid, uint64_t *ret);
