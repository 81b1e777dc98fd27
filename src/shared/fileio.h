/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <sys/stat.h>

/* Reads a whole regular file (not following a final symlink) of at most max_size bytes into a
 * NUL-terminated buffer. ret_stat, if not NULL, receives the fstat() of the opened file, so
 * mode and owner checks apply to exactly the bytes read. -ENOENT if missing, -EFBIG if larger
 * than max_size, -EBADF if not a regular file. */
int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size, struct stat *ret_stat);

/* Replaces path atomically: writes "<path>.tmp-XXXXXX" with the given mode, fsyncs it,
 * renames it over path and fsyncs the directory. Never leaves a partial file at path. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Creates path and its missing parents; the final component gets mode (parents 0700). */
int mkdir_parents_mode(const char *path, mode_t mode);

/* "<path>.<suffix>-<unix seconds>": the name used to set aside a corrupt or malformed file. */
int quarantine_file(const char *path, const char *suffix, char **ret_new_path);
