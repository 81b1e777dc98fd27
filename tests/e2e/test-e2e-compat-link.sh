#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET /v1/peers and POST /v1/profile on the /v1 socket, with our broker and two daemons: alice
# lists bob as upstream clients read a PeerSummary, the same peers ListPeers gives on D-Bus;
# ?mesh= selects; a profile set over HTTP reaches bob's list; a bad field is refused with
# SetProfile's sentence and changes nothing; with the broker gone, 503 and 502.
. "$(dirname "$0")/lib.sh"

broker_start --presence-grace 0
MESH=$(mesh_create demo)
mesh_create other >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
daemon_setup alice "$A" "$(member_entry other alice)"
daemon_setup bob "$B"
# bob is in the group "backend" (config.json's top-level groups, sent in the hello)
/usr/bin/python3 - "$T/bob/config/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["groups"] = [{"name": "backend", "role": "member"}]
json.dump(c, open(sys.argv[1], "w"))
PY
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected alice other
wait_connected bob demo
BOB_MEMBER=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')

# peer_is DAEMON MESH NAME PYTHON-EXPR: /v1/peers lists NAME, and EXPR holds for it (as p)
peer_is() {
        v1_call "$1" GET "/v1/peers?mesh=$2" && [ "$(cat "$T/status")" = 200 ] &&
                /usr/bin/python3 - "$T/body" "$3" "$4" <<'PY'
import json, sys
p = [p for p in json.load(open(sys.argv[1]))["peers"] if p["displayName"] == sys.argv[2]]
assert len(p) == 1 and eval(sys.argv[3]), p
PY
}

alice_hidden() {
        v1_call bob GET /v1/peers && [ "$(cat "$T/status")" = 200 ] && ! grep -q '"displayName":"alice"' "$T/body"
}

# /v1/health maps each mesh to its broker connection's status (upstream ipc/server.ts:206-218)
v1_expect 200 "{\"ok\":true,\"pid\":$(cat "$T/alice/config/daemon/daemon.pid"),\"brokers\":{\"demo\":\"open\",\"other\":\"open\"}}" \
        alice GET /v1/health

# alice lists bob, with his keys, his group and where he runs
wait_until 10 peer_is alice demo bob True || fail "alice's /v1/peers does not list bob: $(cat "$T/body")"
/usr/bin/python3 - "$T/body" "$BOB_MEMBER" <<'PY' || fail "bob's PeerSummary: $(cat "$T/body")"
import json, re, sys
peers = json.load(open(sys.argv[1]))["peers"]
bob = [p for p in peers if p["displayName"] == "bob"][0]
assert re.fullmatch("[0-9a-f]{64}", bob["pubkey"]), bob
assert bob["memberPubkey"] == sys.argv[2], bob
assert bob["groups"] == [{"name": "backend", "role": "member"}], bob
assert bob["status"] == "idle" and bob["summary"] is None, bob
assert bob["sessionId"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", bob["connectedAt"]), bob
assert bob["hostname"], bob
# the broker's channel and peerRole pass through, and the mesh (upstream ipc/server.ts:354): a
# daemon's member connection is "claudemesh-daemon"/"control-plane", which upstream's MCP shim does
# not count as a peer (apps/cli/src/mcp/server.ts:560-566), alice's own daemon included
assert all(p["channel"] == "claudemesh-daemon" and p["peerRole"] == "control-plane" for p in peers), peers
assert all(p["mesh"] == "demo" for p in peers), peers
assert sorted(p["displayName"] for p in peers) == ["alice", "bob"], peers
PY
cp "$T/body" "$T/peers.json"
# ... the same peers as ListPeers on D-Bus
on alice busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
        ListPeers s demo > "$T/bus-peers.json" || fail "ListPeers failed"
/usr/bin/python3 - "$T/peers.json" "$T/bus-peers.json" <<'PY' || fail "/v1/peers and ListPeers differ"
import json, sys
http = json.load(open(sys.argv[1]))["peers"]
bus = [{k: v["data"] for k, v in p.items()} for p in json.load(open(sys.argv[2]))["data"][0]]
from datetime import datetime, timezone
def group(g):  # D-Bus: "name" or "name:role", upstream's notation
    name, _, role = g.partition(":")
    return {"name": name, "role": role} if role else {"name": name}
def usec(iso):  # /v1 keeps the broker's ISO 8601, D-Bus carries µs since the epoch
    return round(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000000)
def from_bus(p):
    return {"pubkey": p["pubkey"], "memberPubkey": p["member_pubkey"], "displayName": p["display_name"],
            "status": p["status"], "summary": p["summary"] or None, "groups": [group(g) for g in p["groups"]],
            "sessionId": p["session_id"], "connectedAt": p["connected_at"], "hostname": p["hostname"]}
key = lambda p: p["pubkey"]
for p in http:
    for k in ("channel", "peerRole", "mesh"):  # /v1 only
        del p[k]
    assert p["connectedAt"] and usec(p["connectedAt"]) > 0, p
    p["connectedAt"] = usec(p["connectedAt"])
assert sorted(http, key=key) == sorted(map(from_bus, bus), key=key), (http, bus)
PY

# ?mesh= selects by slug or id; without it the default mesh (bob has one mesh, alice two)
peer_is alice other alice True && ! peer_is alice other bob True 2>/dev/null || fail "?mesh=other: $(cat "$T/body")"
peer_is alice "$MESH" bob True || fail "?mesh=<id>: $(cat "$T/body")"
v1_call bob GET /v1/peers && [ "$(cat "$T/status")" = 200 ] && grep -q '"displayName":"alice"' "$T/body" ||
        fail "bob's default mesh: $(cat "$T/status") $(cat "$T/body")"
v1_call alice GET /v1/peers?mesh=nope
[ "$(cat "$T/status")" = 400 ] && grep -q '"dbus_error":"org.claudemesh.Daemon1.Error.NoSuchMesh"' "$T/body" ||
        fail "unknown mesh: $(cat "$T/status") $(cat "$T/body")"
# without ?mesh=, every attached mesh's peers, each with its mesh (upstream ipc/server.ts:340-364)
v1_call alice GET /v1/peers
[ "$(cat "$T/status")" = 200 ] || fail "every mesh's peers: $(cat "$T/status") $(cat "$T/body")"
/usr/bin/python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["peers"]
assert sorted((x["mesh"], x["displayName"]) for x in p) == [("demo", "alice"), ("demo", "bob"), ("other", "alice")], p' \
        "$T/body" || fail "every mesh's peers: $(cat "$T/body")"

# a profile set over HTTP reaches bob's list
v1_expect 200 '{"ok":true,"applied":["summary","status"]}' alice POST /v1/profile \
        -d '{"mesh":"demo","summary":"reviewing PR 7","status":"working"}'
wait_until 10 peer_is bob demo alice 'p[0]["summary"] == "reviewing PR 7" and p[0]["status"] == "working"' ||
        fail "bob does not see alice's profile: $(cat "$T/body")"

# refused fields: SetProfile's sentences (D-Bus checks the type first, as InvalidArgs), and nothing is sent (the summary before the bad status
# is not); status idle sent after it shows when bob's list has caught up
bad='{"error":"Profile field \"status\" must be a string.","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}'
v1_expect 400 "$bad" alice POST /v1/profile -d '{"mesh":"demo","summary":"changed","status":5}'
gcall_on alice SetProfile demo "{'summary': <'changed'>, 'status': <5>}" && fail "SetProfile took a number"
grep -qF "InvalidArgs: Option 'status' must be of type 's', got 'i'." "$T/reply" || fail "SetProfile's sentence: $(cat "$T/reply")"
v1_expect 400 '{"error":"Unknown profile field \"colour\".","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
        alice POST /v1/profile -d '{"mesh":"demo","summary":"changed","colour":"red"}'
v1_expect 400 '{"error":"Profile field \"status\" must be idle, working or dnd.","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
        alice POST /v1/profile -d '{"mesh":"demo","summary":"changed","status":"busy"}'
v1_expect 400 '{"error":"Profile field \"capabilities\" must be an array of strings.","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
        alice POST /v1/profile -d '{"mesh":"demo","summary":"changed","capabilities":["ok",1]}'
v1_expect 400 '{"error":"Profile field \"visible\" must be a boolean.","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
        alice POST /v1/profile -d '{"mesh":"demo","summary":"changed","visible":"no"}'
v1_expect 400 '{"error":"invalid JSON"}' alice POST /v1/profile -d '{"summary":'
v1_expect 400 '{"error":"expected JSON object"}' alice POST /v1/profile -d '["summary"]'
v1_expect 200 '{"ok":true,"applied":["status"]}' alice POST /v1/profile -d '{"mesh":"demo","status":"idle"}'
wait_until 10 peer_is bob demo alice 'p[0]["status"] == "idle"' || fail "bob does not see status idle: $(cat "$T/body")"
peer_is bob demo alice 'p[0]["summary"] == "reviewing PR 7"' || fail "a refused request changed the summary: $(cat "$T/body")"

# the other fields go through as well: hidden from bob, then back
v1_expect 200 '{"ok":true,"applied":["visible","title","capabilities"]}' alice POST /v1/profile \
        -d '{"mesh":"demo","visible":false,"title":"reviewer","capabilities":["review"]}'
wait_until 10 alice_hidden || fail "alice is still visible to bob: $(cat "$T/body")"
v1_expect 200 '{"ok":true,"applied":["visible"]}' alice POST /v1/profile -d '{"mesh":"demo","visible":true}'
wait_until 10 peer_is bob demo alice True || fail "alice did not come back: $(cat "$T/body")"

# more than 16 KiB: 413 before any of it is read as JSON
/usr/bin/python3 -c 'import json; print(json.dumps({"mesh": "demo", "summary": "x" * 16384}))' > "$T/big.json"
v1_call alice POST /v1/profile --data-binary "@$T/big.json"
[ "$(cat "$T/status")" = 413 ] || fail "oversize body: $(cat "$T/status") $(cat "$T/body")"

# the broker gone: the profile cannot go anywhere (503), the peer list is not live (502)
broker_stop
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 State)\" != 's \"connected\"' ]" ||
        fail "alice still connected without a broker"
v1_call alice POST /v1/profile -d '{"mesh":"demo","summary":"offline"}'
[ "$(cat "$T/status")" = 503 ] && grep -q '"dbus_error":"org.claudemesh.Daemon1.Error.NotConnected"' "$T/body" ||
        fail "profile without a broker: $(cat "$T/status") $(cat "$T/body")"
v1_call alice GET /v1/peers?mesh=demo
[ "$(cat "$T/status")" = 502 ] && grep -q '^{"error":"broker_unreachable","detail":"' "$T/body" ||
        fail "peers without a broker: $(cat "$T/status") $(cat "$T/body")"
# a mesh whose broker is gone is left out of the list of every mesh, as upstream leaves it out
v1_expect 200 '{"peers":[]}' alice GET /v1/peers
v1_call alice GET /v1/health
/usr/bin/python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))["brokers"]
assert sorted(b) == ["demo", "other"] and all(s in ("connecting", "reconnecting", "closed") for s in b.values()), b' \
        "$T/body" || fail "health without a broker: $(cat "$T/body")"
echo ok
