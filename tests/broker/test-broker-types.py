#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The message types upstream's CLI sends besides send (issue 13): message_status,
topic_create, set_state/get_state/list_state and their limits, disconnect, kick, ban, unban,
list_bans, and the not_supported answer for remember/recall/apikey_create."""

import os
import re

import brokertest as bt

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


async def test_message_status(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"), session=False)
    bob = bt.Client(b, b.member(m["id"], "bob"), session=False)
    eve = bt.Client(b, b.member(m["id"], "eve"), session=False)
    for c in (alice, bob, eve):
        await c.hello(capabilities=["client_ack"])
    dm = await alice.send(bob.entry["pubkey"], "status?")
    await bob.expect("push", messageId=dm["messageId"])

    async def status(client, mid, req="st"):
        await client.send_json({"type": "message_status", "messageId": mid, "_reqId": req})
        while True:
            f = await client.expect_any(("message_status_result", "error"))
            if f.get("_reqId") == req:
                return f

    r = await status(alice, dm["messageId"])
    assert r == {"type": "message_status_result", "messageId": dm["messageId"], "targetSpec": bob.entry["pubkey"],
                 "delivered": False, "deliveredAt": None,
                 "recipients": [{"name": "bob", "pubkey": bob.entry["pubkey"], "status": "held"}],
                 "_reqId": "st"}, r
    await bob.send_json({"type": "client_ack", "brokerMessageId": dm["messageId"]})
    await bt.sync(bob)
    r = await status(alice, dm["messageId"][:12])    # a prefix
    assert r["delivered"] is True and r["deliveredAt"].endswith("Z") and r["messageId"] == dm["messageId"][:12], r
    assert r["recipients"][0]["status"] == "delivered", r
    # Only for its sender's member; bad ids are refused as upstream.
    r = await status(eve, dm["messageId"])
    assert r == {"type": "error", "code": "not_found", "message": "message not found", "_reqId": "st"}, r
    r = await status(alice, "short")
    assert r["code"] == "invalid_argument", r
    r = await status(alice, "x" * 8 + "%")
    assert r["code"] == "invalid_argument", r
    bcast = await alice.send("*", "all")
    r = await status(alice, bcast["messageId"])
    assert sorted(x["name"] for x in r["recipients"]) == ["bob", "eve"] and r["delivered"] is False, r


async def test_topic_create(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"), session=False)
    await alice.hello()
    await alice.send_json({"type": "topic_create", "name": "deploys", "description": "ship it", "_reqId": "t1"})
    t1 = await alice.expect("topic_created", _reqId="t1")
    assert list(t1) == ["type", "topic", "created", "_reqId"] and t1["created"] is True, t1
    assert t1["topic"]["name"] == "deploys" and t1["topic"]["visibility"] == "public", t1
    await alice.send_json({"type": "topic_create", "name": "deploys", "_reqId": "t2"})
    t2 = await alice.expect("topic_created", _reqId="t2")
    assert t2["created"] is False and t2["topic"]["id"] == t1["topic"]["id"], t2
    await alice.send_json({"type": "topic_list", "_reqId": "l"})
    topics = (await alice.expect("topic_list_response", _reqId="l"))["topics"]
    assert [(t["name"], t["description"]) for t in topics] == [("deploys", "ship it")], topics
    post = await alice.send("#" + t1["topic"]["id"], "deployed")
    assert post["queued"] is True, post
    await alice.send_json({"type": "topic_create", "name": "secret", "visibility": "private", "_reqId": "p"})
    e = await alice.expect("error", _reqId="p")
    assert e["code"] == "not_supported" and "not supported by this broker" in e["message"], e
    await alice.send_json({"type": "topic_create", "name": "a\nb", "_reqId": "bad"})
    assert (await alice.expect("error", _reqId="bad"))["code"] == "invalid_args"


async def test_state(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"), session=False)
    bob_entry = b.member(m["id"], "bob")
    bob = bt.Client(b, bob_entry, session=False)
    await alice.hello()
    await bob.hello()
    s = bt.SessionClient(b, bob_entry, display_name="bob-s")
    await s.hello()
    await alice.send_json({"type": "set_state", "key": "build", "value": {"ok": True, "n": 3}})
    for peer in (bob, s):
        ch = await peer.expect("state_change")
        assert ch == {"type": "state_change", "key": "build", "value": {"ok": True, "n": 3}, "updatedBy": "alice"}, ch
    await alice.nothing("state_change", wait=0.2)
    await s.send_json({"type": "set_state", "key": "a-first", "value": "x"})
    await s.send_json({"type": "get_state", "key": "build", "_reqId": "g"})
    g = await s.expect("state_result", _reqId="g")
    assert list(g) == ["type", "key", "value", "updatedBy", "updatedAt", "_reqId"], g
    assert g["value"] == {"ok": True, "n": 3} and g["updatedBy"] == "alice" and g["updatedAt"].endswith("Z"), g
    await s.send_json({"type": "get_state", "key": "nope", "_reqId": "n"})
    g = await s.expect("state_result", _reqId="n")
    assert g == {"type": "state_result", "key": "nope", "value": None, "updatedBy": "", "updatedAt": "",
                 "_reqId": "n"}, g
    await alice.send_json({"type": "list_state", "_reqId": "l"})
    entries = (await alice.expect("state_list", _reqId="l"))["entries"]
    assert [(e["key"], e["value"], e["updatedBy"]) for e in entries] == [("a-first", "x", "bob-s"),
                                                                        ("build", {"ok": True, "n": 3}, "alice")]

    # Limits: key size, value size, keys per mesh. A refused set changes nothing.
    await alice.send_json({"type": "set_state", "key": "k" * 257, "value": 1, "_reqId": "k"})
    assert (await alice.expect("error", _reqId="k"))["code"] == "invalid_args"
    await alice.send_json({"type": "set_state", "key": "big", "value": "v" * 16385, "_reqId": "v"})
    e = await alice.expect("error", _reqId="v")
    assert e["code"] == "value_too_large", e
    await alice.send_json({"type": "set_state", "key": "fits", "value": "v" * 16382, "_reqId": "f"})
    await alice.send_json({"type": "get_state", "key": "fits", "_reqId": "f2"})
    assert len((await alice.expect("state_result", _reqId="f2"))["value"]) == 16382
    for i in range(997):
        await alice.send_json({"type": "set_state", "key": f"k{i:04}", "value": i})
    await alice.send_json({"type": "set_state", "key": "one-too-many", "value": 1, "_reqId": "m"})
    e = await alice.expect("error", _reqId="m", timeout=30)
    assert e["code"] == "too_many_keys", e
    await alice.send_json({"type": "set_state", "key": "build", "value": "overwrite is fine", "_reqId": "o"})
    await alice.send_json({"type": "list_state", "_reqId": "l2"})
    entries = (await alice.expect("state_list", _reqId="l2", timeout=30))["entries"]
    assert len(entries) == 1000 and "one-too-many" not in [e["key"] for e in entries]
    assert not [f for f in alice.inbox if f.get("_reqId") == "o"], alice.inbox


async def test_kick_and_disconnect(b):
    m = b.mesh()
    admin = bt.Client(b, b.member(m["id"], "boss", "--role", "admin"), session=False)
    bob_entry = b.member(m["id"], "bob")
    bob = bt.Client(b, bob_entry, session=False)
    bob_s = bt.SessionClient(b, bob_entry, display_name="bob-s")
    plain = bt.Client(b, b.member(m["id"], "plain"), session=False)
    for c in (admin, bob, bob_s, plain):
        await c.hello()

    await plain.send_json({"type": "kick", "target": "bob", "_reqId": "x"})
    e = await plain.expect("error", _reqId="x")
    assert e == {"type": "error", "code": "forbidden", "message": "only owner or admin can kick", "_reqId": "x"}, e

    await admin.send_json({"type": "kick", "target": bob_entry["pubkey"][:16], "_reqId": "k"})
    k = await admin.expect("kick_ack", _reqId="k")
    assert k == {"type": "kick_ack", "kicked": ["bob-s"], "affected": ["bob-s"], "skipped_control_plane": ["bob"],
                 "_reqId": "k"}, k
    assert await bt.closed(bob_s) == (4001, "kicked")
    left = await plain.expect("push", event="peer_left")          # at once, no grace
    assert left["eventData"]["pubkey"] == bob_s.session_pubkey, left
    await bt.sync(bob)                                           # the daemon stays

    await admin.send_json({"type": "disconnect", "target": "bob", "_reqId": "d"})
    d = await admin.expect("disconnect_ack", _reqId="d")
    assert d == {"type": "disconnect_ack", "kicked": ["bob"], "affected": ["bob"], "_reqId": "d"}, d
    assert await bt.closed(bob) == (1000, "disconnected")
    await admin.send_json({"type": "kick", "_reqId": "n"})
    assert (await admin.expect("error", _reqId="n"))["code"] == "invalid"
    log = b.logtext()
    assert "boss kicked bob-s" in log and "boss disconnected bob" in log, log


async def test_ban_unban(b):
    m = b.mesh()
    admin = bt.Client(b, b.member(m["id"], "boss", "--role", "admin"), session=False)
    bob_entry = b.member(m["id"], "bob")
    bob = bt.Client(b, bob_entry, session=False)
    bob_s = bt.SessionClient(b, bob_entry)
    for c in (admin, bob, bob_s):
        await c.hello()
    await bob.send_json({"type": "ban", "target": "boss", "_reqId": "x"})
    assert (await bob.expect("error", _reqId="x"))["code"] == "forbidden"
    await admin.send_json({"type": "ban", "target": "boss", "_reqId": "self"})
    assert (await admin.expect("error", _reqId="self"))["message"] == "cannot ban yourself"
    await admin.send_json({"type": "ban", "target": "nobody", "_reqId": "nf"})
    assert (await admin.expect("error", _reqId="nf"))["code"] == "not_found"

    await admin.send_json({"type": "ban", "target": "bob", "_reqId": "b"})
    assert await admin.expect("ban_ack", _reqId="b") == {"type": "ban_ack", "banned": "bob", "_reqId": "b"}
    assert await bt.closed(bob) == (4002, "banned")
    assert await bt.closed(bob_s) == (4002, "banned")
    # Banned: neither the member nor a session of it gets back in.
    again = bt.Client(b, bob_entry, session=False)
    await again.connect()
    await again.send_json(again.hello_frame())
    assert (await again.expect("error"))["code"] == "revoked"
    assert await bt.closed(again) == (4002, "banned")
    s2 = bt.SessionClient(b, bob_entry)
    await s2.connect()
    await s2.send_json(s2.session_hello_frame())
    assert (await s2.expect("error"))["code"] == "revoked"
    assert await bt.closed(s2) == (4002, "banned")

    await admin.send_json({"type": "list_bans", "_reqId": "l"})
    bans = await admin.expect("list_bans_result", _reqId="l")
    assert [(x["name"], x["pubkey"]) for x in bans["bans"]] == [("bob", bob_entry["pubkey"])], bans
    assert bans["bans"][0]["revokedAt"].endswith("Z")
    await admin.send_json({"type": "unban", "target": "bob", "_reqId": "u"})
    assert await admin.expect("unban_ack", _reqId="u") == {"type": "unban_ack", "unbanned": "bob", "_reqId": "u"}
    await bt.Client(b, bob_entry, session=False).hello()
    await bt.SessionClient(b, bob_entry).hello()
    await admin.send_json({"type": "unban", "target": "bob", "_reqId": "u2"})
    assert (await admin.expect("error", _reqId="u2"))["code"] == "not_found"
    log = b.logtext()
    assert "boss banned member bob" in log and "boss unbanned member bob" in log, log


async def test_not_supported(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"), session=False)
    await alice.hello()
    for t, extra in (("remember", {"content": "x"}), ("recall", {"query": "x"}),
                     ("apikey_create", {"label": "ci", "capabilities": ["send"]})):
        await alice.send_json({"type": t, **extra, "_reqId": t})
        e = await alice.expect("error", _reqId=t)
        assert e["code"] == "not_supported" and e["message"].startswith(f"{t} is not supported by this broker ("), e
    # Truly unknown types still get unknown_type.
    await alice.send_json({"type": "frobnicate", "_reqId": "f"})
    assert (await alice.expect("error", _reqId="f"))["code"] == "unknown_type"


async def test_moderation_message_ids_in_catalog(b):
    """Every broker MESSAGE_ID (moderation, LISTEN lost and back) has a journal catalog entry naming
    claudemesh-broker(8)."""
    ids = re.findall(r'^#define CM_MESSAGE_BROKER_[A-Z_]+ +"([0-9a-f]{32})"$',
                     open(os.path.join(SOURCE, "src/shared/message-ids.h")).read(), re.M)
    catalog = open(os.path.join(SOURCE, "units/claudemesh.catalog")).read()
    assert len(ids) == 6, ids
    for i in ids:
        entry = catalog.split(f"-- {i}\n", 1)
        assert len(entry) == 2 and "man:claudemesh-broker(8)" in entry[1].split("\n-- ", 1)[0], i


if __name__ == "__main__":
    bt.run([test_message_status, test_topic_create, test_state, test_kick_and_disconnect, test_ban_unban,
            test_not_supported, test_moderation_message_ids_in_catalog])
