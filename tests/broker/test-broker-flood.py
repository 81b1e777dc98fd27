#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Floods against the gate: connections that never say hello, caps on unauthenticated
connections in total and per address, and running out of descriptors. Loopback only; every
loop is bounded. Source addresses other than 127.0.0.1 are other hosts of 127.0.0.0/8."""

import asyncio
import errno
import json
import os
import resource
import select
import socket
import time

import websockets

import brokertest as bt


def raise_own_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def tcp(b, source="127.0.0.1"):
    """A connected TCP socket that never sends a byte."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", b.port))
    s.setblocking(False)
    return s


def closed_by_peer(s):
    """True when the broker has closed s (EOF or reset), without blocking."""
    p = select.poll()  # not select(): a flood's descriptors go past FD_SETSIZE
    p.register(s, select.POLLIN)
    if not p.poll(0):
        return False
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except BlockingIOError:
        return False


async def wait_closed(socks, want, timeout=bt.TIMEOUT):
    """Waits until exactly the sockets in want are closed by the broker; returns the closed set."""
    deadline = time.monotonic() + timeout
    closed = set()
    while time.monotonic() < deadline:
        closed |= {i for i, s in enumerate(socks) if i not in closed and closed_by_peer(s)}
        if closed == want:
            break
        await asyncio.sleep(0.05)
    return closed


def broker_cpu_seconds(b):
    with open(f"/proc/{b.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_fds(b):
    return len(os.listdir(f"/proc/{b.proc.pid}/fd"))


async def member_works(b, m, name):
    """A member connects, says hello, and gets a message through to another member."""
    alice = bt.Client(b, b.member(m["id"], f"{name}-a"))
    bob = bt.Client(b, b.member(m["id"], f"{name}-b"))
    await alice.hello()
    await bob.hello()
    ack = await alice.send(bob.session_pubkey, "through the flood")
    assert ack["queued"] is True, ack
    await bob.expect("push", messageId=ack["messageId"])
    for c in (alice, bob):
        c.ws.transport.abort()


async def test_half_open_flood(b):
    """2,000 connections that never send a byte: the broker holds at most its cap of them and
    a member still gets in and sends."""
    raise_own_nofile(4096)
    m = b.mesh()
    socks = []
    start = time.monotonic()
    for i in range(2000):
        try:
            socks.append(tcp(b, f"127.0.0.{2 + i % 50}"))
        except OSError as e:  # the backlog may refuse some while the broker evicts
            assert e.errno in (errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, None), e
    flood_s = time.monotonic() - start
    assert len(socks) > 1500, len(socks)
    try:
        # Connections the kernel queued late (SYN-ACK retransmits) still arrive for a while;
        # each evicts an older one at the next loop iteration, so a single reading may
        # catch a batch in flight. The broker must come down to its cap, not stay above it.
        deadline = time.monotonic() + bt.TIMEOUT
        fds = broker_fds(b)
        while fds > 256 + 32 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            fds = broker_fds(b)
        assert fds <= 256 + 32, fds  # the cap, plus the database, logs and lws

        start = time.monotonic()
        await member_works(b, m, "m")
        print(f"figures: {len(socks)} half-open connections in {flood_s:.1f} s, broker holds {fds} descriptors, "
              f"member in and delivered after {time.monotonic() - start:.2f} s", flush=True)
    finally:
        for s in socks:
            s.close()


async def test_hello_deadline(b):
    m = b.mesh()
    start = time.monotonic()  # before the broker accepts either: its deadline runs later
    raw = tcp(b)
    ws = await websockets.connect(b.url, ping_interval=None, open_timeout=bt.TIMEOUT)
    member = bt.Client(b, b.member(m["id"], "alice"))
    await member.hello()
    err = json.loads(await asyncio.wait_for(ws.recv(), 5))
    try:
        await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed:
        pass
    assert err == {"type": "error", "code": "hello_timeout", "message": "no hello within 1 s"}, err
    assert (ws.close_code, ws.close_reason) == (1008, "hello_timeout"), (ws.close_code, ws.close_reason)
    assert time.monotonic() - start >= 1.0, "closed before its deadline"
    assert await wait_closed([raw], {0}) == {0}
    # The member that said hello in time stays.
    await member.send_json({"type": "list_peers", "_reqId": "still"})
    await member.expect("peers_list", _reqId="still")
test_hello_deadline.broker_args = ["--hello-timeout", "1"]


async def test_per_address_cap(b):
    m = b.mesh()
    flood = []
    for i in range(10):
        flood.append(tcp(b, "127.0.0.2"))
        await asyncio.sleep(0.02)  # accepted in this order
    other = tcp(b, "127.0.0.3")
    # The oldest six of 127.0.0.2 make room for its newest four; 127.0.0.3 is untouched.
    assert await wait_closed(flood + [other], set(range(6))) == set(range(6))
    await asyncio.sleep(0.3)
    assert not any(closed_by_peer(s) for s in flood[6:] + [other])
    # A member from a capped address still gets in: the cap drops that address's oldest.
    await member_works(b, m, "m")
    for s in flood + [other]:
        s.close()
test_per_address_cap.broker_args = ["--max-unauthenticated-per-address", "4", "--hello-timeout", "60"]


async def test_total_cap(b):
    m = b.mesh()
    socks = []
    for i in range(12):
        socks.append(tcp(b, f"127.0.0.{10 + i}"))
        await asyncio.sleep(0.02)
    assert await wait_closed(socks, set(range(4))) == set(range(4))
    await member_works(b, m, "m")
    for s in socks:
        s.close()
test_total_cap.broker_args = ["--max-unauthenticated", "8", "--hello-timeout", "60"]


def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


async def test_out_of_descriptors(b):
    """With 64 descriptors, 40 of them held by members' connections, a flood makes accept()
    fail with EMFILE: the broker pauses instead of spinning, logs that a bounded number of
    times, and serves members after the flood."""
    raise_own_nofile(4096)
    m = b.mesh()
    entry = b.member(m["id"], "holder")
    holders = [bt.Client(b, entry) for _ in range(40)]
    for c in holders:
        await c.hello()
    before = len(b.logtext())
    socks = []
    for i in range(300):
        try:
            socks.append(tcp(b, f"127.0.0.{2 + i % 20}"))
        except OSError:
            pass
    cpu0, log0, t0 = broker_cpu_seconds(b), len(b.logtext()), time.monotonic()
    await asyncio.sleep(3)
    cpu = broker_cpu_seconds(b) - cpu0
    wall = time.monotonic() - t0
    log = b.logtext()
    grown = len(log) - log0
    accept_lines = log[before:].count("Cannot accept connections")
    print(f"figures: {len(socks)} connections against 64 descriptors; broker CPU {cpu:.2f} s in {wall:.1f} s, "
          f"log grew {grown} bytes, {accept_lines} accept-failure lines", flush=True)
    assert cpu < 0.5 * wall, cpu  # a spinning accept loop uses the whole interval
    assert accept_lines <= 2 and grown < 64 * 1024, (accept_lines, grown)
    assert "libwebsockets: accept" not in log
    assert accept_lines >= 1, "the flood did not exhaust the descriptors: the test tests nothing"

    for s in socks:
        s.close()
    start = time.monotonic()
    await member_works(b, m, "after")
    print(f"figures: member served {time.monotonic() - start:.2f} s after the flood ended", flush=True)
test_out_of_descriptors.broker_preexec = low_nofile


if __name__ == "__main__":
    bt.run([test_half_open_flood, test_hello_deadline, test_per_address_cap, test_total_cap,
            test_out_of_descriptors])
