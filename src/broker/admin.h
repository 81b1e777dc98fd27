/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Admin subcommands on the broker's database; safe while the broker runs (WAL, busy wait).
 * Data goes to stdout (JSON for what scripts consume), diagnostics to stderr.
 */

#include "server.h"

/* Exit codes of the admin subcommands (and of the program). */
enum {
        EXIT_USAGE = 2,         /* bad command line */
        EXIT_NOT_FOUND = 3,     /* no such mesh, member or topic */
        EXIT_EXISTS = 4,        /* would duplicate an existing row */
};

/* argv[0] is the first word of the subcommand ("mesh", "member", ...). Returns an exit code. */
int admin_main(const BrokerOptions *opts, int argc, char **argv);
