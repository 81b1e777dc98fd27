#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The receiving daemon SIGKILLed while messages are on their way to it and started again: what the
# broker pushed and bob did not commit comes again, and bob stores each message once.
. "$(dirname "$0")/lib-fault.sh"

fault_mesh
kill_bob() { fault_restart_daemon bob; }
fault_cycles kr kill_bob
fault_report kr
