/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* --sandbox-probe: applies the worker's sandbox exactly as the real path does, then tries
 * what it must prevent and prints one line per attempt ("open: blocked (EPERM)" or
 * "open: ALLOWED"). Returns the exit status: 0 only if everything was blocked. */
int sandbox_probe(void);
