/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "caller.h"
#include "macro.h"

#define CALLER_CACHE_SIZE 64

typedef struct CallerEntry {
        char *sender;
        Caller caller;
} CallerEntry;

struct CallerCache {
        CallerEntry entries[CALLER_CACHE_SIZE];
        size_t next; /* ring: the oldest entry is replaced */
};

int caller_cache_new(CallerCache **ret) {
        CallerCache *c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        *ret = c;
        return 0;
}

CallerCache *caller_cache_free(CallerCache *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CALLER_CACHE_SIZE; i++)
                free(c->entries[i].sender);
        free(c);
        return NULL;
}

int caller_start_time(pid_t pid, uint64_t *ret) {
        assert(ret);

        char path[64], buf[4096];
        _cleanup_fclose_ FILE *f = NULL;
        size_t n;
        char *p;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return negative_errno();
        n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        /* The command name may contain spaces and parentheses: fields start after the last ')'. */
        p = strrchr(buf, ')');
        if (!p)
                return -EIO;
        p++;
        for (int field = 2; field < 22; field++) {
                p = strchr(p, ' ');
                if (!p)
                        return -EIO;
                p++;
        }
        if (sscanf(p, "%" SCNu64, ret) != 1)
                return -EIO;
        return 0;
}

int caller_identify(CallerCache *c, sd_bus_message *call, Caller *ret) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        const char *sender = sd_bus_message_get_sender(call);
        CallerEntry *e;
        Caller caller;
        int r;

        assert(c);

        for (size_t i = 0; sender && i < CALLER_CACHE_SIZE; i++)
                if (c->entries[i].sender && streq(c->entries[i].sender, sender)) {
                        *ret = c->entries[i].caller;
                        return 0;
                }

        r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_PID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_AUGMENT, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_pid(creds, &caller.pid);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &caller.uid);
        if (r < 0)
                return r;
        r = caller_start_time(caller.pid, &caller.start_time);
        if (r < 0)
                return r;

        if (sender) {
                e = &c->entries[c->next];
                c->next = (c->next + 1) % CALLER_CACHE_SIZE;
                free(e->sender);
                e->sender = strdup(sender);
                e->caller = caller;
        }
        *ret = caller;
        return 0;
}

int caller_from_socket(int fd, Caller *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        int r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return negative_errno();
        if (len != sizeof(cred) || cred.pid <= 0)
                return -ENODATA;
        r = caller_start_time(cred.pid, &ret->start_time);
        if (r < 0)
                return r;
        ret->pid = cred.pid;
        ret->uid = cred.uid;
        return 0;
}
