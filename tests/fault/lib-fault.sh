# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the fault suite (sourced by tests/fault/test-fault-NAME.sh, after tests/e2e/lib.sh):
# our broker and two daemons, alice sending to bob, a stream of sends with faults injected while
# they are in flight, and the figures every case prints:
#   fault-NAME: N messages, K kills, recovery p50/max X/Y ms, 0 lost, 0 duplicated
# where "lost" are sends alice answered that bob never stored, "duplicated" bob's extra rows.
# FAULT_MESSAGES (600) and FAULT_KILLS (5) size a case; recovery runs from a fault to the link
# being back.
. "$(dirname "$0")/../e2e/lib.sh"
FAULT_DIR=$(cd "$(dirname "$0")" && pwd)
FAULT=$(basename "$0" .sh | sed 's/^test-fault-//')
FAULT_MESSAGES=${FAULT_MESSAGES:-600}
FAULT_KILLS=${FAULT_KILLS:-5}
KILLS=0
: > "$T/recovery-ms"

now_ms() { date +%s%3N; }

# fault_mesh: the broker (short liveness) and alice and bob connected in mesh "demo"; BOB is
# bob's public key
fault_mesh() {
        broker_start --ping-interval 1 --liveness-timeout 3
        mesh_create demo >/dev/null
        daemon_setup alice "$(member_entry demo alice)"
        bob_entry=$(member_entry demo bob)
        BOB=$(printf '%s' "$bob_entry" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
        daemon_setup bob "$bob_entry"
        daemon_start alice
        daemon_start bob
        wait_connected alice demo
        wait_connected bob demo
}

# fault_stream PREFIX COUNT: COUNT sends from alice to bob (ids PREFIX-0 ..., text $FAULT_BODY or
# "hello") by 4 callers that retry through faults, in the background: STREAM is its pid, its
# answers go to $T/PREFIX.answers
fault_stream() {
        # the file exists before the client starts: a background job opens its redirection only
        # once scheduled, and the first count must not read a file that is not there yet
        : > "$T/$1.answers"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" "$SEND_CLIENT" --mesh demo --to "$BOB" \
                --count "$2" --callers 4 --prefix "$1" --message "${FAULT_BODY:-hello}" --retry \
                >> "$T/$1.answers" 2>> "$T/send-client.log" &
        STREAM=$!
        PIDS="$PIDS $STREAM"
}

fault_answered() { wc -l < "$T/$1.answers"; }

# fault_begin: a fault is injected now; fault_end: the system is back, which records the time since
fault_begin() {
        FAULT_AT=$(now_ms)
        KILLS=$((KILLS + 1))
}
fault_end() { echo $(($(now_ms) - FAULT_AT)) >> "$T/recovery-ms"; }

# fault_cycles PREFIX FUNCTION: streams of FAULT_MESSAGES / FAULT_KILLS sends (ids
# PREFIX<j>-<i>), each with FUNCTION, which injects a fault and returns once the system is back,
# run when a third of them was answered: calls are in flight then, and what they queue crosses
# the fault. A stream that a busy machine let end first runs without one, and another follows,
# until FAULT_KILLS faults are in. All answers end up in $T/PREFIX.answers, FAULT_MESSAGES counts
# the sends.
fault_cycles() {
        chunk=$((FAULT_MESSAGES / FAULT_KILLS))
        : > "$T/$1.answers"
        j=0
        while [ "$KILLS" -lt "$FAULT_KILLS" ]; do
                j=$((j + 1))
                [ "$j" -le $((FAULT_KILLS * 3)) ] || fail "$j streams ended before their fault: the machine is too slow"
                fault_stream "$1$j" "$chunk"
                while [ "$(fault_answered "$1$j")" -lt $((chunk / 3)) ] && kill -0 "$STREAM" 2>/dev/null; do
                        sleep 0.01
                done
                if [ "$(fault_answered "$1$j")" -lt "$chunk" ]; then
                        fault_begin
                        "$2"
                        fault_end
                fi
                wait "$STREAM" || fail "the send client failed: $(tail -5 "$T/send-client.log")"
                cat "$T/$1$j.answers" >> "$T/$1.answers"
        done
        FAULT_MESSAGES=$((chunk * j))
}

# fault_restart_daemon NAME: SIGKILL, start again, until its mesh is connected
fault_restart_daemon() {
        kill -KILL "$(daemon_pid "$1")"
        wait "$(daemon_pid "$1")" 2>/dev/null || true
        daemon_start "$1"
        wait_connected "$1" demo
}

# fault_report PREFIX: waits until every answered send is in bob's inbox and done in alice's
# outbox, prints the figures, and fails unless every send was answered, 0 lost and 0 duplicated
fault_report() {
        check_rc=0
        /usr/bin/python3 "$FAULT_DIR/check-delivery.py" "$T/$1.answers" "$T/alice/bus" "$T/bob/bus" demo \
                "$FAULT_MESSAGES" 60 "$T/bob/state/claudemesh/inbox.db" > "$T/check" 2> "$T/check.err" ||
                check_rc=$?
        figure() { sed -n "s/.*\<$1=\([0-9]*\).*/\1/p" "$T/check"; }
        recovery=$(sort -n "$T/recovery-ms" | awk '{ v[NR] = $1 } END { if (NR) printf "%d/%d", v[int((NR + 1) / 2)], v[NR]; else printf "-" }')
        echo "fault-$FAULT: $(figure answered) messages, $KILLS kills, recovery p50/max $recovery ms," \
             "$(figure lost) lost, $(figure duplicated) duplicated"
        [ "$check_rc" = 0 ] || fail "$(cat "$T/check" "$T/check.err")"
}
