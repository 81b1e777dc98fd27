#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The broker SIGSTOPped past the liveness timeout, then SIGCONTed: the daemons notice the silent
# link, reconnect, and every send ends done at alice and stored once at bob.
. "$(dirname "$0")/lib-fault.sh"

FAULT_KILLS=1 FAULT_MESSAGES=300
fault_mesh
freeze_broker() {
        kill -STOP "$BROKER_PID"
        sleep 5
        kill -CONT "$BROKER_PID"
        wait_connected alice demo
        wait_connected bob demo
}
fault_cycles fb freeze_broker
fault_report fb
grep -q "Mesh demo: backoff\|Mesh demo: connecting" "$T/alice.log" || fail "alice never noticed the frozen broker"
