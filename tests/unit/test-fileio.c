/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"
#include "tests.h"

static void test_atomic_write_and_read(void) {
        char path[4096];
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size;

        snprintf(path, sizeof path, "%s/a/b/file.json", test_tmpdir());
        ASSERT_EQ(write_file_atomic(path, "x", 1, 0600), -ENOENT);

        snprintf(path, sizeof path, "%s/a/b", test_tmpdir());
        ASSERT_OK(mkdir_parents_mode(path, 0700));
        ASSERT_OK(stat(path, &st));
        ASSERT_EQ(st.st_mode & 07777, 0700);

        snprintf(path, sizeof path, "%s/a/b/file.json", test_tmpdir());
        ASSERT_OK(write_file_atomic(path, "hello", 5, 0600));
        ASSERT_OK(write_file_atomic(path, "hello world", 11, 0600));
        ASSERT_OK(read_full_file(path, 1024, &buf, &size, &st));
        ASSERT_STREQ(buf, "hello world");
        ASSERT_EQ(size, 11);
        ASSERT_EQ(st.st_mode & 07777, 0600);

        free(TAKE_PTR(buf));
        ASSERT_EQ(read_full_file(path, 10, &buf, &size, NULL), -EFBIG);
}

static void test_read_refuses(void) {
        char path[4096], link[4096];
        char *buf = NULL;

        snprintf(path, sizeof path, "%s/missing", test_tmpdir());
        ASSERT_EQ(read_full_file(path, 1024, &buf, NULL, NULL), -ENOENT);
        ASSERT_EQ(read_full_file(test_tmpdir(), 1024, &buf, NULL, NULL), -EBADF);

        snprintf(path, sizeof path, "%s/target", test_tmpdir());
        snprintf(link, sizeof link, "%s/link", test_tmpdir());
        ASSERT_OK(write_file_atomic(path, "t", 1, 0600));
        ASSERT_OK(symlink(path, link));
        ASSERT_EQ(read_full_file(link, 1024, &buf, NULL, NULL), -EBADF);
        ASSERT_TRUE(buf == NULL);
}

static void test_quarantine(void) {
        char path[4096];
        _cleanup_free_ char *moved = NULL;

        snprintf(path, sizeof path, "%s/bad.json", test_tmpdir());
        ASSERT_OK(write_file_atomic(path, "{", 1, 0600));
        ASSERT_OK(quarantine_file(path, "malformed", &moved));
        ASSERT_CONTAINS(moved, "/bad.json.malformed-");
        ASSERT_TRUE(access(path, F_OK) < 0 && errno == ENOENT);
        ASSERT_OK(access(moved, F_OK));

        /* a second quarantine in the same second keeps the first copy */
        _cleanup_free_ char *moved2 = NULL;
        ASSERT_OK(write_file_atomic(path, "[", 1, 0600));
        ASSERT_OK(quarantine_file(path, "malformed", &moved2));
        ASSERT_TRUE(strcmp(moved, moved2) != 0);
        ASSERT_OK(access(moved, F_OK));
        ASSERT_OK(access(moved2, F_OK));
}

int main(void) {
        test_atomic_write_and_read();
        test_read_refuses();
        test_quarantine();
        return 0;
}
