/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <string.h>
#include <syslog.h>

#include "macro.h"

/*
 * One logging module for every program. Lines go to the journal (native protocol, structured
 * fields) when stderr is connected to journald (JOURNAL_STREAM matches) and the journal socket
 * is there; otherwise to stderr with a "<N>" syslog level prefix, which systemd and
 * journald-less supervisors both understand. $CLAUDEMESH_LOG_TARGET=journal|stderr overrides
 * the choice, $CLAUDEMESH_LOG_LEVEL=debug|info|notice|warning|err sets the threshold.
 */

typedef struct LogField {
        const char *key;   /* journal field name, e.g. "CLAUDEMESH_MESH" */
        const char *value; /* NULL skips the field */
} LogField;

void log_setup(void);
void log_set_max_level(int level);
/* Every later line reads "Mesh <slug>: …" and carries CLAUDEMESH_MESH=<slug> in the journal. */
void log_set_mesh(const char *slug);
int log_get_max_level(void);
bool log_to_journal(void);

/* The text of an error for a sentence that is not a log line (a reply, a file); log lines use
 * %m instead (see log_internal). */
#define STRERROR(e) strerror((e) < 0 ? -(e) : (e))

/* Returns -abs(error) when error != 0, else 0, so callers can `return log_error_errno(r, ...)`.
 * While the line is formatted errno is abs(error), so the format says the error with "%m", and
 * the error is passed once: `log_warning_errno(r, "Cannot open %s: %m", path)`. */
int log_internal(int level, int error, const char *message_id, const LogField *fields,
                 const char *file, int line, const char *func, const char *format, ...) _printf_(8, 9);

#define log_full_errno(level, error, ...) \
        log_internal((level), (error), NULL, NULL, __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, (e), __VA_ARGS__)
#define log_notice_errno(e, ...)  log_full_errno(LOG_NOTICE, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, (e), __VA_ARGS__)

/* An event with a stable MESSAGE_ID and extra fields, e.g.
 *   log_event(LOG_WARNING, CM_MESSAGE_HOST_MISMATCH,
 *             LOG_FIELDS({"CLAUDEMESH_HOST_FINGERPRINT", fp}), "Host changed: %s", why); */
#define LOG_FIELDS(...) ((const LogField[]) { __VA_ARGS__, { NULL, NULL } })
#define log_event(level, message_id, fields, ...) \
        log_internal((level), 0, (message_id), (fields), __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_event_errno(level, error, message_id, fields, ...) \
        log_internal((level), (error), (message_id), (fields), __FILE__, __LINE__, __func__, __VA_ARGS__)
