/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include "outbox.h"

/* For tests and tools that must look under the API: the schema version the code writes, the
 * steps to it (step i takes a file from version i to i + 1), and the connection, for raw SQL
 * (forcing a state, reading a column). */

#define OUTBOX_SCHEMA_VERSION 3

extern const char *const outbox_migrations[];

sqlite3 *outbox_db(Outbox *o);
