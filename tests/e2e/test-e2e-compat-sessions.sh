#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The ClaudeMesh-Session header on /v1 with our broker and two daemons: a session registered on
# bob through /v1 has its own presence; its /v1/events stream carries only the messages addressed
# to it (a DM to the member does not show, upstream 1.34.10's demux) while an unscoped stream
# carries both, each message event naming its recipient_pubkey and recipient_kind; its POST
# /v1/send goes out from the session's key; its stream ends with it. The registry survives a
# restart of the daemon for sessions whose process lives, never keeping a token on disk.
. "$(dirname "$0")/lib.sh"

alice_and_bob --presence-grace 0

sleep 300 &
HOLDER=$!
PIDS="$PIDS $HOLDER"

PYTHONPATH="$(dirname "$0")/../bus" /usr/bin/python3 - "$T" "$HOLDER" <<'PY' || fail "/v1 session scoping failed"
import json, os, queue, secrets, socket, sys, threading, time
from compat_client import request

T, HOLDER = sys.argv[1], int(sys.argv[2])
A = os.path.join(T, "alice/config/daemon/daemon.sock")
B = os.path.join(T, "bob/config/daemon/daemon.sock")

def expect(got, status):
    st, js, payload = got
    assert st == status, f"expected {status}, got {st} {payload!r}"
    return js

def until(what, fn):
    for _ in range(400):
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

class Stream:
    """An SSE reader of /v1/events on sock: each event's (kind, data) into a queue; ended at EOF."""
    def __init__(self, sock, token=None):
        self.q, self.ended, self.connected = queue.Queue(), threading.Event(), threading.Event()
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(sock)
        auth = f"Authorization: ClaudeMesh-Session {token}\r\n" if token else ""
        self.s.sendall(f"GET /v1/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n".encode())
        threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        buf = b""
        while True:
            chunk = self.s.recv(65536)
            if not chunk:
                self.ended.set()
                return
            buf += chunk
            while b"\n\n" in buf:
                block, buf = buf.split(b"\n\n", 1)
                if block.endswith(b": connected"):
                    self.connected.set()
                kind = data = None
                for line in block.decode(errors="replace").split("\n"):
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if kind:
                    self.q.put((kind, data))
    def messages(self, want, what):
        return [d["body"] for d in self.message_events(want, what)]
    def message_events(self, want, what):
        got = []
        deadline = time.time() + 20
        while len(got) < want:
            try:
                kind, data = self.q.get(timeout=max(0.1, deadline - time.time()))
            except queue.Empty:
                raise AssertionError(f"{what}: {len(got)} of {want} messages: {got}")
            if kind == "message":
                got.append(data)
        return got

token = secrets.token_hex(32)
js = expect(request(B, "POST", "/v1/sessions/register", body={
    "token": token, "session_id": "bob-s", "mesh": "demo", "display_name": "bob-s", "pid": HOLDER}), 200)
key = js["session_pubkey"]
# its own presence: alice lists it
until("alice lists bob-s", lambda: any(p["pubkey"] == key and p["displayName"] == "bob-s"
                                       for p in expect(request(A, "GET", "/v1/peers"), 200)["peers"]))

scoped, unscoped = Stream(B, token), Stream(B)
assert scoped.connected.wait(10) and unscoped.connected.wait(10), "a stream did not open"
expect(request(A, "POST", "/v1/send", body={"to": "bob", "message": "to the member"}), 202)
expect(request(A, "POST", "/v1/send", body={"to": key, "message": "to the session"}), 202)
# each message event names the identity that received it, as the /v1/inbox rows do
BOB_KEY = json.load(open(os.path.join(T, "bob/config/config.json")))["meshes"][0]["pubkey"]
got = {d["body"]: (d.get("recipient_pubkey"), d.get("recipient_kind"))
       for d in unscoped.message_events(2, "unscoped")}
assert got == {"to the member": (BOB_KEY, "member"), "to the session": (key, "session")}, got
assert scoped.messages(1, "scoped") == ["to the session"]
# the member's message went by without reaching the session's stream: a later one shows next
expect(request(A, "POST", "/v1/send", body={"to": key, "message": "again"}), 202)
assert scoped.messages(1, "scoped") == ["again"]

# a session's send goes out from its key (and its own dedupe scope)
expect(request(B, "POST", "/v1/send", body={"to": "alice", "message": "from the session"},
               headers={"authorization": f"ClaudeMesh-Session {token}"}), 202)
row = until("alice has it", lambda: [r for r in expect(request(A, "GET", "/v1/inbox?mark_seen=false"), 200)["items"]
                                     if r["body"] == "from the session"])
assert row[0]["sender_pubkey"] == key and row[0]["sender_name"] == "bob-s", row

# the stream ends with its session
expect(request(B, "DELETE", "/v1/sessions/" + token), 200)
assert scoped.ended.wait(10), "the session's stream did not end with it"
assert not unscoped.ended.is_set()
PY

# The registry survives a restart of bob's daemon, as upstream's does: a session whose process
# still lives comes back under its token with its key; one whose process died meanwhile does not.
# The file keeps the token's hash, never the token, and is 0600.
sleep 300 &
LIVE=$!
sleep 300 &
DEAD=$!
PIDS="$PIDS $LIVE $DEAD"
KEEP=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
GONE=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export PYTHONPATH="$(dirname "$0")/../bus"
reg() {  # reg TOKEN SESSION_ID PID: the session's key on stdout
        /usr/bin/python3 - "$T/bob/config/daemon/daemon.sock" "$@" <<'PY'
import sys
from compat_client import request
sock, token, sid, pid = sys.argv[1:5]
st, js, raw = request(sock, "POST", "/v1/sessions/register", body={
    "token": token, "session_id": sid, "mesh": "demo", "display_name": sid, "pid": int(pid), "role": "r1"})
assert st == 200, (st, raw)
print(js["session_pubkey"])
PY
}
me() {  # me TOKEN: "status key"
        /usr/bin/python3 - "$T/bob/config/daemon/daemon.sock" "$1" <<'PY'
import sys
from compat_client import request
st, js, raw = request(sys.argv[1], "GET", "/v1/sessions/me", headers={"authorization": "ClaudeMesh-Session " + sys.argv[2]})
print(st, js["session"]["presence"]["sessionPubkey"] if st == 200 else "-", js["session"].get("token_prefix") if st == 200 else "-")
PY
}
KEY=$(reg "$KEEP" keep "$LIVE") || fail "register keep"
reg "$GONE" gone "$DEAD" > /dev/null || fail "register gone"
REGISTRY=$(find "$T/bob/state" -name compat-sessions.json)
[ -n "$REGISTRY" ] || fail "no registry file under $T/bob/state"
[ "$(stat -c %a "$REGISTRY")" = 600 ] || fail "registry mode $(stat -c %a "$REGISTRY")"
grep -q "$KEEP" "$REGISTRY" && fail "the registry holds a token"
daemon_stop bob
kill "$DEAD"
wait "$DEAD" 2>/dev/null || true
daemon_start bob
wait_connected bob demo
[ "$(me "$KEEP")" = "200 $KEY $(printf %.8s "$KEEP")" ] || fail "keep after the restart: $(me "$KEEP"); $(grep -i 'restor' "$T/bob.log")"
[ "$(me "$GONE" | cut -d' ' -f1)" = 401 ] || fail "gone after the restart: $(me "$GONE")"
grep -q '"session_id":"gone"' "$REGISTRY" && fail "the dead session is still in the registry"
grep -q "Restored /v1 session keep (pid $LIVE)" "$T/bob.log" || fail "no log of keep's return"
grep "Not restoring /v1 session gone: " "$T/bob.log" | grep -qv "cwd\|name\|group" ||
        fail "gone was not dropped for its process: $(grep 'Not restoring' "$T/bob.log")"
# its process ends: the restored session goes with it, and out of the registry
kill "$LIVE"
wait "$LIVE" 2>/dev/null || true
wait_until 10 sh -c "! grep -q '\"session_id\":\"keep\"' '$REGISTRY'" || fail "keep stayed in the registry"
[ "$(me "$KEEP" | cut -d' ' -f1)" = 401 ] || fail "keep after its process ended: $(me "$KEEP")"

daemon_stop alice
daemon_stop bob
echo ok
