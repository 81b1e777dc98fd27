#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The upstream CLI's session registry on /v1 (apps/cli/src/daemon/ipc/server.ts at 1.37.0):
# POST /v1/sessions/register, GET /v1/sessions/me, GET /v1/sessions, DELETE /v1/sessions/<token>
# and the "Authorization: ClaudeMesh-Session <64 hex>" header, with upstream's statuses and error
# texts. A registration is a Session1 object on the bus with a key the daemon made (the secret key
# upstream's CLI sends is not taken), lives as long as the process named by "pid" (pidfd), is
# replaced by a registration under the same session id, and takes its token along when it ends.
# Tokens are never logged; a pid of another uid is refused; past 256 sessions, 503. Without
# ?mesh=, a session's DELETE /v1/inbox is its mesh's (upstream's meshFromCtx) and its /v1/inbox
# lists what it received; recipient_pubkey and recipient_kind filter and show the recipient.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
start_daemon

PYTHONPATH="$(dirname "$0")" /usr/bin/python3 - "$T" <<'PY' || fail "/v1/sessions checks failed"
import json, os, re, secrets, signal, subprocess, sys, time
from compat_client import request

T = sys.argv[1]
SOCK = os.path.join(T, "config/daemon/daemon.sock")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

def call(method, url, body=None, token=None, raw=None, auth=None):
    headers = {}
    if token is not None:
        headers["authorization"] = f"ClaudeMesh-Session {token}"
    if auth is not None:
        headers["authorization"] = auth
    return request(SOCK, method, url, body=body, raw=raw, headers=headers)

def expect(got, status, body=None):
    st, js, payload = got
    assert st == status, f"expected {status} {body}, got {st} {payload!r}"
    if body is not None:
        assert js == body, f"expected {body}, got {js}"
    return js

def objects():
    out = subprocess.run(["busctl", "--user", "--json=short", "call", "org.claudemesh.Daemon1",
                          "/org/claudemesh/Daemon1", "org.freedesktop.DBus.ObjectManager",
                          "GetManagedObjects"], capture_output=True, text=True, check=True).stdout
    return {p: i for p, i in json.loads(out)["data"][0].items() if "/session/" in p}

def session_prop(path, name):
    out = subprocess.run(["busctl", "--user", "--json=short", "get-property", "org.claudemesh.Daemon1", path,
                          "org.claudemesh.Session1", name], capture_output=True, text=True, check=True).stdout
    return json.loads(out)["data"]

def wait_for(cond, what):
    for _ in range(200):
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")

def reg(token, **kw):
    body = {"token": token, "session_id": "s-1", "mesh": "acme", "display_name": "alpha", "pid": os.getpid()}
    body.update(kw)
    return call("POST", "/v1/sessions/register", body={k: v for k, v in body.items() if v is not None})

expect(call("GET", "/v1/sessions"), 200, {"sessions": []})
expect(call("GET", "/v1/sessions/me"), 401, {"error": "no session token"})

# upstream's 400s, in upstream's order
tok = secrets.token_hex(32)
expect(call("POST", "/v1/sessions/register", raw=b""), 400, {"error": "missing body"})
expect(call("POST", "/v1/sessions/register", raw=b"{x"), 400, {"error": "invalid JSON"})
for bad in (None, "", "zz" * 32, tok[:63], tok + "0", 7):
    expect(reg(bad), 400, {"error": "token must be 64 hex chars"})
for field in ("session_id", "mesh", "display_name", "pid"):
    expect(reg(tok, **{field: None}), 400, {"error": "session_id, mesh, display_name, pid all required"})
    expect(reg(tok, **{field: 0 if field == "pid" else ""}), 400,
           {"error": "session_id, mesh, display_name, pid all required"})
for pid in (-5, 1.5, 2**40):
    expect(reg(tok, pid=pid), 400, {"error": "'pid' must be a process id"})
js = expect(reg(tok, mesh="nope"), 400)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.NoSuchMesh", js
js = expect(reg(tok, display_name="a\nb"), 400)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.InvalidArgument", js
expect(reg(tok, session_id="a\u0000b"), 400, {"error": "'session_id' must not contain NUL (U+0000)"})
# a process of another uid cannot carry the session
other = subprocess.Popen(["setpriv", "--reuid=cmtest", "--regid=cmtest", "--clear-groups", "sleep", "60"])
try:
    time.sleep(0.2)
    js = expect(reg(tok, pid=other.pid), 403)
    assert js["error"] == f"Process {other.pid} is not one of uid {os.getuid()}.", js
finally:
    other.kill(); other.wait()
expect(reg(tok, pid=other.pid), 400, {"error": f"There is no process {other.pid}.",
                                      "dbus_error": "org.claudemesh.Daemon1.Error.InvalidArgument"})
assert objects() == {}, objects()

# the CLI's registration, presence material included: the secret key it sends is not taken
theirs = secrets.token_hex(32)
presence = {"session_pubkey": theirs, "session_secret_key": secrets.token_hex(64),
            "parent_attestation": {"session_pubkey": theirs, "parent_member_pubkey": secrets.token_hex(32),
                                   "expires_at": 1, "signature": secrets.token_hex(64)}}
before = int(time.time() * 1000)
js = expect(reg(tok.upper(), cwd="/tmp", role="lead", groups=["@backend:lead", 7, "@ops"], presence=presence), 200)
assert set(js) == {"ok", "registered_at", "presence_accepted", "session_pubkey"}, js
assert js["ok"] is True and js["presence_accepted"] is True and before <= js["registered_at"] <= time.time() * 1000
key = js["session_pubkey"]
assert HEX64.match(key) and key != theirs, js
paths = objects()
assert len(paths) == 1, paths
path = next(iter(paths))
assert session_prop(path, "PublicKey") == key and session_prop(path, "Pid") == os.getpid()
assert session_prop(path, "Groups") == ["backend:lead", "ops"], session_prop(path, "Groups")

row = {"sessionId": "s-1", "mesh": "acme", "displayName": "alpha", "pid": os.getpid(), "cwd": "/tmp",
       "role": "lead", "groups": ["@backend:lead", "@ops"], "presence": {"sessionPubkey": key},
       "registeredAt": js["registered_at"], "token_prefix": tok[:8]}
# the header: case-insensitive scheme and hex, any whitespace between, trimmed
for auth in (f"ClaudeMesh-Session {tok}", f"claudemesh-session\t {tok.upper()}  "):
    expect(call("GET", "/v1/sessions/me", auth=auth), 200, {"session": row})
# malformed or unknown: no session, as upstream (served unscoped, /me 401)
for auth in (f"ClaudeMesh-Session{tok}", f"ClaudeMesh-Session {tok}0", f"Bearer {tok}",
             f"ClaudeMesh-Session {secrets.token_hex(32)}", f"ClaudeMesh-Sessionx {tok}"):
    expect(call("GET", "/v1/sessions/me", auth=auth), 401, {"error": "no session token"})
expect(call("GET", "/v1/sessions"), 200, {"sessions": [row]})

# the same session id again (a relaunch): replaced, same key; the token may change
tok2 = secrets.token_hex(32)
js = expect(reg(tok2, display_name="alpha2"), 200)
assert js["session_pubkey"] == key, js
expect(call("GET", "/v1/sessions/me", token=tok), 401, {"error": "no session token"})
assert expect(call("GET", "/v1/sessions/me", token=tok2), 200)["session"]["displayName"] == "alpha2"
assert len(objects()) == 1
# a token is one session's
expect(reg(tok2, session_id="s-2"), 409, {"error": "token already registered for another session"})

# a session carried by another process of ours ends with it, token and all
sleeper = subprocess.Popen(["sleep", "60"])
tok3 = secrets.token_hex(32)
expect(reg(tok3, session_id="s-3", pid=sleeper.pid), 200)
assert expect(call("GET", "/v1/sessions/me", token=tok3), 200)["session"]["pid"] == sleeper.pid
assert len(objects()) == 2
sleeper.kill(); sleeper.wait()
wait_for(lambda: len(objects()) == 1, "the session of the killed process to end")
expect(call("GET", "/v1/sessions/me", token=tok3), 401, {"error": "no session token"})
assert [s["sessionId"] for s in call("GET", "/v1/sessions")[1]["sessions"]] == ["s-1"]

# DELETE /v1/sessions/<token>
expect(call("DELETE", "/v1/sessions/zz"), 400, {"error": "invalid token"})
expect(call("DELETE", "/v1/sessions/" + tok2 + "0"), 400, {"error": "invalid token"})
unknown = secrets.token_hex(32)
expect(call("DELETE", "/v1/sessions/" + unknown), 404, {"ok": False, "token_prefix": unknown[:8]})
expect(call("DELETE", "/v1/sessions/" + tok2.upper()), 200, {"ok": True, "token_prefix": tok2[:8].upper()})
expect(call("GET", "/v1/sessions/me", token=tok2), 401, {"error": "no session token"})
assert objects() == {}
expect(call("DELETE", "/v1/sessions/" + tok2), 404, {"ok": False, "token_prefix": tok2[:8]})
expect(call("GET", "/v1/sessions"), 200, {"sessions": []})

# bounded: 256 sessions, then TooManySessions
tokens = [secrets.token_hex(32) for _ in range(257)]
for i in range(256):
    expect(reg(tokens[i], session_id=f"b-{i}"), 200)
js = expect(reg(tokens[256], session_id="b-256"), 503)
assert js["dbus_error"] == "org.claudemesh.Daemon1.Error.TooManySessions", js
assert len(call("GET", "/v1/sessions")[1]["sessions"]) == 256
for i in range(256):
    expect(call("DELETE", "/v1/sessions/" + tokens[i]), 200)
assert objects() == {}

# a session's inbox requests default to its mesh
import sqlite3
cfg = json.load(open(os.path.join(T, "config/config.json")))
ids = {m["slug"]: m["meshId"] for m in cfg["meshes"]}
tok4 = secrets.token_hex(32)
key4 = expect(reg(tok4, session_id="s-4", mesh="beta"), 200)["session_pubkey"]
member = "ab" * 32
# r0 the member's on acme, r1 the member's on beta, r2 the session's on beta
with sqlite3.connect(os.path.join(T, "state/claudemesh/inbox.db"), timeout=5) as db:
    for i, (slug, rcpt, kind) in enumerate([("acme", member, "member"), ("beta", member, "member"),
                                            ("beta", key4, "session")]):
        db.execute("INSERT INTO inbox (id, client_message_id, mesh_id, sender_pubkey, sender_name, body, received_at,"
                   " recipient_pubkey, recipient_kind) VALUES (?, ?, ?, 'pk', 'n', 'b', ?, ?, ?)",
                   (f"r{i}", f"c{i}", ids[slug], int(time.time() * 1e6) + i, rcpt, kind))
def inbox(url, token=None):
    return sorted(r["id"] for r in expect(call("GET", url, token=token), 200)["items"])
assert inbox("/v1/inbox?mark_seen=false") == ["r0", "r1", "r2"]
# a session's listing: only what it received (upstream 1.34.11), on its mesh unless named
assert inbox("/v1/inbox?mark_seen=false", tok4) == ["r2"]
assert inbox("/v1/inbox?mark_seen=false&mesh=acme", tok4) == []
row = expect(call("GET", "/v1/inbox?mark_seen=false", token=tok4), 200)["items"][0]
assert row["recipient_pubkey"] == key4 and row["recipient_kind"] == "session", row
# the recipient filters
assert inbox(f"/v1/inbox?mark_seen=false&recipient_pubkey={member}") == ["r0", "r1"]
assert inbox(f"/v1/inbox?mark_seen=false&recipient_pubkey={key4}") == ["r2"]
assert inbox("/v1/inbox?mark_seen=false&recipient_kind=session") == ["r2"]
assert inbox("/v1/inbox?mark_seen=false&recipient_kind=member") == ["r0", "r1"]
expect(call("GET", "/v1/inbox?recipient_kind=robot"), 400, {"error": "'recipient_kind' must be member or session"})
expect(call("GET", "/v1/inbox?recipient_pubkey=AB"), 400, {"error": "'recipient_pubkey' must be 64 lowercase hex"})
# flushing: the session's mesh
expect(call("DELETE", "/v1/inbox", token=tok4), 200, {"removed": 2})
assert inbox("/v1/inbox?mark_seen=false") == ["r0"]
expect(call("DELETE", "/v1/sessions/" + tok4), 200)

# never in the log
log = open(os.path.join(T, "daemon.log")).read()
for t in [tok, tok2, tok3, tok4] + tokens:
    assert t not in log and t.upper() not in log, "a token reached the log"
PY
echo ok
