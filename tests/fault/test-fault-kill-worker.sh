#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The workers (the processes holding the broker links) SIGKILLed mid-stream, alice's and bob's in
# turn: the daemon starts a new one and resends what was in flight; bob stores each message once.
. "$(dirname "$0")/lib-fault.sh"

fault_mesh
worker_of() { pgrep -P "$(daemon_pid "$1")" -f claudemesh-worker; }
kill_worker() {
        name=$([ $((KILLS % 2)) = 1 ] && echo alice || echo bob)
        old=$(worker_of "$name") || fail "no worker for $name"
        kill -KILL "$old"
        wait_until 20 sh -c "p=\$(pgrep -P $(daemon_pid "$name") -f claudemesh-worker) && [ \"\$p\" != $old ]" ||
                fail "$name's worker was not restarted"
        wait_connected "$name" demo
}
fault_cycles kw kill_worker
fault_report kw
