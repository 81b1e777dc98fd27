#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A state directory that fills up and empties again. The sender's state lives on a small tmpfs;
# with sends in flight (the broker frozen) the tmpfs is filled to the last page, then the broker
# thaws and delivers: the receiver gets every message, but the sender cannot store "done". Those
# transitions are kept and retried: once space is freed, every row reaches done, OutboxDepth
# returns to 0, and each row announced Delivered once. Needs root (mount); skipped otherwise.
. "$(dirname "$0")/../e2e/lib.sh"

N=${ENOSPC_SENDS:-30}   # at most 32: all in flight at once
STATE="$T/alice/state"

if [ "$(id -u)" != 0 ]; then
        echo "SKIP: needs root to mount a tmpfs for the state directory"
        exit 77
fi
mkdir -p "$STATE"
if ! mount -t tmpfs -o size=8m,mode=0700 claudemesh-test "$STATE" 2> "$T/mount.err"; then
        echo "SKIP: cannot mount a tmpfs: $(cat "$T/mount.err")"
        exit 77
fi
enospc_cleanup() {
        for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; kill "$p" 2>/dev/null || true; done
        for p in $PIDS; do wait "$p" 2>/dev/null || true; done
        umount "$STATE" 2>/dev/null || umount -l "$STATE" 2>/dev/null || true
        cleanup
}
trap enospc_cleanup EXIT INT TERM

broker_start
mesh_create demo >/dev/null
daemon_setup alice "$(member_entry demo alice)"
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup bob "$B"
# a long liveness cut: the frozen broker must not look dead to alice, so her sends stay in flight
LIVENESS_MS=60000 daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo
monitor alice "$T/alice-signals"

depth() {
        on alice busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo \
                org.claudemesh.Mesh1 OutboxDepth | cut -d' ' -f2
}
count_status() {  # count_status STATUS: alice's rows of the stream in that status, read over the bus
        on alice busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
                ListOutbox 'sa{sv}' demo 2 status s "$1" limit u 500 |
                /usr/bin/python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["data"][0] if r["client_message_id"]["data"].startswith("full-")))'
}

# 1. the broker freezes; N sends are accepted and handed to it: all in flight
kill -STOP "$BROKER_PID"
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" "$SEND_CLIENT" --mesh demo --to "$BOB" --count "$N" --callers 4 \
        --prefix full > "$T/full.answers" 2>> "$T/send-client.log" || fail "the sends were refused"
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListOutbox 'sa{sv}' demo 2 status s inflight limit u 500 | grep -o '\"full-' | wc -l)\" = $N ]" ||
        fail "the sends did not all go in flight"

# 2. the state directory fills to the last page
dd if=/dev/zero of="$STATE/fill" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$STATE/fill2" bs=4k 2>/dev/null || true
avail=$(df --output=avail -k "$STATE" | tail -1 | tr -d ' ')
[ "$avail" = 0 ] || fail "the tmpfs still has $avail KiB free"

# 3. the broker thaws and delivers; alice cannot store that
full_start=$(date +%s%N)
kill -CONT "$BROKER_PID"
/usr/bin/python3 "$(dirname "$0")/wait-inbox.py" "$T/bob/bus" demo full "$N" 30 2> "$T/wait.err" ||
        fail "bob did not get every message: $(cat "$T/wait.err")"
wait_until 10 grep -q "cannot store the delivery of full-" "$T/alice.log" ||
        fail "alice stored every delivery on a full disk: the test filled nothing"
sleep 1
stuck=$(depth)
[ "$stuck" -gt 0 ] || fail "OutboxDepth is 0 while the disk is full: the test filled nothing"
delivered_full=$(grep -c '"member":"Delivered"' "$T/alice-signals" || true)

# 4. space comes back: the kept transitions land, without a restart and without another send
rm -f "$STATE/fill" "$STATE/fill2"
free_start=$(date +%s%N)
wait_until 60 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 OutboxDepth)\" = 'u 0' ]" ||
        fail "OutboxDepth stays at $(depth) after space came back"
recovery_ms=$(( ($(date +%s%N) - free_start) / 1000000 ))
[ "$(count_status done)" = "$N" ] || fail "only $(count_status done) of $N rows are done"
wait_until 5 sh -c "[ \$(grep -c '\"member\":\"Delivered\"' '$T/alice-signals') -ge $N ]" || true
delivered=$(grep -c '"member":"Delivered"' "$T/alice-signals" || true)
[ "$delivered" = "$N" ] || fail "$delivered Delivered signals for $N rows"
/usr/bin/python3 "$(dirname "$0")/wait-inbox.py" "$T/bob/bus" demo full "$N" 5 2> "$T/wait.err" ||
        fail "after recovery: $(cat "$T/wait.err")"
kill -0 "$(daemon_pid alice)" || fail "alice's daemon died"

echo "messages: $N, received $N, 0 lost, 0 duplicated"
echo "disk full for $(( (free_start - full_start) / 1000000 )) ms: OutboxDepth stuck at $stuck, $delivered_full Delivered while full"
echo "recovery: OutboxDepth 0 and all $N rows done ${recovery_ms} ms after space came back, $delivered Delivered signals"
echo ok
