#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# NUL (U+0000) on every /v1 route: in a JSON string ("\u0000"), a member name, the query or the
# path (%00), each request is refused with 400 naming the field, and nothing is written; NUL in
# a meta value is kept exactly (the same fingerprint as the Send method's meta). Valid sends
# interleaved with the refused ones are all stored, once: 0 lost, 0 duplicated.
. "$(dirname "$0")/../bus/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
start_daemon

PYTHONPATH="$(dirname "$0")/../bus" /usr/bin/python3 - "$T" <<'PY' || fail "NUL checks failed"
import json, os, socket, sqlite3, subprocess, sys
from compat_client import request

T = sys.argv[1]
SOCK = os.path.join(T, "config/daemon/daemon.sock")
STATE = os.path.join(T, "state/claudemesh")

def sql(db, stmt, *args):
    with sqlite3.connect(os.path.join(STATE, db), timeout=5) as c:
        return c.execute(stmt, args).fetchall()

def outbox_rows():
    return sql("outbox.db", "SELECT count(*) FROM outbox")[0][0]

def nul_refused(field, method, url, raw=None):
    """400 {"error": "'field' must not contain NUL (U+0000)"}, and no outbox row written."""
    before = outbox_rows()
    st, js, payload = request(SOCK, method, url, raw=raw)
    want = {"error": f"'{field}' must not contain NUL (U+0000)"}
    assert (st, js) == (400, want), f"{method} {url} {raw!r}: expected 400 {want}, got {st} {payload!r}"
    assert outbox_rows() == before, f"{method} {url} {raw!r} wrote a row"

def body(**fields):
    return json.dumps(fields).encode()

refused = sent = 0
base = {"to": "*", "message": "hello", "mesh": "acme", "priority": "next", "reply_to_id": "r1"}
for i in range(40):
    # a valid send, then the same with a NUL in each string field in turn: json-c kept "a" for
    # "a\u0000b", so each of these used to go through cut
    cmid = f"ok-{i}"
    st, js, payload = request(SOCK, "POST", "/v1/send", raw=body(**base, client_message_id=cmid))
    assert st == 202 and js == {"client_message_id": cmid, "status": "queued"}, (st, payload)
    sent += 1
    for field in ("to", "message", "mesh", "priority", "reply_to_id", "client_message_id"):
        fields = dict(base, client_message_id=f"nul-{i}")
        fields[field] = fields[field] + "\u0000tail" if field != "client_message_id" else f"ok-{i}\u0000x"
        nul_refused(field, "POST", "/v1/send", raw=body(**fields))
        refused += 1

# a member name with a NUL, at the top or inside meta: json-c would cut the name
st, js, _ = request(SOCK, "POST", "/v1/send", raw=b'{"to":"*","message":"m","mesh":"acme","mesh\\u0000x":"beta"}')
assert (st, js) == (400, {"error": "a member name contains NUL (U+0000)"}), (st, js)
st, js, _ = request(SOCK, "POST", "/v1/send", raw=b'{"to":"*","message":"m","mesh":"acme","meta":{"k\\u0000":1}}')
assert (st, js) == (400, {"error": "a member name contains NUL (U+0000)"}), (st, js)
refused += 2

# the query and the path, on every route: MHD hands them on cut at %00
routes = [("GET", "/v1/version"), ("GET", "/v1/health"), ("POST", "/v1/send"), ("GET", "/v1/inbox"),
          ("GET", "/v1/outbox"), ("POST", "/v1/outbox/requeue"), ("GET", "/v1/events"), ("GET", "/v1/peers"),
          ("POST", "/v1/profile"), ("POST", "/v1/inbox/seen"), ("DELETE", "/v1/inbox"), ("DELETE", "/v1/inbox/i1"),
          ("GET", "/v1/skills")]
for method, url in routes:
    # no body: the request is answered from its headers, and a body still being sent would
    # meet a closed connection
    nul_refused("path", method, url + "%00x")
    nul_refused("mesh", method, url + "?mesh=acme%00beta")
    refused += 2
for key in ("since", "from", "topic", "limit", "unread_only", "mark_seen"):
    nul_refused(key, "GET", f"/v1/inbox?{key}=1%00")
nul_refused("before", "DELETE", "/v1/inbox?before=1%00")
nul_refused("status", "GET", "/v1/outbox?status=dead%00")
refused += 8

# requeue: the row id cut at the NUL would name a real row
sql("outbox.db", "UPDATE outbox SET status='dead' WHERE client_message_id='ok-0'")
row = sql("outbox.db", "SELECT id FROM outbox WHERE client_message_id='ok-0'")[0][0]
nul_refused("id", "POST", "/v1/outbox/requeue", raw=body(id=row + "\u0000x"))
nul_refused("new_client_message_id", "POST", "/v1/outbox/requeue", raw=body(id=row, new_client_message_id="n\u0000"))
nul_refused("aborted_by", "POST", "/v1/outbox/requeue", raw=body(id=row, aborted_by="me\u0000you"))
refused += 3
st, js, payload = request(SOCK, "POST", "/v1/outbox/requeue", raw=body(id=row, new_client_message_id="ok-0-again"))
assert st == 200 and js["aborted_row_id"] == row, (st, payload)
sent += 1

# profile: each field, an element of a list, and the mesh
for fields, name in (({"summary": "a\u0000b"}, "summary"), ({"status": "idle\u0000"}, "status"),
                     ({"capabilities": ["ok", "x\u0000"]}, "capabilities"), ({"mesh": "acme\u0000", "status": "idle"}, "mesh")):
    nul_refused(name, "POST", "/v1/profile", raw=body(**fields))
    refused += 1

# meta: a NUL in a value is kept exactly, and fingerprinted as the Send method's meta is
meta = '{"k":"a\\u0000b"}'
st, js, payload = request(SOCK, "POST", "/v1/send", raw=b'{"to":"*","message":"m","mesh":"acme","client_message_id":"meta-1","meta":' + meta.encode() + b"}")
assert st == 202, (st, payload)
sent += 1
assert sql("outbox.db", "SELECT meta FROM outbox WHERE client_message_id='meta-1'") == [(meta,)]
def gdbus_send(meta_text):
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.claudemesh.Daemon1", "--object-path",
                           "/org/claudemesh/Daemon1", "--method", "org.claudemesh.Daemon1.Send", "acme", "*", "m",
                           "{'client_message_id': <'meta-1'>, 'meta': <'%s'>}" % meta_text.replace("\\", "\\\\")],
                          capture_output=True, text=True)
r = gdbus_send(meta)
assert r.returncode == 0 and "('meta-1', 'queued', '')" in r.stdout, r
r = gdbus_send('{"k":"a"}')
assert "IdempotencyConflict" in r.stderr, r

# 0 lost, 0 duplicated: every valid send stored once, with its exact body; nothing else
got = sql("outbox.db", "SELECT client_message_id, CAST(body AS TEXT) FROM outbox ORDER BY client_message_id")
want = sorted([(f"ok-{i}", "hello") for i in range(40)] + [("ok-0-again", "hello"), ("meta-1", "m")])
assert got == want, got
assert all("\u0000" not in c and "tail" not in b for c, b in got)
print(f"fault-v1-nul: {sent} accepted, {refused} refused, {len(got)} rows: 0 lost, 0 duplicated")
PY

stop_daemon
echo "fault-v1-nul: ok"
