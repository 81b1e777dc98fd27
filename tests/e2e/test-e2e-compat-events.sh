#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET /v1/events on the compat sockets of two daemons with our broker: the stream's start and
# headers, a message alice sends arriving on bob's stream once (a redelivery emits nothing),
# peer_join and peer_leave for a third member, broker_status across a broker restart, the
# keepalive, and the limit of 32 streams with slots freed by clients that go away.
. "$(dirname "$0")/lib.sh"

broker_start --presence-grace 0
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
export BOB_MEMBER=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
export ALICE_MEMBER=$(printf '%s' "$A" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$A"
daemon_setup bob "$B"
daemon_setup carol "$(member_entry demo carol)"
for d in alice bob; do
        daemon_start $d
        wait_connected $d demo
done
wait_until 10 sh -c ". $(dirname "$0")/lib-peers.sh; peers_have alice demo bob" || fail "alice does not see bob"
wait_until 10 sh -c ". $(dirname "$0")/lib-peers.sh; peers_have bob demo alice" || fail "bob does not see alice"

sock() { echo "$T/$1/config/daemon/daemon.sock"; }

# stream DAEMON FILE: DAEMON's /v1/events into FILE (the headers into FILE.headers), in the
# background; returns once ": connected" is there, with the curl's pid in $STREAM
stream() {
        curl -sN --unix-socket "$(sock "$1")" -D "$2.headers" http://localhost/v1/events > "$2" 2>/dev/null &
        STREAM=$!
        PIDS="$PIDS $STREAM"
        wait_until 10 grep -qx ': connected' "$2" || fail "$1: no ': connected' on /v1/events"
}

# The stream's complete frames as dicts (id, event, data parsed; the last block may be cut), and
# the payloads of one signal in a monitor file.
export PYTHONPATH="$(cd "$(dirname "$0")" && pwd)"   # busmon.py
cat > "$T/sse.py" <<'PY'
import json, sys
import busmon

def signals(path, member):
    return [args[1] for args in busmon.signals(path, member)]

def frames(path):
    out = []
    for block in open(path).read().split("\n\n")[:-1]:
        f = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if f:
            f["data"] = json.loads(f["data"])
            out.append(f)
    return out

if __name__ == "__main__":
    path, kind, cond = sys.argv[1:]
    sys.exit(0 if any(f["event"] == kind and eval(cond, {"d": f["data"]}) for f in frames(path)) else 1)
PY
has_event() {  # has_event FILE KIND CONDITION: an event KIND whose data d meets the Python CONDITION
        /usr/bin/python3 "$T/sse.py" "$@"
}

curl -sS --max-time 5 --unix-socket "$(sock alice)" http://localhost/v1/version | grep -q '"events"' ||
        fail "/v1/version does not list events"

# 1. the stream: its start and headers
stream alice "$T/alice.sse"
ALICE_STREAM=$STREAM
stream bob "$T/bob.sse"
BOB_STREAM=$STREAM
printf ': connected\n\n' | cmp -s -n 13 - "$T/bob.sse" || fail "the stream does not start with ': connected'"
tr -d '\r' < "$T/bob.sse.headers" > "$T/headers"
head -n 1 "$T/headers" | grep -q '^HTTP/1.1 200' || fail "not 200: $(cat "$T/headers")"
grep -qix 'content-type: text/event-stream' "$T/headers" || fail "content type: $(cat "$T/headers")"
grep -qix 'cache-control: no-cache, no-transform' "$T/headers" || fail "cache control: $(cat "$T/headers")"
grep -qix 'x-accel-buffering: no' "$T/headers" || fail "x-accel-buffering: $(cat "$T/headers")"

# 2. a message alice sends over the bus is the first event on bob's fresh stream, with the same
# row as bob's inbox and his MessageReceived signal
monitor bob "$T/bob.mon"
gcall_on alice Send demo bob "hello over sse" "{'client_message_id': <'sse-1'>}" || fail "Send: $(cat "$T/reply")"
wait_until 10 has_event "$T/bob.sse" message 'd["client_message_id"] == "sse-1"' ||
        fail "no message event on bob's stream: $(cat "$T/bob.sse")"
inbox_json bob demo > "$T/inbox.json" || fail "ListInbox"
wait_until 5 grep -q '"MessageReceived"' "$T/bob.mon" || fail "no MessageReceived"
/usr/bin/python3 - "$T/bob.sse" "$T/inbox.json" "$T/bob.mon" <<'PY' || fail "the message event: $(cat "$T/bob.sse")"
import datetime, json, os, re, sys
sys.path.insert(0, os.environ["T"])
from sse import frames, signals
fr = frames(sys.argv[1])
assert [(f["id"], f["event"]) for f in fr] == [("1", "message")], fr
d = fr[0]["data"]
row = {r["client_message_id"]["data"]: r for r in json.load(open(sys.argv[2]))["data"][0]}["sse-1"]
want = {"id": row["id"]["data"], "mesh": "demo", "client_message_id": "sse-1",
        "broker_message_id": row["broker_message_id"]["data"], "sender_pubkey": row["sender_pubkey"]["data"],
        "sender_name": "alice", "topic": None, "reply_to_id": None, "body": "hello over sse",
        # upstream apps/cli/src/daemon/inbound.ts:132-144: priority always ("next" by default),
        # sender_member_pubkey (alice's member key; she sends from her session key), subtype only
        # when the push had one
        "priority": "next", "sender_member_pubkey": os.environ["ALICE_MEMBER"],
        # inbound.ts:152-153: the identity that received it (here bob's member)
        "recipient_pubkey": os.environ["BOB_MEMBER"], "recipient_kind": "member"}
assert set(d) == set(want) | {"ts", "created_at"}, d
assert {k: d[k] for k in want} == want, (d, want)
assert re.fullmatch(r"[0-9A-Z]{26}", d["id"]) and re.fullmatch(r"[0-9a-f]{64}", d["sender_pubkey"]), d
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", d["ts"]), d
us = row["received_at"]["data"]
t = datetime.datetime.fromtimestamp(us // 1000000, datetime.timezone.utc)
assert d["created_at"] == t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (us % 1000000 // 1000), (d, us)
sent = signals(sys.argv[3], "MessageReceived")
assert [(s["id"]["data"], s["received_at"]["data"]) for s in sent] == [(d["id"], us)], sent
PY

# 3. the broker delivers sse-1 to bob again (as after a lost client_ack): bob acknowledges it
# again, and neither the stream nor the bus hears of it a second time
owed() {  # owed CLIENT_ID: the broker still waits for bob's client_ack of that message
        /usr/bin/python3 - "$T/broker.db" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
sys.exit(0 if db.execute("SELECT count(*) FROM delivery d JOIN message m ON m.id = d.message_id"
                         " WHERE m.client_message_id = ?", (sys.argv[2],)).fetchone()[0] else 1)
PY
}
acked() { ! owed "$1"; }
/usr/bin/python3 - "$T/broker.db" "$BOB_MEMBER" <<'PY' || fail "cannot owe sse-1 to bob again"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
n = db.execute("INSERT INTO delivery (message_id, recipient_pubkey, mesh_id, created_at)"
               " SELECT id, ?, mesh_id, created_at FROM message WHERE client_message_id = 'sse-1'",
               (sys.argv[2],)).rowcount
db.commit()
assert n == 1, n
PY
gcall_on bob Reconnect demo || fail "Reconnect: $(cat "$T/reply")"
wait_until 20 acked sse-1 || fail "bob did not take sse-1 again"
gcall_on alice Send demo bob "second" "{'client_message_id': <'sse-2'>, 'priority': <'now'>}" || fail "Send: $(cat "$T/reply")"
wait_until 10 has_event "$T/bob.sse" message 'd["client_message_id"] == "sse-2"' || fail "no sse-2 on bob's stream"
/usr/bin/python3 - "$T/bob.sse" "$T/bob.mon" <<'PY' || fail "events after the redelivery: $(cat "$T/bob.sse")"
import json, os, sys
sys.path.insert(0, os.environ["T"])
from sse import frames, signals
fr = frames(sys.argv[1])
assert [f["id"] for f in fr] == [str(i) for i in range(1, len(fr) + 1)], fr
assert [f["data"]["client_message_id"] for f in fr if f["event"] == "message"] == ["sse-1", "sse-2"], fr
# the sender's priority reaches upstream's event (inbound.ts:141): the MCP shim's [URGENT]
assert [f["data"]["priority"] for f in fr if f["event"] == "message"] == ["next", "now"], fr
# the Reconnect in between: bob's link left "open" and came back
status = [f["data"]["status"] for f in fr if f["event"] == "broker_status"]
assert status and status[-1] == "open" and all(s in ("connecting", "reconnecting") for s in status[:-1]), status
assert all(f["data"]["mesh"] == "demo" for f in fr), fr
received = [s["client_message_id"]["data"] for s in signals(sys.argv[2], "MessageReceived")]
assert received == ["sse-1", "sse-2"], received
PY

# 3b. upstream's MCP shim at its start (apps/cli/src/mcp/server.ts:555-600), with the compat client:
# no peers but sessions count (daemons are "claudemesh-daemon"/"control-plane"), the unread rows
# are listed without stamping them, stamped through POST /v1/inbox/seen once pushed, and the next
# start lists none
PYTHONPATH="$(dirname "$0")/../bus" /usr/bin/python3 - "$(sock bob)" <<'PY' || fail "upstream's shim start on bob"
import sys
from compat_client import request
SOCK = sys.argv[1]
st, js, _ = request(SOCK, "GET", "/v1/peers")
assert st == 200 and {p["displayName"] for p in js["peers"]} == {"alice", "bob"}, js
real = [p for p in js["peers"] if p.get("channel") != "claudemesh-daemon" and p.get("peerRole") != "control-plane"]
assert real == [], real
path = "/v1/inbox?mesh=demo&unread_only=true&mark_seen=false&limit=50"
st, js, _ = request(SOCK, "GET", path)
assert st == 200 and [i["client_message_id"] for i in js["items"]] == ["sse-2", "sse-1"], js
assert all(i["seen_at"] is None for i in js["items"]) and js["marked_seen"] == 0, js
st, again, _ = request(SOCK, "GET", path)
assert again == js, (again, js)
st, seen, _ = request(SOCK, "POST", "/v1/inbox/seen", body={"ids": [i["id"] for i in js["items"]]})
assert (st, seen) == (200, {"marked_seen": 2}), (st, seen)
st, js, _ = request(SOCK, "GET", path)
assert (st, js) == (200, {"items": [], "marked_seen": 0}), js
PY

# 4. a third member comes (peer_join on alice's stream) and goes (peer_leave); carol's daemon has
# no /v1 API, so its hooks have no streams to feed
DAEMON_ARGS=--no-compat
daemon_start carol
DAEMON_ARGS=
wait_until 10 has_event "$T/alice.sse" peer_join \
        'd["event"] == "peer_joined" and d["displayName"] == "carol" and d["name"] == "carol" and d["mesh"] == "demo" and len(d["pubkey"]) == 64 and isinstance(d["groups"], list)' ||
        fail "no peer_join for carol on alice's stream: $(cat "$T/alice.sse")"
[ ! -e "$(sock carol)" ] || fail "carol serves /v1 despite --no-compat"
daemon_stop carol
wait_until 10 has_event "$T/alice.sse" peer_leave \
        'd["event"] == "peer_left" and d["displayName"] == "carol" and d["mesh"] == "demo" and len(d["pubkey"]) == 64' ||
        fail "no peer_leave for carol on alice's stream: $(cat "$T/alice.sse")"

# 5. the broker goes away and comes back: reconnecting, then open again
broker_stop
wait_until 10 has_event "$T/alice.sse" broker_status 'd["status"] == "reconnecting" and d["mesh"] == "demo"' ||
        fail "no broker_status reconnecting: $(cat "$T/alice.sse")"
broker_start --presence-grace 0
wait_connected alice demo
wait_until 10 has_event "$T/alice.sse" broker_status 'd["status"] == "open"' || fail "no broker_status open"
/usr/bin/python3 - "$T/alice.sse" <<'PY' || fail "broker_status events: $(cat "$T/alice.sse")"
import os, re, sys
sys.path.insert(0, os.environ["T"])
from sse import frames
status = [f["data"] for f in frames(sys.argv[1]) if f["event"] == "broker_status"]
assert [s["status"] for s in status][-1] == "open", status
assert "reconnecting" in [s["status"] for s in status], status
assert all(set(s) == {"ts", "mesh", "status"} and s["mesh"] == "demo" for s in status), status
# only changes: no status twice in a row
assert all(a["status"] != b["status"] for a, b in zip(status, status[1:])), status
PY

# 6. a keepalive comment within 15 s, on a stream that had none yet
stream alice "$T/quiet.sse"
wait_until 16 grep -qx ': keepalive' "$T/quiet.sse" || fail "no keepalive within 16 s: $(cat "$T/quiet.sse")"
kill "$STREAM"

# 7. 32 streams at once (bob's own is one of them), the 33rd refused; clients that go away free
# their slots at once
/usr/bin/python3 - "$(sock bob)" 31 <<'PY' || fail "the stream limit"
import json, socket, sys, time

def get(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return s, int(head.split()[1]), head, rest

def stream(path):
    s, status, head, rest = get(path)
    assert status == 200, head
    while b": connected" not in rest:
        rest += s.recv(4096)
    return s

def refused(path):
    s, status, head, body = get(path)
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < length:
        body += s.recv(4096)
    s.close()
    return status == 429 and json.loads(body) == {"error": "too_many_streams"}

def stream_within(path, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            return stream(path)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)

path, n = sys.argv[1], int(sys.argv[2])
streams = [stream(path) for _ in range(n)]
assert refused(path), "the 33rd stream was not refused"
# one client goes away: its slot is free well before the next keepalive
streams.pop().close()
streams.append(stream_within(path, 3))
assert refused(path), "the limit did not hold after a slot was reused"
for s in streams:
    s.close()
streams = [stream_within(path, 3) for _ in range(n)]
assert refused(path), "the limit did not hold after the streams were reopened"
for s in streams:
    s.close()
PY
# bob's own stream lived through all that and still gets events
gcall_on alice Send demo bob "third" "{'client_message_id': <'sse-3'>}" || fail "Send: $(cat "$T/reply")"
wait_until 10 has_event "$T/bob.sse" message 'd["client_message_id"] == "sse-3"' || fail "no sse-3 on bob's stream"
kill "$BOB_STREAM" "$ALICE_STREAM"
echo ok
