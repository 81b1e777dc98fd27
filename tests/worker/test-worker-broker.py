#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""claudemesh-worker against our broker: handshake, both directions of traffic, the sandbox
while connected, liveness, reconnect with jittered backoff (also by hostname, resolved inside
the sandbox), revocation, and the daemon's close and reconnect packets."""

import asyncio
import os
import re
import subprocess
import tempfile
import time
import uuid

import workertest as wt
from workertest import bt


def setup(b, workers, name="alice", **kw):
    m = b.mesh() if not getattr(b, "_mesh", None) else b._mesh
    b._mesh = m
    entry = b.member(m["id"], name)
    w = wt.Worker(entry, kw.pop("url", b.url), **kw).spawn()
    workers.append(w)
    return w


async def test_connect_send_receive(b, workers):
    w = setup(b, workers)
    st = await w.state("connecting")
    assert "Landlock" in st["detail"], st
    ack = await w.expect("hello_ack")
    assert ack["features"]["client_ack"]["version"] == 1, ack
    assert re.fullmatch(r"[0-9A-Za-z]{32}", ack["presence_id"]), ack
    await w.connected()
    assert w.signed and w.signed[0].startswith(w.entry["meshId"] + "|")

    status = w.proc_status()
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1", status

    peer = bt.Client(b, b.member(b._mesh["id"], "bob"))
    await peer.hello()

    # worker → broker → peer, and the ack back as a frame
    sid = str(uuid.uuid4())
    w.frame({"type": "send", "id": sid, "targetSpec": peer.routing_key, "priority": "next",
             "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(b"hello bob")})
    push = await peer.expect("push")
    assert push["senderPubkey"] == w.routing_key and push["ciphertext"] == bt.b64(b"hello bob"), push
    ack = await w.expect("frame", frame=lambda f: f["type"] == "ack" and f["id"] == sid)
    assert ack["frame"]["queued"] is True, ack

    # peer → broker → worker, as a validated frame
    await peer.send(w.routing_key, "hello alice")
    p = await w.expect("frame", frame=lambda f: f["type"] == "push" and f["senderPubkey"] == peer.routing_key)
    assert p["frame"]["ciphertext"] == bt.b64(b"hello alice"), p

    # a request with a reply
    w.frame({"type": "list_peers", "_reqId": "pl-1"})
    pl = await w.expect("frame", frame=lambda f: f["type"] == "peers_list")
    keys = {x["pubkey"] for x in pl["frame"]["peers"]}
    assert {w.routing_key, peer.routing_key} <= keys, pl


async def test_sign_refused(b, workers):
    w = setup(b, workers, sign="timestamp outside ±60 s")
    st = await w.state("backoff")
    assert "refused to sign" in st["detail"] and st["retry_in_ms"] < 1000, st
    await w.nothing("state", 1.5, state="connected")


async def test_liveness(b, workers):
    # The broker pings rarely, so only the worker's own liveness check can notice.
    w = setup(b, workers, ping_ms=200, liveness_ms=800)
    await w.connected()
    wt.sigstop(b.proc)
    try:
        t0 = time.monotonic()
        st = await w.state("backoff", 10)
        assert "no traffic" in st["detail"], st
        assert 0.6 < time.monotonic() - t0 < 3, time.monotonic() - t0
    finally:
        wt.sigcont(b.proc)
    await w.connected(20)
test_liveness.broker_args = ["--ping-interval", "60"]


async def test_restart_backoff_by_hostname(b, workers):
    # "localhost" is resolved by the sandboxed worker's resolver helper before every connect.
    w = setup(b, workers, url=f"ws://localhost:{b.port}/ws")
    await w.connected()
    w.flush()
    await asyncio.to_thread(b.stop)
    caps = [1000, 2000, 4000]
    states = []
    for cap in caps:
        st = await w.state("backoff", 15)
        states.append(st)
        assert 0 <= st["retry_in_ms"] < cap, (cap, st)
        nxt = await w.state("connecting", 15)
        # the delay is kept (the timer may fire a little late, never early)
        assert nxt["_t"] - st["_t"] >= st["retry_in_ms"] / 1000 - 0.05, (st, nxt)
    assert "localhost" in w.start_packet["broker_url"]
    await asyncio.to_thread(b.start)
    await w.connected(40)
    # the backoff starts over after hello_ack
    w.flush()
    await asyncio.to_thread(b.stop)
    st = await w.state("backoff", 15)
    assert st["retry_in_ms"] < 1000, st
    await asyncio.to_thread(b.start)
    await w.connected(20)


async def test_revoked_is_final(b, workers):
    w = setup(b, workers)
    await w.connected()
    b.admin("member", "revoke", b._mesh["id"], w.entry["memberId"])
    w.send({"type": "reconnect"})
    st = await w.state("failed", 15)
    assert st["close_code"] == 4002, st
    err = [p for p in w.packets if p["type"] == "frame" and p["frame"]["type"] == "error"]
    assert err and err[-1]["frame"]["code"] == "revoked", w.packets
    await w.nothing("state", 3, state="connecting")


async def test_close_and_reconnect_packets(b, workers):
    w = setup(b, workers)
    await w.connected()
    reason = '{"kind":"missing","feature":"client_ack","detail":"x"}'
    w.send({"type": "close", "code": 4010, "reason": reason})
    st = await w.state("failed")
    assert st["close_code"] == 4010 and "4010" in st["detail"], st
    await w.nothing("state", 2, state="connecting")
    # frames while not connected are dropped, not queued
    w.frame({"type": "list_peers", "_reqId": "dropped"})
    w.flush()
    w.send({"type": "reconnect"})
    await w.state("connecting")
    await w.connected()
    await w.nothing("frame", 1, frame=lambda f: f.get("_reqId") == "dropped")
    assert await w.logged("not connected"), w.log()


async def test_session_replaced_is_final(b, workers):
    w = setup(b, workers)
    await w.connected()
    other = bt.Client(b, w.entry, session_id=w.session_id)
    await other.hello()
    st = await w.state("failed")
    assert st["close_code"] == 1000 and "session_replaced" in st["detail"], st
    await w.nothing("state", 2, state="connecting")


CERTS = tempfile.TemporaryDirectory(prefix="worker-test-tls-")
CERT, KEY = os.path.join(CERTS.name, "cert.pem"), os.path.join(CERTS.name, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", KEY, "-out", CERT, "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)


async def test_tls_self_signed(b, workers):
    url = f"wss://localhost:{b.port}/ws"
    ok = setup(b, workers, url=url, allow_self_signed=True)
    await ok.connected()
    await ok.expect("hello_ack")
    refused = setup(b, workers, "bob", url=url)
    st = await refused.state("backoff")
    assert "cannot connect" in st["detail"], st
    await refused.nothing("state", 2, state="connected")
test_tls_self_signed.broker_args = ["--tls-cert", CERT, "--tls-key", KEY]


# A CA trusted only through the bundle the worker reads (SSL_CERT_FILE, as OpenSSL's default):
# root → intermediate → leaf, the broker sending leaf and intermediate, the root last in a bundle
# after the system's certificates, found by its subject when the chain is built.
def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=CERTS.name)


def ca_chain():
    ca_ext = "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    with open(os.path.join(CERTS.name, "ca.ext"), "w") as f:
        f.write(ca_ext)
    with open(os.path.join(CERTS.name, "leaf.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "2",
            "-subj", "/CN=worker-test root", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", *ec, "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=worker-test intermediate")
    openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial",
            "-out", "inter.pem", "-days", "2", "-extfile", "ca.ext")
    openssl("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "inter.pem", "-CAkey", "inter.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    read = lambda name: open(os.path.join(CERTS.name, name)).read()
    system = "/etc/ssl/certs/ca-certificates.crt"
    others = (open(system).read() if os.path.exists(system) else "") + read("cert.pem")
    for name, text in [("chain.pem", read("leaf.pem") + read("inter.pem")),
                       ("bundle.pem", others + read("root.pem")), ("untrusting.pem", others)]:
        with open(os.path.join(CERTS.name, name), "w") as f:
            f.write(text)


ca_chain()


async def test_tls_ca_bundle(b, workers):
    url = f"wss://localhost:{b.port}/ws"
    saved = os.environ.get("SSL_CERT_FILE")
    try:
        os.environ["SSL_CERT_FILE"] = os.path.join(CERTS.name, "bundle.pem")
        ok = setup(b, workers, url=url)
        await ok.connected()
        await ok.expect("hello_ack")
        os.environ["SSL_CERT_FILE"] = os.path.join(CERTS.name, "untrusting.pem")
        refused = setup(b, workers, "bob", url=url)
        st = await refused.state("backoff")
        assert "cannot connect" in st["detail"], st
        await refused.nothing("state", 2, state="connected")
        # No bundle: the worker says so and exits, rather than trust nothing and retry forever.
        os.environ["SSL_CERT_FILE"] = os.path.join(CERTS.name, "absent.pem")
        gone = setup(b, workers, "carol", url=url)
        st = await gone.state("failed")
        assert "cannot set up the worker" in st["detail"], st
        assert gone.proc.wait(10) == 1
        workers.remove(gone)
    finally:
        if saved is None:
            os.environ.pop("SSL_CERT_FILE", None)
        else:
            os.environ["SSL_CERT_FILE"] = saved
test_tls_ca_bundle.broker_args = ["--tls-cert", os.path.join(CERTS.name, "chain.pem"),
                                  "--tls-key", os.path.join(CERTS.name, "leaf.key")]


async def test_resolver_helper_gone(b, workers):
    # The helper cannot be re-forked inside the sandbox: the worker says so and exits, for
    # the daemon to restart it.
    w = setup(b, workers, url=f"ws://localhost:{b.port}/ws")
    await w.connected()
    with open(f"/proc/{w.proc.pid}/task/{w.proc.pid}/children") as f:
        helpers = [int(x) for x in f.read().split()]
    assert len(helpers) == 1, helpers
    os.kill(helpers[0], 9)
    w.send({"type": "reconnect"})
    st = await w.state("failed")
    assert "resolver" in st["detail"], st
    assert w.proc.wait(10) == 1
    workers.remove(w)


async def test_daemon_gone(b, workers):
    w = setup(b, workers)
    await w.connected()
    t0 = time.monotonic()
    assert w.stop() == 0
    assert time.monotonic() - t0 < 3


if __name__ == "__main__":
    wt.run([test_connect_send_receive, test_sign_refused, test_liveness, test_restart_backoff_by_hostname,
            test_revoked_is_final, test_close_and_reconnect_packets, test_session_replaced_is_final,
            test_tls_self_signed, test_tls_ca_bundle, test_resolver_helper_gone, test_daemon_gone])
