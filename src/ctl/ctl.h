/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* Exit codes, documented in claudemeshctl(1). */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1,
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_NOT_RUNNING = 3,
        CTL_EXIT_ACCESS_DENIED = 4,
        CTL_EXIT_CONFLICT = 5,
        CTL_EXIT_NOT_FOUND = 6,
};

/* Command-line state, filled by main.c and read by the verbs. Strings point into argv;
 * NULL means "not given". */
typedef struct Args {
        bool json;
        bool full;              /* --full, or output that is not a terminal: nothing cut */
        bool ask_password;
        const char *mesh;
        const char *priority;
        const char *meta;
        const char *reply_to;
        const char *id;
        const char *since;
        const char *from;
        const char *topic;
        const char *limit;
        bool follow;
        const char *status;
        const char *new_id;
        const char *summary;
        int visible;            /* -1 unset, else 0/1 */
        const char *title;
        const char *bio;
        const char *avatar;
        char **capabilities;    /* NULL-terminated, malloc'd array of argv pointers */
        size_t n_capabilities;
        bool no_tools;
        bool print;
        const char *name;       /* mcp --name */
        const char *session_id; /* mcp --session-id */
        char **groups;          /* mcp --group, as capabilities */
        size_t n_groups;
} Args;

extern Args arg;

/* Every verb gets the connected bus and its positional arguments (verb name excluded) and
 * returns an exit code. */
int verb_status(sd_bus *bus, int argc, char **argv);
int verb_meshes(sd_bus *bus, int argc, char **argv);
int verb_accept_host(sd_bus *bus, int argc, char **argv);
int verb_send(sd_bus *bus, int argc, char **argv);
int verb_inbox(sd_bus *bus, int argc, char **argv);
int verb_mark_read(sd_bus *bus, int argc, char **argv);
int verb_outbox(sd_bus *bus, int argc, char **argv);
int verb_requeue(sd_bus *bus, int argc, char **argv);
int verb_peers(sd_bus *bus, int argc, char **argv);
int verb_profile(sd_bus *bus, int argc, char **argv);
int verb_reconnect(sd_bus *bus, int argc, char **argv);
int verb_watch(sd_bus *bus, int argc, char **argv);
int verb_mcp(sd_bus *bus, int argc, char **argv);
/* Needs no bus: bus is NULL. */
int verb_setup(sd_bus *bus, int argc, char **argv);

/* Calls METHOD(s mesh) for --mesh and reports it: {"mesh": …} with --json, else done_human. */
int mesh_method_call(sd_bus *bus, const char *method, const char *what, const char *done_human);
