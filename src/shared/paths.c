/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "paths.h"

static const char *getenv_nonempty(const char *name) {
        const char *v = getenv(name);
        return v && v[0] ? v : NULL;
}

static int home_dir(const char **ret) {
        const char *h = getenv_nonempty("HOME");
        if (!h) {
                struct passwd *pw = getpwuid(getuid());
                if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
                        return -ENXIO;
                h = pw->pw_dir;
        }
        if (h[0] != '/')
                return -EINVAL;
        *ret = h;
        return 0;
}

static int dup_path(const char *a, const char *b, char **ret) {
        char *p;
        if (asprintf(&p, "%s%s", a, strempty(b)) < 0)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int path_config_dir(char **ret) {
        const char *d = getenv_nonempty("CLAUDEMESH_CONFIG_DIR"), *h;
        int r;

        if (d) {
                if (d[0] != '/')
                        return -EINVAL;
                return dup_path(d, NULL, ret);
        }
        r = home_dir(&h);
        if (r < 0)
                return r;
        return dup_path(h, "/.claudemesh", ret);
}

int path_config_file(char **ret) {
        _cleanup_free_ char *d = NULL;
        int r = path_config_dir(&d);
        if (r < 0)
                return r;
        return dup_path(d, "/config.json", ret);
}

int path_state_dir(char **ret) {
        const char *d = getenv_nonempty("STATE_DIRECTORY"), *h;
        int r;

        if (d) {
                /* systemd passes a colon-separated list when StateDirectory= names several. */
                size_t n = strcspn(d, ":");
                char *p;
                if (d[0] != '/')
                        return -EINVAL;
                p = strndup(d, n);
                if (!p)
                        return -ENOMEM;
                *ret = p;
                return 0;
        }
        d = getenv_nonempty("XDG_STATE_HOME");
        if (d && d[0] == '/')
                return dup_path(d, "/claudemesh", ret);
        r = home_dir(&h);
        if (r < 0)
                return r;
        return dup_path(h, "/.local/state/claudemesh", ret);
}
