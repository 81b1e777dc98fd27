#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The sending daemon SIGKILLed while sends are in flight and started again: its outbox carries on,
# the callers' retries with the same ids are answered from it, and bob stores each message once.
. "$(dirname "$0")/lib-fault.sh"

fault_mesh
kill_alice() { fault_restart_daemon alice; }
fault_cycles ks kill_alice
fault_report ks
