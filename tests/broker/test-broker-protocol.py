#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The upstream wire protocol against a running broker: handshake and its rejections, every
message type, error frames instead of silence, routing kinds, session replacement, paths and
the frame limit."""

import calendar
import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import nacl.signing
import websockets

import brokertest as bt


async def closed(client, timeout=bt.TIMEOUT):
    """Waits for the broker to close the socket; returns (code, reason)."""
    try:
        while True:
            client.inbox.append(await client.recv(timeout))
    except websockets.ConnectionClosed:
        pass
    return client.ws.close_code, client.ws.close_reason


async def test_hello_ack_and_features(b):
    m = b.mesh()
    c = bt.Client(b, b.member(m["id"], "alice"))
    ack = await c.hello()
    assert len(ack["presenceId"]) == 32 and ack["presenceId"].isalnum(), ack
    assert ack["memberDisplayName"] == "alice"
    assert ack["memberProfile"] == {"roleTag": None, "groups": [], "messageMode": "push"}
    assert ack["services"] == []
    assert ack["features"] == {
        "client_message_id_dedupe": {"version": 1, "mode": "retention_scoped", "dedupe_retention_days": 7,
                                     "request_fingerprint": True},
        "client_ack": {"version": 1, "lease_seconds": 30},
        "max_payload": {"version": 1, "inline_bytes": 65536},
    }, ack["features"]
    assert "protocolVersion" not in ack and "meshId" not in ack


async def test_health_and_paths(b):
    with urllib.request.urlopen(b.http + "/health", timeout=5) as r:
        health = json.loads(r.read())
    assert health["status"] == "ok" and health["db"] == "up", health
    with urllib.request.urlopen(b.http + "/health/ready", timeout=5) as r:
        assert r.status == 200
    try:
        urllib.request.urlopen(b.http + "/nope", timeout=5)
        raise AssertionError("expected 404")
    except urllib.error.HTTPError as e:
        assert e.code == 404
    m = b.mesh()
    entry = b.member(m["id"], "alice")
    for path in ("/ws?x=1", "/ws/", "/", "/other"):
        try:
            await bt.Client(b, entry).connect(path)
            raise AssertionError(f"upgrade on {path} was accepted")
        except (websockets.InvalidHandshake, websockets.ConnectionClosed, OSError, EOFError):
            pass
    await bt.Client(b, entry).hello()
    # The "claudemesh" subprotocol (asked for by our daemon's lws client) is accepted too.
    c = bt.Client(b, entry)
    c.ws = await websockets.connect(b.url, subprotocols=["claudemesh"], ping_interval=None)
    assert c.ws.subprotocol == "claudemesh"
    await c.hello()


async def test_no_hello_first(b):
    m = b.mesh()
    c = await bt.Client(b, b.member(m["id"], "alice")).connect()
    await c.send_json({"type": "list_peers", "_reqId": "pl-1"})
    err = await c.expect("error")
    assert err == {"type": "error", "code": "no_hello", "message": "must send hello first", "_reqId": "pl-1"}, err
    await c.send_json({"type": "send", "id": "x", "targetSpec": "*", "nonce": "", "ciphertext": ""})
    assert (await c.expect("error"))["code"] == "no_hello"
    await c.hello()  # the socket stayed open


async def reject(b, entry, expect_code, expect_close, expect_reason, client=None, **override):
    c = client or bt.Client(b, entry)
    await c.connect()
    await c.send_json(c.hello_frame(**override))
    err = await c.expect("error")
    assert err["code"] == expect_code, err
    code, reason = await closed(c)
    assert (code, reason) == (expect_close, expect_reason), (code, reason, err)
    assert not any(f.get("type") == "hello_ack" for f in c.inbox)
    return err


async def test_hello_rejections(b):
    m = b.mesh("Acme Corp")
    entry = b.member(m["id"], "alice")
    now = int(time.time() * 1000)

    c = bt.Client(b, entry)
    err = await reject(b, entry, "bad_session_pubkey", 1008, "bad_session_pubkey", client=c,
                       sessionPubkey=c.session_pubkey.upper())
    assert err["message"] == "sessionPubkey must be 64 lowercase hex chars"
    await reject(b, entry, "bad_session_pubkey", 1008, "bad_session_pubkey", sessionPubkey="abc")

    err = await reject(b, entry, "timestamp_skew", 1008, "timestamp_skew", timestamp=now - 61_000)
    assert err["message"] == "hello rejected: timestamp_skew"
    await reject(b, entry, "timestamp_skew", 1008, "timestamp_skew", timestamp=now + 61_000)
    # A string timestamp is not a number: skew, as upstream.
    c = bt.Client(b, entry)
    frame = c.hello_frame()
    frame["timestamp"] = str(frame["timestamp"])
    await c.connect()
    await c.send_json(frame)
    assert (await c.expect("error"))["code"] == "timestamp_skew"

    await reject(b, entry, "malformed", 1008, "malformed", pubkey=entry["pubkey"][:60])
    await reject(b, entry, "malformed", 1008, "malformed", signature="zz" * 64)

    other = nacl.signing.SigningKey.generate()
    c = bt.Client(b, entry)
    frame = c.hello_frame()
    signed = f"{entry['meshId']}|{entry['memberId']}|{entry['pubkey']}|{frame['timestamp']}".encode()
    await reject(b, entry, "bad_signature", 1008, "bad_signature", client=c,
                 signature=other.sign(signed).signature.hex())

    # A correctly signed hello for a key that is not a member.
    stranger = dict(entry, pubkey=other.verify_key.encode().hex(), secretKey=(other.encode() + other.verify_key.encode()).hex())
    err = await reject(b, stranger, "unauthorized", 1008, "unauthorized")
    assert err["message"] == "pubkey not found in mesh"
    # Uppercase member pubkey: signature valid, but the key is matched exactly.
    c = bt.Client(b, entry)
    ts = int(time.time() * 1000)
    signed = f"{entry['meshId']}|{entry['memberId']}|{entry['pubkey'].upper()}|{ts}".encode()
    await reject(b, entry, "unauthorized", 1008, "unauthorized", client=c, pubkey=entry["pubkey"].upper(),
                 timestamp=ts, signature=c.member_key.sign(signed).signature.hex())
    # Unknown mesh.
    await reject(b, entry, "bad_signature", 1008, "bad_signature", meshId="nope")

    bob = b.member(m["id"], "bob")
    b.admin("member", "revoke", m["slug"], "bob")
    err = await reject(b, bob, "revoked", 4002, "banned")
    assert err["message"] == "You've been removed from \"Acme Corp\". Contact the mesh owner to rejoin.", err

    # Order: the session key shape is checked before the signature.
    c = bt.Client(b, entry)
    await reject(b, entry, "bad_session_pubkey", 1008, "bad_session_pubkey", client=c, sessionPubkey="XYZ",
                 signature="00" * 64)
    await bt.Client(b, entry).hello()


async def test_capacity(b):
    m = b.mesh()
    entry = b.member(m["id"], "alice")
    await bt.Client(b, entry).hello()
    await bt.Client(b, entry).hello()
    err = await reject(b, entry, "capacity", 1008, "capacity")
    assert err["message"] == "mesh at connection capacity"
    # Other meshes are not affected.
    m2 = b.mesh("other")
    await bt.Client(b, b.member(m2["id"], "zed")).hello()
test_capacity.broker_args = ["--max-connections-per-mesh", "2"]


async def test_malformed_frames_get_errors(b):
    m = b.mesh()
    c = bt.Client(b, b.member(m["id"], "alice"))
    await c.hello()
    for raw, code in (("{not json", "invalid_json"), ("[1,2]", "invalid_frame"), ("{\"a\":1}", "invalid_frame"),
                      ("{\"type\":1}", "invalid_frame"), ("\"x\"", "invalid_frame"), ("", "invalid_json"),
                      ("{\"type\":\"send\"} trailing", "invalid_json")):
        await c.ws.send(raw)
        err = await c.expect("error")
        assert err["code"] == code, (raw, err)
    await c.ws.send(b"\xff\xfe{}")
    assert (await c.expect("error"))["code"] == "invalid_json"

    await c.send_json({"type": "teleport", "_reqId": "r-9"})
    err = await c.expect("error")
    assert err == {"type": "error", "code": "unknown_type", "message": "unknown message type", "_reqId": "r-9"}, err

    base = {"type": "send", "id": "s1", "targetSpec": "*", "priority": "next", "nonce": "", "ciphertext": "aGk="}
    for drop in ("targetSpec", "nonce", "ciphertext"):
        frame = {k: v for k, v in base.items() if k != drop}
        await c.send_json(frame)
        ack = await c.expect("ack", id="s1")
        assert ack["queued"] is False and ack["messageId"] == "" and ack["error_code"] == "invalid_args", ack
        assert drop in ack["error"], ack
    for field, value, code in (("priority", "urgent", "invalid_args"), ("targetSpec", "bob", "invalid_target"),
                               ("client_message_id", "", None), ("client_message_id", "x" * 129, "invalid_args"),
                               ("request_fingerprint", "abc", "invalid_args"), ("mentions", ["a"] * 17, "invalid_args"),
                               ("bodyVersion", 3, "invalid_args"), ("id", 5, "invalid_args")):
        await c.send_json(dict(base, **{field: value}))
        ack = await c.expect("ack")
        assert ack.get("error_code") == code, (field, value, ack)
    # No id at all: the ack carries "" as upstream.
    await c.send_json({k: v for k, v in base.items() if k != "id"})
    assert (await c.expect("ack"))["id"] == ""
    for frame in ({"type": "set_status", "status": "asleep"}, {"type": "set_visible", "visible": "yes"},
                  {"type": "set_summary"}, {"type": "set_profile", "title": 5}, {"type": "client_ack"}):
        await c.send_json(frame)
        assert (await c.expect("error"))["code"] == "invalid_args", frame
    await c.send_json(c.hello_frame())
    assert (await c.expect("error"))["code"] == "already_hello"
    await c.send_json({"type": "list_peers", "_reqId": "p"})
    await c.expect("peers_list", _reqId="p")


async def test_presence_messages(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"), display_name="bob-laptop")
    await alice.hello(groups=[{"name": "backend", "role": "lead"}])
    ack = await bob.hello(model="opus")
    assert ack["memberDisplayName"] == "bob-laptop"
    joined = await alice.expect("push", event="peer_joined")
    assert joined["subtype"] == "system" and joined["senderPubkey"] == "system" and joined["priority"] == "low"
    assert joined["eventData"] == {"name": "bob-laptop", "pubkey": bob.session_pubkey, "groups": []}, joined
    assert joined["nonce"] == "" and joined["ciphertext"] == "" and len(joined["messageId"]) == 36
    await bob.nothing("push", event="peer_joined")  # not announced to itself

    await alice.send_json({"type": "set_status", "status": "dnd"})
    await alice.send_json({"type": "set_summary", "summary": "refactoring the parser"})
    await alice.send_json({"type": "set_profile", "title": "Lead", "capabilities": ["review"], "_reqId": "pf"})
    ack = await alice.expect("ack", id="pf")
    assert ack == {"type": "ack", "id": "pf", "messageId": "", "queued": False, "_reqId": "pf"}, ack
    await alice.send_json({"type": "set_profile", "bio": "hi"})
    await alice.expect("ack", id="")

    await bob.send_json({"type": "list_peers", "_reqId": "pl-1"})
    peers = (await bob.expect("peers_list", _reqId="pl-1"))["peers"]
    assert [p["displayName"] for p in peers] == ["alice", "bob-laptop"], peers
    a = peers[0]
    assert a["pubkey"] == alice.session_pubkey and a["memberPubkey"] == alice.entry["pubkey"]
    assert a["status"] == "dnd" and a["summary"] == "refactoring the parser"
    assert a["groups"] == [{"name": "backend", "role": "lead"}]
    assert a["sessionId"] == alice.session_id and a["cwd"] == "/tmp" and a["hostname"] == "testhost"
    assert a["peerType"] == "ai" and a["channel"] == "claudemesh-test" and a["visible"] is True
    assert a["profile"] == {"title": "Lead", "capabilities": ["review"], "bio": "hi"}, a
    assert a["connectedAt"].endswith("Z") and "model" not in a
    assert peers[1]["summary"] is None and peers[1]["model"] == "opus"

    await alice.send_json({"type": "set_visible", "visible": False, "_reqId": "v"})
    await alice.expect("ack", id="v")
    hidden = await bob.expect("push", event="peer_hidden")
    assert hidden["eventData"] == {"name": "alice", "pubkey": alice.session_pubkey}
    await bob.send_json({"type": "list_peers"})
    assert [p["displayName"] for p in (await bob.expect("peers_list"))["peers"]] == ["bob-laptop"]
    await alice.send_json({"type": "list_peers"})
    assert [p["visible"] for p in (await alice.expect("peers_list"))["peers"]] == [False, True]
    # Hidden peers skip broadcasts.
    ack = await bob.send("*", "to all")
    assert ack["queued"] is True
    await alice.nothing("push", messageId=ack["messageId"])
    await alice.send_json({"type": "set_visible", "visible": True})
    await bob.expect("push", event="peer_visible")

    await bob.close()
    left = await alice.expect("push", event="peer_left")
    assert left["eventData"] == {"name": "bob-laptop", "pubkey": bob.session_pubkey}, left
test_presence_messages.broker_args = ["--presence-grace", "0"]


async def test_peer_updated(b):
    """peer_updated reaches only the connections that asked for it in their hello, once per real
    change, never about a hidden peer. Ordering stands in for waiting: each connection's frames
    arrive in the order the broker wrote them."""
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"))
    carol = bt.Client(b, b.member(m["id"], "carol"))
    await alice.hello(capabilities=["client_ack", "peer_updated"])
    await bob.hello(capabilities=["peer_updated"])
    await carol.hello()  # as upstream's clients: no such capability

    await alice.send_json({"type": "set_status", "status": "working"})
    u = await bob.expect("push", event="peer_updated")
    assert u["subtype"] == "system" and u["senderPubkey"] == "system", u
    assert u["eventData"] == {"name": "alice", "pubkey": alice.session_pubkey, "status": "working",
                              "summary": None}, u
    await alice.send_json({"type": "set_summary", "summary": "reading the spec"})
    u = await bob.expect("push", event="peer_updated")
    assert u["eventData"]["status"] == "working" and u["eventData"]["summary"] == "reading the spec", u
    # the same values again: nothing; the next update bob sees is the next change
    await alice.send_json({"type": "set_status", "status": "working"})
    await alice.send_json({"type": "set_summary", "summary": "reading the spec"})
    await alice.send_json({"type": "set_status", "status": "idle"})
    u = await bob.expect("push", event="peer_updated")
    assert u["eventData"]["status"] == "idle", u
    assert bt.peer_updates(bob) == [], bt.peer_updates(bob)
    # hidden: not told; visible again, the next change is
    await bt.change_while_hidden(alice, bob)
    # bob's own change reaches alice (who asked), never bob himself
    await bob.send_json({"type": "set_status", "status": "working"})
    u = await alice.expect("push", event="peer_updated")
    assert u["eventData"]["pubkey"] == bob.session_pubkey, u
    # carol asked for none: whatever was written to her before her peers_list is in her inbox by then
    await carol.send_json({"type": "list_peers", "_reqId": "c"})
    await carol.expect("peers_list", _reqId="c")
    assert bt.peer_updates(carol) == [], bt.peer_updates(carol)
    await alice.send_json({"type": "list_peers", "_reqId": "a"})
    await alice.expect("peers_list", _reqId="a")
    assert bt.peer_updates(alice) == [], bt.peer_updates(alice)


async def test_presence_grace(b):
    m = b.mesh()
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob_entry = b.member(m["id"], "bob")
    bob = bt.Client(b, bob_entry)
    await alice.hello()
    await bob.hello()
    await alice.expect("push", event="peer_joined")
    # A reconnect within the grace is silent: neither peer_left nor peer_joined.
    bob.ws.transport.abort()
    await alice.nothing("push", wait=0.5, event="peer_left")
    back = bt.Client(b, bob_entry)
    back.session_key = bob.session_key
    await back.hello()
    await alice.nothing("push", wait=1.5, event="peer_joined")
    assert not [f for f in alice.inbox if f.get("event") == "peer_left"]
    # Gone for longer than the grace: peer_left, once.
    await back.close()
    t0 = time.monotonic()
    left = await alice.expect("push", event="peer_left", timeout=4)
    assert left["eventData"] == {"name": "bob", "pubkey": bob.session_pubkey}, left
    assert time.monotonic() - t0 >= 0.8
    await alice.nothing("push", wait=0.5, event="peer_left")
    # A new session of bob after that is a join.
    await bt.Client(b, bob_entry).hello()
    await alice.expect("push", event="peer_joined")
test_presence_grace.broker_args = ["--presence-grace", "1"]


async def test_routing(b):
    m = b.mesh()
    topic = json.loads(b.admin("topic", "create", m["id"], "general").stdout)
    alice = bt.Client(b, b.member(m["id"], "alice"))
    bob = bt.Client(b, b.member(m["id"], "bob"))
    carol = bt.Client(b, b.member(m["id"], "carol"))
    dave = bt.Client(b, b.member(m["id"], "dave"), session=False)
    await alice.hello()
    await bob.hello(groups=[{"name": "backend"}])
    await carol.hello(groups=[{"name": "backend/api"}])
    await dave.hello()
    everyone = [bob, carol, dave]

    async def delivered(ack, to, text, **fields):
        assert ack["queued"] is True and ack["duplicate"] is False and len(ack["messageId"]) == 32, ack
        for c in everyone:
            if c in to:
                p = await c.expect("push", messageId=ack["messageId"])
                assert bt.base64.b64decode(p["ciphertext"]).decode() == text
                assert p["senderPubkey"] == alice.session_pubkey and p["senderName"] == "alice"
                assert p["senderMemberPubkey"] == alice.entry["pubkey"] and p["priority"] == "next"
                for k, v in fields.items():
                    assert p.get(k) == v, (k, p)
            else:
                await c.nothing("push", wait=0.2, messageId=ack["messageId"])
        await alice.nothing("push", wait=0.1, messageId=ack["messageId"])

    await delivered(await alice.send(bob.session_pubkey, "dm session"), [bob], "dm session")
    await delivered(await alice.send(bob.session_pubkey.upper(), "dm upper"), [bob], "dm upper")
    await delivered(await alice.send(dave.entry["pubkey"], "dm member"), [dave], "dm member")
    await delivered(await alice.send("*", "star"), everyone, "star")
    await delivered(await alice.send("@all", "all"), everyone, "all")
    await delivered(await alice.send("@backend", "grp"), [bob, carol], "grp")
    await delivered(await alice.send("@backend/api", "sub"), [carol], "sub")
    await delivered(await alice.send("@nobody", "none"), [], "none")
    await delivered(await alice.send("#" + topic["id"], "topic post", replyToId="m0"), everyone, "topic post",
                    topic="general", replyToId="m0")

    ack = await alice.send("#nope", "x")
    assert ack["error_code"] == "topic_not_found" and ack["queued"] is False, ack
    ack = await alice.send("ab" * 32, "x")
    assert ack["error_code"] == "unknown_recipient", ack
    assert ack["error"].startswith("no connected peer"), ack
    ack = await alice.send(alice.session_pubkey, "self")
    assert ack["error_code"] == "no_recipient", ack


async def test_session_replaced(b):
    m = b.mesh()
    entry = b.member(m["id"], "alice")
    watcher = bt.Client(b, b.member(m["id"], "bob"))
    await watcher.hello()
    first = bt.Client(b, entry, session_id="same")
    await first.hello()
    await watcher.expect("push", event="peer_joined")
    second = bt.Client(b, entry, session_id="same")
    await second.hello()
    assert await closed(first) == (1000, "session_replaced")
    # A replacement is the same peer: neither peer_left nor a second peer_joined.
    await watcher.nothing("push", event="peer_left")
    await watcher.nothing("push", event="peer_joined", wait=0.1)
    # The same session key under another sessionId replaces too.
    third = bt.Client(b, entry, session_id="other")
    third.session_key = second.session_key
    await third.hello()
    assert await closed(second) == (1000, "session_replaced")
    await watcher.send_json({"type": "list_peers"})
    assert len((await watcher.expect("peers_list"))["peers"]) == 2


async def test_session_keys_are_per_member(b):
    m = b.mesh()
    alice_entry = b.member(m["id"], "alice")
    alice = bt.Client(b, alice_entry, session_id="shared-id")
    await alice.hello()
    mallory_entry = b.member(m["id"], "mallory")
    # Another member's sessionId does not replace it (peers_list shows sessionIds to all).
    mallory = bt.Client(b, mallory_entry, session_id="shared-id")
    await mallory.hello()
    await alice.send_json({"type": "list_peers"})
    assert len((await alice.expect("peers_list"))["peers"]) == 2
    # Neither its session key (live or not) nor its member key can be claimed as a session key.
    for key in (alice.session_pubkey, alice_entry["pubkey"]):
        thief = bt.Client(b, mallory_entry)
        thief.session_key = None
        err = await reject(b, mallory_entry, "session_pubkey_in_use", 1008, "session_pubkey_in_use",
                           client=thief, sessionPubkey=key)
        assert "another member" in err["message"]
    await alice.close()
    thief = bt.Client(b, mallory_entry)
    await reject(b, mallory_entry, "session_pubkey_in_use", 1008, "session_pubkey_in_use", client=thief,
                 sessionPubkey=alice.session_pubkey)


async def test_frame_limit(b):
    m = b.mesh()
    c = bt.Client(b, b.member(m["id"], "alice"))
    await c.hello()
    # Exactly at the limit is parsed (and answered), one byte over closes with 1009.
    pad = 65536 - len(json.dumps({"type": "ping_pad", "x": ""}))
    await c.ws.send(json.dumps({"type": "ping_pad", "x": "a" * pad}))
    assert (await c.expect("error"))["code"] == "unknown_type"
    await c.ws.send(json.dumps({"type": "ping_pad", "x": "a" * (pad + 1)}))
    code, _ = await closed(c)
    assert code == 1009, code


async def test_tls(b):
    m = b.mesh()
    entry = b.member(m["id"], "alice", "--broker-url", f"wss://127.0.0.1:{b.port}/ws")
    assert entry["brokerUrl"] == f"wss://127.0.0.1:{b.port}/ws"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(CERT_DIR.name, "cert.pem"))
    ctx.check_hostname = False
    c = bt.Client(b, entry)
    c.ws = await websockets.connect(f"wss://127.0.0.1:{b.port}/ws", ssl=ctx, ping_interval=None)
    await c.hello()
    await c.send_json({"type": "list_peers"})
    assert len((await c.expect("peers_list"))["peers"]) == 1


CERT_DIR = tempfile.TemporaryDirectory(prefix="broker-tls-")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                "-keyout", os.path.join(CERT_DIR.name, "key.pem"), "-out", os.path.join(CERT_DIR.name, "cert.pem")],
               check=True, capture_output=True)
test_tls.broker_args = ["--tls-cert", os.path.join(CERT_DIR.name, "cert.pem"),
                        "--tls-key", os.path.join(CERT_DIR.name, "key.pem")]


async def test_topic_list(b):
    m = b.mesh()
    other = b.mesh("other")
    alice = bt.Client(b, b.member(m["id"], "alice"))
    b.member(m["id"], "bob")
    b.member(m["id"], "carol")
    b.admin("member", "revoke", m["id"], "carol")
    b.member(other["id"], "zed")
    await alice.connect()
    await alice.send_json({"type": "topic_list", "_reqId": "early"})
    assert (await alice.expect("error"))["code"] == "no_hello"
    await alice.hello()

    await alice.send_json({"type": "topic_list", "_reqId": "t-0"})
    assert await alice.expect("topic_list_response") == {"type": "topic_list_response", "topics": [], "_reqId": "t-0"}

    before = time.time()
    general = json.loads(b.admin("topic", "create", m["id"], "general").stdout)
    deploys = json.loads(b.admin("topic", "create", m["id"], "deploys").stdout)
    b.admin("topic", "create", other["id"], "secret")
    await alice.send_json({"type": "topic_list"})
    r = await alice.expect("topic_list_response")
    assert set(r) == {"type", "topics"}, r  # no _reqId asked, none sent
    assert [t["name"] for t in r["topics"]] == ["deploys", "general"], r
    for t, made in zip(r["topics"], (deploys, general)):
        assert set(t) == {"id", "name", "description", "visibility", "memberCount", "createdAt"}, t
        assert t["id"] == made["id"] and t["description"] is None and t["visibility"] == "public", t
        assert t["memberCount"] == 2, t  # alice and bob; carol is revoked
        created = calendar.timegm(time.strptime(t["createdAt"][:19], "%Y-%m-%dT%H:%M:%S"))
        assert t["createdAt"].endswith("Z") and before - 2 <= created <= time.time() + 2, t
    # The id it lists is the one a topic send takes.
    ack = await alice.send("#" + r["topics"][1]["id"], "hello")
    assert ack["queued"] is True, ack


async def test_hello_replay(b):
    """A captured hello cannot be played back within its ±60 s window, not even with other
    unsigned fields or the signature spelled in uppercase; a fresh hello is accepted."""
    m = b.mesh()
    entry = b.member(m["id"], "alice")
    first = bt.Client(b, entry)
    captured = first.hello_frame()
    await first.connect()
    await first.send_json(captured)
    await first.expect("hello_ack")

    thief = bt.Client(b, entry)
    err = await reject(b, entry, "replayed", 1008, "replayed", client=thief, **captured)
    assert err["message"] == "hello rejected: replayed (this signed hello was already used)", err
    await reject(b, entry, "replayed", 1008, "replayed", **dict(captured, sessionPubkey=bt.Client(b, entry).session_pubkey,
                                                              sessionId="other"))
    await reject(b, entry, "replayed", 1008, "replayed", **dict(captured, signature=captured["signature"].upper()))
    # Still refused once the first connection is gone.
    first.ws.transport.abort()
    await reject(b, entry, "replayed", 1008, "replayed", **captured)
    # A rejected hello (bad signature) is not remembered and burns nothing.
    await reject(b, entry, "bad_signature", 1008, "bad_signature", **dict(captured, timestamp=captured["timestamp"] + 1))
    again = bt.Client(b, entry)
    await again.hello()
    await again.send_json({"type": "list_peers"})
    await again.expect("peers_list")
    assert "replayed an already used hello" in b.logtext()


if __name__ == "__main__":
    bt.run([test_hello_ack_and_features, test_health_and_paths, test_no_hello_first, test_hello_rejections,
            test_capacity, test_malformed_frames_get_errors, test_presence_messages, test_peer_updated, test_presence_grace,
            test_routing, test_session_replaced, test_session_keys_are_per_member, test_frame_limit, test_tls, test_topic_list,
            test_hello_replay])
