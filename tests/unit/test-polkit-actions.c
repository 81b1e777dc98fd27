/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's table of polkit actions (used for the no-polkit fallback) and the shipped .policy
 * file name the same actions with the same defaults. */
#include <stdio.h>
#include <string.h>

#include "fileio.h"
#include "macro.h"
#include "polkit.h"
#include "tests.h"

/* The <allow_any> value of the action with that id in the policy text, or NULL. */
static char *policy_allow_any(const char *policy, const char *id) {
        char needle[256];
        const char *action, *end, *any;

        snprintf(needle, sizeof needle, "<action id=\"%s\">", id);
        action = strstr(policy, needle);
        if (!action)
                return NULL;
        end = strstr(action, "</action>");
        any = strstr(action, "<allow_any>");
        if (!end || !any || any > end)
                return NULL;
        any += strlen("<allow_any>");
        return strndup(any, strcspn(any, "<"));
}

int main(void) {
        char path[4096];
        _cleanup_free_ char *policy = NULL;
        size_t n_table = 0, n_policy = 0;

        snprintf(path, sizeof path, "%s/polkit/org.claudemesh.daemon1.policy", getenv("CLAUDEMESH_SOURCE_ROOT"));
        ASSERT_OK(read_full_file(path, 1 << 20, &policy, NULL, NULL));

        for (const PolkitAction *a = polkit_actions; a->id; a++, n_table++) {
                _cleanup_free_ char *any = policy_allow_any(policy, a->id);
                if (!any) {
                        fprintf(stderr, "%s is not in %s\n", a->id, path);
                        return 1;
                }
                ASSERT_STREQ(any, a->default_yes ? "yes" : "auth_self_keep");
                ASSERT_TRUE(polkit_action_find(a->id) == a);
        }
        for (const char *p = policy; (p = strstr(p, "<action id=\"")); p++)
                n_policy++;
        ASSERT_EQ(n_policy, n_table);
        ASSERT_TRUE(n_table >= 7);
        ASSERT_TRUE(polkit_action_find("org.claudemesh.daemon1.nope") == NULL);
        ASSERT_TRUE(!polkit_action_find(POLKIT_ACTION_ACCEPT_HOST)->default_yes);
        return 0;
}
