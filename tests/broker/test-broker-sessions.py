#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""session_hello (issue 13, wire-protocol-head §2-§7) with real WebSocket clients: every
rejection code in upstream's order, a session as its own presence, peer roles, one presence
per session key (replacement, grace reattach), leases re-pushed by the timer."""

import asyncio
import time

import nacl.signing

import brokertest as bt

HOUR_MS = 3600 * 1000


def now_ms():
    return int(time.time() * 1000)


def flip(sig):
    return ("0" if sig[0] != "0" else "1") + sig[1:]


async def expect_rejected(b, session, code, message, close_code=1008, reason=None, **frame_args):
    await session.connect()
    await session.send_json(session.session_hello_frame(**frame_args))
    err = await session.expect("error")
    assert err == {"type": "error", "code": code, "message": message}, err
    got = await bt.closed(session)
    assert got == (close_code, reason or code), (code, got)
    session.ws = None


async def expect_joined(client, pubkey):
    while True:
        j = await client.expect("push", event="peer_joined")
        if j["eventData"]["pubkey"] == pubkey:
            return j


async def test_session_hello_ack_and_peer_joined(b):
    m = b.mesh()
    alice_entry = b.member(m["id"], "alice")
    daemon = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, b.member(m["id"], "bob"), session=False)
    await daemon.hello()
    await bob.hello()
    s = bt.SessionClient(b, alice_entry, display_name="alice-session")
    ack = await s.hello()
    assert list(ack) == ["type", "presenceId", "memberDisplayName", "memberProfile", "meshPolicy", "features"], ack
    assert ack["meshPolicy"] == {"selfEditable": {"groups": True, "roleTag": True, "displayName": True,
                                                  "messageMode": True}}, ack
    assert len(ack["presenceId"]) == 32 and ack["memberDisplayName"] == "alice-session", ack
    assert ack["memberProfile"] == {"roleTag": None, "groups": [], "messageMode": "push"}, ack
    assert "services" not in ack and "client_ack" in ack["features"], ack
    # peer_joined reaches every other connection, the same member's daemon included.
    for watcher in (daemon, bob):
        j = await expect_joined(watcher, s.session_pubkey)
        assert j["eventData"] == {"name": "alice-session", "pubkey": s.session_pubkey, "groups": []}, j
        assert j["senderPubkey"] == "system" and j["subtype"] == "system", j
    # Without displayName the member's name is used.
    s2 = bt.SessionClient(b, alice_entry)
    assert (await s2.hello())["memberDisplayName"] == "alice"


async def test_session_hello_rejections(b):
    """Every code of §2/§6 with its message and close, in upstream's order; none leaves a
    presence (no peer_joined, not listed)."""
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    bob = b.member(m["id"], "bob")
    watcher = bt.Client(b, b.member(m["id"], "watcher"), session=False)
    await watcher.hello()
    S = lambda entry=alice: bt.SessionClient(b, entry)  # noqa: E731

    s = S()
    await expect_rejected(b, s, "bad_session_pubkey", "sessionPubkey must be 64 lowercase hex chars",
                          sessionPubkey=s.session_pubkey.upper())
    await expect_rejected(b, S(), "bad_session_pubkey", "sessionPubkey must be 64 lowercase hex chars",
                          sessionPubkey=12)
    await expect_rejected(b, S(), "bad_parent_pubkey", "parentMemberPubkey must be 64 lowercase hex chars",
                          parentMemberPubkey=alice["pubkey"].upper())
    other = nacl.signing.SigningKey.generate().verify_key.encode().hex()
    await expect_rejected(b, S(), "attestation_mismatch",
                          "parentAttestation does not bind the claimed session+parent pubkeys",
                          attestation={"sessionPubkey": other})
    await expect_rejected(b, S(), "attestation_mismatch",
                          "parentAttestation does not bind the claimed session+parent pubkeys", parentAttestation="x")
    await expect_rejected(b, S(), "malformed", "attestation rejected: malformed", attestation={"expiresAt": "soon"})
    await expect_rejected(b, S(), "expired", "attestation rejected: expired", expires_at=now_ms() - 1000)
    await expect_rejected(b, S(), "ttl_too_long", "attestation rejected: ttl_too_long", expires_at=now_ms() + 25 * HOUR_MS)
    s = S()
    bad_att = flip(s.session_hello_frame()["parentAttestation"]["signature"])
    await expect_rejected(b, s, "bad_signature", "attestation rejected: bad_signature",
                          attestation={"signature": bad_att})
    # An attestation signed by the session key instead of the parent's.
    s = S()
    exp = now_ms() + HOUR_MS
    self_signed = s.session_key.sign(
        f"claudemesh-session-attest|{alice['pubkey']}|{s.session_pubkey}|{exp}".encode()).signature.hex()
    await expect_rejected(b, s, "bad_signature", "attestation rejected: bad_signature", expires_at=exp,
                          attestation={"signature": self_signed})
    await expect_rejected(b, S(), "timestamp_skew", "session_hello rejected: timestamp_skew", timestamp=now_ms() - 61000)
    await expect_rejected(b, S(), "timestamp_skew", "session_hello rejected: timestamp_skew", timestamp=now_ms() + 61000)
    s = S()
    await expect_rejected(b, s, "bad_signature", "session_hello rejected: bad_signature",
                          signature=flip(s.session_hello_frame()["signature"]))
    await expect_rejected(b, S(), "malformed", "session_hello rejected: malformed", signature="zz")
    # Attestation before session signature: both wrong reports the attestation.
    await expect_rejected(b, S(), "expired", "attestation rejected: expired", expires_at=now_ms() - 1000,
                          timestamp=now_ms() - 120000)
    stranger = {"meshId": m["id"], "memberId": "nobody", **{k: v for k, v in bt_member_keys().items()}}
    await expect_rejected(b, S(stranger), "unauthorized", "parent pubkey not found in mesh", parentMemberId=None)
    await expect_rejected(b, S(), "parent_member_id_mismatch", "parentMemberId does not match parentMemberPubkey",
                          parentMemberId=bob["memberId"])
    b.admin("member", "revoke", m["id"], "bob")
    await expect_rejected(b, S(bob), "revoked", 'You\'ve been removed from "acme". Contact the mesh owner to rejoin.',
                          close_code=4002, reason="banned")
    # A replayed session_hello is refused even though its signatures verify.
    s = S()
    frame = s.session_hello_frame()
    await s.connect()
    await s.send_json(frame)
    await s.expect("hello_ack")
    replay = bt.SessionClient(b, alice, session_key=s.session_key)
    await replay.connect()
    await replay.send_json(frame)
    err = await replay.expect("error")
    assert err["code"] == "replayed", err
    assert await bt.closed(replay) == (1008, "replayed")

    # The bounds: 23h59m and -55 s are accepted.
    await S().hello(expires_at=now_ms() + 24 * HOUR_MS - 60000)
    await S().hello(timestamp=now_ms() - 55000)

    # No half presence: the watcher saw exactly the three accepted sessions join.
    peers = (await bt.sync(watcher))["peers"]
    assert sum(p["peerRole"] == "session" for p in peers) == 3, peers
    joined = [f for f in watcher.inbox if f.get("event") == "peer_joined"]
    assert len(joined) == 3, joined


def bt_member_keys():
    key = nacl.signing.SigningKey.generate()
    return {"pubkey": key.verify_key.encode().hex(), "secretKey": (key.encode() + key.verify_key.encode()).hex()}


async def test_session_capacity(b):
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    await bt.SessionClient(b, alice).hello()
    await expect_rejected(b, bt.SessionClient(b, alice), "capacity", "mesh at connection capacity")
test_session_capacity.broker_args = ["--max-connections-per-mesh", "1"]


async def test_session_is_its_own_presence(b):
    m = b.mesh()
    alice_entry = b.member(m["id"], "alice")
    bob_entry = b.member(m["id"], "bob")
    daemon = bt.Client(b, alice_entry, session=False)
    legacy = bt.Client(b, bob_entry)              # a member hello carrying sessionPubkey
    await daemon.hello()
    await legacy.hello()
    s1 = bt.SessionClient(b, alice_entry, display_name="a1")
    s2 = bt.SessionClient(b, alice_entry, display_name="a2")
    await s1.hello()
    await s2.hello()

    rows = {p["displayName"]: p for p in (await bt.sync(legacy))["peers"]}
    assert rows["alice"]["peerRole"] == "control-plane" and rows["alice"]["pubkey"] == alice_entry["pubkey"]
    assert rows["bob"]["peerRole"] == "control-plane" and rows["bob"]["pubkey"] == legacy.session_pubkey
    assert rows["bob"]["memberPubkey"] == bob_entry["pubkey"]
    assert rows["a1"]["peerRole"] == "session" and rows["a1"]["pubkey"] == s1.session_pubkey
    assert rows["a1"]["memberPubkey"] == alice_entry["pubkey"], rows
    keys = list(rows["a1"])
    assert keys[:10] == ["pubkey", "memberPubkey", "displayName", "status", "summary", "groups", "sessionId",
                         "connectedAt", "cwd", "peerRole"], keys

    # A DM sealed to s1's key reaches s1 only.
    dm = await legacy.send(s1.session_pubkey, "to s1", client_message_id="same-id")
    p = await s1.expect("push", messageId=dm["messageId"])
    assert p["senderPubkey"] == legacy.session_pubkey
    for other in (s2, daemon):
        await other.nothing("push", wait=0.3, messageId=dm["messageId"])
    # What a session sends carries its own key; its dedupe scope is its key (DECISIONS 17):
    # the same client_message_id from the daemon and from each session names three messages.
    acks = [await c.send(legacy.session_pubkey, "x", client_message_id="shared") for c in (s1, s2, daemon)]
    assert all(a["queued"] and a["duplicate"] is False for a in acks), acks
    pushes = [await legacy.expect("push", messageId=a["messageId"]) for a in acks]
    assert [p["senderPubkey"] for p in pushes] == [s1.session_pubkey, s2.session_pubkey, alice_entry["pubkey"]]
    retry = await s1.send(legacy.session_pubkey, "x", client_message_id="shared")
    assert retry["duplicate"] is True and retry["messageId"] == acks[0]["messageId"], retry
    with b.sql() as conn:
        scopes = {r[0] for r in conn.execute(
            "SELECT sender_scope FROM client_message_dedupe WHERE client_message_id = 'shared'")}
    assert scopes == {s1.session_pubkey, s2.session_pubkey, alice_entry["memberId"]}, scopes

    # Status, summary and profile are per session.
    await s1.send_json({"type": "set_status", "status": "working"})
    await s1.send_json({"type": "set_summary", "summary": "busy in s1"})
    await s1.send_json({"type": "set_profile", "title": "s1 title", "_reqId": "pf"})
    await s1.expect("ack", _reqId="pf")
    rows = {p["displayName"]: p for p in (await bt.sync(legacy))["peers"]}
    assert rows["a1"]["status"] == "working" and rows["a1"]["summary"] == "busy in s1", rows["a1"]
    assert rows["a1"]["profile"] == {"title": "s1 title"}, rows["a1"]
    assert rows["a2"]["status"] == "idle" and rows["a2"]["summary"] is None and "profile" not in rows["a2"]
    assert rows["alice"]["status"] == "idle"


async def test_session_replacement(b):
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    watcher = bt.Client(b, b.member(m["id"], "bob"), session=False)
    await watcher.hello()
    s = bt.SessionClient(b, alice, display_name="a")
    first = await s.hello()
    await watcher.expect("push", event="peer_joined")
    await s.send_json({"type": "set_summary", "summary": "kept"})
    await bt.sync(s)

    # Same key, another connection (another sessionId too): reattach.
    again = bt.SessionClient(b, alice, session_key=s.session_key, display_name="a")
    ack = await again.hello()
    assert ack["presenceId"] == first["presenceId"] and "memberProfile" not in ack, ack
    assert await bt.closed(s) == (1000, "session_replaced")
    await watcher.nothing("push", wait=0.3, event="peer_joined")
    dm = await watcher.send(s.session_pubkey, "to the new socket")
    await again.expect("push", messageId=dm["messageId"])
    rows = [p for p in (await bt.sync(watcher))["peers"] if p["peerRole"] == "session"]
    assert len(rows) == 1 and rows[0]["summary"] == "kept", rows

    # Same sessionId, another key: the presence is taken over too (issue 13).
    third = bt.SessionClient(b, alice, session_id=again.session_id, display_name="a")
    ack = await third.hello()
    assert ack["presenceId"] == first["presenceId"], ack
    assert await bt.closed(again) == (1000, "session_replaced")
    await watcher.nothing("push", wait=0.3, event="peer_joined")
    rows = [p for p in (await bt.sync(watcher))["peers"] if p["peerRole"] == "session"]
    assert [r["pubkey"] for r in rows] == [third.session_pubkey], rows

    # Another member's session with that sessionId does not replace it.
    bob_session = bt.SessionClient(b, watcher.entry, session_id=third.session_id)
    await bob_session.hello()
    await bt.sync(third)
    assert third.ws.close_code is None


async def test_grace_reattach_delivers(b):
    """A session in its close grace: a DM to it is accepted and delivered to its reattached
    connection, which keeps its presenceId and is not announced again; after the grace,
    peer_left."""
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    watcher = bt.Client(b, b.member(m["id"], "bob"), session=False)
    await watcher.hello()
    s = bt.SessionClient(b, alice)
    first = await s.hello()
    await watcher.expect("push", event="peer_joined")
    s.ws.transport.abort()
    await asyncio.sleep(0.3)
    dm = await watcher.send(s.session_pubkey, "while in grace")
    assert dm["queued"] is True, dm
    back = bt.SessionClient(b, alice, session_key=s.session_key)
    ack = await back.hello()
    assert ack["presenceId"] == first["presenceId"] and "memberProfile" not in ack, ack
    p = await back.expect("push", messageId=dm["messageId"])
    assert bt.base64.b64decode(p["ciphertext"]) == b"while in grace"
    await watcher.nothing("push", wait=0.3, event="peer_joined")
    await watcher.nothing("push", wait=0.1, event="peer_left")
    # Gone for good: peer_left once the grace ends.
    back.ws.transport.abort()
    left = await watcher.expect("push", event="peer_left", timeout=6)
    assert left["eventData"]["pubkey"] == s.session_pubkey, left
test_grace_reattach_delivers.broker_args = ["--presence-grace", "2"]


async def test_lease_repushed_by_timer(b):
    """An unacknowledged push is pushed again when its lease runs out, with no other trigger;
    an acknowledged one is not."""
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    sender = bt.Client(b, b.member(m["id"], "bob"), session=False)
    await sender.hello()
    s = bt.SessionClient(b, alice)
    await s.hello()
    dm = await sender.send(s.session_pubkey, "lease me", client_message_id="cm-1")
    await s.expect("push", messageId=dm["messageId"])
    again = await s.expect("push", messageId=dm["messageId"], timeout=4)
    assert again["client_message_id"] == "cm-1", again
    await s.send_json({"type": "client_ack", "clientMessageId": "cm-1", "brokerMessageId": dm["messageId"]})
    await s.nothing("push", wait=2.5, messageId=dm["messageId"])
    await sender.send_json({"type": "message_status", "messageId": dm["messageId"], "_reqId": "st"})
    st = await sender.expect("message_status_result", _reqId="st")
    assert st["delivered"] is True and st["recipients"][0]["status"] == "delivered", st
test_lease_repushed_by_timer.broker_args = ["--lease-seconds", "1"]


async def test_member_hello_replaced_and_roles(b):
    """Member hellos stay control-plane; a second member hello with the same sessionId replaces
    the first (1000 session_replaced) and never touches the member's sessions."""
    m = b.mesh()
    alice = b.member(m["id"], "alice")
    d1 = bt.Client(b, alice, session=False, session_id="daemon-1")
    await d1.hello()
    s = bt.SessionClient(b, alice, session_id="daemon-1")
    await s.hello()
    d2 = bt.Client(b, alice, session=False, session_id="daemon-1")
    ack = await d2.hello()
    assert "memberProfile" in ack and ack["services"] == [], ack
    assert await bt.closed(d1) == (1000, "session_replaced")
    roles = sorted(p["peerRole"] for p in (await bt.sync(d2))["peers"])
    assert roles == ["control-plane", "session"], roles


if __name__ == "__main__":
    bt.run([test_session_hello_ack_and_peer_joined, test_session_hello_rejections, test_session_capacity,
            test_session_is_its_own_presence, test_session_replacement, test_grace_reattach_delivers,
            test_lease_repushed_by_timer, test_member_hello_replaced_and_roles])
