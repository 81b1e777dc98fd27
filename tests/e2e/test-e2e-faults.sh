#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Faults during a stream of sends, each ending with every message at the receiver exactly once:
# the sender's worker SIGKILLed, the sender's daemon SIGKILLed and restarted, the broker
# restarted, and the broker SIGSTOPped past the liveness timeout, then SIGCONTed.
. "$(dirname "$0")/lib.sh"

N=${E2E_SENDS:-1000}
broker_start --ping-interval 1 --liveness-timeout 3
mesh_create demo >/dev/null
daemon_setup alice "$(member_entry demo alice)"
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup bob "$B"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo

# bob's inbox holds exactly the ids PREFIX-0 .. PREFIX-(COUNT-1), each once
expect_all() {  # expect_all PREFIX COUNT
        /usr/bin/python3 "$(dirname "$0")/wait-inbox.py" "$T/bob/bus" demo "$1" "$2" 90 2> "$T/wait.err" ||
                fail "$(cat "$T/wait.err")"
}
# alice's outbox ends with every row of the stream done
expect_done() {  # expect_done PREFIX COUNT
        wait_until 60 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user --json=short call org.claudemesh.Daemon1 \
                /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListOutbox 'sa{sv}' demo 2 status s done limit s 500 |
                /usr/bin/python3 -c 'import json,sys; rows=json.load(sys.stdin)[\"data\"][0]; sys.exit(0 if sum(1 for r in rows if r[\"client_message_id\"][\"data\"].startswith(\"$1-\")) >= min($2, 500) else 1)'" ||
                fail "$1: alice's rows are not all done"
}
stream() {  # stream PREFIX: N sends from alice to bob, in the background
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" "$SEND_CLIENT" --mesh demo --to "$BOB" --count "$N" --callers 4 \
                --prefix "$1" --retry > "$T/$1.answers" 2>> "$T/send-client.log" &
        STREAM=$!
}
alice_worker() { pgrep -P "$(daemon_pid alice)" -f claudemesh-worker; }

# 1. the worker dies mid-stream; the daemon restarts it and resends what was in flight
stream wk
sleep 0.5
pid=$(alice_worker) || fail "no worker for alice"
kill -KILL "$pid"
wait "$STREAM" || fail "stream wk: the client failed"
wait_until 20 sh -c "pgrep -P $(daemon_pid alice) -f claudemesh-worker" || fail "worker not restarted"
expect_all wk "$N"

# 2. the sending daemon is SIGKILLed mid-stream and started again: its outbox carries on
stream dk
sleep 0.5
kill -KILL "$(daemon_pid alice)"
kill "$STREAM"; wait "$STREAM" 2>/dev/null || true
daemon_start alice
# the client was cut off: send the whole stream again, every id is answered from the outbox
stream dk
wait "$STREAM" || fail "stream dk: the client failed after the restart"
expect_all dk "$N"

# 3. the broker restarts mid-stream
stream br
sleep 0.3
broker_stop
sleep 0.5
broker_start --ping-interval 1 --liveness-timeout 3
wait "$STREAM" || fail "stream br: the client failed"
expect_all br "$N"

# 4. the broker freezes past the liveness timeout, then thaws
stream st
sleep 0.3
kill -STOP "$BROKER_PID"
sleep 5
kill -CONT "$BROKER_PID"
wait "$STREAM" || fail "stream st: the client failed"
expect_all st "$N"
expect_done st "$N"
grep -q "Mesh demo: backoff\|Mesh demo: connecting" "$T/alice.log" || fail "alice never noticed the frozen broker"
echo ok
