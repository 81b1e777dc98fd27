#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every stored message is announced exactly once across crashes. The receiving daemon is killed
# between its inbox commit and its MessageReceived signal: claudemeshd dies there by itself with
# SIGKILL when CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT=1 (a test-only knob, because no outside
# kill -9 can hit a window of microseconds on purpose). Restarted, it announces the message once;
# the broker's redelivery and a second restart announce it never again. A brand-new inbox logs
# no schema "migration".
. "$(dirname "$0")/lib.sh"
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)"   # busmon.py

broker_start --presence-grace 0
mesh_create demo >/dev/null
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$(member_entry demo alice)"
daemon_setup bob "$B"
daemon_start alice
export CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT=1
daemon_start bob
unset CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT
wait_connected alice demo
wait_connected bob demo
BOB_PID=$(daemon_pid bob)

# announced ID: how many MessageReceived signals for ID are in bob's monitor
announced() {
        /usr/bin/python3 - "$T/bob.mon" "$1" <<'PY'
import sys
from busmon import signals
print(sum(1 for d in signals(sys.argv[1], "MessageReceived") if d[1]["client_message_id"]["data"] == sys.argv[2]))
PY
}
dead() {  # dead PID: gone or a zombie (bob is our child until waited for)
        s=$(ps -o stat= -p "$1") || return 0
        [ "${s#Z}" != "$s" ]
}
has_announced() { [ "$(announced "$1")" -ge 1 ]; }
send() {  # send ID: alice sends ID to bob
        gcall_on alice Send demo "$BOB" "text of $1" "{'client_message_id': <'$1'>}" || fail "Send $1: $(cat "$T/reply")"
}
received() {  # received ID: bob's inbox has ID exactly once
        [ "$(inbox_json bob demo | grep -o "\"client_message_id\":{\"type\":\"s\",\"data\":\"$1\"}" | wc -l)" = 1 ]
}

monitor bob "$T/bob.mon"
send crash-1
# bob committed the row and died before saying so
wait_until 20 dead "$BOB_PID" || fail "bob did not die after its inbox commit"
wait "$BOB_PID" 2>/dev/null || true
[ "$(announced crash-1)" = 0 ] || fail "crash-1 was announced before the crash: the hook is not between commit and signal"

# restarted, bob announces what it stored, once; the broker's redelivery of the unacknowledged
# push is a duplicate and says nothing (after-1 arrives behind it on the same connection)
daemon_start bob
wait_until 20 has_announced crash-1 ||
        fail "crash-1 was not announced after the restart: $(tail -5 "$T/bob.log")"
wait_connected bob demo
send after-1
wait_until 20 received after-1 || fail "after-1 did not arrive"
wait_until 10 has_announced after-1 || fail "after-1 was not announced"
received crash-1 || fail "crash-1 is not in bob's inbox exactly once: $(inbox_json bob demo | head -c 800)"
grep -q "announced 1 message(s) stored before the last stop" "$T/bob.log" || fail "bob did not log the late announcement"

# a clean restart announces nothing again
daemon_stop bob
daemon_start bob
wait_connected bob demo
send after-2
wait_until 20 received after-2 || fail "after-2 did not arrive"
wait_until 10 has_announced after-2 || fail "after-2 was not announced"
sleep 0.3
for id in crash-1 after-1 after-2; do
        n=$(announced "$id")
        [ "$n" = 1 ] || fail "$id was announced $n times, not once"
done
total=$(grep -c '"member":"MessageReceived"' "$T/bob.mon")
[ "$total" = 3 ] || fail "$total MessageReceived signals for 3 messages"

# the inboxes were created in this test: no "migrated" line
if grep -q "migrated the schema" "$T/alice.log" "$T/bob.log"; then
        fail "a brand-new store logged a migration: $(grep -h 'migrated the schema' "$T/alice.log" "$T/bob.log")"
fi
echo "announce: 3 messages, 1 receiver crash in the commit-to-signal window, 2 restarts; 0 lost, 0 duplicated"
