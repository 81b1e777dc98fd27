/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

/* Stores a malloc'd sentence in *ret_error (when ret_error is not NULL) and returns r, so that
 * validation code can `return error_setf(ret_error, -EINVAL, "...", ...)` (see macro.h).
 * Returns -ENOMEM instead when the sentence cannot be allocated. */
int error_setf(char **ret_error, int r, const char *format, ...) _printf_(3, 4);
