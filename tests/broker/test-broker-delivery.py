#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Delivery guarantees against a running broker: store-and-forward to offline members,
leased pushes redelivered until client_ack, and the liveness cut."""

import asyncio
import json
import os
import time

import websockets

import brokertest as bt


async def test_offline_store_and_forward(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob_entry = b.member(m["id"], "bob")
    carol_entry = b.member(m["id"], "carol")
    await alice.hello()
    # bob has connected before, so his session key is known; carol never has.
    bob = bt.Client(b, bob_entry)
    await bob.hello()
    await bob.close()

    to_session = await alice.send(bob.session_pubkey, "while you were away")
    to_member = await alice.send(bob_entry["pubkey"], "to your member key")
    to_carol = await alice.send(carol_entry["pubkey"], "hello carol", client_message_id="c-1",
                                request_fingerprint="ab" * 32)
    for ack in (to_session, to_member, to_carol):
        assert ack["queued"] is True and ack["duplicate"] is False, ack

    again = bt.Client(b, bob_entry)
    again.session_key = bob.session_key
    await again.hello()
    p1 = await again.expect("push", messageId=to_session["messageId"])
    p2 = await again.expect("push", messageId=to_member["messageId"])
    assert bt.base64.b64decode(p1["ciphertext"]) == b"while you were away"
    assert p2["senderPubkey"] == alice.session_pubkey
    # A fresh session of bob (another key) gets the member-key DM only if still unacked.
    carol = bt.Client(b, carol_entry)
    await carol.hello()
    p = await carol.expect("push", messageId=to_carol["messageId"])
    assert p["client_message_id"] == "c-1" and p["request_fingerprint"] == "ab" * 32, p
    assert p["createdAt"].endswith("Z")


async def test_redelivery_after_receiver_dies(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob_entry = b.member(m["id"], "bob")
    bob = bt.Client(b, bob_entry)
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    acks = [await alice.send(bob.session_pubkey, f"m{i}", client_message_id=f"id-{i}") for i in range(3)]
    for a in acks:
        await bob.expect("push", messageId=a["messageId"])
    # bob acknowledges one, by client id, then dies without acknowledging the others.
    await bob.send_json({"type": "client_ack", "clientMessageId": "id-0"})
    await asyncio.sleep(0.2)
    bob.ws.transport.abort()

    again = bt.Client(b, bob_entry)
    again.session_key = bob.session_key
    await again.hello()
    got = [await again.expect("push", messageId=a["messageId"]) for a in acks[1:]]
    assert [bt.base64.b64decode(p["ciphertext"]) for p in got] == [b"m1", b"m2"]
    await again.nothing("push", messageId=acks[0]["messageId"])
    await again.send_json({"type": "client_ack", "brokerMessageId": acks[1]["messageId"]})
    await again.send_json({"type": "client_ack", "clientMessageId": "id-2"})
    await asyncio.sleep(0.2)
    await again.close()

    third = bt.Client(b, bob_entry)
    third.session_key = bob.session_key
    await third.hello()
    await third.nothing("push", wait=1.0, senderName="alice")


async def test_redelivery_after_lease(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"))
    carol = bt.Client(b, b.member(m["id"], "carol"))
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    await carol.hello(capabilities=["client_ack"])
    dm = await alice.send(bob.session_pubkey, "lease me")
    bc = await alice.send("*", "everyone")
    t0 = time.monotonic()
    await bob.expect("push", messageId=dm["messageId"])
    await bob.expect("push", messageId=bc["messageId"])
    await carol.expect("push", messageId=bc["messageId"])
    await carol.send_json({"type": "client_ack", "brokerMessageId": bc["messageId"]})
    # Not acknowledged: pushed again once the 1 s lease is over.
    await bob.expect("push", messageId=dm["messageId"], timeout=4)
    assert time.monotonic() - t0 >= 0.9
    await bob.expect("push", messageId=bc["messageId"], timeout=4)
    await carol.nothing("push", wait=1.5, messageId=bc["messageId"])
    await bob.send_json({"type": "client_ack", "brokerMessageId": dm["messageId"]})
    await bob.send_json({"type": "client_ack", "brokerMessageId": bc["messageId"]})
    # Pushes already on the way before the acks arrived are fine; none may follow them.
    await bob.nothing("push", wait=0.3, senderName="nobody")
    bob.inbox.clear()
    await bob.nothing("push", wait=2.5, senderName="alice")
test_redelivery_after_lease.broker_args = ["--lease-seconds", "1"]


async def test_legacy_client_not_flooded(b):
    """A client that never speaks client_ack (upstream a2568ad) gets each push once: handing it
    over is delivery, also across reconnects (issue 13)."""
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    legacy_entry = b.member(m["id"], "legacy")
    legacy = bt.Client(b, legacy_entry)
    await alice.hello()
    await legacy.hello()
    dm = await alice.send(legacy.session_pubkey, "once", client_message_id="legacy-1")
    await legacy.expect("push", messageId=dm["messageId"])
    await legacy.nothing("push", wait=2.5, messageId=dm["messageId"])
    await legacy.close()
    again = bt.Client(b, legacy_entry)
    again.session_key = legacy.session_key
    await again.hello()
    await again.nothing("push", wait=0.5, messageId=dm["messageId"])
    # Delivered at once: its sender sees so.
    await alice.send_json({"type": "message_status", "messageId": dm["messageId"], "_reqId": "st"})
    st = await alice.expect("message_status_result", _reqId="st")
    assert st["delivered"] is True and st["deliveredAt"].endswith("Z"), st
    # Its first client_ack makes it an at-least-once client from then on, and its key's later
    # connections too.
    await again.send_json({"type": "client_ack", "brokerMessageId": "unrelated"})
    await again.send_json({"type": "list_peers", "_reqId": "sync"})
    await again.expect("peers_list")
    dm2 = await alice.send(again.session_pubkey, "twice")
    await again.expect("push", messageId=dm2["messageId"])
    await again.expect("push", messageId=dm2["messageId"], timeout=3)
    await again.close()
    third = bt.Client(b, legacy_entry)
    third.session_key = legacy.session_key
    await third.hello()
    await third.expect("push", messageId=dm2["messageId"])
test_legacy_client_not_flooded.broker_args = ["--lease-seconds", "1"]


async def test_liveness_cut(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    silent = bt.Client(b, b.member(m["id"], "mute"))
    await alice.hello()
    await silent.hello()

    async def no_pong(data=b""):
        pass
    silent.ws.pong = no_pong
    t0 = time.monotonic()
    try:
        while True:
            await silent.recv(10)
    except websockets.ConnectionClosed:
        pass
    elapsed = time.monotonic() - t0
    # Silent for more than 3 s, checked every second; no close frame (1006), as upstream.
    assert 2.5 <= elapsed <= 6, elapsed
    assert silent.ws.close_code == 1006, silent.ws.close_code
    left = await alice.expect("push", event="peer_left")
    assert left["eventData"]["name"] == "mute"
    # alice answers pings, so she is still connected after the same time.
    await alice.send_json({"type": "list_peers"})
    assert [p["displayName"] for p in (await alice.expect("peers_list"))["peers"]] == ["alice"]
test_liveness_cut.broker_args = ["--ping-interval", "1", "--liveness-timeout", "3", "--presence-grace", "0"]


async def test_replies_keep_their_order(b):
    """Frames sent back to back, without waiting: every reply comes in the order of its frame,
    though on PostgreSQL the sends' statements are still in flight when the next frame
    arrives (the other frames wait behind them), and every push arrives once."""
    m = b.mesh()
    alice_entry, bob_entry = b.member(m["id"], "alice"), b.member(m["id"], "bob")
    alice = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, bob_entry, session=False)
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    ids = [f"order-{i}" for i in range(40)]
    for i, id in enumerate(ids):
        await alice.send_json({"type": "send", "id": id, "targetSpec": bob_entry["pubkey"], "priority": "next",
                               "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(b"m"),
                               "client_message_id": id})
        if i % 10 == 9:
            await alice.send_json({"type": "list_peers", "_reqId": f"peers-{i}"})
    await alice.send_json({"type": "get_state", "key": "k", "_reqId": "state"})
    order = []
    while len(order) < 45:
        f = await alice.recv()
        if f["type"] == "push":     # bob's peer_joined
            continue
        order.append(f.get("id") if f["type"] == "ack" else f.get("_reqId"))
        if f["type"] == "ack":
            assert f["queued"] is True, f
    want = []
    for i, id in enumerate(ids):
        want.append(id)
        if i % 10 == 9:
            want.append(f"peers-{i}")
    assert order == want + ["state"], order
    seen = []
    while len(seen) < len(ids):
        p = await bob.expect("push")
        seen.append(p["client_message_id"])
        await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
    assert sorted(seen) == sorted(ids), seen
    await bob.nothing("push", wait=0.5)


async def test_many_sends_in_flight(b):
    """A thousand sends without waiting for their acks: past a bound of sends in flight the
    broker stops reading the socket (PostgreSQL) and reads on as they complete; every send is
    acknowledged, in order, and pushed once."""
    m = b.mesh()
    alice_entry, bob_entry = b.member(m["id"], "alice"), b.member(m["id"], "bob")
    alice = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, bob_entry, session=False)
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    n = 1000
    frames = [json.dumps({"type": "send", "id": f"m-{i}", "targetSpec": bob_entry["pubkey"], "priority": "next",
                          "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(b"m"), "client_message_id": f"m-{i}"})
              for i in range(n)]

    async def pushes():
        got = []
        while len(got) < n:
            p = await bob.expect("push", subtype=None)
            got.append(p["client_message_id"])
            await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
        return got

    receiving = asyncio.ensure_future(pushes())
    for f in frames:
        await alice.ws.send(f)
    acks = []
    while len(acks) < n:
        a = await alice.expect("ack")
        assert a["queued"] is True, a
        acks.append(a["id"])
    assert acks == [f"m-{i}" for i in range(n)], acks[:10]
    got = await receiving
    assert sorted(got) == sorted(f"m-{i}" for i in range(n)), len(set(got))
    await bob.nothing("push", wait=0.5, subtype=None)


test_many_sends_in_flight.broker_args = ["--rate-limit", "0"]


def poison(b, ciphertext, table):
    """Makes the database itself refuse a write of the message with this ciphertext, as a
    failing write would: its message row (table "message"), or its delivery row, written after
    the message's (table "delivery"). A trigger; on PostgreSQL one calling a function."""
    if table == "message":
        when = f"NEW.ciphertext = '{ciphertext}'"
    else:
        when = f"(SELECT ciphertext FROM message WHERE id = NEW.message_id) = '{ciphertext}'"
    if bt.BACKEND == "postgresql":
        with b.sql() as conn:
            conn.execute("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS"
                         f" 'BEGIN IF {when.replace(chr(39), chr(39) * 2)} THEN RAISE EXCEPTION ''poison'';"
                         " END IF; RETURN NEW; END'")
            conn.execute(f"CREATE TRIGGER poison BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION poison()")
        return
    import sqlite3
    with sqlite3.connect(b.db) as conn:
        conn.execute(f"CREATE TRIGGER poison BEFORE INSERT ON {table} WHEN {when}"
                     " BEGIN SELECT RAISE(ABORT, 'poison'); END")


async def failed_write(b, table):
    """A burst of sends, one of which the database refuses to store (see poison()). PostgreSQL
    runs a burst's statements as one transaction, which the failure undoes whole: no send of it
    may have been acknowledged as queued, nor pushed; SQLite takes back the refused send's own
    rows. Every acknowledged send is stored and pushed once, no row of a refused one is left,
    and the refused ones, sent again with their ids, are accepted then."""
    m = b.mesh()
    alice_entry, bob_entry = b.member(m["id"], "alice"), b.member(m["id"], "bob")
    bad = bt.b64(b"the database refuses this one")
    poison(b, bad, table)
    alice = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, bob_entry, session=False)
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    n = 60

    def frame(i):
        return {"type": "send", "id": f"s-{i}", "targetSpec": bob_entry["pubkey"], "priority": "next",
                "nonce": bt.b64(os.urandom(24)), "ciphertext": bad if i == n // 2 else bt.b64(f"m{i}".encode()),
                "client_message_id": f"c-{i}"}

    for i in range(n):
        await alice.ws.send(json.dumps(frame(i)))
    queued, refused = {}, []
    for i in range(n):
        a = await alice.expect("ack", id=f"s-{i}")
        if a["queued"]:
            queued[a["messageId"]] = i
        else:
            assert a["error_code"] == "internal" and a["retry_after_ms"] > 0, a
            refused.append(i)
    assert n // 2 in refused, refused
    with b.sql() as conn:
        stored = {r[0] for r in conn.execute("SELECT id FROM message WHERE sender_member_id = ?",
                                             (alice_entry["memberId"],)).fetchall()}
        claimed = {r[0] for r in conn.execute("SELECT broker_message_id FROM client_message_dedupe"
                                              " WHERE mesh_id = ?", (m["id"],)).fetchall()}
        owed = {r[0] for r in conn.execute("SELECT message_id FROM delivery WHERE mesh_id = ?",
                                           (m["id"],)).fetchall()}
    assert stored == set(queued), (f"{len(set(queued) - stored)} acknowledged sends not stored, "
                                   f"{len(stored - set(queued))} stored but refused")
    assert claimed == stored and owed <= stored, (len(claimed - stored), len(owed - stored))
    print(f"figures: {len(refused)} of {n} sends refused with the one the database refused", flush=True)

    for i in refused:
        if i != n // 2:
            await alice.ws.send(json.dumps(frame(i)))
            a = await alice.expect("ack", id=f"s-{i}")
            assert a["queued"] is True and not a.get("duplicate"), a
            queued[a["messageId"]] = i
    got = []
    while len(got) < len(queued):
        p = await bob.expect("push", subtype=None)
        got.append(p["messageId"])
        await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
    assert sorted(got) == sorted(queued), (len(set(got)), len(queued))
    await bob.nothing("push", wait=0.5, subtype=None)


async def test_failed_write_undoes_no_ack(b):
    """The database refuses a message's own row."""
    await failed_write(b, "message")


async def test_failed_later_write_undoes_no_ack(b):
    """The database refuses a delivery row, after the message's row and its dedupe claim."""
    await failed_write(b, "delivery")


if __name__ == "__main__":
    bt.run([test_offline_store_and_forward, test_redelivery_after_receiver_dies, test_redelivery_after_lease,
            test_legacy_client_not_flooded, test_liveness_cut, test_replies_keep_their_order,
            test_many_sends_in_flight, test_failed_write_undoes_no_ack, test_failed_later_write_undoes_no_ack])
