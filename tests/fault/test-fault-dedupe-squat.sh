#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Dedupe squatting (DECISIONS rule 16): mallory sends first with the client_message_ids alice is
# about to use; alice's messages must still be delivered, not answered duplicate or refused,
# and bob's inbox must hold both senders' messages under the same ids, each exactly once.
# Needs the broker's sender-scoped dedupe (branch h11-broker) and the receiver's (h11-receive).
. "$(dirname "$0")/../e2e/lib.sh"

N=${FAULT_SQUAT_IDS:-50}
broker_start --presence-grace 0
mesh_create demo >/dev/null
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$(member_entry demo alice)"
daemon_setup mallory "$(member_entry demo mallory)"
daemon_setup bob "$B"
for d in alice mallory bob; do daemon_start $d; done
for d in alice mallory bob; do wait_connected $d demo; done

# the same N ids from mallory first, then from alice, each to bob
for who in mallory alice; do
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/$who/bus" "$SEND_CLIENT" --mesh demo --to "$BOB" --count "$N" \
                --callers 4 --prefix squat --retry > "$T/$who.answers" 2>> "$T/send-client.log" ||
                fail "$who's sends failed: $(tail -5 "$T/send-client.log")"
done
start=$(date +%s.%N)
/usr/bin/python3 - "$T/bob/bus" "$N" 90 <<'PY' || fail "bob's inbox: $(cat "$T/check.err" 2>/dev/null)"
import json, os, subprocess, sys, time
bus, n, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="unix:path=" + bus)
want = {"squat-%d" % i for i in range(n)}
end = time.monotonic() + timeout
while True:
    out = subprocess.run(["busctl", "--user", "--json=short", "call", "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                          "org.claudemesh.Daemon1", "ListInbox", "sa{sv}", "demo", "1", "limit", "u", "1000"],
                         env=env, capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)["data"][0]
    by = {}
    for r in rows:
        by.setdefault(r["sender_name"]["data"], []).append(r["client_message_id"]["data"])
    ok = all(sorted(by.get(s, [])) == sorted(want) for s in ("alice", "mallory"))
    if ok or time.monotonic() > end:
        break
    time.sleep(0.2)
for s in ("alice", "mallory"):
    ids = by.get(s, [])
    lost, dup = len(want - set(ids)), len(ids) - len(set(ids))
    print("dedupe-squat: %s: %d sent, %d lost, %d duplicated" % (s, n, lost, dup))
    assert lost == 0 and dup == 0, (s, sorted(want - set(ids))[:5])
PY
# alice's outbox: every row done (none dead with idempotency_key_reused)
gcall_on alice ListOutbox demo "{'status': <'done'>, 'limit': <uint32 1000>}"
done_rows=$(grep -o "'status': <'done'>" "$T/reply" | wc -l)
[ "$done_rows" = "$N" ] || fail "alice: $done_rows of $N sends done: $(head -c 600 "$T/reply")"
echo "dedupe-squat: 2 senders x $N shared ids, 0 lost, 0 duplicated, $(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)") s to settle"
