/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>

#include "error-message.h"

int error_setf(char **ret_error, int r, const char *format, ...) {
        va_list ap;
        int k;

        if (!ret_error)
                return r;
        va_start(ap, format);
        k = vasprintf(ret_error, format, ap);
        va_end(ap);
        if (k < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return r;
}
