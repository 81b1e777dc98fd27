/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_LINE_MAX 2048
#define LOG_FIELDS_MAX 16

static int max_level = LOG_INFO;
/* "Mesh <slug>: " before every message of a process that serves one mesh (the worker). */
static char mesh_prefix[128];
static char mesh_slug[96];
static bool use_journal;
static bool stderr_is_tty;
static bool stderr_timestamps;          /* CLAUDEMESH_LOG_TIME=monotonic */

static bool stderr_is_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

/* Not access(W_OK): under ProtectSystem=strict /run is a read-only mount, which fails W_OK
 * although sending datagrams to the socket works. */
static bool journal_socket_present(void) {
        struct stat st;
        return stat("/run/systemd/journal/socket", &st) == 0 && S_ISSOCK(st.st_mode);
}

static int level_from_string(const char *s) {
        static const char *const names[] = {
                [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
                [LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
                [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcasecmp(s, names[i]) == 0)
                        return (int) i;
        return -EINVAL;
}

void log_setup(void) {
        const char *target = getenv("CLAUDEMESH_LOG_TARGET");
        const char *level = getenv("CLAUDEMESH_LOG_LEVEL");

        /* sd_journal_send() reports success even when no journald listens (the datagram is
         * dropped), so only use it when journald is demonstrably the one reading our stderr. */
        if (target && strcmp(target, "journal") == 0)
                use_journal = true;
        else if (target && strcmp(target, "stderr") == 0)
                use_journal = false;
        else
                use_journal = stderr_is_journal_stream() && journal_socket_present();

        /* "<3>" is for journald and syslog readers, not for a person at a terminal. */
        stderr_is_tty = isatty(STDERR_FILENO);
        /* Lines of several processes in one file (a test's) can then be put in order. */
        const char *time_source = getenv("CLAUDEMESH_LOG_TIME");
        stderr_timestamps = time_source && strcmp(time_source, "monotonic") == 0;

        if (level) {
                int l = level_from_string(level);
                if (l >= 0)
                        max_level = l;
        }
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

void log_set_mesh(const char *slug) {
        assert(slug);
        snprintf(mesh_slug, sizeof mesh_slug, "%s", slug);
        snprintf(mesh_prefix, sizeof mesh_prefix, "Mesh %s: ", mesh_slug);
}

bool log_to_journal(void) {
        return use_journal;
}

static void log_to_stderr(int level, const char *message) {
        /* One write() per line so concurrent writers never interleave within a line. */
        char line[LOG_LINE_MAX + 96], when[32] = "";
        int n;

        if (stderr_timestamps) {
                struct timespec ts;
                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                snprintf(when, sizeof when, "[%5lld.%06ld] ", (long long) ts.tv_sec, ts.tv_nsec / 1000);
        }
        n = stderr_is_tty ? snprintf(line, sizeof line, "%s: %s%s\n", program_invocation_short_name, when, message)
                          : snprintf(line, sizeof line, "<%d>%s%s\n", level, when, message);
        if (n > 0)
                (void) !write(STDERR_FILENO, line, (size_t) n < sizeof line ? (size_t) n : sizeof line - 1);
}

static void log_to_journal_fields(int level, int error, const char *message_id, const LogField *fields,
                                  const char *file, int line, const char *func, const char *message) {
        char buf[8 + LOG_FIELDS_MAX][LOG_LINE_MAX + 64];
        struct iovec iov[8 + LOG_FIELDS_MAX];
        size_t n = 0;

#define ADD(...)                                                                          \
        do {                                                                              \
                int _k = snprintf(buf[n], sizeof buf[n], __VA_ARGS__);                    \
                if (_k > 0) {                                                             \
                        iov[n].iov_base = buf[n];                                         \
                        iov[n].iov_len = (size_t) _k < sizeof buf[n] ? (size_t) _k : sizeof buf[n] - 1; \
                        n++;                                                              \
                }                                                                         \
        } while (0)

        ADD("MESSAGE=%s", message);
        ADD("PRIORITY=%d", level);
        ADD("SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
        ADD("CODE_FILE=%s", file);
        ADD("CODE_LINE=%d", line);
        ADD("CODE_FUNC=%s", func);
        if (mesh_slug[0])
                ADD("CLAUDEMESH_MESH=%s", mesh_slug);
        if (message_id)
                ADD("MESSAGE_ID=%s", message_id);
        if (error != 0)
                ADD("ERRNO=%d", error < 0 ? -error : error);
        for (size_t i = 0; fields && fields[i].key && i < LOG_FIELDS_MAX; i++)
                if (fields[i].value)
                        ADD("%s=%s", fields[i].key, fields[i].value);
#undef ADD

        if (sd_journal_sendv(iov, (int) n) < 0)
                log_to_stderr(level, message);
}

int log_internal(int level, int error, const char *message_id, const LogField *fields,
                 const char *file, int line, const char *func, const char *format, ...) {
        char message[LOG_LINE_MAX];
        int saved_errno = errno;
        size_t prefix_len = strlen(mesh_prefix);
        va_list ap;

        if (level > max_level)
                goto out;

        memcpy(message, mesh_prefix, prefix_len);
        /* The format says "…: %m" for the error: errno carries it (the caller's comes back below). */
        if (error != 0)
                errno = error < 0 ? -error : error;
        va_start(ap, format);
        vsnprintf(message + prefix_len, sizeof message - prefix_len, format, ap);
        va_end(ap);

        if (use_journal)
                log_to_journal_fields(level, error, message_id, fields, file, line, func, message);
        else
                log_to_stderr(level, message);
out:
        errno = saved_errno;
        return error == 0 ? 0 : error < 0 ? error : -error;
}
