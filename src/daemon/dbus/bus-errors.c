/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>

#include "bus-errors.h"

int bus_error_setf(sd_bus_error *error, CmErrorCode code, const char *format, ...) {
        va_list ap;
        int r;

        assert(format);
        va_start(ap, format);
        r = sd_bus_error_setfv(error, cm_error_dbus_name(code), format, ap);
        va_end(ap);
        return r;
}

int bus_error_set_cm(sd_bus_error *error, int r, const CmError *e) {
        assert(r < 0);
        if (!cm_error_is_set(e))
                return r;
        return sd_bus_error_set(error, cm_error_dbus_name(e->code), cm_error_message(e));
}

int bus_verify_polkit(PolkitRegistry *registry, sd_bus_message *call, const char *action, sd_bus_error *error) {
        _cleanup_(cm_error_done) CmError e = CM_ERROR_NULL;
        int r;

        assert(registry);

        r = polkit_verify_async(registry, call, action, &e);
        if (r < 0)
                return bus_error_set_cm(error, r, &e);
        return r;
}

int bus_reply_cm_error(sd_bus_message *call, const CmError *e) {
        assert(call);
        assert(cm_error_is_set(e));
        return sd_bus_reply_method_errorf(call, cm_error_dbus_name(e->code), "%s", cm_error_message(e));
}
