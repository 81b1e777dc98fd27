#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Feature negotiation against a broker that advertises nothing (--legacy, like the upstream
# broker today): a mesh that requires client_message_id_dedupe closes with 4010 and a JSON
# reason and stays failed, visibly; the other mesh on the same broker works at-least-once. A mesh
# whose broker is plain ws:// to another host is warned about once; one on loopback is not.
. "$(dirname "$0")/lib.sh"

broker_start --legacy
mesh_create strict >/dev/null
mesh_create relaxed >/dev/null
mesh_create remote >/dev/null
STRICT=$(member_entry strict alice | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); e["requiredFeatures"]=["client_message_id_dedupe"]; print(json.dumps(e))')
daemon_setup alice "$STRICT" "$(member_entry relaxed alice)"
REMOTE=$(member_entry remote bob | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); e["brokerUrl"]="ws://192.0.2.1:9/ws"; print(json.dumps(e))')
daemon_setup bob "$(member_entry relaxed bob)" "$REMOTE"
daemon_start alice
daemon_start bob
wait_connected alice relaxed
wait_connected bob relaxed

wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/strict org.claudemesh.Mesh1 State)\" = 's \"failed\"' ]" ||
        fail "the strict mesh is $(mesh_state alice strict), not failed"
on alice busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/strict org.claudemesh.Mesh1 LastError > "$T/err"
grep -q 'closed 4010: {\\"kind\\":\\"feature_unavailable\\",\\"feature\\":\\"client_message_id_dedupe\\"' "$T/err" ||
        fail "LastError: $(cat "$T/err")"
# it stays failed: no reconnect loop
sleep 3
[ "$(mesh_state alice strict)" = failed ] || fail "the strict mesh left failed by itself: $(mesh_state alice strict)"
[ "$(grep -c 'Mesh strict: connecting' "$T/alice.log")" -le 1 ] || fail "the strict mesh reconnected in a loop"

# the legacy broker's mesh works, and says it is legacy
[ "$(on alice busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/relaxed org.claudemesh.Mesh1 Features)" = 'as 0' ] ||
        fail "Features of a legacy broker is not an empty array"
grep -q "Mesh relaxed: the broker advertises no features" "$T/alice.log" || fail "legacy mode not said in the log"
gcall_on alice Send relaxed '*' "still works" "{'client_message_id': <'r1'>}" || fail "Send: $(cat "$T/reply")"
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListInbox relaxed '@a{sv} {}' | grep -q 'still works'" ||
        fail "bob did not receive through the legacy broker"

# plain ws:// beyond loopback: one warning for that mesh, whatever its reconnects; none for loopback
sleep 2
[ "$(grep -c 'Mesh remote: the broker URL ws://192.0.2.1:9/ws is plain ws:// to another host' "$T/bob.log")" = 1 ] ||
        fail "ws:// warning: $(grep 'plain ws://' "$T/bob.log")"
! grep -q 'Mesh relaxed: the broker URL .* plain ws://' "$T/bob.log" "$T/alice.log" || fail "a loopback broker was warned about"

# Reconnect retries a failed mesh (and it fails again the same way)
gcall_on alice Reconnect strict || fail "Reconnect: $(cat "$T/reply")"
wait_until 20 sh -c "grep -c 'a required broker feature is missing' $T/alice.log | grep -q 2" || fail "Reconnect did not retry"
[ "$(mesh_state alice strict)" = failed ] || fail "after Reconnect: $(mesh_state alice strict)"
echo ok
