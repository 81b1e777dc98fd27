/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The conventions of all of claudemesh (a test or a reviewer holds code to them):
 *
 * Errors
 *   - A function that can fail returns int: >= 0 on success, a negative errno on failure
 *     (-ENOMEM, -EINVAL, ...). The caller passes it up unchanged or handles it; it never
 *     turns it into errno or a positive code.
 *   - Where a function reports user-facing problems it also says what is wrong and what to do:
 *     in the daemon's core a CmError (src/daemon/core/cm-error.h: a code from the one table and
 *     a sentence, which the front-ends render as a D-Bus error or an HTTP status); elsewhere a
 *     `char **ret_error` that receives a malloc'd sentence on a failure the user can act on
 *     (-EINVAL/-EBADMSG for bad input, -EPERM/-EACCES for a refusal, and whatever its header
 *     lists). Never on -ENOMEM. The caller owns it; callers may pass NULL.
 *   - A positive return value is a documented per-function condition ("1 = created", ...).
 *
 * Calls
 *   - Check after each call, so a failure names its call:
 *             r = sd_bus_message_open_container(m, 'a', "{sv}");
 *             if (r < 0)
 *                     return r;
 *     not `if (r >= 0) r = ...;` chains. Values that go out together are appended with one
 *     call and the full signature (`sd_bus_message_append(m, "{sv}{sv}", ...)`).
 *   - Public entry points (functions in a header) assert their parameters: `assert(m);`.
 *
 * Logging (log.h)
 *   - An error is logged with errno set for the format and passed once:
 *     `return log_error_errno(r, "Cannot open %s: %m", path);` never "%s", STRERROR(r). The
 *     build uses warning level 2, as systemd does, since -Wpedantic refuses %m.
 *   - A tolerated failure says so: "..., ignoring: %m".
 *
 * Resources
 *   - Every owned resource is held by a _cleanup_ variable; ownership moves out with TAKE_PTR /
 *     TAKE_FD. Buffers that held secret keys are wiped with sodium_memzero before being freed.
 *   - Every string from a peer, a socket or a file is hostile: sizes, NUL and control characters
 *     are checked, and every resource is bounded.
 *
 * Comments say why, briefly.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define TAKE_PTR(p) __extension__              \
        ({                                   \
                __typeof__(p) _p_ = (p);     \
                (p) = NULL;                  \
                _p_;                         \
        })

#define TAKE_FD(fd) __extension__              \
        ({                                   \
                int _fd_ = (fd);             \
                (fd) = -1;                   \
                _fd_;                        \
        })

/* Defines name##p(type *p), calling func(*p) when *p is not NULL. The trailing struct
 * declaration lets uses end in ';' without an empty declaration, which -Wpedantic rejects. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)          \
        static inline void func##p(type *p) {            \
                if (*p)                                  \
                        func(*p);                        \
        }                                                \
        struct __useless_struct_to_allow_trailing_semicolon__

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Keeps errno across a cleanup that may clobber it. */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strneq(a, b, n) (strncmp((a), (b), (n)) == 0)

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

static inline const char *empty_to_null(const char *s) {
        return s && *s ? s : NULL;
}
