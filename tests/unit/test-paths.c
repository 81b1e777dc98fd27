/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>

#include "macro.h"
#include "paths.h"
#include "tests.h"

static void check(int (*fn)(char **), const char *expected) {
        _cleanup_free_ char *p = NULL;
        ASSERT_OK(fn(&p));
        ASSERT_STREQ(p, expected);
}

static void test_config_dir(void) {
        setenv("HOME", "/home/u", 1);
        unsetenv("CLAUDEMESH_CONFIG_DIR");
        check(path_config_dir, "/home/u/.claudemesh");
        check(path_config_file, "/home/u/.claudemesh/config.json");

        /* upstream clients treat an empty variable as unset; so do we */
        setenv("CLAUDEMESH_CONFIG_DIR", "", 1);
        check(path_config_dir, "/home/u/.claudemesh");

        setenv("CLAUDEMESH_CONFIG_DIR", "/etc/cm", 1);
        check(path_config_file, "/etc/cm/config.json");

        char *p = NULL;
        setenv("CLAUDEMESH_CONFIG_DIR", "relative/dir", 1);
        ASSERT_EQ(path_config_dir(&p), -EINVAL);
        unsetenv("CLAUDEMESH_CONFIG_DIR");
}

static void test_state_dir(void) {
        setenv("HOME", "/home/u", 1);
        unsetenv("STATE_DIRECTORY");
        unsetenv("XDG_STATE_HOME");
        check(path_state_dir, "/home/u/.local/state/claudemesh");

        setenv("XDG_STATE_HOME", "/xdg/state", 1);
        check(path_state_dir, "/xdg/state/claudemesh");

        setenv("STATE_DIRECTORY", "/var/lib/claudemesh:/var/lib/other", 1);
        check(path_state_dir, "/var/lib/claudemesh");
}

int main(void) {
        test_config_dir();
        test_state_dir();
        return 0;
}
