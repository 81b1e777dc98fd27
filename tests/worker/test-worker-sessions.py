#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""claudemesh-worker's session connections (issue 14) against our broker: session_open gives each
session its own presence (session_hello signed by the daemon end, attestation first), frames are
routed by conn, session_close ends only that presence, a broker restart brings every connection
back with a fresh attestation, bad opens are refused, a refused signature fails only its own
connection, and the 256-session bound."""

import asyncio
import time
import uuid

import workertest as wt
from workertest import bt


def setup(b, workers, **kw):
    b._mesh = b.mesh()
    w = wt.Worker(b.member(b._mesh["id"], "alice"), b.url, **kw).spawn()
    workers.append(w)
    return w


async def watcher(b, name="bob"):
    c = bt.Client(b, b.member(b._mesh["id"], name), session=False)
    await c.hello()
    return c


async def peers(client):
    rid = f"lp-{uuid.uuid4()}"
    await client.send_json({"type": "list_peers", "_reqId": rid})
    return (await client.expect("peers_list", _reqId=rid))["peers"]


async def open_connected(w, conn, **kw):
    s = w.open_session(conn, **kw)
    ack = await w.expect("hello_ack", conn=conn)
    await w.connected(conn=conn)
    return s, ack


async def test_sessions_have_presences(b, workers):
    w = setup(b, workers)
    await w.connected()
    s1, ack1 = await open_connected(w, 1, name="agent-one")
    s2, ack2 = await open_connected(w, 2, groups=[{"name": "ops"}])
    assert ack1["presence_id"] != ack2["presence_id"], (ack1, ack2)
    # two signatures per connect, the attestation first, its expiry 12 h after the hello
    for s in (s1, s2):
        assert [k for k, _, _ in s.signed] == ["attest", "hello"], s.signed
        assert s.signed[0][1] - s.signed[1][1] == 12 * 3600 * 1000, s.signed
    assert not w.bad_sign, w.bad_sign

    bob = await watcher(b)
    rows = {p["pubkey"]: p for p in await peers(bob)}
    assert rows[s1.pubkey]["peerRole"] == "session" and rows[s1.pubkey]["displayName"] == "agent-one", rows
    assert rows[s1.pubkey]["memberPubkey"] == w.entry["pubkey"] and rows[s1.pubkey]["sessionId"] == s1.session_id
    assert rows[s2.pubkey]["peerRole"] == "session" and rows[s2.pubkey]["groups"] == [{"name": "ops"}], rows
    assert rows[w.routing_key]["peerRole"] == "control-plane", rows


async def test_frames_routed_by_conn(b, workers):
    w = setup(b, workers, session=False)
    await w.connected()
    s1, _ = await open_connected(w, 1)
    s2, _ = await open_connected(w, 2)
    bob = await watcher(b)
    w.flush()

    # broker → worker: each push comes up on the connection it was addressed to
    await bob.send(s2.pubkey, "to two")
    p = await w.expect("frame", frame=lambda f: f["type"] == "push" and f["senderPubkey"] == bob.routing_key)
    assert p.get("conn") == 2 and p["frame"]["ciphertext"] == bt.b64(b"to two"), p

    # worker → broker: a frame sent on conn 1 leaves from session one's presence, its ack comes back on conn 1
    sid = str(uuid.uuid4())
    w.frame({"type": "send", "id": sid, "targetSpec": bob.routing_key, "priority": "next",
             "nonce": bt.b64(bytes(24)), "ciphertext": bt.b64(b"from one")}, conn=1)
    push = await bob.expect("push", senderPubkey=s1.pubkey)
    assert push["ciphertext"] == bt.b64(b"from one"), push
    ack = await w.expect("frame", frame=lambda f: f["type"] == "ack" and f["id"] == sid)
    assert ack.get("conn") == 1, ack

    # a request's reply on the connection that asked
    w.frame({"type": "list_peers", "_reqId": "on-two"}, conn=2)
    pl = await w.expect("frame", frame=lambda f: f.get("_reqId") == "on-two")
    assert pl.get("conn") == 2, pl
    # a frame for a connection that is not open goes nowhere
    w.frame({"type": "list_peers", "_reqId": "on-nine"}, conn=9)
    await w.nothing("frame", 1, frame=lambda f: f.get("_reqId") == "on-nine")
    assert await w.logged("conn 9: no such connection"), w.log()


async def test_session_close_ends_only_that_presence(b, workers):
    w = setup(b, workers)
    await w.connected()
    s1, _ = await open_connected(w, 1)
    s2, _ = await open_connected(w, 2)
    bob = await watcher(b)
    w.flush()
    t0 = time.monotonic()
    w.close_session(1)
    left = await bob.expect("push", event="peer_left")
    assert left["eventData"]["pubkey"] == s1.pubkey, left
    keys = {p["pubkey"] for p in await peers(bob)}
    assert s1.pubkey not in keys and {s2.pubkey, w.routing_key} <= keys, keys
    # forgotten: nothing more about conn 1, the others untouched
    await w.nothing("state", 1.5, conn=1)
    assert not [p for p in w.packets if p["type"] == "state" and p["_t"] >= t0], w.packets
    # the number can be used again at once, by another session
    s3, _ = await open_connected(w, 1, name="again")
    assert s3.pubkey in {p["pubkey"] for p in await peers(bob)}
    assert not w.bad_sign, w.bad_sign
test_session_close_ends_only_that_presence.broker_args = ["--presence-grace", "0"]


async def test_broker_restart_fresh_attestations(b, workers):
    w = setup(b, workers)
    await w.connected()
    sessions = [(await open_connected(w, conn))[0] for conn in (1, 2, 3)]
    before = {s.conn: list(s.signed) for s in sessions}
    member_before = len(w.signed)
    w.flush()
    await asyncio.to_thread(b.stop)
    await asyncio.to_thread(b.start)
    await w.connected(30)
    for s in sessions:
        await w.connected(30, conn=s.conn)
    assert len(w.signed) > member_before
    for s in sessions:
        new = s.signed[len(before[s.conn]):]
        assert [k for k, _, _ in new][-2:] == ["attest", "hello"], new
        old_exp = max(v for k, v, _ in before[s.conn] if k == "attest")
        old_ts = max(v for k, v, _ in before[s.conn] if k == "hello")
        assert new[-2][1] > old_exp and new[-1][1] > old_ts, (before[s.conn], new)
        assert {r for _, _, r in new}.isdisjoint({r for _, _, r in before[s.conn]}), new
    bob = await watcher(b)
    keys = {p["pubkey"] for p in await peers(bob)}
    assert {s.pubkey for s in sessions} <= keys, keys
    assert not w.bad_sign, w.bad_sign


async def test_bad_opens_refused(b, workers):
    w = setup(b, workers)
    await w.connected()
    s1, _ = await open_connected(w, 1)
    w.flush()
    # out of range
    w.send({"type": "session_open", "conn": 257, "session_pubkey": s1.pubkey, "session_id": "x",
            "display_name": "x", "pid": 1})
    st = await w.state("failed", conn=257)
    assert "out of range" in st["detail"], st
    # conn 0 is the member's: refused without a word about the member
    w.send({"type": "session_open", "conn": 0, "session_pubkey": s1.pubkey, "session_id": "x",
            "display_name": "x", "pid": 1})
    assert await w.logged("sessions are 1"), w.log()
    # already open: refused, and the open one keeps working
    w.open_session(1, name="duplicate")
    st = await w.state("failed", conn=1)
    assert "already open" in st["detail"], st
    w.frame({"type": "list_peers", "_reqId": "still"}, conn=1)
    pl = await w.expect("frame", frame=lambda f: f.get("_reqId") == "still")
    assert pl.get("conn") == 1, pl
    # a bad field
    w.send({"type": "session_open", "conn": 5, "session_pubkey": s1.pubkey.upper(), "session_id": "x",
            "display_name": "x", "pid": 1})
    st = await w.state("failed", conn=5)
    assert "lowercase hex" in st["detail"], st
    w.send({"type": "session_open", "conn": 6, "session_pubkey": "ab" * 32, "session_id": "a\nb",
            "display_name": "x", "pid": 1})
    st = await w.state("failed", conn=6)
    assert "control characters" in st["detail"], st
    # none of this touched the member's connection
    assert not [p for p in w.pending if p["type"] == "state" and "conn" not in p], w.pending
    await w.nothing("state", 1, conn=None)


async def test_refused_signature_fails_only_its_connection(b, workers):
    w = setup(b, workers)
    await w.connected()
    good, _ = await open_connected(w, 2)
    w.flush()
    t0 = time.monotonic()
    bad = w.open_session(1, refuse="no such session")
    st = await w.state("backoff", conn=1)
    assert "refused to sign the session attestation: no such session" in st["detail"], st
    assert [k for k, _, _ in bad.signed] == ["attest"], bad.signed
    # the hello refused after the attestation was signed: the same, for that connection only
    half = w.open_session(3, refuse="hello refused", refuse_only="hello")
    st = await w.state("backoff", conn=3)
    assert "refused to sign the session hello: hello refused" in st["detail"], st
    assert [k for k, _, _ in half.signed] == ["attest", "hello"], half.signed
    # the others keep working, and said nothing meanwhile
    w.frame({"type": "list_peers", "_reqId": "good"}, conn=2)
    await w.expect("frame", frame=lambda f: f.get("_reqId") == "good")
    w.frame({"type": "list_peers", "_reqId": "member"})
    await w.expect("frame", frame=lambda f: f.get("_reqId") == "member")
    assert not [p for p in w.packets if p["type"] == "state" and p.get("conn") in (None, 2) and p["_t"] >= t0], \
        w.packets


async def test_256_sessions(b, workers):
    w = setup(b, workers, session=False)
    await w.connected()
    n = wt.SESSIONS_MAX
    # every join is pushed to every other connection: n² frames nobody here reads
    w.keep_frames = False
    up = set()
    # all at once, as after a broker restart: the worker takes turns (16 handshakes at a time)
    # so that the broker's gate (32 unauthenticated connections per address) never leaves one
    # unanswered until a timeout and a backoff
    for conn in range(1, n + 1):
        w.open_session(conn)
    while len(up) < n:
        up.add((await w.state("connected", 120, conn=lambda c: c is not None))["conn"])
    assert up == set(range(1, n + 1)), up
    assert not [p for p in w.packets if p["type"] == "state" and p["state"] != "connecting" and p["state"] != "connected"]
    bob = await watcher(b)
    rows = [p for p in await peers(bob) if p["peerRole"] == "session"]
    assert len(rows) == n, len(rows)
    w.open_session(n + 1)
    st = await w.state("failed", conn=n + 1)
    assert "out of range" in st["detail"], st
    assert not w.bad_sign, w.bad_sign
test_256_sessions.broker_args = ["--max-connections-per-mesh", "400"]


if __name__ == "__main__":
    wt.run([test_sessions_have_presences, test_frames_routed_by_conn, test_session_close_ends_only_that_presence,
            test_broker_restart_fresh_attestations, test_bad_opens_refused,
            test_refused_signature_fails_only_its_connection, test_256_sessions])
