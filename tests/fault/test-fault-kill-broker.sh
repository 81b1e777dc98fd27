#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The broker SIGKILLed mid-stream and started again on its database: both daemons reconnect, the
# sends in flight go again under their ids, and bob stores each message once.
. "$(dirname "$0")/lib-fault.sh"

fault_mesh
kill_broker() {
        kill -KILL "$BROKER_PID"
        wait "$BROKER_PID" 2>/dev/null || true
        broker_start --ping-interval 1 --liveness-timeout 3
        wait_connected alice demo
        wait_connected bob demo
}
fault_cycles kb kill_broker
fault_report kb
