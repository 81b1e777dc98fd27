#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET and POST /v1/state (upstream apps/cli/src/daemon/ipc/server.ts at 1.37.0) onto our broker's
# shared state, two daemons: alice sets a key, bob reads it with upstream's row shape and the
# mesh; a key not set is 404 state_not_found; the list spans the attached meshes; the mesh is the
# one named, the session's (ClaudeMesh-Session header; its /v1/peers too) or the only one, else
# 400 mesh_required;
# upstream's 400 and 404 texts; an entry over a broker frame is 413; a broker that does not
# answer or is gone, 502.
. "$(dirname "$0")/lib.sh"

broker_start --presence-grace 0
mesh_create demo > /dev/null
mesh_create other > /dev/null
daemon_setup alice "$(member_entry demo alice)" "$(member_entry other alice)"
daemon_setup bob "$(member_entry demo bob)"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected alice other
wait_connected bob demo

# check PYTHON-EXPR: holds for the last answer (status as s, body as b)
check() {
        /usr/bin/python3 - "$T/status" "$T/body" "$1" <<'PY' || fail "$1: got $(cat "$T/status") $(cat "$T/body")"
import json, re, sys
s = int(open(sys.argv[1]).read()); b = json.load(open(sys.argv[2]))
assert eval(sys.argv[3])
PY
}

v1_expect 404 '{"error":"state_not_found","key":"k"}' alice GET '/v1/state?key=k'
v1_expect 200 '{"entries":[]}' alice GET /v1/state

# POST: upstream's texts, and the mesh it goes to
v1_expect 400 '{"error":"missing '"'"'key'"'"' (string)"}' alice POST /v1/state -d '{"value":1}'
v1_expect 400 '{"error":"missing '"'"'key'"'"' (string)"}' alice POST /v1/state -d '{"key":7}'
v1_expect 400 '{"error":"expected JSON object"}' alice POST /v1/state -d '[1]'
v1_expect 400 '{"error":"mesh_required","attached":["demo","other"]}' alice POST /v1/state -d '{"key":"k","value":1}'
v1_expect 404 '{"error":"mesh_not_attached","mesh":"nope"}' alice POST /v1/state -d '{"key":"k","mesh":"nope"}'
v1_expect 400 '{"error":"'"'"'key'"'"' must be 1 to 256 bytes without control characters"}' alice POST /v1/state \
        -d "{\"key\":\"$(head -c 257 /dev/zero | tr '\0' k)\",\"mesh\":\"demo\"}"
v1_expect 400 '{"error":"'"'"'key'"'"' must be 1 to 256 bytes without control characters"}' alice GET '/v1/state?key=a%0Ab'
/usr/bin/python3 -c 'import json; print(json.dumps({"key": "big", "mesh": "demo", "value": "x" * 70000}))' > "$T/big.json"
v1_expect 413 '{"error":"state entry larger than a broker frame"}' alice POST /v1/state --data-binary "@$T/big.json"
v1_expect 200 '{"ok":true,"key":"k","mesh":"demo"}' alice POST /v1/state -d '{"key":"k","value":{"a":[1,"two"]},"mesh":"demo"}'

# bob (one mesh) reads it: upstream's row with the mesh, as soon as the broker has it
wait_until 10 sh -c "curl -sf --unix-socket $T/bob/config/daemon/daemon.sock 'http://localhost/v1/state?key=k' > /dev/null" ||
        fail "bob does not see the key"
v1_call bob GET '/v1/state?key=k'
check 's == 200 and list(b) == ["state"] and b["state"]["key"] == "k" and b["state"]["value"] == {"a": [1, "two"]} and b["state"]["updatedBy"] == "alice" and re.match(r"^\d{4}-\d\d-\d\dT", b["state"]["updatedAt"]) and b["state"]["mesh"] == "demo" and len(b["state"]) == 5'
# the only mesh needs no name; null is a value
v1_expect 200 '{"ok":true,"key":"n","mesh":"demo"}' bob POST /v1/state -d '{"key":"n","value":null}'
wait_until 10 sh -c "curl -s --unix-socket $T/bob/config/daemon/daemon.sock 'http://localhost/v1/state' | grep -q '\"key\":\"n\"'" ||
        fail "bob's null value is not listed"
v1_call bob GET '/v1/state?key=n'
check 's == 200 and b["state"]["value"] is None and b["state"]["updatedBy"] == "bob"'
# alice lists every attached mesh's entries; ?mesh= narrows
v1_call alice GET /v1/state
check 's == 200 and sorted((e["key"], e["mesh"]) for e in b["entries"]) == [("k", "demo"), ("n", "demo")] and all(set(e) == {"key", "value", "updatedBy", "updatedAt", "mesh"} for e in b["entries"])'
v1_expect 200 '{"entries":[]}' alice GET '/v1/state?mesh=other'
v1_expect 404 '{"error":"state_not_found","key":"k"}' alice GET '/v1/state?mesh=other&key=k'
v1_call alice GET '/v1/state?mesh=nope'
check 's == 400 and b["dbus_error"] == "org.claudemesh.Daemon1.Error.NoSuchMesh"'

# a session's requests default to its mesh
sleep 300 &
HOLDER=$!
PIDS="$PIDS $HOLDER"
TOKEN=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_hex(32))')
v1_call alice POST /v1/sessions/register \
        -d "{\"token\":\"$TOKEN\",\"session_id\":\"st\",\"mesh\":\"other\",\"display_name\":\"st\",\"pid\":$HOLDER}"
check 's == 200 and b["ok"] is True'
v1_expect 404 '{"error":"state_not_found","key":"k"}' alice GET '/v1/state?key=k' -H "Authorization: ClaudeMesh-Session $TOKEN"
v1_expect 200 '{"ok":true,"key":"s","mesh":"other"}' alice POST /v1/state -d '{"key":"s","value":2}' \
        -H "Authorization: ClaudeMesh-Session $TOKEN"
v1_call alice GET '/v1/state?key=k&mesh=demo' -H "Authorization: ClaudeMesh-Session $TOKEN"
check 's == 200 and b["state"]["mesh"] == "demo"'
# and so do its peer lists
v1_call alice GET /v1/peers -H "Authorization: ClaudeMesh-Session $TOKEN"
check 's == 200 and b["peers"] and {p["mesh"] for p in b["peers"]} == {"other"}'
v1_call alice GET /v1/peers
check 's == 200 and {p["mesh"] for p in b["peers"]} == {"demo", "other"}'

# a broker that does not answer: each query ends at its timeout, 502 rather than upstream's 404
kill -STOP "$BROKER_PID"
v1_expect 502 '{"error":"broker_unreachable","detail":"demo: the broker did not answer in time; other: the broker did not answer in time"}' \
        alice GET '/v1/state?key=k'
kill -CONT "$BROKER_PID"

# the broker gone: nothing to ask, 502 naming each mesh; sets are refused rather than dropped
broker_stop
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 State)\" != 's \"connected\"' ]" ||
        fail "alice still connected to a stopped broker"
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/other org.claudemesh.Mesh1 State)\" != 's \"connected\"' ]" ||
        fail "alice still connected to a stopped broker"
v1_expect 502 '{"error":"broker_unreachable","detail":"demo: not connected to the broker; other: not connected to the broker"}' \
        alice GET '/v1/state?key=k'
v1_expect 502 '{"error":"broker_unreachable","detail":"demo: not connected to the broker; other: not connected to the broker"}' \
        alice GET /v1/state
v1_expect 502 '{"error":"broker_unreachable","detail":"demo: not connected to the broker"}' \
        alice POST /v1/state -d '{"key":"k","value":3,"mesh":"demo"}'
daemon_stop alice
daemon_stop bob
echo ok
