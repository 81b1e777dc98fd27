#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# POST /v1/send against real outbox files: upstream's request shape, every status and error body
# (the 400 texts verbatim, 409 with conflict, prefix and reason, 413), Idempotency-Key, the mesh
# choice (named, only attached, defaultMesh), one duplicate table shared with the bus's Send, and
# the in-flight limit (65 requests at once → 429 daemon_busy).
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: send is allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
start_daemon

PYTHONPATH="$(dirname "$0")" /usr/bin/python3 - "$T" <<'PY' || fail "POST /v1/send checks failed"
import json, os, re, socket, sqlite3, subprocess, sys, time
from compat_client import request

T = sys.argv[1]
SOCK = os.path.join(T, "config/daemon/daemon.sock")
DB = os.path.join(T, "state/claudemesh/outbox.db")
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

def sql(stmt, *args):
    with sqlite3.connect(DB, timeout=5) as db:
        return db.execute(stmt, args).fetchall()

def rows():
    return sql("SELECT count(*) FROM outbox")[0][0]

def send(body=None, raw=None, headers=None):
    return request(SOCK, "POST", "/v1/send", body=body, raw=raw, headers=headers)

def expect(got, status, body=None):
    st, js, payload = got
    assert st == status, f"expected {status} {body}, got {st} {payload!r}"
    if body is not None:
        assert js == body, f"expected {body}, got {js}"
    return js

def gdbus_send(mesh, to, message, opts):
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.claudemesh.Daemon1",
                           "--object-path", "/org/claudemesh/Daemon1",
                           "--method", "org.claudemesh.Daemon1.Send", mesh, to, message, opts],
                          capture_output=True, text=True)

# No mesh named, two attached, no defaultMesh: upstream's 400 mesh_required naming them
# (apps/cli/src/daemon/ipc/server.ts:799-806); nothing written. "" is no name, as upstream's ?? .
for body in ({"to": "*", "message": "hi"}, {"to": "*", "message": "hi", "mesh": ""}, {"to": "*", "message": "hi", "mesh": None}):
    expect(send(body), 400, {"error": "mesh_required", "attached": ["acme", "beta"],
                             "detail": "daemon attached to 2 meshes; pass 'mesh' in request body"})
expect(send({"to": "*", "message": "hi", "mesh": 7}), 400, {"error": "'mesh' must be a string"})
assert rows() == 0

# The upstream CLI's request: no mesh field would be needed with one mesh; here it names one.
js = expect(send({"to": "*", "message": "hello", "priority": "next", "mesh": "acme"}), 202)
assert js["status"] == "queued" and ULID.match(js["client_message_id"]), js
minted = js["client_message_id"]
got = sql("SELECT status, target_spec, CAST(body AS TEXT) FROM outbox WHERE client_message_id=?", minted)
assert got == [("pending", "*", "hello")], got

# The duplicate table through HTTP (later states set with SQL, as the drain would).
req = {"to": "@backend", "message": "m1", "mesh": "acme", "client_message_id": "h1"}
expect(send(req), 202, {"client_message_id": "h1", "status": "queued"})
expect(send(req), 202, {"client_message_id": "h1", "status": "queued"})
assert rows() == 2
js = expect(send(dict(req, message="other")), 409)
assert js["error"] == "idempotency_key_reused" and js["conflict"] == "outbox_pending_fingerprint_mismatch", js
assert re.fullmatch(r"[0-9a-f]{16}", js["daemon_fingerprint_prefix"]) and js["broker_message_id"] is None, js
sql("UPDATE outbox SET status='inflight' WHERE client_message_id='h1'")
expect(send(req), 202, {"client_message_id": "h1", "status": "inflight"})
js = expect(send(dict(req, priority="now")), 409)
assert js["conflict"] == "outbox_inflight_fingerprint_mismatch", js
sql("UPDATE outbox SET status='done', broker_message_id='bm-1' WHERE client_message_id='h1'")
expect(send(req), 200, {"client_message_id": "h1", "broker_message_id": "bm-1", "duplicate": True})
js = expect(send(dict(req, to="*")), 409)
assert js["conflict"] == "outbox_done_fingerprint_mismatch" and js["broker_message_id"] == "bm-1", js
sql("UPDATE outbox SET status='dead', last_error='payload too large: 70000' WHERE client_message_id='h1'")
js = expect(send(req), 409)
assert js["conflict"] == "outbox_dead_fingerprint_match" and js["reason"] == "payload too large: 70000", js
js = expect(send(dict(req, message="x")), 409)
assert js["conflict"] == "outbox_dead_fingerprint_mismatch" and "reason" not in js, js
sql("UPDATE outbox SET status='aborted' WHERE client_message_id='h1'")
assert expect(send(req), 409)["conflict"] == "outbox_aborted_fingerprint_match"
assert rows() == 2

# One duplicate table for both surfaces: HTTP then D-Bus, and D-Bus then HTTP.
expect(send({"to": "*", "message": "shared", "mesh": "acme", "client_message_id": "s1"}), 202)
r = gdbus_send("acme", "*", "shared", "{'client_message_id': <'s1'>}")
assert r.returncode == 0 and "('s1', 'queued', '')" in r.stdout, r
r = gdbus_send("acme", "*", "changed", "{'client_message_id': <'s1'>}")
assert "IdempotencyConflict" in r.stderr and "outbox_pending_fingerprint_mismatch" in r.stderr, r
r = gdbus_send("beta", "#t1", "from the bus", "{'client_message_id': <'s2'>, 'priority': <'low'>}")
assert r.returncode == 0, r
expect(send({"to": "#t1", "message": "from the bus", "mesh": "beta", "priority": "low",
             "client_message_id": "s2"}), 202, {"client_message_id": "s2", "status": "queued"})
assert expect(send({"to": "#t1", "message": "from the bus", "mesh": "beta", "client_message_id": "s2"}),
              409)["conflict"] == "outbox_pending_fingerprint_mismatch"
assert rows() == 4

# Idempotency-Key: used when the body has no id; the same in both is fine; different → 400.
expect(send({"to": "*", "message": "k", "mesh": "acme"}, headers={"Idempotency-Key": " key-1 "}), 202,
       {"client_message_id": "key-1", "status": "queued"})
expect(send({"to": "*", "message": "k", "mesh": "acme", "client_message_id": "key-1"},
            headers={"Idempotency-Key": "key-1"}), 202, {"client_message_id": "key-1", "status": "queued"})
before = rows()
expect(send({"to": "*", "message": "k", "mesh": "acme", "client_message_id": "key-2"},
            headers={"Idempotency-Key": "key-1"}), 400,
       {"error": "client_message_id and Idempotency-Key differ; send one id, or the same in both"})

# Validation: upstream's texts verbatim, nothing written, the id stays free.
bad = [
    ({"message": "x", "mesh": "acme"}, "missing 'to'"),
    ({"to": "  ", "message": "x", "mesh": "acme"}, "missing 'to'"),
    ({"to": 5, "message": "x", "mesh": "acme"}, "missing 'to'"),
    ({"to": "*", "mesh": "acme"}, "missing 'message'"),
    ({"to": "*", "message": "", "mesh": "acme"}, "missing 'message'"),
    ({"to": "*", "message": "x", "priority": "urgent", "mesh": "acme"}, "priority must be 'now' | 'next' | 'low'"),
    ({"to": "*", "message": "x", "meta": [1], "mesh": "acme"}, "'meta' must be an object"),
    ({"to": "*", "message": "x", "meta": "s", "mesh": "acme"}, "'meta' must be an object"),
    ([1, 2], "expected JSON object"),
    ("text", "expected JSON object"),
]
for body, text in bad:
    expect(send(dict(body, client_message_id="free") if isinstance(body, dict) else body), 400, {"error": text})
expect(send(raw=b"{not json"), 400, {"error": "invalid JSON"})
expect(send(raw=b'{"to":"*","message":"x"} trailing'), 400, {"error": "invalid JSON"})
expect(send(raw=b"\xff\xfe"), 400, {"error": "invalid JSON"})
js = expect(send({"to": "nobody-by-that-name", "message": "x", "mesh": "acme", "client_message_id": "free"}), 400)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.UnknownPeer", js
# a mesh that is not here: upstream's 404 mesh_not_attached (server.ts:807-811)
expect(send({"to": "*", "message": "x", "mesh": "nope", "client_message_id": "free"}), 404,
       {"error": "mesh_not_attached", "mesh": "nope"})
expect(send({"to": "*", "message": "x", "mesh": "n\u00e9" * 300}), 404, {"error": "mesh_not_attached", "mesh": "n\u00e9" * 300})
js = expect(send({"to": "*", "message": "x", "mesh": "acme", "client_message_id": "bad\nid"}), 400)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.InvalidArgument", js
# Larger than a broker frame but within the route's 256 KiB: refused as the bus refuses it.
js = expect(send({"to": "*", "message": "x" * 70000, "mesh": "acme", "client_message_id": "free"}), 413)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.PayloadTooLarge", js
# Over the route's limit, announced, chunked, or waiting for 100-continue: 413, nothing parsed.
big = b'{"to":"*","message":"' + b"x" * (256 * 1024) + b'"}'
for extra in ([], ["-H", "Transfer-Encoding: chunked"], ["-H", "Expect: 100-continue"]):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", SOCK, "-w", " %{http_code}", *extra,
                        "--data-binary", "@-", "http://localhost/v1/send"], input=big, capture_output=True)
    assert r.stdout == b'{"error":"payload too large","limit_bytes":262144} 413', (extra, r)
assert rows() == before, "a refused request wrote a row"
expect(send({"to": "*", "message": "now valid", "mesh": "acme", "client_message_id": "free"}), 202)

# defaultMesh names the mesh for callers that name none.
cfg = os.path.join(T, "config/config.json")
text = open(cfg).read().replace('{"version":1,', '{"version":1,"defaultMesh":"beta",', 1)
with open(cfg + ".tmp", "w") as f:
    f.write(text)
os.chmod(cfg + ".tmp", 0o600)
os.rename(cfg + ".tmp", cfg)
subprocess.run(["busctl", "--user", "call", "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                "org.claudemesh.Daemon1", "Reload"], check=True)
js = expect(send({"to": "*", "message": "default", "client_message_id": "d1"}), 202)
assert sql("SELECT mesh_id FROM outbox WHERE client_message_id='d1'") == [("mesh-beta-0123456789abcdef",)]
# exactly what the upstream CLI sends: no mesh, no id
js = expect(send({"to": "*", "message": "upstream shape", "priority": "next"}), 202)
assert js["status"] == "queued" and ULID.match(js["client_message_id"]), js
# a defaultMesh that names no mesh is the configuration's fault: its sentence, not mesh_required
with open(cfg + ".tmp", "w") as f:
    f.write(text.replace('"defaultMesh":"beta"', '"defaultMesh":"gone"', 1))
os.chmod(cfg + ".tmp", 0o600)
os.rename(cfg + ".tmp", cfg)
subprocess.run(["busctl", "--user", "call", "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                "org.claudemesh.Daemon1", "Reload"], check=True)
js = expect(send({"to": "*", "message": "no default"}), 400)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.NoSuchMesh" and 'defaultMesh "gone"' in js["error"], js

# 64 requests in flight (headers in, body still coming) fill the daemon; the 65th gets 429.
held = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(b"POST /v1/send HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
              b"content-length: 40\r\n\r\n{")
    held.append(s)
deadline = time.time() + 5
while True:
    st, js, _ = request(SOCK, "GET", "/v1/health")
    if st == 429 or time.time() > deadline:
        break
    time.sleep(0.05)
assert (st, js) == (429, {"error": "daemon_busy"}), (st, js)
for s in held:
    s.close()
deadline = time.time() + 5
while request(SOCK, "GET", "/v1/health")[0] != 200:
    assert time.time() < deadline, "the daemon stayed busy after the held requests closed"
    time.sleep(0.05)
PY

stop_daemon
echo "compat-send: ok"
