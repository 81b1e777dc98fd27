#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""claudemesh-worker against a scripted stand-in for the UPSTREAM broker (python3-websockets):
the exact hello it sends, no subprotocol, pushes before hello_ack, no feature bits, frame
validation (only valid hello_ack/ack/push/peers_list/error frames reach the daemon), hello
rejections backing off, 4001, the hello_ack timeout, the close code the daemon asks for, and
the frame size limit in both directions, and a session connection's session_hello checked as
upstream's broker checks it."""

import asyncio
import json
import os
import re
import time

import nacl.signing
import websockets

import workertest as wt
import tap  # noqa: E402  (on the path through workertest)
from workertest import bt

KEY = nacl.signing.SigningKey.generate()
PUB = KEY.verify_key.encode().hex()
ENTRY = {"meshId": "M" * 32, "memberId": "U" * 32, "pubkey": PUB,
         "secretKey": (KEY.encode() + KEY.verify_key.encode()).hex()}
HEX = "ab" * 32


def push(mid, **kw):
    f = {"type": "push", "messageId": mid, "meshId": ENTRY["meshId"], "senderPubkey": HEX, "priority": "next",
         "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(b"hi"), "createdAt": "2026-05-03T19:24:32.123Z"}
    f.update(kw)
    return f


class Fake:
    """A WebSocket server on a free port; script(ws) runs per connection."""

    def __init__(self, script):
        self.script = script
        self.port = bt.free_port()
        self.connections = []
        self.server = None

    async def handler(self, ws, path=None):
        self.connections.append(ws)
        try:
            await self.script(self, ws)
        except websockets.ConnectionClosed:
            pass

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", self.port, ping_interval=None,
                                             max_size=None)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws"


async def hello(ws):
    h = json.loads(await ws.recv())
    assert h["type"] == "hello", h
    return h


def ack():
    return {"type": "hello_ack", "presenceId": "P" * 32, "memberDisplayName": "alice",
            "memberProfile": {"roleTag": None, "groups": [], "messageMode": "push"}, "services": []}


async def test_upstream_hello_and_validation(workers):
    seen = {}
    valid = [
        push("before-ack"),
        {"type": "error", "code": "x-valid", "message": "ok"},
        {"type": "ack", "id": "s1", "messageId": "Q" * 32, "queued": True},
        {"type": "ack", "id": "s2", "messageId": "", "queued": False,
         "error": "rate_limit: max 60 msg/min (burst 10) — slow down"},
        push("system", subtype="system", event="peer_joined", eventData={"name": "bob", "pubkey": HEX},
             senderPubkey="system", nonce="", ciphertext="", priority="low"),
        push("webhook", senderPubkey="webhook:ci", subtype="webhook", event="ci"),
        push("with-ids", client_message_id="c-1", request_fingerprint="AB" * 32),
        {"type": "peers_list", "_reqId": "pl", "peers": [{"pubkey": HEX, "memberPubkey": HEX, "displayName": "b",
                                                          "summary": None, "groups": [], "visible": True}]},
    ]
    invalid = [
        "not json", '["array"]', '{"type": 5}', '{"no": "type"}', '{"type":"push"} trailing',
        json.dumps(push("bad-sender", senderPubkey="AB" * 32)),
        json.dumps(push("bad-nonce", nonce="not base64!")),
        json.dumps(push("bad-fp", request_fingerprint="ab" * 31)),
        json.dumps(push("", )),
        json.dumps(push("bad-priority", priority="urgent")),
        json.dumps({"type": "ack", "id": "s3", "messageId": "x"}),
        json.dumps({"type": "error", "message": "no code"}),
        json.dumps({"type": "peers_list", "peers": [{"pubkey": "AB" * 32}]}),
        json.dumps({"type": "peers_list", "peers": "none"}),
        json.dumps({"type": "state_change", "key": "k", "value": 1}),
        json.dumps(push("huge", ciphertext="A" * 70000)),
        b'{"type":"error","code":"binary"}',
    ]

    async def script(fake, ws):
        seen["path"] = ws.path
        seen["protocol"] = ws.request_headers.get("Sec-WebSocket-Protocol")
        h = seen["hello"] = await hello(ws)
        await ws.send(json.dumps(valid[0]))
        await ws.send(json.dumps(ack()))  # no "features": a legacy broker
        for v, i in zip(valid[1:] + [None] * len(invalid), invalid):
            await ws.send(i)
            if v:
                await ws.send(json.dumps(v))
        await ws.send(json.dumps({"type": "error", "code": "end"}))
        # the daemon's frames come through as text messages
        seen["sent"] = json.loads(await ws.recv())
        seen["after-huge"] = json.loads(await ws.recv())
        await ws.wait_closed()

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url, display_name="box-c").spawn()
        workers.append(w)
        frames = []
        while True:
            p = await w.expect("frame")
            frames.append(p["frame"])
            if p["frame"].get("code") == "end":
                break
        a = await w.expect("hello_ack")
        assert a["features"] is None and a["presence_id"] == "P" * 32, a
        await w.connected()
        got = [f.get("messageId", f.get("code", f.get("id", f.get("_reqId")))) for f in frames[:-1]]
        want = [f.get("messageId", f.get("code", f.get("id", f.get("_reqId")))) for f in valid]
        # the push before hello_ack stays first; the rest in order
        assert got == want, (got, want)
        # stderr is read by its own task, which may lag behind the channel on a loaded machine
        def drops_logged():
            return (sum("Dropped an invalid broker frame" in l for l in w.stderr) >= len(invalid) - 3 and
                    any("binary" in l for l in w.stderr) and any("over 65536" in l for l in w.stderr))
        for _ in range(100):
            if drops_logged():
                break
            await asyncio.sleep(0.05)
        assert drops_logged(), w.log()

        w.frame({"type": "set_summary", "summary": "é/\"x"})
        w.frame({"type": "set_summary", "summary": "x" * 70000})
        w.frame({"type": "set_summary", "summary": "after"})
        for _ in range(50):
            if "after-huge" in seen:
                break
            await asyncio.sleep(0.1)

    h = seen["hello"]
    assert seen["path"] == "/ws" and seen["protocol"] is None, seen
    assert set(h) == {"type", "meshId", "memberId", "pubkey", "sessionPubkey", "displayName", "sessionId", "pid",
                      "cwd", "hostname", "peerType", "channel", "capabilities", "timestamp", "signature"}, h
    assert h["peerType"] == "ai" and h["channel"] == "claudemesh-daemon" and h["capabilities"] == ["client_ack", "peer_updated"]
    assert h["displayName"] == "box-c" and h["sessionPubkey"] == w.routing_key and h["cwd"] == "/tmp"
    assert isinstance(h["timestamp"], int) and abs(h["timestamp"] - time.time() * 1000) < 10000, h
    signed = f"{h['meshId']}|{h['memberId']}|{h['pubkey']}|{h['timestamp']}".encode()
    KEY.verify_key.verify(signed, bytes.fromhex(h["signature"]))
    assert seen["sent"] == {"type": "set_summary", "summary": "é/\"x"}, seen
    assert seen["after-huge"]["summary"] == "after", seen
    assert await w.logged("at most 65536"), w.log()


async def test_hello_rejected_backs_off(workers):
    async def script(fake, ws):
        await hello(ws)
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": "pubkey not found in mesh"}))
        await ws.close(1008, "unauthorized")

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url).spawn()
        workers.append(w)
        last = None
        for cap in (1000, 2000, 4000):
            st = await w.state("backoff", 15)
            assert st["close_code"] == 1008 and "unauthorized" in st["detail"], st
            assert st["retry_in_ms"] < cap, st
            if last:
                # never faster than the backoff: the next attempt waited its delay (the margin is
                # for this harness reading state packets late on a loaded machine)
                assert st["_t"] - last["_t"] >= last["retry_in_ms"] / 1000 - 0.3, (last, st)
            last = st
        assert len(fake.connections) >= 3


async def test_kicked_is_final(workers):
    async def script(fake, ws):
        await hello(ws)
        await ws.send(json.dumps(ack()))
        await asyncio.sleep(0.3)
        await ws.close(4001, "kicked")

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url).spawn()
        workers.append(w)
        st = await w.state("failed")
        assert st["close_code"] == 4001 and "kicked" in st["detail"], st
        await w.nothing("state", 2, state="connecting")
        assert len(fake.connections) == 1


async def test_hello_ack_timeout(workers):
    async def script(fake, ws):
        await hello(ws)
        await ws.wait_closed()

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url).spawn()
        workers.append(w)
        await w.expect("sign")
        t0 = time.monotonic()
        st = await w.state("backoff", 10)
        assert "hello_ack" in st["detail"] and 4.5 < time.monotonic() - t0 < 10, st


async def test_daemon_close_code_reaches_broker(workers):
    closes = []

    async def script(fake, ws):
        await hello(ws)
        await ws.send(json.dumps(ack()))
        await ws.wait_closed()
        closes.append((ws.close_code, ws.close_reason))

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url).spawn()
        workers.append(w)
        await w.connected()
        reason = '{"kind":"below_floor","feature":"client_message_id_dedupe","detail":"2 < 3"}'
        w.send({"type": "close", "code": 4012, "reason": reason})
        st = await w.state("failed")
        assert st["close_code"] == 4012, st
        for _ in range(50):
            if closes:
                break
            await asyncio.sleep(0.1)
        assert closes == [(4012, reason)], closes
        await w.nothing("state", 1.5, state="connecting")
        w.send({"type": "reconnect"})
        await w.connected()
        assert len(fake.connections) == 2


def upstream_session_check(h, now_ms):
    """upstream's broker (index.ts:2046-2176, crypto.ts:154-261) on a session_hello, in its order:
    the error code it would answer, or None when it would accept."""
    hexkey = re.compile(r"^[0-9a-f]{64}$")
    att = h.get("parentAttestation") or {}
    if not hexkey.match(h.get("sessionPubkey", "")):
        return "bad_session_pubkey"
    if not hexkey.match(h.get("parentMemberPubkey", "")):
        return "bad_parent_pubkey"
    if att.get("sessionPubkey") != h["sessionPubkey"] or att.get("parentMemberPubkey") != h["parentMemberPubkey"]:
        return "attestation_mismatch"
    exp = att.get("expiresAt")
    if not isinstance(exp, int):
        return "malformed"
    if exp <= now_ms:
        return "expired"
    if exp > now_ms + 24 * 3600 * 1000:
        return "ttl_too_long"
    try:
        nacl.signing.VerifyKey(bytes.fromhex(h["parentMemberPubkey"])).verify(
            f"claudemesh-session-attest|{h['parentMemberPubkey']}|{h['sessionPubkey']}|{exp}".encode(),
            bytes.fromhex(att["signature"]))
    except Exception:
        return "bad_signature"
    if abs(now_ms - h["timestamp"]) > 60000:
        return "timestamp_skew"
    try:
        nacl.signing.VerifyKey(bytes.fromhex(h["sessionPubkey"])).verify(
            f"claudemesh-session-hello|{h['meshId']}|{h['parentMemberPubkey']}|{h['sessionPubkey']}|"
            f"{h['timestamp']}".encode(), bytes.fromhex(h["signature"]))
    except Exception:
        return "bad_signature"
    if h["parentMemberPubkey"] != PUB:
        return "unauthorized"
    if "parentMemberId" in h and h["parentMemberId"] != ENTRY["memberId"]:
        return "parent_member_id_mismatch"
    return None


async def test_upstream_session_hello(workers):
    """A session connection's session_hello passes upstream's broker checks, as that broker makes
    them, and a reconnect brings a fresh attestation; a session_hello the stand-in refuses as
    upstream does (error, then 1008 with the code) backs off that connection only."""
    hellos = []

    async def script(fake, ws):
        h = json.loads(await ws.recv())
        if h["type"] == "hello":
            await ws.send(json.dumps(ack()))
            await ws.wait_closed()
            return
        assert h["type"] == "session_hello", h
        hellos.append(h)
        code = upstream_session_check(h, int(time.time() * 1000))
        if code:
            await ws.send(json.dumps({"type": "error", "code": code, "message": f"session_hello rejected: {code}"}))
            await ws.close(1008, code)
            return
        await ws.send(json.dumps({"type": "hello_ack", "presenceId": f"S{len(hellos)}" * 16,
                                  "memberDisplayName": h["displayName"],
                                  "memberProfile": {"roleTag": None, "groups": [], "messageMode": "push"},
                                  "meshPolicy": {"selfEditable": {"groups": True, "roleTag": True,
                                                                  "displayName": True, "messageMode": True}}}))
        if len(hellos) == 1:
            # a dropped connection: the worker comes back with a new attestation and timestamp
            await asyncio.sleep(0.05)
            await ws.close(1011, "going away")
            return
        await ws.wait_closed()

    async with Fake(script) as fake:
        w = wt.Worker(ENTRY, fake.url).spawn()
        workers.append(w)
        await w.connected()
        w.open_session(1, name="agent")
        a1 = await w.expect("hello_ack", conn=1)
        a2 = await w.expect("hello_ack", conn=1, timeout=15)
        assert (a1["presence_id"], a2["presence_id"]) == ("S1" * 16, "S2" * 16), (a1, a2)
        assert [upstream_session_check(h, h["timestamp"]) for h in hellos] == [None, None], hellos
        first, second = hellos
        assert first["channel"] == "claudemesh-session" and first["peerType"] == "ai", first
        assert first["parentMemberId"] == ENTRY["memberId"] and "capabilities" not in first, first
        assert second["timestamp"] > first["timestamp"], (first, second)
        assert second["parentAttestation"]["expiresAt"] > first["parentAttestation"]["expiresAt"], (first, second)
        assert second["parentAttestation"]["signature"] != first["parentAttestation"]["signature"]

        # the hello signed with a key that is not the session's: upstream refuses it with
        # bad_signature, and only conn 2 backs off
        s2 = w.open_session(2, name="other", send=False)
        s2.key = nacl.signing.SigningKey.generate()
        w.send({"type": "session_open", "conn": 2, "session_pubkey": s2.pubkey, "session_id": s2.session_id,
                "display_name": s2.name, "pid": os.getpid(), "cwd": "/tmp"})
        st = await w.state("backoff", 15, conn=2)
        assert st["close_code"] == 1008 and "bad_signature" in st["detail"], st
        await w.nothing("state", 1, conn=1, state="backoff")


def run_one(t):
    workers = []
    try:
        asyncio.run(asyncio.wait_for(t(workers), 60))
        for w in workers:
            rc = w.stop()
            assert rc == 0, f"worker exited with {rc}\n{w.log()}"
    except BaseException:
        for w in workers:
            print("---- worker log ----\n" + w.log(), flush=True)
        raise
    finally:
        for w in workers:
            w.kill()


def main():
    tests = (test_upstream_hello_and_validation, test_hello_rejected_backs_off, test_kicked_is_final,
             test_hello_ack_timeout, test_daemon_close_code_reaches_broker, test_upstream_session_hello)
    tap.run([(t.__name__, lambda t=t: run_one(t)) for t in tap.selected(tests)])


if __name__ == "__main__":
    main()
