#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The admin subcommands: output formats (member add prints exactly one upstream config.json
mesh entry), exit codes, and working on the database while the broker runs."""

import json
import os
import pty
import re
import stat

import nacl.signing

import brokertest as bt


async def test_mesh_commands(b):
    m = b.mesh("Acme Corp")
    assert set(m) == {"id", "slug", "name"} and m["slug"] == "acme-corp" and m["name"] == "Acme Corp", m
    assert re.fullmatch(r"[0-9A-Za-z]{32}", m["id"])
    p = b.admin("mesh", "create", "Acme Corp", check=False)
    assert p.returncode == 4 and p.stdout == "" and "exists" in p.stderr, p
    other = json.loads(b.admin("mesh", "create", "x", "--slug", "custom").stdout)
    assert other["slug"] == "custom"
    b.member(m["id"], "alice")
    out = b.admin("mesh", "list").stdout.splitlines()
    assert out[0].split() == ["ID", "SLUG", "MEMBERS", "NAME"], out
    assert out[1].split() == [m["id"], "acme-corp", "1", "Acme", "Corp"], out
    assert out[2].split()[1:] == ["custom", "0", "x"]
    assert b.admin("mesh", "create", "!!!", check=False).returncode == 2
    assert b.admin("mesh", "create", check=False).returncode == 2


async def test_member_add_prints_config_entry(b):
    m = b.mesh("acme")
    p = b.admin("member", "add", "acme", "alice")
    entry = json.loads(p.stdout)  # one JSON document and nothing else
    assert p.stdout.startswith("{\n  \"meshId\"") and p.stdout.endswith("}\n"), p.stdout
    assert list(entry) == ["meshId", "memberId", "slug", "name", "pubkey", "secretKey", "brokerUrl", "joinedAt"]
    assert entry["meshId"] == m["id"] and entry["slug"] == "acme" and entry["name"] == "acme"
    assert entry["brokerUrl"] == f"ws://127.0.0.1:{b.port}/ws"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["joinedAt"])
    sk = bytes.fromhex(entry["secretKey"])
    assert len(sk) == 64 and sk[32:].hex() == entry["pubkey"]
    assert nacl.signing.SigningKey(sk[:32]).verify_key.encode().hex() == entry["pubkey"]
    # The entry works as is against the running broker.
    await bt.Client(b, entry).hello()

    key = nacl.signing.SigningKey.generate()
    pub = key.verify_key.encode().hex()
    e2 = json.loads(b.admin("member", "add", m["id"], "bob", "--pubkey", pub, "--role", "admin",
                            "--broker-url", "wss://broker.example/ws").stdout)
    assert "secretKey" not in e2 and e2["pubkey"] == pub and e2["brokerUrl"] == "wss://broker.example/ws"
    await bt.Client(b, dict(e2, secretKey=(key.encode() + key.verify_key.encode()).hex())).hello()

    for args, code in ((["member", "add", "acme", "carol", "--pubkey", pub], 4),
                       (["member", "add", "nosuch", "carol"], 3),
                       (["member", "add", "acme", "carol", "--pubkey", pub.upper()], 2),
                       (["member", "add", "acme", "carol", "--pubkey", "abc"], 2),
                       (["member", "add", "acme", "carol", "--role", "owner"], 2),
                       (["member", "add", "acme"], 2)):
        p = b.admin(*args, check=False)
        assert p.returncode == code and p.stdout == "" and p.stderr, (args, p)

    rows = b.admin("member", "list", "acme").stdout.splitlines()
    assert rows[0].split() == ["ID", "PUBKEY", "ROLE", "STATE", "NAME"]
    assert [r.split()[1:] for r in rows[1:]] == [[entry["pubkey"], "member", "active", "alice"],
                                                  [pub, "admin", "active", "bob"]], rows


async def test_revoke_while_running(b):
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    await bt.Client(b, alice).hello()
    assert b.admin("member", "revoke", m["id"], "alice").stdout.strip() == f"{alice['memberId']} revoked"
    assert "already revoked" in b.admin("member", "revoke", m["id"], alice["pubkey"]).stdout
    assert b.admin("member", "revoke", m["id"], "nobody", check=False).returncode == 3
    c = bt.Client(b, alice)
    await c.connect()
    await c.send_json(c.hello_frame())
    assert (await c.expect("error"))["code"] == "revoked"
    assert "revoked" in b.admin("member", "list", m["id"]).stdout
    b.member(m["id"], "twin")
    b.member(m["id"], "twin", "--allow-duplicate")
    p = b.admin("member", "revoke", m["id"], "twin", check=False)
    assert p.returncode == 2 and "several" in p.stderr, p


async def test_member_add_refuses_duplicate_name(b):
    m = b.mesh()
    b.member(m["id"], "bob")
    p = b.admin("member", "add", m["slug"], "bob", check=False)
    assert p.returncode == 4 and p.stdout == "" and "--allow-duplicate" in p.stderr, p
    assert len(b.admin("member", "list", m["id"]).stdout.splitlines()) == 2
    b.member(m["id"], "bob", "--allow-duplicate")
    assert len(b.admin("member", "list", m["id"]).stdout.splitlines()) == 3
    # a revoked name is free again
    b.member(m["id"], "carol")
    b.admin("member", "revoke", m["id"], "carol")
    b.member(m["id"], "carol")


async def test_member_add_output_file_is_private(b):
    m = b.mesh()
    out = os.path.join(b.tmp.name, "bob.json")
    old = os.umask(0o022)
    try:
        p = b.admin("member", "add", m["slug"], "bob", "--output", out)
        assert p.stdout == "" and "0600" in p.stderr, p
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
        entry = json.load(open(out))
        assert entry["meshId"] == m["id"] and len(entry["secretKey"]) == 128
        await bt.Client(b, entry).hello()
        # no member when the file cannot be written
        p = b.admin("member", "add", m["slug"], "carol", "--output", "/nonexistent/carol.json", check=False)
        assert p.returncode == 1 and "/nonexistent/carol.json" in p.stderr, p
        assert "carol" not in b.admin("member", "list", m["id"]).stdout
        # > FILE with the umask's 0644: said on stderr
        with open(os.path.join(b.tmp.name, "dave.json"), "w") as f:
            p = bt.subprocess.run([bt.BROKER, "--db", b.db, "member", "add", m["slug"], "dave"], stdout=f,
                                  stderr=bt.subprocess.PIPE, text=True)
        assert p.returncode == 0 and "--output" in p.stderr and "0644" in p.stderr, p
    finally:
        os.umask(old)


async def test_revoke_closes_live_connection(b):
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    c = bt.Client(b, alice)
    await c.hello()
    b.admin("member", "revoke", m["id"], "alice")
    err = await c.expect("error", timeout=4)
    assert err["code"] == "revoked", err
    try:
        while True:
            await c.recv(4)
    except bt.websockets.ConnectionClosed:
        pass
    assert (c.ws.close_code, c.ws.close_reason) == (4002, "banned")
test_revoke_closes_live_connection.broker_args = ["--ping-interval", "1"]


async def test_topic_create(b):
    m = b.mesh()
    t = json.loads(b.admin("topic", "create", m["slug"], "general").stdout)
    assert t["created"] is True and t["meshId"] == m["id"] and t["name"] == "general"
    again = json.loads(b.admin("topic", "create", m["id"], "general").stdout)
    assert again == dict(t, created=False)
    assert b.admin("topic", "create", "nosuch", "x", check=False).returncode == 3


async def test_usage_errors(b):
    for args in (["frobnicate"], ["mesh"], ["member", "remove"], ["--rate-window", "0"],
                 ["--dedupe-retention-days", "2"], ["--listen", "nohost"], ["--tls-cert", "x"]):
        p = b.admin(*args, check=False)
        assert p.returncode == 2 and p.stdout == "", (args, p)
    p = bt.subprocess.run([bt.BROKER, "--help"], capture_output=True, text=True)
    assert p.returncode == 0 and "member add" in p.stdout
    p = bt.subprocess.run([bt.BROKER, "mesh", "list"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert p.returncode == 2 and "STATE_DIRECTORY" in p.stderr, p
    p = b.admin("--db", "/nonexistent/dir/x.db", "mesh", "list", check=False)
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p
    assert "the folder /nonexistent/dir does not exist" in p.stderr, p
    p = b.admin("mesh", "frob", check=False)
    assert p.returncode == 2 and 'unknown command "mesh frob"; mesh takes create or list' in p.stderr, p
    # On a terminal, log lines carry the program's name, not syslog's "<3>"; piped, they keep it.
    p = b.admin("--db", "/etc/passwd/x.db", "mesh", "list", check=False)
    assert p.returncode == 1 and p.stderr.startswith("<3>") and p.stderr.count("\n") == 1, p
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(bt.BROKER, [bt.BROKER, "--db", "/etc/passwd/x.db", "mesh", "list"])
    text = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        text += chunk
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 1, text
    assert text.startswith(b"claudemesh-broker: Cannot open database /etc/passwd/x.db") and b"<3>" not in text, text


if __name__ == "__main__":
    bt.run([test_mesh_commands, test_member_add_prints_config_entry, test_member_add_refuses_duplicate_name,
            test_member_add_output_file_is_private, test_revoke_while_running,
            test_revoke_closes_live_connection, test_topic_create, test_usage_errors])
