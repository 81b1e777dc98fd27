/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ftw.h>
#include <unistd.h>

#include "tests.h"

static char tmpdir[] = "/tmp/claudemesh-test.XXXXXX";
static int have_tmpdir;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

static void rm_tmpdir(void) {
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *test_tmpdir(void) {
        if (!have_tmpdir) {
                if (!mkdtemp(tmpdir)) {
                        perror("mkdtemp");
                        abort();
                }
                have_tmpdir = 1;
                atexit(rm_tmpdir);
        }
        return tmpdir;
}
