/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one error table: every code has a D-Bus name (the daemon's own documented in
 * org.claudemesh.Daemon1(5)) and an HTTP status; setting an error keeps the first. */
#include <stdio.h>
#include <string.h>

#include "cm-error.h"
#include "fileio.h"
#include "macro.h"
#include "tests.h"

static void test_table(void) {
        char path[4096];
        _cleanup_free_ char *man = NULL;

        snprintf(path, sizeof path, "%s/man/org.claudemesh.Daemon1.5.scd", getenv("CLAUDEMESH_SOURCE_ROOT"));
        ASSERT_OK(read_full_file(path, 1 << 20, &man, NULL, NULL));

        for (CmErrorCode c = CM_ERR_NONE + 1; c < _CM_ERR_MAX; c++) {
                const char *name = cm_error_dbus_name(c);
                unsigned status = cm_error_http_status(c);
                char needle[256];

                ASSERT_TRUE(name);
                ASSERT_TRUE(strneq(name, "org.claudemesh.Daemon1.Error.", 29) ||
                            strneq(name, "org.freedesktop.DBus.Error.", 27));
                if (strneq(name, "org.claudemesh.", 15)) {
                        snprintf(needle, sizeof needle, "*%s*", name);
                        if (!strstr(man, needle)) {
                                fprintf(stderr, "%s is not documented in %s\n", name, path);
                                abort();
                        }
                }
                ASSERT_TRUE(status == 400 || status == 403 || status == 404 || status == 409 || status == 413 ||
                            status == 500 || status == 503);
                /* each name once: a front-end maps names back to nothing, but a duplicate would
                 * make two codes indistinguishable to D-Bus callers */
                for (CmErrorCode d = c + 1; d < _CM_ERR_MAX; d++)
                        ASSERT_TRUE(!streq(name, cm_error_dbus_name(d)));
        }
        ASSERT_EQ(cm_error_http_status(CM_ERR_INVALID_ARGUMENT), 400);
        ASSERT_EQ(cm_error_http_status(CM_ERR_PAYLOAD_TOO_LARGE), 413);
        ASSERT_EQ(cm_error_http_status(CM_ERR_IDEMPOTENCY_CONFLICT), 409);
        ASSERT_EQ(cm_error_http_status(CM_ERR_NO_SUCH_MESSAGE), 404);
        ASSERT_EQ(cm_error_http_status(CM_ERR_ACCESS_DENIED), 403);
        ASSERT_EQ(cm_error_http_status(CM_ERR_NOT_CONNECTED), 503);
        ASSERT_STREQ(cm_error_upstream(CM_ERR_IDEMPOTENCY_CONFLICT), "idempotency_key_reused");
        ASSERT_TRUE(!cm_error_upstream(CM_ERR_INVALID_ARGUMENT));
}

static void test_set(void) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL, moved = CM_ERROR_NULL;

        ASSERT_TRUE(!cm_error_is_set(&e));
        ASSERT_EQ(cm_error_setf(&e, CM_ERR_NO_SUCH_MESH, "No mesh \"%s\".", "x"), -ENXIO);
        ASSERT_TRUE(cm_error_is_set(&e));
        ASSERT_EQ(e.code, CM_ERR_NO_SUCH_MESH);
        ASSERT_STREQ(cm_error_message(&e), "No mesh \"x\".");
        /* the first error is the one the caller hears */
        ASSERT_TRUE(cm_error_setf(&e, CM_ERR_STORAGE, "later") < 0);
        ASSERT_EQ(e.code, CM_ERR_NO_SUCH_MESH);
        ASSERT_STREQ(cm_error_message(&e), "No mesh \"x\".");
        /* callers that need no sentence pass NULL */
        ASSERT_EQ(cm_error_setf(NULL, CM_ERR_STORAGE_FULL, "full"), -ENOSPC);

        cm_error_move(&moved, &e);
        ASSERT_TRUE(!cm_error_is_set(&e));
        ASSERT_EQ(moved.code, CM_ERR_NO_SUCH_MESH);

        /* without a sentence (out of memory) the name stands in */
        cm_error_done(&moved);
        moved.code = CM_ERR_TIMEOUT;
        ASSERT_STREQ(cm_error_message(&moved), "org.freedesktop.DBus.Error.Timeout");
}

int main(void) {
        test_table();
        test_set();
        return 0;
}
