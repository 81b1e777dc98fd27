/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fileio.h"
#include "macro.h"

int read_full_file(const char *path, size_t max_size, char **ret, size_t *ret_size, struct stat *ret_stat) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t have = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0)
                return errno == ELOOP ? -EBADF : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((size_t) st.st_size > max_size)
                return -EFBIG;

        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k;

                /* Read one byte past the stat() size to notice a file that grew meanwhile. */
                if (have > (size_t) st.st_size)
                        k = -EFBIG;
                else {
                        k = read(fd, buf + have, (size_t) st.st_size + 1 - have);
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k < 0)
                                k = negative_errno();
                }
                if (k < 0) {
                        /* The file may hold secrets (config.json): don't leave them in freed memory. */
                        explicit_bzero(buf, have);
                        return (int) k;
                }
                if (k == 0)
                        break;
                have += (size_t) k;
        }
        buf[have] = '\0';

        if (ret_stat)
                *ret_stat = st;
        if (ret_size)
                *ret_size = have;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int fsync_parent_dir(const char *path) {
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        _cleanup_close_ int fd = -1;

        if (!slash)
                snprintf(dir, sizeof dir, ".");
        else if (slash == path)
                snprintf(dir, sizeof dir, "/");
        else if ((size_t) (slash - path) >= sizeof dir)
                return -ENAMETOOLONG;
        else
                snprintf(dir, sizeof dir, "%.*s", (int) (slash - path), path);

        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        return fsync(fd) < 0 ? negative_errno() : 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        char tmp[PATH_MAX];
        _cleanup_close_ int fd = -1;
        const char *p = data;
        int r;

        if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int) sizeof tmp)
                return -ENAMETOOLONG;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0) {
                r = negative_errno();
                goto fail;
        }
        while (size > 0) {
                ssize_t k = write(fd, p, size);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        goto fail;
                }
                p += k;
                size -= (size_t) k;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = negative_errno();
                goto fail;
        }
        return fsync_parent_dir(path);
fail:
        (void) unlink(tmp);
        return r;
}

int mkdir_parents_mode(const char *path, mode_t mode) {
        char buf[PATH_MAX];

        if (snprintf(buf, sizeof buf, "%s", path) >= (int) sizeof buf)
                return -ENAMETOOLONG;
        for (char *s = buf + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                        return negative_errno();
                *s = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int quarantine_file(const char *path, const char *suffix, char **ret_new_path) {
        long long now = (long long) time(NULL);

        /* Never replace an earlier quarantined copy from the same second. */
        for (unsigned attempt = 0; attempt < 100; attempt++) {
                char *new_path = NULL;
                int r;

                if ((attempt == 0 ? asprintf(&new_path, "%s.%s-%lld", path, suffix, now)
                                  : asprintf(&new_path, "%s.%s-%lld.%u", path, suffix, now, attempt)) < 0)
                        return -ENOMEM;
                r = renameat2(AT_FDCWD, path, AT_FDCWD, new_path, RENAME_NOREPLACE) < 0 ? negative_errno() : 0;
                if (r == -EEXIST) {
                        free(new_path);
                        continue;
                }
                if (r < 0) {
                        free(new_path);
                        return r;
                }
                if (ret_new_path)
                        *ret_new_path = new_path;
                else
                        free(new_path);
                return 0;
        }
        return -EEXIST;
}
