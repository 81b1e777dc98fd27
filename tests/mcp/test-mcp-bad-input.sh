#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl mcp fed bad input: malformed JSON, invalid requests, unknown methods and tools, a
# line past the 1 MiB bound, input closed mid-message. Each gets its JSON-RPC error (or, at the
# end, a clean exit 0) and the server and the daemon go on. Then the daemon stopping is said on
# the channel and makes tools fail with a sentence, not the server, and its return is said too;
# the session bus going away ends it with exit 3.
. "$SOURCE_ROOT/tests/e2e/lib.sh"

broker_start
mesh_create demo > /dev/null
daemon_setup bob "$(member_entry demo bob)"
daemon_start bob
wait_connected bob demo

BOB_PID=$(daemon_pid bob) BUS_PID=$(cat "$T/bob/bus.pid") /usr/bin/python3 - <<'PY' || fail "see above"
import json, os, selectors, signal, subprocess, sys

T = os.environ["T"]
env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=f"unix:path={T}/bob/bus")
GUARD = 20  # seconds before a missing line fails the test (a hang guard, not a timing check)

def start(*args):
    # Unbuffered: line() waits on the descriptor, and lines already read ahead into a buffer
    # would not wake it (a burst of joins, leaves and a system line came together).
    return subprocess.Popen([os.environ["CLAUDEMESHCTL"], "mcp", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, bufsize=0)

def send(p, raw):
    p.stdin.write(raw if isinstance(raw, bytes) else raw.encode())
    p.stdin.flush()

def request(p, id, method, params=None):
    m = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        m["params"] = params
    send(p, json.dumps(m) + "\n")

def line(p):
    """The next line, past the joins and leaves of this test's other servers: each server is a
    session of its own, and they see each other come and go."""
    while True:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        assert sel.select(GUARD), "no answer from the server"
        l = p.stdout.readline()
        assert l.endswith(b"\n"), l
        m = json.loads(l)
        if m.get("method") != "notifications/claude/channel" or \
                m["params"]["meta"].get("event") not in ("peer_joined", "peer_left"):
            return m

def error(p, id, code):
    m = line(p)
    assert m.get("jsonrpc") == "2.0" and m.get("id") == id and m["error"]["code"] == code, m
    return m["error"]["message"]

def result(p, id):
    m = line(p)
    assert m.get("id") == id and "result" in m, m
    return m["result"]

p = start()
request(p, 1, "initialize", {"protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
r = result(p, 1)
assert r["protocolVersion"] == "2024-11-05" and r["serverInfo"]["name"] == "claudemesh", r
assert r["capabilities"] == {"experimental": {"claude/channel": {}}, "tools": {}}, r
request(p, 2, "initialize", {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
assert result(p, 2)["protocolVersion"] == "2025-06-18"
send(p, '{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

send(p, "this is not json\n"); assert "Parse error" in error(p, None, -32700)
send(p, '{"jsonrpc":"2.0","id":3,"method":"ping"'); send(p, "\n")   # cut short, then the line ends
error(p, None, -32700)
send(p, "[]\n"); error(p, None, -32600)
send(p, "42\n"); error(p, None, -32600)
send(p, "null\n"); error(p, None, -32600)
request(p, 4, "no/such/method"); assert "no/such/method" in error(p, 4, -32601)
send(p, '{"jsonrpc":"1.0","id":5,"method":"ping"}\n'); error(p, 5, -32600)
send(p, '{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}\n'); error(p, None, -32600)
send(p, '{"jsonrpc":"2.0","id":6}\n'); error(p, 6, -32600)
send(p, '{"jsonrpc":"2.0","id":7,"method":7}\n'); error(p, 7, -32600)
send(p, '{"jsonrpc":"2.0","id":8,"method":"ping","params":"x"}\n'); error(p, 8, -32600)
request(p, 9, "tools/call", {"name": "no_such_tool"}); assert "no_such_tool" in error(p, 9, -32602)
request(p, 10, "tools/call", {"arguments": {}}); error(p, 10, -32602)
request(p, 11, "tools/call", {"name": "send_message", "arguments": {"to": 5, "message": "x"}})
r = result(p, 11)
assert r["isError"] is True and "needs" in r["content"][0]["text"], r
# what needs no answer gets none: an unknown notification, a response, blank lines, CRLF framing
send(p, '{"jsonrpc":"2.0","method":"notifications/whatever"}\n{"jsonrpc":"2.0","id":77,"result":{}}\n\n  \n')
send(p, '{"jsonrpc":"2.0","id":12,"method":"ping"}\r\n')
assert result(p, 12) == {}
# a line past 1 MiB: one error, the rest of it skipped, the next line served
send(p, b'{"jsonrpc":"2.0","id":13,"method":"ping","params":{"pad":"' + b"a" * (2 * 1024 * 1024) + b'"}}\n')
assert "longer than 1048576 bytes" in error(p, None, -32600)
request(p, 14, "ping"); assert result(p, 14) == {}
# exactly at the bound is still a message
pad = 1024 * 1024 - len(b'{"jsonrpc":"2.0","id":15,"method":"ping","params":{"pad":""}}')
send(p, b'{"jsonrpc":"2.0","id":15,"method":"ping","params":{"pad":"' + b"b" * pad + b'"}}\n')
assert result(p, 15) == {}
request(p, 16, "tools/list"); assert len(result(p, 16)["tools"]) == 4

# the daemon did not notice any of it
subprocess.run(["busctl", "--user", "call", "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                "org.claudemesh.Daemon1", "ListInbox", "sa{sv}", "demo", "0"], env=env, check=True,
               stdout=subprocess.DEVNULL)

# input closed in the middle of a message: a clean exit, nothing more written
send(p, '{"jsonrpc":"2.0","id":17,"meth')
p.stdin.close()
assert p.wait(GUARD) == 0, p.returncode
rest = p.stdout.read()
assert rest == b"", rest
err = p.stderr.read()
assert b"input ended inside a message" in err, err

# --no-tools: a pure push pipe
q = start("--no-tools")
request(q, 1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
r = result(q, 1)
assert r["capabilities"]["experimental"] == {"claude/channel": {}} and "claudemeshctl send" in r["instructions"], r
request(q, 2, "tools/list"); assert result(q, 2) == {"tools": []}
request(q, 3, "tools/call", {"name": "send_message", "arguments": {"to": "x", "message": "y"}}); error(q, 3, -32602)
send(q, '{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
request(q, 4, "ping"); result(q, 4)
t = start()
request(t, 1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
result(t, 1)
send(t, '{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
request(t, 2, "ping"); result(t, 2)

# the daemon stops: said on the channel; tools fail with a sentence; the server stays
os.kill(int(os.environ["BOB_PID"]), signal.SIGTERM)
m = line(q)
assert m["method"] == "notifications/claude/channel" and m["params"]["meta"]["kind"] == "system", m
assert m["params"]["content"].startswith("[system] claudemeshd stopped"), m
m = line(t)
assert m["params"]["content"].startswith("[system] claudemeshd stopped"), m
request(t, 3, "tools/call", {"name": "list_peers", "arguments": {}})
r = result(t, 3)
assert r["isError"] is True and "claudemeshd is not running" in r["content"][0]["text"], r
request(t, 4, "ping"); assert result(t, 4) == {}
# a new server needs the daemon: exit 3, said why
q2 = start()
assert q2.wait(GUARD) == 3, q2.returncode
assert b"claudemeshd is not running" in q2.stderr.read()

# the daemon is back (as systemd would restart it): said on the channel, the tools work again
with open(f"{T}/bob.log", "ab") as log:
    d = subprocess.Popen([os.environ["CLAUDEMESHD"]], stdout=log, stderr=log, env=dict(
        env, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={T}/no-system-bus", CLAUDEMESH_CONFIG_DIR=f"{T}/bob/config",
        XDG_STATE_HOME=f"{T}/bob/state", XDG_RUNTIME_DIR=f"{T}/bob/run", CLAUDEMESH_LOG_TARGET="stderr",
        CLAUDEMESH_WORKER=os.environ["CLAUDEMESH_WORKER"]))
for c in (q, t):
    m = line(c)
    assert m["params"]["content"] == "[system] claudemeshd is back" and m["params"]["meta"]["kind"] == "system", m
request(t, 5, "tools/call", {"name": "read_inbox", "arguments": {}})
r = result(t, 5)
assert "isError" not in r and r["content"][0]["text"].startswith("No messages"), r
t.stdin.close()
assert t.wait(GUARD) == 0, t.returncode
d.terminate()
assert d.wait(GUARD) == 0, d.returncode
assert line(q)["params"]["content"].startswith("[system] claudemeshd stopped")

# the session bus goes away: exit 3
os.kill(int(os.environ["BUS_PID"]), signal.SIGTERM)
assert q.wait(GUARD) == 3, q.returncode
assert b"session bus went away" in q.stderr.read()
print("ok")
PY
echo ok
