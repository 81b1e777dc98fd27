#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The hardened accept path: dedupe outcomes, B0 before the limiter, the idempotent limiter,
atomic accept with the mention index, and the retention job under an injected clock."""

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import time

import nacl.signing

import brokertest as bt

DAY_MS = 24 * 3600 * 1000


def fp(text):
    return hashlib.sha256(text.encode()).hexdigest()


def db(b):
    return b.sql()


def hex_sql(column):
    """The column's bytes as uppercase hex, in the engine's SQL."""
    return f"upper(encode({column}, 'hex'))" if bt.BACKEND == "postgresql" else f"hex({column})"


async def setup(b, receiver=True):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"))
    await alice.hello()
    if receiver:
        await bob.hello(capabilities=["client_ack"])
    return m, alice, bob


async def test_retry_after_lost_ack(b):
    m, alice, bob = await setup(b)
    first = await alice.send(bob.session_pubkey, "once", id="cm-1", client_message_id="cm-1",
                             request_fingerprint=fp("once"))
    assert first["duplicate"] is False and first["client_message_id"] == "cm-1", first
    await bob.expect("push", messageId=first["messageId"])
    # The ack was "lost": the sender reconnects and retries the same request.
    await alice.close()
    again = bt.Client(b, alice.entry)
    await again.hello()
    dup = await again.send(bob.session_pubkey, "once", id="cm-1", client_message_id="cm-1",
                           request_fingerprint=fp("once"))
    assert dup["duplicate"] is True and dup["queued"] is True, dup
    assert dup["messageId"] == first["messageId"], (dup, first)
    assert dup["history_available"] is True and dup["first_seen_at"].endswith("Z"), dup
    assert "error" not in dup
    await bob.nothing("push", wait=0.5, messageId=first["messageId"])
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM message WHERE client_message_id='cm-1'").fetchone()[0] == 1
        row = conn.execute(f"SELECT broker_message_id, {hex_sql('request_fingerprint')}, destination_kind, destination_ref,"
                           " expires_at - first_seen_at, history_available FROM client_message_dedupe").fetchone()
    assert row == (first["messageId"], fp("once").upper(), "dm", bob.session_pubkey, 7 * DAY_MS, 1), row


async def test_conflict(b):
    m, alice, bob = await setup(b)
    await alice.send("*", "a", client_message_id="k", request_fingerprint=fp("a"))
    c = await alice.send("*", "b", client_message_id="k", request_fingerprint=fp("b"))
    assert c["queued"] is False and c["messageId"] == "", c
    assert c["error_code"] == "idempotency_key_reused" and c["conflict"] == "request_fingerprint_mismatch", c
    assert c["broker_fingerprint_prefix"] == fp("a")[:16], c
    assert c["error"].startswith("idempotency_key_reused")
    # Without a client fingerprint the broker derives one from destination and priority.
    n = await alice.send("*", "x", client_message_id="k2")
    assert n["duplicate"] is False
    assert (await alice.send("*", "y", client_message_id="k2"))["duplicate"] is True
    assert (await alice.send("@other", "x", client_message_id="k2"))["error_code"] == "idempotency_key_reused"


async def test_two_connections_race(b):
    m, alice, bob = await setup(b)
    alice2 = bt.Client(b, alice.entry)
    await alice2.hello()
    frame = {"type": "send", "targetSpec": bob.session_pubkey, "priority": "next", "nonce": "", "ciphertext": "aGk=",
             "client_message_id": "race", "request_fingerprint": fp("race")}
    await asyncio.gather(alice.send_json(dict(frame, id="r1")), alice2.send_json(dict(frame, id="r2")))
    a1, a2 = await asyncio.gather(alice.expect("ack", id="r1"), alice2.expect("ack", id="r2"))
    assert a1["messageId"] == a2["messageId"] != "", (a1, a2)
    assert sorted([a1["duplicate"], a2["duplicate"]]) == [False, True], (a1, a2)
    await bob.expect("push", messageId=a1["messageId"])
    await bob.nothing("push", wait=0.5, messageId=a1["messageId"])
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 1


async def test_budget_exhausted_then_retry(b):
    await bt.inside_rate_window(3600)
    m, alice, bob = await setup(b)
    acks = [await alice.send("*", f"m{i}", client_message_id=f"b-{i}", request_fingerprint=fp(f"m{i}"))
            for i in range(3)]
    assert all(a["duplicate"] is False for a in acks)
    limited = await alice.send("*", "m3", client_message_id="b-3", request_fingerprint=fp("m3"))
    assert limited["error_code"] == "rate_limited" and limited["error"].startswith("rate_limit:"), limited
    assert 0 < limited["retry_after_ms"] <= 3600_000 and limited["queued"] is False
    # A retry of a committed id is answered by B0 before the limiter.
    dup = await alice.send("*", "m0", client_message_id="b-0", request_fingerprint=fp("m0"))
    assert dup["duplicate"] is True and dup["messageId"] == acks[0]["messageId"], dup
    # The budget is per member: bob is not limited.
    assert (await bob.send("*", "hi"))["queued"] is True
test_budget_exhausted_then_retry.broker_args = ["--rate-limit", "3", "--rate-window", "3600"]


async def test_idempotent_limiter(b):
    await bt.inside_rate_window(3600)
    m, alice, bob = await setup(b)
    # Pays, then fails after the limiter (unknown recipient): no dedupe row is left.
    nobody = "cd" * 32
    r = await alice.send(nobody, "x", client_message_id="A", request_fingerprint=fp("A"))
    assert r["error_code"] == "unknown_recipient", r
    # The same id again misses B0 but has paid in this window already.
    r = await alice.send(nobody, "x", client_message_id="A", request_fingerprint=fp("A"))
    assert r["error_code"] == "unknown_recipient", r
    assert (await alice.send("*", "B", client_message_id="B"))["queued"] is True
    r = await alice.send("*", "C", client_message_id="C")
    assert r["error_code"] == "rate_limited", r
    with db(b) as conn:
        assert conn.execute("SELECT client_message_id FROM client_message_dedupe").fetchall() == [("B",)]
test_idempotent_limiter.broker_args = ["--rate-limit", "2", "--rate-window", "3600"]


async def test_failed_destination_leaves_no_row(b):
    m, alice, bob = await setup(b)
    r = await alice.send("#missing", "x", client_message_id="T", request_fingerprint=fp("T"))
    assert r["error_code"] == "topic_not_found"
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM client_message_dedupe").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM message").fetchone()[0] == 0
    topic = json.loads(b.admin("topic", "create", m["id"], "t").stdout)
    r = await alice.send("#" + topic["id"], "x", client_message_id="T", request_fingerprint=fp("T"))
    assert r["duplicate"] is False and r["queued"] is True, r


async def test_mention_index(b):
    m, alice, bob = await setup(b)
    topic = json.loads(b.admin("topic", "create", m["id"], "general").stdout)
    # Read right after the ack, from another process's view of the database.
    ack = await alice.send("#" + topic["id"], "ping", mentions=["bob", "Carol"])
    with db(b) as conn:
        rows = conn.execute("SELECT mentioned, mesh_id FROM mention_index WHERE broker_message_id = ?"
                            " ORDER BY mentioned", (ack["messageId"],)).fetchall()
    assert rows == [("bob", m["id"]), ("carol", m["id"])], rows
    ack = await alice.send("#" + topic["id"], "hey @dave and @erin.x, mail a@b")
    with db(b) as conn:
        rows = conn.execute("SELECT mentioned FROM mention_index WHERE broker_message_id = ? ORDER BY mentioned",
                            (ack["messageId"],)).fetchall()
    assert rows == [("dave",), ("erin.x",)], rows
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM topic_message WHERE topic_id = ?",
                            (topic["id"],)).fetchone()[0] == 2


async def test_purge_with_injected_clock(b):
    m, alice, bob = await setup(b)
    now = int(time.time() * 1000)
    old = await alice.send(bob.session_pubkey, "old", client_message_id="P", request_fingerprint=fp("P"))
    legacy = await alice.send(bob.session_pubkey, "no id")

    out = json.loads(b.admin("--message-retention-days", "3", "purge", "--now", str(now + 2 * DAY_MS)).stdout)
    assert out == {"messages_pruned": 0, "dedupe_marked": 0, "dedupe_purged": 0}, out

    # Messages are kept 3 days, dedupe rows 5: at day 4 the message is gone, the id is not.
    out = json.loads(b.admin("--message-retention-days", "3", "purge", "--now", str(now + 4 * DAY_MS)).stdout)
    assert out == {"messages_pruned": 2, "dedupe_marked": 1, "dedupe_purged": 0}, out
    dup = await alice.send(bob.session_pubkey, "old", client_message_id="P", request_fingerprint=fp("P"))
    assert dup["duplicate"] is True and dup["history_available"] is False, dup
    assert dup["messageId"] == old["messageId"]
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM delivery").fetchone()[0] == 0

    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now + 6 * DAY_MS) / 1000))
    out = json.loads(b.admin("--message-retention-days", "3", "purge", "--now", iso).stdout)
    assert out["dedupe_purged"] == 1, out
    fresh = await alice.send(bob.session_pubkey, "old", client_message_id="P", request_fingerprint=fp("P"))
    assert fresh["duplicate"] is False and fresh["messageId"] not in (old["messageId"], legacy["messageId"]), fresh
    assert b.admin("--message-retention-days", "3", "purge", "--now", "yesterday", check=False).returncode == 2
test_purge_with_injected_clock.broker_args = ["--message-retention-days", "3", "--dedupe-retention-days", "5"]


async def test_retention_days_advertised(b):
    m, alice, bob = await setup(b, receiver=False)
    assert alice.hello_ack["features"]["client_message_id_dedupe"]["dedupe_retention_days"] == 30
    assert alice.hello_ack["features"]["client_ack"]["lease_seconds"] == 12
test_retention_days_advertised.broker_args = ["--dedupe-retention-days", "30", "--lease-seconds", "12"]


async def test_dedupe_scoped_to_sender(b):
    """DECISIONS rule 16: mallory sending first with alice's ids neither drops alice's messages
    (duplicate) nor refuses them (idempotency_key_reused); alice's own retry is still a duplicate."""
    m, alice, bob = await setup(b)
    mallory = bt.Client(b, b.member(m["id"], "mallory"))
    await mallory.hello()
    squat = await mallory.send(bob.session_pubkey, "squat", client_message_id="X", request_fingerprint=fp("x"))
    other = await mallory.send(bob.session_pubkey, "squat", client_message_id="Y", request_fingerprint=fp("other"))
    mine = await alice.send(bob.session_pubkey, "mine", client_message_id="X", request_fingerprint=fp("x"))
    assert mine["queued"] is True and mine["duplicate"] is False and "error" not in mine, mine
    assert mine["messageId"] != squat["messageId"]
    mine_y = await alice.send(bob.session_pubkey, "mine too", client_message_id="Y", request_fingerprint=fp("y"))
    assert mine_y["queued"] is True and mine_y["duplicate"] is False and "error_code" not in mine_y, mine_y
    for ack in (squat, other, mine, mine_y):
        push = await bob.expect("push", messageId=ack["messageId"])
    assert push["senderPubkey"] == alice.session_pubkey
    retry = await alice.send(bob.session_pubkey, "mine", client_message_id="X", request_fingerprint=fp("x"))
    assert retry["duplicate"] is True and retry["messageId"] == mine["messageId"], retry
    conflict = await alice.send(bob.session_pubkey, "else", client_message_id="X", request_fingerprint=fp("z"))
    assert conflict["error_code"] == "idempotency_key_reused", conflict
    await bob.nothing("push", wait=0.3, messageId=mine["messageId"])

    # An ack by clientMessageId alone is ambiguous now (two senders' "X"): it acknowledges
    # neither; brokerMessageId does.
    await bob.send_json({"type": "client_ack", "clientMessageId": "X"})
    await bob.send_json({"type": "client_ack", "clientMessageId": "Y", "brokerMessageId": other["messageId"]})
    await bob.send_json({"type": "list_peers", "_reqId": "sync"})
    await bob.expect("peers_list")
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM message WHERE client_message_id = 'X'").fetchone()[0] == 2
        owed = {r[0] for r in conn.execute("SELECT message_id FROM delivery")}
        scopes = dict(conn.execute("SELECT broker_message_id, sender_scope FROM client_message_dedupe"))
    assert owed == {squat["messageId"], mine["messageId"], mine_y["messageId"]}, owed
    assert scopes[mine["messageId"]] == alice.entry["memberId"] and scopes[squat["messageId"]] == mallory.entry["memberId"]
    await bob.send_json({"type": "client_ack", "clientMessageId": "Y"})  # one "Y" is still owed: not ambiguous
    await bob.send_json({"type": "list_peers", "_reqId": "sync"})
    await bob.expect("peers_list")
    with db(b) as conn:
        owed = {r[0] for r in conn.execute("SELECT message_id FROM delivery")}
    assert owed == {squat["messageId"], mine["messageId"]}, owed


# The schema of the first release (user_version 1), as it created it.
SCHEMA_V1 = """
CREATE TABLE mesh (id TEXT PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE member (id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,
  peer_pubkey TEXT NOT NULL, display_name TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin','member')),
  created_at INTEGER NOT NULL, revoked_at INTEGER, UNIQUE (mesh_id, peer_pubkey));
CREATE TABLE topic (id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL REFERENCES mesh(id) ON DELETE CASCADE,
  name TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (mesh_id, name));
CREATE TABLE session (mesh_id TEXT NOT NULL, session_pubkey TEXT NOT NULL,
  member_id TEXT NOT NULL REFERENCES member(id) ON DELETE CASCADE,
  last_seen_at INTEGER NOT NULL, PRIMARY KEY (mesh_id, session_pubkey)) WITHOUT ROWID;
CREATE TABLE message (id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, sender_member_id TEXT NOT NULL,
  sender_pubkey TEXT NOT NULL, sender_member_pubkey TEXT NOT NULL, sender_name TEXT NOT NULL,
  target_spec TEXT NOT NULL, priority TEXT NOT NULL, nonce TEXT NOT NULL, ciphertext TEXT NOT NULL,
  created_at INTEGER NOT NULL, client_message_id TEXT, request_fingerprint BLOB,
  reply_to_id TEXT, topic_id TEXT);
CREATE UNIQUE INDEX message_client_message_id ON message(mesh_id, client_message_id) WHERE client_message_id IS NOT NULL;
CREATE INDEX message_created_at ON message(created_at);
CREATE TABLE client_message_dedupe (mesh_id TEXT NOT NULL, client_message_id TEXT NOT NULL,
  broker_message_id TEXT NOT NULL,
  request_fingerprint BLOB NOT NULL CHECK (length(request_fingerprint) = 32),
  destination_kind TEXT NOT NULL CHECK (destination_kind IN ('topic','dm','queue')),
  destination_ref TEXT NOT NULL, first_seen_at INTEGER NOT NULL, expires_at INTEGER,
  history_available INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (mesh_id, client_message_id)) WITHOUT ROWID;
CREATE INDEX client_message_dedupe_expires ON client_message_dedupe(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX client_message_dedupe_broker_id ON client_message_dedupe(broker_message_id);
CREATE TABLE topic_message (message_id TEXT PRIMARY KEY, mesh_id TEXT NOT NULL, topic_id TEXT NOT NULL,
  created_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX topic_message_topic ON topic_message(topic_id, created_at);
CREATE TABLE delivery (message_id TEXT NOT NULL, recipient_pubkey TEXT NOT NULL, mesh_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, PRIMARY KEY (message_id, recipient_pubkey)) WITHOUT ROWID;
CREATE INDEX delivery_recipient ON delivery(mesh_id, recipient_pubkey, created_at);
CREATE TABLE mention_index (broker_message_id TEXT NOT NULL, mesh_id TEXT NOT NULL, mentioned TEXT NOT NULL,
  created_at INTEGER NOT NULL, PRIMARY KEY (broker_message_id, mentioned)) WITHOUT ROWID;
CREATE INDEX mention_index_lookup ON mention_index(mesh_id, mentioned, created_at);
PRAGMA user_version = 1;
"""


def member_entry(mesh_id, member_id):
    key = nacl.signing.SigningKey.generate()
    pub = key.verify_key.encode().hex()
    return {"meshId": mesh_id, "memberId": member_id, "pubkey": pub,
            "secretKey": (key.encode() + key.verify_key.encode()).hex()}


async def test_v1_database_migrates(b):
    """A schema 1 file keeps its rows: its dedupe rows take their message's sender as scope,
    and a retry by the same member is still a duplicate; a file newer than known is refused."""
    path = b.db + ".v1"
    now = int(time.time() * 1000)
    alice = member_entry("mesh-1", "mem-alice")
    bob = member_entry("mesh-1", "mem-bob")
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA_V1)
        conn.execute("INSERT INTO mesh VALUES ('mesh-1', 'acme', 'acme', ?)", (now,))
        for e, name in ((alice, "alice"), (bob, "bob")):
            conn.execute("INSERT INTO member (id, mesh_id, peer_pubkey, display_name, created_at)"
                         " VALUES (?, 'mesh-1', ?, ?, ?)", (e["memberId"], e["pubkey"], name, now))
        conn.execute("INSERT INTO message VALUES ('msg-1', 'mesh-1', 'mem-alice', ?, ?, 'alice', ?, 'next', 'bm9uY2U=',"
                     " 'aGk=', ?, 'old-1', ?, NULL, NULL)",
                     (alice["pubkey"], alice["pubkey"], bob["pubkey"], now, bytes.fromhex(fp("old-1"))))
        conn.execute("INSERT INTO delivery VALUES ('msg-1', ?, 'mesh-1', ?)", (bob["pubkey"], now))
        conn.execute("INSERT INTO client_message_dedupe VALUES ('mesh-1', 'old-1', 'msg-1', ?, 'dm', ?, ?, ?, 1)",
                     (bytes.fromhex(fp("old-1")), bob["pubkey"], now, now + 7 * DAY_MS))
        # A dedupe row whose message retention already pruned: it has no sender to scope it to.
        conn.execute("INSERT INTO client_message_dedupe VALUES ('mesh-1', 'gone', 'msg-gone', ?, 'dm', ?, ?, ?, 0)",
                     (bytes.fromhex(fp("gone")), bob["pubkey"], now - 8 * DAY_MS, now + DAY_MS))

    v1 = bt.Broker(db=path)
    try:
        v1.start()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
            assert conn.execute("SELECT sender_scope, client_message_id, broker_message_id"
                                " FROM client_message_dedupe").fetchall() == [("mem-alice", "old-1", "msg-1")]
            assert conn.execute("SELECT sender_scope FROM message").fetchall() == [("mem-alice",)]
            # Schema 3: the message keeps its row, its delivery time unknown; the new tables exist.
            assert conn.execute("SELECT id, delivered_at FROM message").fetchall() == [("msg-1", None)]
            assert conn.execute("SELECT COUNT(*) FROM mesh_state").fetchone()[0] == 0
            assert conn.execute("SELECT COUNT(*) FROM ack_seen").fetchone()[0] == 0
        assert "Database schema migrated from 1 to 3." in v1.logtext()
        a = bt.Client(v1, alice, session=False)
        r = bt.Client(v1, bob, session=False)
        await a.hello()
        await r.hello()
        push = await r.expect("push", messageId="msg-1")  # the owed delivery survived
        assert push["client_message_id"] == "old-1", push
        dup = await a.send(bob["pubkey"], "hi", client_message_id="old-1", request_fingerprint=fp("old-1"))
        assert dup["duplicate"] is True and dup["messageId"] == "msg-1", dup
        new = await a.send(bob["pubkey"], "hi", client_message_id="gone", request_fingerprint=fp("gone"))
        assert new["duplicate"] is False, new
        for c in (a, r):
            c.ws.transport.abort()
        assert v1.stop() == 0
    finally:
        v1.close()

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 4")
    p = subprocess.run([bt.BROKER, "--db", path, "mesh", "list"], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0 and "newer than this broker" in p.stderr, (p.returncode, p.stderr)


test_v1_database_migrates.sqlite_only = True


async def test_newer_schema_refused(b):
    """A database whose schema is newer than the broker knows is refused, with a clear error,
    by the broker and by the admin commands, on either engine."""
    assert b.stop() == 0
    # PostgreSQL's schema 4 adds the hot path's functions and 5 the presence frames kept for
    # a node's LISTEN gap, which SQLite (one node, no LISTEN) does not have.
    known = 6 if bt.BACKEND == "postgresql" else 3
    if bt.BACKEND == "postgresql":
        with b.sql() as conn:
            conn.execute("UPDATE broker_schema SET version = ?", (known + 1,))
    else:
        with sqlite3.connect(b.db) as conn:
            conn.execute(f"PRAGMA user_version = {known + 1}")
    p = b.admin("mesh", "list", check=False)
    assert p.returncode != 0 and f"Database schema {known + 1} is newer than this broker ({known})" in p.stderr, \
        (p.returncode, p.stderr)
    p = subprocess.run([bt.BROKER, "--db", b.db, "--listen", f"127.0.0.1:{b.port}"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "newer than this broker" in p.stderr, (p.returncode, p.stderr)


async def test_expired_dedupe_id_fails_alone(b):
    """An id whose dedupe row is gone while its message is kept (message retention longer than
    the dedupe's) cannot be accepted again, on either engine; a send that arrives with it is
    accepted all the same (on PostgreSQL they may share a transaction)."""
    m = b.mesh()
    alice_entry, bob_entry = b.member(m["id"], "alice"), b.member(m["id"], "bob")
    alice = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, bob_entry, session=False)
    await alice.hello()
    await bob.hello()
    first = await alice.send(bob_entry["pubkey"], "one", client_message_id="old-1")
    assert first["queued"] is True, first
    if bt.BACKEND == "postgresql":
        with b.sql() as conn:
            conn.execute("DELETE FROM client_message_dedupe")
    else:
        with sqlite3.connect(b.db) as conn:
            conn.execute("DELETE FROM client_message_dedupe")
    for id, cm in (("r1", "old-1"), ("r2", "new-1")):
        await alice.send_json({"type": "send", "id": id, "targetSpec": bob_entry["pubkey"], "priority": "next",
                               "nonce": bt.b64(b"n" * 24), "ciphertext": bt.b64(b"two"), "client_message_id": cm})
    again = await alice.expect("ack", id="r1")
    assert again["queued"] is False and again["error_code"] == "internal", again
    other = await alice.expect("ack", id="r2")
    assert other["queued"] is True, other
    await bob.expect("push", messageId=other["messageId"])
    # The failed accept took its dedupe claim back: a retry fails the same way, not as a
    # duplicate of a message that was never stored.
    await alice.send_json({"type": "send", "id": "r3", "targetSpec": bob_entry["pubkey"], "priority": "next",
                           "nonce": bt.b64(b"n" * 24), "ciphertext": bt.b64(b"two"), "client_message_id": "old-1"})
    retry = await alice.expect("ack", id="r3")
    assert retry["queued"] is False and retry["error_code"] == "internal", retry


async def test_purge_on_the_running_broker(b):
    """The broker's own retention job (every second here) removes an expired dedupe row, and
    only it, and logs the count, and keeps serving: on PostgreSQL it runs without waiting on
    the loop."""
    m, alice, bob = await setup(b)
    first = await alice.send(bob.session_pubkey, "x", client_message_id="E", request_fingerprint=fp("E"))
    kept = await alice.send(bob.session_pubkey, "y", client_message_id="K", request_fingerprint=fp("K"))
    with (b.sql() if b.pg_dbname else sqlite3.connect(b.db)) as conn:
        conn.execute("UPDATE client_message_dedupe SET expires_at = 1 WHERE client_message_id = 'E'")
    for _ in range(100):
        if "purged 1 expired dedupe rows" in b.logtext():
            break
        await asyncio.sleep(0.1)
    assert "purged 1 expired dedupe rows" in b.logtext(), b.logtext()[-2000:]
    with db(b) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT client_message_id FROM client_message_dedupe"))
    assert ids == ["K"], ids
    again = await alice.send(bob.session_pubkey, "y", client_message_id="K", request_fingerprint=fp("K"))
    assert again.get("duplicate") is True and again["messageId"] == kept["messageId"], again
    with db(b) as conn:
        assert conn.execute("SELECT COUNT(*) FROM message WHERE id = ?", (first["messageId"],)).fetchone()[0] == 1
test_purge_on_the_running_broker.broker_args = ["--purge-interval", "1"]


if __name__ == "__main__":
    bt.run([test_retry_after_lost_ack, test_conflict, test_two_connections_race, test_budget_exhausted_then_retry,
            test_idempotent_limiter, test_failed_destination_leaves_no_row, test_mention_index,
            test_purge_with_injected_clock, test_retention_days_advertised, test_dedupe_scoped_to_sender,
            test_v1_database_migrates, test_newer_schema_refused, test_expired_dedupe_id_fails_alone,
            test_purge_on_the_running_broker])
