#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Peer state stays true. Two connections with the same key (presence.py: real hellos with a
# member's key from the test's config) are one peer: when one of them leaves, the peer stays in
# the daemon's list, names still resolve against it, and PeerJoined/PeerLeft come once each,
# for the first and the last connection.
. "$(dirname "$0")/lib.sh"
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)"   # busmon.py

broker_start --presence-grace 0
mesh_create demo >/dev/null
C=$(member_entry demo carol)
CAROL=$(printf '%s' "$C" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$(member_entry demo alice)"
daemon_start alice
wait_connected alice demo
monitor alice "$T/alice.mon"

signal_count() {  # signal_count SIGNAL: how many SIGNALs about carol alice emitted
        /usr/bin/python3 - "$T/alice.mon" "$1" "$CAROL" <<'PY'
import sys
from busmon import signals
print(sum(1 for d in signals(sys.argv[1], sys.argv[2]) if d[1]["pubkey"]["data"] == sys.argv[3]))
PY
}
carol_rows() {  # carol_rows: carol's rows in alice's ListPeers
        gcall_on alice ListPeers demo || fail "ListPeers: $(cat "$T/reply")"
        grep -o "'display_name': <'carol'>" "$T/reply" | wc -l
}
has_body() { inbox_json alice demo | grep -q "\"data\":\"$1\""; }

mkdir "$T/carol"
/usr/bin/python3 "$(dirname "$0")/presence.py" "$BROKER_PORT" "$C" "$T/carol" carol > "$T/presence.log" 2>&1 &
PRESENCE=$!
PIDS="$PIDS $PRESENCE"
wait_until 20 test -e "$T/carol/up" || fail "presence.py did not connect: $(cat "$T/presence.log")"
wait_until 10 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListPeers demo | grep -o \"'display_name': <'carol'>\" | wc -l)\" = 2 ]" ||
        fail "alice does not list carol's two connections: $(cat "$T/reply")"
[ "$(signal_count PeerJoined)" = 1 ] || fail "PeerJoined for carol $(signal_count PeerJoined) times, not once"

# one connection leaves; alice handles its peer_left before the broadcast sent after it
touch "$T/carol/close-one"
wait_until 20 test -e "$T/carol/one-closed" || fail "presence.py could not close one: $(cat "$T/presence.log")"
wait_until 20 has_body "one closed" || fail "alice did not get carol's broadcast"
[ "$(signal_count PeerLeft)" = 0 ] || fail "carol is still online, yet alice said PeerLeft"
# alice's own list (not refreshed since) resolves carol's name: no "knows no peers yet"
gcall_on alice Send demo carol "still there?" "{'client_message_id': <'by-name'>}" ||
        fail "send to carol by name after one of her connections left: $(cat "$T/reply")"
[ "$(carol_rows)" = 1 ] || fail "ListPeers does not show carol's remaining connection: $(cat "$T/reply")"

# the last one leaves: now she is gone, once
touch "$T/carol/close-all"
wait_until 20 test -e "$T/carol/all-closed" || fail "presence.py could not close: $(cat "$T/presence.log")"
wait "$PRESENCE" || fail "presence.py failed: $(cat "$T/presence.log")"
wait_until 20 sh -c "[ \"\$(PYTHONPATH=$PYTHONPATH /usr/bin/python3 -c 'import sys; from busmon import signals; print(sum(1 for d in signals(sys.argv[1], \"PeerLeft\") if d[1][\"pubkey\"][\"data\"] == sys.argv[2]))' '$T/alice.mon' '$CAROL')\" = 1 ]" ||
        fail "no PeerLeft for carol after her last connection left"
[ "$(carol_rows)" = 0 ] || fail "carol is still listed: $(cat "$T/reply")"
# connected, alice must not claim to be disconnected when nobody else is online
! gcall_on alice Send demo carol "gone" "{'client_message_id': <'gone'>}" || fail "a send to a peer who left resolved"
grep -q "No peer called \"carol\"" "$T/reply" || fail "not the unknown-peer error: $(cat "$T/reply")"
if grep -q "it is not connected to its broker" "$T/reply"; then
        fail "connected alice says it is not connected: $(cat "$T/reply")"
fi
sleep 0.3
[ "$(signal_count PeerJoined)" = 1 ] && [ "$(signal_count PeerLeft)" = 1 ] ||
        fail "carol: $(signal_count PeerJoined) PeerJoined and $(signal_count PeerLeft) PeerLeft, not one each"
echo "peers: 2 connections of one key, 1 left then 2; PeerJoined 1, PeerLeft 1"
