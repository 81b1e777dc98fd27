/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "message-ids.h"
#include "tests.h"

/* Points stderr at a new file of this name in the test's directory; returns the old stderr. */
static int stderr_to_file(const char *name, char path[static 4096]) {
        int fd, saved = dup(STDERR_FILENO);

        ASSERT_TRUE(saved >= 0);
        snprintf(path, 4096, "%s/%s", test_tmpdir(), name);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_TRUE(fd >= 0);
        ASSERT_TRUE(dup2(fd, STDERR_FILENO) >= 0);
        close(fd);
        return saved;
}

/* Puts stderr back; returns what was written to the file meanwhile. */
static char *stderr_back(int saved, const char *path) {
        char *buf = NULL;

        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        ASSERT_OK(read_full_file(path, 4096, &buf, NULL, NULL));
        return buf;
}

/* Without journald the module writes "<N>message" lines to stderr; check them on a file. */
static void test_stderr_prefix_and_errno(void) {
        char path[4096];
        _cleanup_free_ char *buf = NULL;
        int saved = stderr_to_file("log", path);

        setenv("CLAUDEMESH_LOG_TARGET", "stderr", 1);
        setenv("CLAUDEMESH_LOG_LEVEL", "info", 1);
        log_setup();
        ASSERT_TRUE(!log_to_journal());
        log_info("hello %d", 42);
        log_debug("not shown");
        /* "%m" names the error given, either sign, and errno is the caller's again after. */
        errno = EBADF;
        ASSERT_EQ(log_error_errno(-ENOENT, "open failed: %m"), -ENOENT);
        ASSERT_EQ(errno, EBADF);
        ASSERT_EQ(log_error_errno(EACCES, "denied: %m"), -EACCES);
        ASSERT_EQ(errno, EBADF);
        ASSERT_EQ(log_event(LOG_WARNING, CM_MESSAGE_CONFIG_ERROR,
                            LOG_FIELDS({ "CLAUDEMESH_MESH", "acme" }), "config %s", "bad"), 0);

        buf = stderr_back(saved, path);
        ASSERT_STREQ(buf, "<6>hello 42\n"
                          "<3>open failed: No such file or directory\n"
                          "<3>denied: Permission denied\n"
                          "<4>config bad\n");
}

/* CLAUDEMESH_LOG_TIME=monotonic: "<N>[seconds.micros] message", seconds on the monotonic clock. */
static void test_stderr_timestamps(void) {
        char path[4096];
        _cleanup_free_ char *buf = NULL;
        struct timespec before, after;
        int saved = stderr_to_file("log-time", path);
        long long sec;
        long usec;
        int used = 0;

        setenv("CLAUDEMESH_LOG_TARGET", "stderr", 1);
        setenv("CLAUDEMESH_LOG_TIME", "monotonic", 1);
        log_setup();
        ASSERT_TRUE(clock_gettime(CLOCK_MONOTONIC, &before) == 0);
        log_warning("stamped");
        ASSERT_TRUE(clock_gettime(CLOCK_MONOTONIC, &after) == 0);
        unsetenv("CLAUDEMESH_LOG_TIME");
        log_setup();
        log_warning("plain");
        buf = stderr_back(saved, path);
        ASSERT_TRUE(sscanf(buf, "<4>[%lld.%6ld] stamped\n%n", &sec, &usec, &used) == 2);
        ASSERT_TRUE(used > 0);
        ASSERT_STREQ(buf + used, "<4>plain\n");
        ASSERT_TRUE(sec >= before.tv_sec && sec <= after.tv_sec);
}

static void test_journal_stream_detection(void) {
        /* JOURNAL_STREAM naming some other file must not make us think journald reads stderr. */
        unsetenv("CLAUDEMESH_LOG_TARGET");
        setenv("JOURNAL_STREAM", "1:1", 1);
        log_setup();
        ASSERT_TRUE(!log_to_journal());
        setenv("CLAUDEMESH_LOG_TARGET", "journal", 1);
        log_setup();
        ASSERT_TRUE(log_to_journal());
}

int main(void) {
        test_stderr_prefix_and_errno();
        test_stderr_timestamps();
        test_journal_stream_detection();
        return 0;
}
