/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "cm-error.h"
#include "polkit.h"

/* The D-Bus face of the core's errors (cm-error.h); names come from its one table. */

/* Sets error to the code's D-Bus name and the sentence; returns a negative errno. */
int bus_error_setf(sd_bus_error *error, CmErrorCode code, const char *format, ...) _printf_(3, 4);
/* A core call's failure r: the CmError it set, or r itself (-ENOMEM, ...) when it set none. */
int bus_error_set_cm(sd_bus_error *error, int r, const CmError *e);
/* Answers call with e (set). */
int bus_reply_cm_error(sd_bus_message *call, const CmError *e);
/* polkit_verify_async() for a method call, its refusal set on error: 1 go on, 0 parked (return 1
 * from the handler), < 0 refused. */
int bus_verify_polkit(PolkitRegistry *registry, sd_bus_message *call, const char *action, sd_bus_error *error);
