#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The hardened accept path: dedupe outcomes, B0 before the limiter, the idempotent limiter,
atomic accept with the mention index, and the retention job under an injected clock."""

import asyncio
import hashlib
import json
import sqlite3
import time

import brokertest as bt

DAY_MS = 24 * 3600 * 1000


def fp(text):
    return hashlib.sha256(text.encode()).hexdigest()


def db(b):
    return sqlite3.connect(f"file:{b.db}?mode=ro", uri=True)


async def setup(b, receiver=True):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"))
    await alice.hello()
    if receiver:
        await bob.hello()
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
        row = conn.execute("SELECT broker_message_id, hex(request_fingerprint), destination_kind, destination_ref,"
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


if __name__ == "__main__":
    bt.run([test_retry_after_lost_ack, test_conflict, test_two_connections_race, test_budget_exhausted_then_retry,
            test_idempotent_limiter, test_failed_destination_leaves_no_row, test_mention_index,
            test_purge_with_injected_clock, test_retention_days_advertised])
