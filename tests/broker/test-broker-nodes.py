#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Several broker nodes on one PostgreSQL database: DMs across nodes woken by LISTEN/NOTIFY,
a dropped LISTEN connection covered by the catch-up, dedupe and the rate limit held across
nodes, a node killed with SIGKILL mid-stream whose client reconnects to another node and
gets every accepted message, and presence across nodes (peer_joined, peers_list, broadcasts
and group posts, peer_left after the grace when a node dies)."""

import asyncio
import ctypes
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time

import brokertest as bt

CATCH_UP_MS = 300


def nodes(b, n, test):
    """b and n - 1 more brokers on b's database with the test's arguments, started."""
    more = [bt.Broker(*getattr(test, "broker_args", []), db=b.db).start() for _ in range(n - 1)]
    return [b, *more]


def close_nodes(ns):
    for n in ns:
        n.close()


def listen_backends(b, tcp=False):
    """The pids of the nodes' LISTEN connections on the server, the newest first; with tcp,
    only those that came over TCP (a host name or address, not the Unix socket)."""
    with b.sql() as conn:
        return [int(r[0]) for r in conn.execute("SELECT pid FROM pg_stat_activity"
                                                " WHERE application_name = 'claudemesh-broker listen'"
                                                + (" AND client_addr = '127.0.0.1'" if tcp else "") +
                                                " ORDER BY backend_start DESC").fetchall()]


async def members(b, *names):
    m = b.mesh()
    return [b.member(m["id"], name) for name in names]


async def test_cross_node_dm(b):
    """A member on node 1 DMs a member on node 2 and back; with the catch-up far away, only the
    notification can have carried them."""
    ns = nodes(b, 2, test_cross_node_dm)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        start = time.monotonic()
        ack = await alice.send(b_entry["pubkey"], "across")
        assert ack["queued"] is True, ack
        await bob.expect("push", messageId=ack["messageId"])
        latency = time.monotonic() - start
        back = await bob.send(a_entry["pubkey"], "and back")
        await alice.expect("push", messageId=back["messageId"])
        print(f"figures: DM across two nodes delivered in {latency * 1000:.1f} ms", flush=True)
        assert latency < 60.0  # a bound on a hang, not a speed goal (bench/ measures speed)
    finally:
        close_nodes(ns[1:])


test_cross_node_dm.broker_args = ["--catch-up-interval", "3600000"]


async def test_dropped_listen(b):
    """The LISTEN connection of node 2 is terminated: a DM for its member still arrives (the
    catch-up) and the node listens again."""
    ns = nodes(b, 2, test_dropped_listen)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        with b.sql() as conn:
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE application_name = 'claudemesh-broker listen'"
                                  " AND pid = (SELECT max(pid) FROM pg_stat_activity"
                                  "  WHERE application_name = 'claudemesh-broker listen')").fetchone()[0]
        assert killed == 1, killed
        for i in range(3):
            ack = await alice.send(b_entry["pubkey"], f"after the drop {i}")
            await bob.expect("push", messageId=ack["messageId"])
        deadline = time.monotonic() + bt.TIMEOUT
        while time.monotonic() < deadline:
            logs = [n.logtext() for n in ns]
            if any("LISTEN connection was lost" in t and t.count("Listening for the other nodes") >= 2 for t in logs):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("no node lost and reopened its LISTEN connection:\n" + "\n".join(logs))
    finally:
        close_nodes(ns[1:])


test_dropped_listen.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_dedupe_and_limit_across_nodes(b):
    """The same client_message_id through two nodes is one message; a member's rate limit is
    one limit over three nodes."""
    await bt.inside_rate_window(3600)
    ns = nodes(b, 3, test_dedupe_and_limit_across_nodes)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        a1 = bt.Client(ns[0], a_entry, session=False, session_id="s1")
        a2 = bt.Client(ns[1], a_entry, session=False, session_id="s2")
        a3 = bt.Client(ns[2], a_entry, session=False, session_id="s3")
        bob = bt.Client(ns[2], b_entry, session=False)
        b.clients += [a1, a2, a3, bob]
        for c in (a1, a2, a3, bob):
            await c.hello()
        first = await a1.send(b_entry["pubkey"], "once", client_message_id="cm-x")
        again = await a2.send(b_entry["pubkey"], "once", client_message_id="cm-x")
        assert again["duplicate"] is True and again["messageId"] == first["messageId"], again
        await bob.expect("push", messageId=first["messageId"])
        await bob.nothing("push", wait=CATCH_UP_MS / 1000 * 3, messageId=first["messageId"])
        # 4 per window: cm-x paid one (its retry rode on it), three more pass, the fifth is refused.
        acks = [await c.send(b_entry["pubkey"], "n", client_message_id=f"n-{i}") for i, c in enumerate((a2, a3, a1))]
        assert all(a["queued"] for a in acks), acks
        over = await a2.send(b_entry["pubkey"], "n", client_message_id="n-over")
        assert over["queued"] is False and over["error_code"] == "rate_limited", over
        with b.sql() as conn:
            assert conn.execute("SELECT COUNT(*) FROM message WHERE client_message_id = 'cm-x'").fetchone()[0] == 1
    finally:
        close_nodes(ns[1:])


test_dedupe_and_limit_across_nodes.broker_args = ["--rate-limit", "4", "--rate-window", "3600",
                                                  "--catch-up-interval", str(CATCH_UP_MS)]


async def test_node_killed_mid_stream(b):
    """Three nodes; alice on node 1 streams DMs to bob on node 2, which is killed with SIGKILL
    partway. bob reconnects to node 3 and acknowledges: every accepted message arrives, and
    none it acknowledged before the kill comes again."""
    ns = nodes(b, 3, test_node_killed_mid_stream)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello(capabilities=["client_ack"])
        accepted, seen, acked_before = [], [], set()

        async def stream(first, n):
            for i in range(first, first + n):
                ack = await alice.send(b_entry["pubkey"], f"m{i}", client_message_id=f"k{i}")
                assert ack["queued"] is True, ack
                accepted.append(ack["messageId"])

        await stream(0, 20)
        for _ in range(10):
            p = await bob.expect("push")
            seen.append(p["messageId"])
            await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
            acked_before.add(p["messageId"])
        await bt.sync(bob)   # the acks are in before the kill
        os.kill(ns[1].proc.pid, signal.SIGKILL)
        ns[1].proc.wait()
        bob.ws.transport.abort()
        await stream(20, 20)

        bob2 = bt.Client(ns[2], b_entry, session=False)
        b.clients.append(bob2)
        await bob2.hello(capabilities=["client_ack"])
        deadline = time.monotonic() + bt.TIMEOUT * 2
        while set(accepted) - set(seen) and time.monotonic() < deadline:
            try:
                p = await bob2.expect("push", timeout=0.5)
            except AssertionError:
                continue
            seen.append(p["messageId"])
            await bob2.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
        missing = set(accepted) - set(seen)
        assert not missing, f"{len(missing)} accepted messages never arrived"
        again = [m for m in seen[10:] if m in acked_before]
        assert not again, f"{len(again)} acknowledged messages came again"
        dups = len(seen) - len(set(seen))
        assert len(set(accepted)) == 40, len(set(accepted))
        print(f"figures: {len(accepted)} accepted, {len(set(seen))} delivered after SIGKILL of a node, "
              f"{dups} redelivered (pushed, not yet acknowledged at the kill)", flush=True)
    finally:
        close_nodes(ns[1:])


test_node_killed_mid_stream.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_presence_and_multicast_across_nodes(b):
    """peer_joined, peers_list, broadcasts and group posts reach across nodes; when a node is
    killed, its peers leave the others' lists with a peer_left after the grace."""
    ns = nodes(b, 2, test_presence_and_multicast_across_nodes)
    try:
        a_entry, b_entry, c_entry = await members(b, "alice", "bob", "carol")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        carol = bt.Client(ns[1], c_entry, session=False)
        b.clients += [alice, bob, carol]
        await alice.hello(groups=[{"name": "ops"}])
        await bob.hello(groups=[{"name": "ops/db"}])
        await carol.hello()
        for name, e, groups in (("bob", b_entry, [{"name": "ops/db"}]), ("carol", c_entry, [])):
            j = await alice.expect("push", event="peer_joined",
                                   eventData={"name": name, "pubkey": e["pubkey"], "groups": groups})
            assert j["subtype"] == "system", j
        peers = (await bt.sync(alice))["peers"]
        assert {p["displayName"] for p in peers} == {"alice", "bob", "carol"}, peers
        assert {p["displayName"] for p in (await bt.sync(carol))["peers"]} == {"alice", "bob", "carol"}

        ack = await alice.send("*", "to all")
        assert ack["queued"] is True, ack
        for c in (bob, carol):
            await c.expect("push", messageId=ack["messageId"])
        ack = await alice.send("@ops", "to ops")
        await bob.expect("push", messageId=ack["messageId"])
        await carol.nothing("push", wait=CATCH_UP_MS / 1000 * 3, messageId=ack["messageId"])

        start = time.monotonic()
        os.kill(ns[1].proc.pid, signal.SIGKILL)
        ns[1].proc.wait()
        for name, e in (("bob", b_entry), ("carol", c_entry)):
            await alice.expect("push", event="peer_left", timeout=bt.TIMEOUT * 2,
                               eventData={"name": name, "pubkey": e["pubkey"]})
        left_s = time.monotonic() - start
        assert {p["displayName"] for p in (await bt.sync(alice))["peers"]} == {"alice"}
        print(f"figures: peer_left for a killed node's peers after {left_s:.1f} s (grace 1 s, catch-up "
              f"{CATCH_UP_MS} ms)", flush=True)
    finally:
        close_nodes(ns[1:])


test_presence_and_multicast_across_nodes.broker_args = ["--catch-up-interval", str(CATCH_UP_MS),
                                                        "--presence-grace", "1"]


async def test_database_connection_lost(b):
    """A node whose database connection is terminated exits for a restart (within a catch-up
    or two) instead of lingering without a database; its client gets in on another node."""
    ns = nodes(b, 2, test_database_connection_lost)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        pid = ns[1].proc.pid
        with b.sql() as conn:
            # Node 2's main connection: the newer of the two named claudemesh-broker.
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE pid = (SELECT max(pid) FROM pg_stat_activity"
                                  "  WHERE application_name = 'claudemesh-broker')").fetchone()[0]
        assert killed == 1, killed
        try:
            rc = ns[1].proc.wait(bt.TIMEOUT)
        except bt.subprocess.TimeoutExpired:
            raise AssertionError("the node did not exit:\n" + ns[1].logtext())
        assert rc == 1 and "database connection was lost" in ns[1].logtext(), (rc, ns[1].logtext()[-2000:])
        assert pid != ns[0].proc.pid
        bob.ws.transport.abort()
        bob2 = bt.Client(ns[0], b_entry, session=False)
        b.clients.append(bob2)
        await bob2.hello()
        ack = await alice.send(b_entry["pubkey"], "still here")
        await bob2.expect("push", messageId=ack["messageId"])
    finally:
        close_nodes(ns[1:])


test_database_connection_lost.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_session_takeover_across_nodes(b):
    """A session on node 1 connects again through node 2 (same key): node 1 closes the old
    connection with session_replaced, nobody sees it leave or join, and a DM to the key
    reaches the new connection; the same sessionId with a new key replaces it likewise."""
    ns = nodes(b, 2, test_session_takeover_across_nodes)
    try:
        a_entry, w_entry = await members(b, "alice", "bob")
        watcher = bt.Client(ns[0], w_entry, session=False)
        b.clients.append(watcher)
        await watcher.hello()
        s = bt.SessionClient(ns[0], a_entry, display_name="a")
        await s.hello()
        await watcher.expect("push", event="peer_joined")

        again = bt.SessionClient(ns[1], a_entry, session_key=s.session_key, display_name="a")
        ack = await again.hello()
        assert "memberProfile" not in ack, ack
        assert await bt.closed(s) == (1000, "session_replaced")
        await watcher.nothing("push", wait=CATCH_UP_MS / 1000 * 3, event="peer_joined")
        await watcher.nothing("push", wait=0.1, event="peer_left")
        dm = await watcher.send(s.session_pubkey, "to the new socket")
        await again.expect("push", messageId=dm["messageId"])
        rows = [p for p in (await bt.sync(watcher))["peers"] if p["peerRole"] == "session"]
        assert [r["pubkey"] for r in rows] == [s.session_pubkey], rows

        # Same sessionId, another key, back through node 1: replaced again.
        third = bt.SessionClient(ns[0], a_entry, session_id=again.session_id, display_name="a")
        await third.hello()
        assert await bt.closed(again) == (1000, "session_replaced")
        await watcher.nothing("push", wait=CATCH_UP_MS / 1000 * 3, event="peer_joined")
        rows = [p for p in (await bt.sync(watcher))["peers"] if p["peerRole"] == "session"]
        assert [r["pubkey"] for r in rows] == [third.session_pubkey], rows

        # Another member's session with that sessionId, on node 2, replaces nothing.
        other = bt.SessionClient(ns[1], w_entry, session_id=third.session_id)
        await other.hello()
        await bt.sync(third)
        await asyncio.sleep(CATCH_UP_MS / 1000)
        await bt.sync(third)
        assert third.ws.close_code is None
    finally:
        close_nodes(ns[1:])


test_session_takeover_across_nodes.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_session_grace_across_nodes(b):
    """A session drops from node 1 and comes back through node 2 within the grace: a DM sent
    in between reaches it there, and when node 1's grace ends nobody is told it left."""
    ns = nodes(b, 2, test_session_grace_across_nodes)
    try:
        a_entry, w_entry = await members(b, "alice", "bob")
        watcher = bt.Client(ns[0], w_entry, session=False)
        b.clients.append(watcher)
        await watcher.hello()
        s = bt.SessionClient(ns[0], a_entry)
        await s.hello()
        await watcher.expect("push", event="peer_joined")
        s.ws.transport.abort()
        await asyncio.sleep(0.3)
        dm = await watcher.send(s.session_pubkey, "while in grace")
        assert dm["queued"] is True, dm
        back = bt.SessionClient(ns[1], a_entry, session_key=s.session_key)
        await back.hello()
        p = await back.expect("push", messageId=dm["messageId"])
        assert bt.base64.b64decode(p["ciphertext"]) == b"while in grace"
        await watcher.nothing("push", wait=2 * 2 + CATCH_UP_MS / 1000 * 3, event="peer_left")
        rows = [p for p in (await bt.sync(watcher))["peers"] if p["peerRole"] == "session"]
        assert [r["pubkey"] for r in rows] == [s.session_pubkey], rows
    finally:
        close_nodes(ns[1:])


test_session_grace_across_nodes.broker_args = ["--catch-up-interval", str(CATCH_UP_MS), "--presence-grace", "2"]


async def test_hello_replay_across_nodes(b):
    """A signed session_hello or hello used on node 1 is refused as replayed on node 2."""
    ns = nodes(b, 2, test_hello_replay_across_nodes)
    try:
        a_entry, = await members(b, "alice")
        s = bt.SessionClient(ns[0], a_entry)
        frame = s.session_hello_frame()
        await s.connect()
        await s.send_json(frame)
        await s.expect("hello_ack")
        replay = bt.SessionClient(ns[1], a_entry, session_key=s.session_key)
        await replay.connect()
        await replay.send_json(frame)
        err = await replay.expect("error")
        assert err["code"] == "replayed", err
        assert await bt.closed(replay) == (1008, "replayed")

        c = bt.Client(ns[1], a_entry, session=False)
        hello = c.hello_frame()
        await c.connect()
        await c.send_json(hello)
        await c.expect("hello_ack")
        thief = bt.Client(ns[0], a_entry, session=False)
        await thief.connect()
        await thief.send_json(hello)
        err = await thief.expect("error")
        assert err["code"] == "replayed", err
    finally:
        close_nodes(ns[1:])


async def test_sender_node_killed_mid_flood(b):
    """The sender's node is killed with SIGKILL while its sends are in flight (sent without
    waiting for acks). The sender reconnects to another node and sends again every send it
    has no ack for, with the same client_message_id: every message is accepted once and
    delivered once."""
    ns = nodes(b, 3, test_sender_node_killed_mid_flood)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[1], a_entry, session=False)
        bob = bt.Client(ns[0], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello(capabilities=["client_ack"])

        def frame(i):
            return {"type": "send", "id": f"f{i}", "targetSpec": b_entry["pubkey"], "priority": "next",
                    "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(f"m{i}".encode()),
                    "client_message_id": f"cm-{i}"}

        n = 300
        for i in range(n):
            await alice.send_json(frame(i))
        acked = {}
        while len(acked) < 20:
            f = await alice.expect("ack")
            acked[f["client_message_id"]] = f["messageId"]
        os.kill(ns[1].proc.pid, signal.SIGKILL)
        ns[1].proc.wait()
        try:
            while True:
                f = await alice.recv(timeout=1)
                if f.get("type") == "ack":
                    acked[f["client_message_id"]] = f["messageId"]
        except (bt.websockets.ConnectionClosed, asyncio.TimeoutError):
            pass
        before_kill = len(acked)

        alice2 = bt.Client(ns[2], a_entry, session=False)
        b.clients.append(alice2)
        await alice2.hello()
        for i in range(n):
            if f"cm-{i}" not in acked:
                await alice2.send_json(frame(i))
        while len(acked) < n:
            f = await alice2.expect("ack")
            assert f["queued"] is True, (f, ns[2].logtext()[-4000:])     # node 3's log: the cause
            assert acked.get(f["client_message_id"], f["messageId"]) == f["messageId"], f
            acked[f["client_message_id"]] = f["messageId"]
        # A retry of an accepted id is answered with the first message.
        again = await alice2.send(b_entry["pubkey"], "m0", id="again", client_message_id="cm-0")
        assert again["duplicate"] is True and again["messageId"] == acked["cm-0"], again

        seen = []
        while set(acked.values()) - set(seen):
            p = await bob.expect("push", timeout=bt.TIMEOUT * 2, subtype=None)   # not peer_left and such
            seen.append(p["messageId"])
            await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
        await bob.nothing("push", wait=CATCH_UP_MS / 1000 * 3, subtype=None)
        assert len(seen) == len(set(seen)) == n, (len(seen), len(set(seen)))
        with b.sql() as conn:
            rows = conn.execute("SELECT count(*) FROM message WHERE sender_member_id = ?",
                                (a_entry["memberId"],)).fetchone()[0]
        assert rows == n, rows
        print(f"figures: {before_kill} of {n} sends acknowledged before SIGKILL of the sender's node; "
              f"all {n} accepted once and delivered once after the retry through another node", flush=True)
    finally:
        close_nodes(ns[1:])


test_sender_node_killed_mid_flood.broker_args = ["--catch-up-interval", str(CATCH_UP_MS), "--rate-limit", "0"]


async def test_pool_connection_lost(b):
    """A node whose pool connection (the hot path's) is terminated exits with status 1 for a
    restart, as for its main connection; a send through another node still arrives."""
    ns = nodes(b, 2, test_pool_connection_lost)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        ack = await bob.send(a_entry["pubkey"], "before")
        await alice.expect("push", messageId=ack["messageId"])
        with b.sql() as conn:
            # Node 2's pool connections have the newest pids of their name.
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE pid = (SELECT max(pid) FROM pg_stat_activity"
                                  "  WHERE application_name = 'claudemesh-broker pool')").fetchone()[0]
        assert killed == 1, killed
        try:
            rc = ns[1].proc.wait(bt.TIMEOUT)
        except bt.subprocess.TimeoutExpired:
            raise AssertionError("the node did not exit:\n" + ns[1].logtext())
        assert rc == 1 and "database connection was lost" in ns[1].logtext(), (rc, ns[1].logtext()[-2000:])
        bob.ws.transport.abort()
        bob2 = bt.Client(ns[0], b_entry, session=False)
        b.clients.append(bob2)
        await bob2.hello()
        ack = await alice.send(b_entry["pubkey"], "after")
        await bob2.expect("push", messageId=ack["messageId"])
    finally:
        close_nodes(ns[1:])


class TableLock:
    """A competing transaction that holds table in ACCESS EXCLUSIVE mode until release(): every
    statement that reads the table waits for it, so the database stalls for what needs it."""

    def __init__(self, broker, table):
        pg = bt.pg_server()
        self.proc = bt.subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", pg.dir,
                                         "-p", str(pg.port), "-U", "postgres", "-d", broker.pg_dbname],
                                        stdin=bt.subprocess.PIPE, stdout=bt.subprocess.PIPE, text=True)
        self.proc.stdin.write(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT 'locked';\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "locked"

    def held(self):
        return self.proc.poll() is None

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("ROLLBACK;\n")
            self.proc.stdin.close()
            self.proc.wait(bt.TIMEOUT)


def waiting_on_lock(b):
    with b.sql() as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND application_name LIKE 'claudemesh-broker%'").fetchone()[0]


async def test_stalled_database_leaves_the_loop_serving(b):
    """While PostgreSQL stalls a hello (its member row is locked by another transaction), the
    node still answers another client's pings, peers_list, get_state and an unknown frame,
    and accepts new connections; the stalled hello is answered once the lock goes."""
    a_entry, b_entry, c_entry = await members(b, "alice", "bob", "carol")
    alice = bt.Client(b, a_entry, session=False)
    await alice.hello()
    lock = TableLock(b, "member")
    try:
        bob = bt.Client(b, b_entry, session=False)
        await bob.connect()
        await bob.send_json(bob.hello_frame())
        for _ in range(200):
            if waiting_on_lock(b) > 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the hello never reached the locked table")
        pong = await alice.ws.ping()
        await asyncio.wait_for(pong, bt.TIMEOUT)
        peers = (await bt.sync(alice))["peers"]
        assert [p["displayName"] for p in peers] == ["alice"], peers
        await alice.send_json({"type": "get_state", "key": "k", "_reqId": "g"})
        assert (await alice.expect("state_result", _reqId="g"))["value"] is None
        await alice.send_json({"type": "no_such_type", "_reqId": "u"})
        assert (await alice.expect("error", _reqId="u"))["code"] == "unknown_type"
        carol = bt.Client(b, c_entry, session=False)
        await carol.connect()
        pong = await carol.ws.ping()
        await asyncio.wait_for(pong, bt.TIMEOUT)
        # All of it was answered while the hello still waited on the lock.
        assert lock.held() and waiting_on_lock(b) > 0
        assert not [f for f in bob.inbox if f.get("type") == "hello_ack"], bob.inbox
    finally:
        lock.release()
    await bob.expect("hello_ack")
    await alice.expect("push", event="peer_joined",
                       eventData={"name": "bob", "pubkey": b_entry["pubkey"], "groups": []})


def health(b, path="/health"):
    """The health check's status and body; bt.TIMEOUT bounds a hang, the failure it tests for."""
    try:
        with bt.urllib.request.urlopen(b.http + path, timeout=bt.TIMEOUT) as r:
            return r.status, bt.json.loads(r.read())
    except bt.urllib.error.HTTPError as e:
        return e.code, bt.json.loads(e.read())


async def test_health_check_does_not_wait_for_the_database(b):
    """While the heartbeats wait on a lock, the health check still answers at once, from the
    heartbeats' answers: the database goes "down" (503 on /health/ready) and comes back."""
    lock = TableLock(b, "broker_node")
    try:
        for _ in range(600):
            status, body = health(b)
            if body["db"] == "down":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the database never showed as down: {body}")
        assert status == 200, status
        assert health(b, "/health/ready")[0] == 503
        assert lock.held() and waiting_on_lock(b) > 0
    finally:
        lock.release()
    for _ in range(600):
        if health(b)[1]["db"] == "up":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the database never showed as up again")
    assert health(b, "/health/ready")[0] == 200


test_health_check_does_not_wait_for_the_database.broker_args = ["--catch-up-interval", "200"]


async def test_listen_reconnect_does_not_stall_the_loop(b):
    """The LISTEN connection is terminated while the postmaster is stopped (SIGSTOP): a new
    connection is accepted by the kernel but never answered. While the node reconnects, it
    answers a ping and the health check before the connect gives up; once the postmaster
    runs again the node listens again and a DM is woken by it."""
    ns = nodes(b, 2, test_listen_reconnect_does_not_stall_the_loop)
    pg = bt.pg_server()
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    stopped = False
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        pids = listen_backends(b)
        assert len(pids) == 2, pids
        os.kill(postmaster, signal.SIGSTOP)
        stopped = True
        os.kill(pids[0], signal.SIGTERM)     # what pg_terminate_backend() sends, for the newest: node 2's
        for _ in range(600):
            log = ns[1].logtext()
            if "LISTEN connection was lost" in log and log.count("Opening the LISTEN connection") >= 2:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("node 2 never reopened its LISTEN connection:\n" + ns[1].logtext())
        pong = await bob.ws.ping()
        await asyncio.wait_for(pong, bt.TIMEOUT)
        assert health(ns[1])[0] == 200
        log = ns[1].logtext()
        # Answered while the connect still waited for the stopped postmaster.
        assert "Cannot open the LISTEN connection" not in log, log
        assert log.count("Listening for the other nodes") == 1, log
        os.kill(postmaster, signal.SIGCONT)
        stopped = False
        for _ in range(600):
            if ns[1].logtext().count("Listening for the other nodes") >= 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("node 2 never listened again:\n" + ns[1].logtext())
        ack = await alice.send(b_entry["pubkey"], "after the reconnect")
        await bob.expect("push", messageId=ack["messageId"])
    finally:
        if stopped:
            os.kill(postmaster, signal.SIGCONT)
        close_nodes(ns[1:])


# The catch-up far away: only the reopened LISTEN connection wakes bob at the end. Its
# reconnect is tried at the catch-up, so the interval stays short enough for that.
test_listen_reconnect_does_not_stall_the_loop.broker_args = ["--catch-up-interval", "300"]


async def test_listen_outage_logged_once(b):
    """While the database refuses new connections (ALLOW_CONNECTIONS false), the node's LISTEN
    backend is terminated: its reconnect fails at every catch-up, and its log says so once,
    with the server's reason, not once per attempt. Once connections are allowed again it
    says once that it listens again, with how many attempts failed."""
    pg = bt.pg_server()
    db = b.pg_dbname

    def psql(sql):
        # Through the database postgres: the broker's refuses new connections meanwhile.
        p = pg.psql("postgres", sql)
        assert p.returncode == 0, p.stderr
        return p.stdout

    for _ in range(600):
        if "Listening for the other nodes" in b.logtext():
            break
        await asyncio.sleep(0.01)
    refused = False
    try:
        psql(f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false")
        refused = True
        killed = psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                      f" WHERE application_name = 'claudemesh-broker listen' AND datname = '{db}'")
        assert killed.strip() == "1", killed
        for _ in range(1200):
            log = b.logtext()
            lost = log.find("LISTEN connection was lost")
            # The first reopen after the loss, then eight retries that fail (a catch-up each).
            if lost >= 0 and log.count("Opening the LISTEN connection", lost) >= 9:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the node did not retry its LISTEN connection:\n" + b.logtext())
        outage = b.logtext()[lost:]
        cannot = [line for line in outage.splitlines() if "annot open the LISTEN connection" in line]
        assert len(cannot) == 1 and "not currently accepting connections" in cannot[0], outage
        psql(f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")
        refused = False
    finally:
        if refused:
            psql(f"ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true")
    for _ in range(600):
        if "Listening for the other nodes' deliveries again after" in b.logtext():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the node never listened again:\n" + b.logtext())
    outage = b.logtext()[lost:]
    back = [line for line in outage.splitlines() if "Listening for the other nodes" in line]
    assert len(back) == 1 and "failed attempts to reopen" in back[0], outage
    assert int(back[0].split("(")[1].split()[0]) >= 8, back
    assert len([line for line in outage.splitlines() if "annot open the LISTEN connection" in line]) == 1, outage


test_listen_outage_logged_once.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_listen_by_host_name(b):
    """A node whose URI names the host (localhost over TCP, resolved off the loop): its LISTEN
    connection wakes a DM with the catch-up far away; on a second such node the LISTEN
    backend is terminated, the node listens again over TCP and a DM is then delivered."""
    if bt.BACKEND != "postgresql":
        return
    pg = bt.pg_server()
    a_entry, b_entry, c_entry = await members(b, "alice", "bob", "carol")
    alice = bt.Client(b, a_entry, session=False)
    b.clients.append(alice)
    await alice.hello()

    far = bt.Broker("--catch-up-interval", "3600000", db=pg.tcp_uri(b.pg_dbname)).start()
    try:
        bob = bt.Client(far, b_entry, session=False)
        b.clients.append(bob)
        await bob.hello()
        for _ in range(600):
            if "Listening for the other nodes" in far.logtext() or "Cannot open" in far.logtext():
                break
            await asyncio.sleep(0.01)
        assert "Listening for the other nodes" in far.logtext(), far.logtext()
        ack = await alice.send(b_entry["pubkey"], "by name")
        await bob.expect("push", messageId=ack["messageId"])
        assert len(listen_backends(b, tcp=True)) == 1, far.logtext()
    finally:
        far.close()
    # Its backend ends after it: only then is a TCP listener the next node's.
    for _ in range(600):
        if not listen_backends(b, tcp=True):
            break
        await asyncio.sleep(0.01)
    assert listen_backends(b, tcp=True) == []
    near = bt.Broker("--catch-up-interval", "300", db=pg.tcp_uri(b.pg_dbname)).start()
    try:
        carol = bt.Client(near, c_entry, session=False)
        b.clients.append(carol)
        await carol.hello()
        for _ in range(600):
            if "Listening for the other nodes" in near.logtext():
                break
            await asyncio.sleep(0.01)
        pids = listen_backends(b, tcp=True)
        assert len(pids) == 1, (pids, near.logtext())
        os.kill(pids[0], signal.SIGTERM)     # what pg_terminate_backend() sends
        for _ in range(600):
            log = near.logtext()
            if "LISTEN connection was lost" in log and log.count("Listening for the other nodes") >= 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the node never listened again:\n" + near.logtext())
        again = listen_backends(b, tcp=True)
        assert len(again) == 1 and again != pids, (again, pids, near.logtext())
        ack = await alice.send(c_entry["pubkey"], "after the reconnect by name")
        await carol.expect("push", messageId=ack["messageId"])
    finally:
        near.close()


class Resolver:
    """A DNS server of the test's own, on port 53 of a loopback address, that gives NAME the
    address 127.0.0.1 (and no IPv6 one) and refuses other names. Once held, it keeps the
    queries it receives unanswered until release(): a name lookup that does not end."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addr = f"127.{os.getpid() % 250 + 1}.{random.randrange(1, 250)}.53"
        self.sock.bind((self.addr, 53))
        self.sock.settimeout(0.05)
        self.lock = threading.Lock()
        self.held = False
        self.waiting = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.done.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            with self.lock:
                if self.held:
                    self.waiting.append((query, peer))
                    continue
            self.answer(query, peer)

    def answer(self, query, peer):
        # The header (id, flags, one question), the question's labels, its type and class.
        if len(query) < 17 or query[4:6] != b"\x00\x01":
            return
        labels, i = [], 12
        while i < len(query) and query[i] != 0 and len(labels) < 64:
            labels.append(query[i + 1:i + 1 + query[i]].decode("ascii", "replace"))
            i += 1 + query[i]
        qtype, end = query[i + 1:i + 3], i + 5
        ours = ".".join(labels).lower() == self.name
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x7f\x00\x00\x01" \
            if ours and qtype == b"\x00\x01" else b""
        flags = b"\x81\x80" if ours else b"\x81\x83"     # a response, recursion; NXDOMAIN if not ours
        self.sock.sendto(query[:2] + flags + b"\x00\x01" + (b"\x00\x01" if answer else b"\x00\x00") +
                         b"\x00\x00\x00\x00" + query[12:end] + answer, peer)

    def hold(self):
        with self.lock:
            self.held = True

    def held_queries(self):
        with self.lock:
            return len(self.waiting)

    def release(self):
        with self.lock:
            self.held = False
            waiting, self.waiting = self.waiting, []
        for query, peer in waiting:
            self.answer(query, peer)

    def close(self):
        self.release()
        self.done.set()
        self.thread.join()
        self.sock.close()


def own_resolv_conf(path):
    """For Broker(preexec=): the broker in a mount namespace of its own, where /etc/resolv.conf
    is path (bound over it; the mounts are private, so nothing leaves the namespace)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
    ms_bind, ms_rec, ms_private, clone_newns = 4096, 16384, 1 << 18, 0x00020000

    def preexec():
        if (libc.unshare(clone_newns) != 0 or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 or
                libc.mount(path.encode(), b"/etc/resolv.conf", None, ms_bind, None) != 0):
            raise OSError(ctypes.get_errno(), "cannot bind a resolv.conf of its own")
    return preexec


async def test_listen_by_service(b):
    """A node whose URI names only a service (postgresql:///?service=..., in the PGSERVICEFILE
    of its environment) whose host is a name only this test's DNS server knows. With the
    server holding its answers, the node's LISTEN backend is terminated: while the lookup for
    the reconnect does not end, the node answers a ping and the health check; once the answer
    is released it listens again over TCP, and a state_change and a DM from another node
    reach its member."""
    if bt.BACKEND != "postgresql":
        return
    if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        bt.skip("needs a mount namespace (root) for a resolv.conf of the broker's own")
    pg = bt.pg_server()
    name = "pg.claudemesh.test"
    try:
        dns = Resolver(name)
    except OSError as e:
        bt.skip(f"cannot serve DNS on a loopback address: {e}")
    tmp = tempfile.TemporaryDirectory(prefix="broker-service-")
    resolv_conf = os.path.join(tmp.name, "resolv.conf")
    with open(resolv_conf, "w") as f:
        f.write(f"nameserver {dns.addr}\noptions timeout:30 attempts:1\n")
    service_file = os.path.join(tmp.name, "pg_service.conf")
    with open(service_file, "w") as f:
        f.write(f"[claudemesh]\nhost={name}\nport={pg.port}\ndbname={b.pg_dbname}\nuser=postgres\n"
                f"password={pg.password}\n")
    a_entry, b_entry = await members(b, "alice", "bob")
    alice = bt.Client(b, a_entry, session=False)
    b.clients.append(alice)
    await alice.hello()

    os.environ["PGSERVICEFILE"] = service_file     # the broker's environment, taken at its start
    node = None
    try:
        node = bt.Broker("--catch-up-interval", "300", db="postgresql:///?service=claudemesh",
                         preexec=own_resolv_conf(resolv_conf)).start()
        del os.environ["PGSERVICEFILE"]
        bob = bt.Client(node, b_entry, session=False)
        b.clients.append(bob)
        await bob.hello()
        for _ in range(600):
            if "Listening for the other nodes" in node.logtext():
                break
            await asyncio.sleep(0.01)
        pids = listen_backends(b, tcp=True)
        assert len(pids) == 1, (pids, node.logtext())
        dns.hold()
        os.kill(pids[0], signal.SIGTERM)     # what pg_terminate_backend() sends
        for _ in range(600):
            if "LISTEN connection was lost" in node.logtext() and dns.held_queries() > 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the node never looked its database's host up again:\n" + node.logtext())
        pong = await bob.ws.ping()
        await asyncio.wait_for(pong, bt.TIMEOUT)
        assert health(node)[0] == 200
        # Answered while the lookup still waited on the held answer.
        assert node.logtext().count("Listening for the other nodes") == 1, node.logtext()
        dns.release()
        for _ in range(600):
            if node.logtext().count("Listening for the other nodes") >= 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the node never listened again:\n" + node.logtext())
        again = listen_backends(b, tcp=True)
        assert len(again) == 1 and again != pids, (again, pids, node.logtext())
        await alice.send_json({"type": "set_state", "key": "service", "value": 1})
        ch = await bob.expect("state_change", key="service")
        assert ch == {"type": "state_change", "key": "service", "value": 1, "updatedBy": "alice"}, ch
        ack = await alice.send(b_entry["pubkey"], "after the reconnect by service")
        await bob.expect("push", messageId=ack["messageId"])
        # Stopped while the next connect still waits on its lookup: the node exits cleanly,
        # the thread keeping what it uses.
        dns.hold()
        os.kill(again[0], signal.SIGTERM)
        for _ in range(600):
            if node.logtext().count("LISTEN connection was lost") >= 2 and dns.held_queries() > 0:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the node never looked its database's host up again:\n" + node.logtext())
        assert node.stop() == 0, node.logtext()
        # With _exit(): OpenSSL's exit handler must not run under the thread still in libpq.
        assert "leaving without the libraries' exit handlers" in node.logtext(), node.logtext()
    finally:
        os.environ.pop("PGSERVICEFILE", None)
        dns.close()
        if node:
            node.close()
        tmp.cleanup()


async def test_presence_details_across_nodes(b):
    """A session's status and summary set on node 1 show in peers_list on node 2; when the
    session comes back through node 2, it keeps them."""
    ns = nodes(b, 2, test_presence_details_across_nodes)
    try:
        a_entry, w_entry = await members(b, "alice", "bob")
        watcher = bt.Client(ns[1], w_entry, session=False)
        await watcher.hello()
        s = bt.SessionClient(ns[0], a_entry, display_name="a")
        await s.hello()
        await s.send_json({"type": "set_status", "status": "working"})
        await s.send_json({"type": "set_summary", "summary": "on node 1"})
        await s.send_json({"type": "set_profile", "title": "tester", "_reqId": "p"})
        await s.expect("ack", _reqId="p")

        def row(peers):
            rows = [p for p in peers if p["pubkey"] == s.session_pubkey]
            return rows[0] if rows else None

        # The rows are written after the replies: a few round trips, a bounded count.
        for _ in range(50):
            r = row((await bt.sync(watcher))["peers"])
            if r and r.get("summary") == "on node 1":
                break
            await bt.sync(s)
        assert r and r["status"] == "working" and r["summary"] == "on node 1", r
        assert r.get("profile", {}).get("title") == "tester", r

        again = bt.SessionClient(ns[1], a_entry, session_key=s.session_key, session_id=s.session_id, display_name="a")
        await again.hello()
        assert await bt.closed(s) == (1000, "session_replaced")
        r = row((await bt.sync(watcher))["peers"])
        assert r and r["status"] == "working" and r["summary"] == "on node 1", r
        assert r.get("profile", {}).get("title") == "tester", r
        await again.send_json({"type": "set_status", "status": "dnd"})
        for _ in range(50):
            r = row((await bt.sync(watcher))["peers"])
            if r and r["status"] == "dnd":
                break
        assert r and r["status"] == "dnd", r
    finally:
        close_nodes(ns[1:])


test_presence_details_across_nodes.broker_args = ["--catch-up-interval", "3600000"]


async def test_peer_updated_across_nodes(b):
    """peer_updated about a member on node 1 reaches the members on node 2 that asked for it,
    never those that did not, and not while the peer is hidden. Ordering stands in for waiting:
    the later change is sent after the earlier one, through the same channel."""
    ns = nodes(b, 2, test_peer_updated_across_nodes)
    try:
        a_entry, b_entry, c_entry = await members(b, "alice", "bob", "carol")
        alice = bt.Client(ns[0], a_entry)
        bob = bt.Client(ns[1], b_entry)
        carol = bt.Client(ns[1], c_entry)
        b.clients += [alice, bob, carol]
        await alice.hello()
        await bob.hello(capabilities=["peer_updated"])
        await carol.hello()

        await alice.send_json({"type": "set_status", "status": "working"})
        u = await bob.expect("push", event="peer_updated")
        assert u["eventData"] == {"name": "alice", "pubkey": alice.session_pubkey, "status": "working",
                                  "summary": None}, u
        await bt.change_while_hidden(alice, bob)
        await carol.send_json({"type": "list_peers", "_reqId": "c"})
        await carol.expect("peers_list", _reqId="c")
        assert bt.peer_updates(carol) == [], bt.peer_updates(carol)
    finally:
        close_nodes(ns[1:])


test_peer_updated_across_nodes.broker_args = ["--catch-up-interval", "3600000"]


async def test_state_change_across_nodes(b):
    """set_state on node 1 reaches every connection of the mesh on node 2 as state_change,
    the setter's own other connection too; a value too large for a NOTIFY is read from its
    row there. Ordering stands in for waiting: bob's get_state answer follows the changes."""
    ns = nodes(b, 2, test_state_change_across_nodes)
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        alice2 = bt.Client(ns[1], a_entry)
        b.clients += [alice, bob, alice2]
        for c in (alice, bob, alice2):
            await c.hello()
        await alice.send_json({"type": "set_state", "key": "build", "value": {"ok": True, "n": 3}})
        for c in (bob, alice2):
            ch = await c.expect("state_change", key="build")
            assert ch == {"type": "state_change", "key": "build", "value": {"ok": True, "n": 3},
                          "updatedBy": "alice"}, ch
        big = "x" * 12000
        await alice.send_json({"type": "set_state", "key": "big", "value": big})
        ch = await bob.expect("state_change", key="big")
        assert ch == {"type": "state_change", "key": "big", "value": big, "updatedBy": "alice"}, \
            {k: v for k, v in ch.items() if k != "value"}
        await alice2.expect("state_change", key="big")
        assert [f for f in alice.inbox if f.get("type") == "state_change"] == [], alice.inbox
    finally:
        close_nodes(ns[1:])


test_state_change_across_nodes.broker_args = ["--catch-up-interval", "3600000"]


async def cut_listen_of_node_2(b, ns, postmaster):
    """Once both nodes listen, stops the postmaster (SIGSTOP: no new connection is answered) and
    terminates node 2's LISTEN backend, and waits for node 2 to notice: what the other nodes
    notify from then on is lost to it. The postmaster is left stopped, unless this fails."""
    for _ in range(600):
        if all("Listening for the other nodes" in n.logtext() for n in ns):
            break
        await asyncio.sleep(0.01)
    pids = listen_backends(b)
    assert len(pids) == 2, pids
    os.kill(postmaster, signal.SIGSTOP)
    try:
        os.kill(pids[0], signal.SIGTERM)     # node 2's, the newest
        for _ in range(600):
            if "LISTEN connection was lost" in ns[1].logtext():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("node 2 never lost its LISTEN connection:\n" + ns[1].logtext())
    except BaseException:
        os.kill(postmaster, signal.SIGCONT)
        raise


async def test_state_change_while_listen_down(b):
    """Node 2's LISTEN connection is terminated while the postmaster is stopped (SIGSTOP), so
    it cannot listen again; alice sets state on node 1 then, its NOTIFY reaching no one on
    node 2. Once node 2 listens again, bob there gets the state_change from the row."""
    ns = nodes(b, 2, test_state_change_while_listen_down)
    pg = bt.pg_server()
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    stopped = False
    try:
        a_entry, b_entry = await members(b, "alice", "bob")
        alice = bt.Client(ns[0], a_entry, session=False)
        bob = bt.Client(ns[1], b_entry, session=False)
        b.clients += [alice, bob]
        await alice.hello()
        await bob.hello()
        await cut_listen_of_node_2(b, ns, postmaster)
        stopped = True
        await alice.send_json({"type": "set_state", "key": "gap", "value": 7})
        # Answered after the set's commit: the row is there, its NOTIFY gone.
        await alice.send_json({"type": "get_state", "key": "gap"})
        await alice.expect("state_result", key="gap")
        assert ns[1].logtext().count("Listening for the other nodes") == 1, ns[1].logtext()
        os.kill(postmaster, signal.SIGCONT)
        stopped = False
        ch = await bob.expect("state_change", key="gap", timeout=bt.TIMEOUT * 4)
        assert ch == {"type": "state_change", "key": "gap", "value": 7, "updatedBy": "alice"}, ch
        assert ns[1].logtext().count("Listening for the other nodes") >= 2, ns[1].logtext()
    finally:
        if stopped:
            os.kill(postmaster, signal.SIGCONT)
        close_nodes(ns[1:])


test_state_change_while_listen_down.broker_args = ["--catch-up-interval", "300"]


async def test_presence_while_listen_down(b):
    """As for state_change: node 2's LISTEN connection is terminated while the postmaster is
    stopped. On node 1 meanwhile carol joins and changes her status, eve joins another mesh and
    dave (there before) leaves; gina joins node 2 between carol and dave. Once node 2 listens
    again, its members get what they would have had live, once: bob peer_joined and peer_updated
    for carol and peer_left for dave (not dave's peer_joined, sent live before the loss, again);
    carol's other connection there not her own peer_joined; gina not what came before her;
    frank, in eve's mesh there, eve's peer_joined only."""
    ns = nodes(b, 2, test_presence_while_listen_down)
    pg = bt.pg_server()
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    stopped = False
    try:
        b_entry, c_entry, d_entry, g_entry = await members(b, "bob", "carol", "dave", "gina")
        other = b.mesh("other")
        e_entry, f_entry = b.member(other["id"], "eve"), b.member(other["id"], "frank")
        bob = bt.Client(ns[1], b_entry, session=False)
        carol2 = bt.Client(ns[1], c_entry, session=False)
        frank = bt.Client(ns[1], f_entry, session=False)
        gina = bt.Client(ns[1], g_entry, session=False)
        carol = bt.Client(ns[0], c_entry, session=False)
        dave = bt.Client(ns[0], d_entry, session=False)
        eve = bt.Client(ns[0], e_entry, session=False)
        b.clients += [bob, carol2, frank, gina, carol, dave, eve]
        await bob.hello(capabilities=["peer_updated"])
        await frank.hello()
        await carol2.hello()
        await dave.hello()
        await bob.expect("push", event="peer_joined", eventData={"name": "carol", "pubkey": c_entry["pubkey"],
                                                                 "groups": []})
        for c in (bob, carol2):
            await c.expect("push", event="peer_joined", eventData={"name": "dave", "pubkey": d_entry["pubkey"],
                                                                   "groups": []})
        await cut_listen_of_node_2(b, ns, postmaster)
        stopped = True
        await carol.hello()
        await carol.send_json({"type": "set_status", "status": "working"})
        await eve.hello()
        await bt.sync(carol)
        await asyncio.sleep(0.01)     # gina's connection time on the millisecond clock after those
        await gina.hello()
        for c in (bob, carol2):
            await c.expect("push", event="peer_joined", eventData={"name": "gina", "pubkey": g_entry["pubkey"],
                                                                   "groups": []})
        await dave.close()
        # Answered on lane 0 after dave's removal, carol's and eve's rows and notifications.
        for _ in range(600):
            if "dave" not in {p["displayName"] for p in (await bt.sync(carol))["peers"]}:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("dave never left node 1:\n" + ns[0].logtext())
        assert ns[1].logtext().count("Listening for the other nodes") == 1, ns[1].logtext()
        os.kill(postmaster, signal.SIGCONT)
        stopped = False
        j = await bob.expect("push", event="peer_joined", timeout=bt.TIMEOUT * 4)
        assert j["subtype"] == "system" and j["eventData"] == {"name": "carol", "pubkey": c_entry["pubkey"],
                                                               "groups": []}, j
        u = await bob.expect("push", event="peer_updated")
        assert u["eventData"] == {"name": "carol", "pubkey": c_entry["pubkey"], "status": "working",
                                  "summary": None}, u
        for c in (bob, carol2, gina):
            gone = await c.expect("push", event="peer_left")
            assert gone["eventData"] == {"name": "dave", "pubkey": d_entry["pubkey"]}, gone
        assert ns[1].logtext().count("Listening for the other nodes") >= 2, ns[1].logtext()
        j = await frank.expect("push", event="peer_joined")
        assert j["eventData"]["name"] == "eve", j
        # Three catch-ups more: nothing comes twice, and no mesh hears of the other's peers.
        await bob.nothing("push", wait=CATCH_UP_MS / 1000 * 3, subtype="system")
        for c in (carol2, gina, frank):
            await c.nothing("push", wait=0.1, subtype="system")
    finally:
        if stopped:
            os.kill(postmaster, signal.SIGCONT)
        close_nodes(ns[1:])


test_presence_while_listen_down.broker_args = ["--catch-up-interval", str(CATCH_UP_MS), "--presence-grace", "0"]


async def test_presence_events_migrated_and_pruned(b):
    """A database of schema 4, before presence_event, is migrated when a node starts; the node
    then keeps its presence frames there, and those older than an hour go."""
    assert b.stop() == 0
    with b.sql() as conn:
        conn.execute("DROP TABLE presence_event")
        conn.execute("UPDATE broker_schema SET version = 4")
    b.start()
    with b.sql() as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM broker_schema").fetchall()] == [6]
    a_entry, = await members(b, "alice")
    alice = bt.Client(b, a_entry, session=False)
    await alice.hello()
    await bt.sync(alice)     # on lane 0 after the peer_joined's statement
    with b.sql() as conn:
        kept = [r[0] for r in conn.execute("SELECT payload FROM presence_event").fetchall()]
    assert len(kept) == 1 and '"event":"peer_joined"' in kept[0], kept
    # A frame older than the hour kept goes at a catch-up.
    with b.sql() as conn:
        conn.execute("INSERT INTO presence_event (at, node_id, payload) VALUES (1, 'gone', '{}')")
    for _ in range(100):
        with b.sql() as conn:
            if conn.execute("SELECT count(*) FROM presence_event WHERE at = 1").fetchone()[0] == 0:
                break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the old presence frame was never pruned")
    with b.sql() as conn:
        assert conn.execute("SELECT count(*) FROM presence_event").fetchone()[0] == 1


test_presence_events_migrated_and_pruned.broker_args = ["--catch-up-interval", str(CATCH_UP_MS)]


async def test_main_connection_backpressure(b):
    """With the main connection's threshold lowered to 8 owed results (a hidden test option;
    4,096 in service), a burst of DMs makes the node stop reading its clients and read them
    again once the results come back; every DM is acknowledged and pushed exactly once."""
    n = 400
    alice_entry, bob_entry = await members(b, "alice", "bob")
    alice = bt.Client(b, alice_entry, session=False)
    bob = bt.Client(b, bob_entry, session=False)
    b.clients += [alice, bob]
    await alice.hello()
    await bob.hello(capabilities=["client_ack"])
    ids = [f"bp-{i}" for i in range(n)]
    for i in ids:
        await alice.send_json({"type": "send", "id": i, "targetSpec": bob_entry["pubkey"], "priority": "now",
                               "nonce": bt.b64(os.urandom(24)), "ciphertext": bt.b64(i.encode())})
    start = time.monotonic()
    acked = {}
    pushed = []

    def where():
        # A failure says how far the burst got, and when.
        return f"after {time.monotonic() - start:.1f} s: {len(acked)} of {n} acks, {len(pushed)} pushes"

    for i in ids:
        try:
            ack = await alice.expect("ack", id=i)
        except AssertionError as e:
            raise AssertionError(f"{where()}: {e}") from None
        assert ack["queued"] is True, (where(), ack)
        acked[ack["messageId"]] = i
    while len(pushed) < n:
        try:
            p = await bob.expect("push")
        except AssertionError as e:
            raise AssertionError(f"{where()}: {e}") from None
        pushed.append(p["messageId"])
        await bob.send_json({"type": "client_ack", "brokerMessageId": p["messageId"]})
    assert sorted(pushed) == sorted(acked), (where(), len(set(pushed)), len(acked))
    log = b.logtext()
    assert "connection is behind; not reading the clients" in log, log[-4000:]
    assert "caught up; reading the clients again" in log, log[-4000:]
    # Read again: a frame after the burst is answered.
    last = await alice.send(bob_entry["pubkey"], "after the burst")
    await bob.expect("push", messageId=last["messageId"])


test_main_connection_backpressure.broker_args = ["--test-lane0-high", "8", "--rate-limit", "10000", "--catch-up-interval", "3600000"]


async def test_grace_reentry_keeps_details_across_nodes(b):
    """A session with status, summary and profile drops from node 1 and comes back through
    node 2 within the grace: it keeps them there, as a live takeover does. In its grace it is
    in nobody's peers_list; node 1 drops its grace and row without a peer_left."""
    ns = nodes(b, 2, test_grace_reentry_keeps_details_across_nodes)
    try:
        a_entry, w_entry = await members(b, "alice", "bob")
        watcher = bt.Client(ns[1], w_entry, session=False)
        b.clients.append(watcher)
        await watcher.hello()
        s = bt.SessionClient(ns[0], a_entry, display_name="a")
        await s.hello()
        await watcher.expect("push", event="peer_joined")
        await s.send_json({"type": "set_status", "status": "working"})
        await s.send_json({"type": "set_summary", "summary": "before the drop"})
        await s.send_json({"type": "set_profile", "title": "tester", "_reqId": "p"})
        await s.expect("ack", _reqId="p")

        def row(peers):
            rows = [p for p in peers if p["pubkey"] == s.session_pubkey]
            return rows[0] if rows else None

        for _ in range(50):
            r = row((await bt.sync(watcher))["peers"])
            if r and r.get("summary") == "before the drop":
                break
            await bt.sync(s)
        assert r and r["status"] == "working", r
        s.ws.transport.abort()
        for _ in range(200):
            if row((await bt.sync(watcher))["peers"]) is None:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the session in its grace is still listed")
        with b.sql() as conn:
            kept = conn.execute("SELECT visible FROM presence WHERE routing_key = '%s'" % s.session_pubkey).fetchall()
        assert [int(v[0]) for v in kept] == [-1], kept

        back = bt.SessionClient(ns[1], a_entry, session_key=s.session_key, display_name="a")
        await back.hello()
        r = row((await bt.sync(watcher))["peers"])
        assert r and r["status"] == "working" and r["summary"] == "before the drop", r
        assert r.get("profile", {}).get("title") == "tester", r
        for _ in range(200):
            with b.sql() as conn:
                n = conn.execute("SELECT count(*) FROM presence WHERE routing_key = '%s'"
                                 % s.session_pubkey).fetchone()[0]
            if int(n) == 1 and "came back through another node" in ns[0].logtext():
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("node 1 kept the session's grace:\n" + ns[0].logtext())
        assert [f for f in watcher.inbox if f.get("event") in ("peer_left", "peer_joined")] == [], watcher.inbox
    finally:
        close_nodes(ns[1:])


test_grace_reentry_keeps_details_across_nodes.broker_args = ["--catch-up-interval", "3600000",
                                                             "--presence-grace", "60"]


if __name__ == "__main__":
    if bt.BACKEND != "postgresql":
        bt.skip("several nodes need the PostgreSQL engine (CLAUDEMESH_TEST_BACKEND=postgresql)")
    bt.run([test_cross_node_dm, test_dropped_listen, test_listen_by_host_name, test_dedupe_and_limit_across_nodes,
            test_node_killed_mid_stream,
            test_presence_and_multicast_across_nodes, test_database_connection_lost,
            test_session_takeover_across_nodes, test_session_grace_across_nodes, test_hello_replay_across_nodes,
            test_sender_node_killed_mid_flood, test_pool_connection_lost,
            test_stalled_database_leaves_the_loop_serving, test_health_check_does_not_wait_for_the_database,
            test_listen_reconnect_does_not_stall_the_loop, test_listen_outage_logged_once, test_listen_by_service, test_presence_details_across_nodes,
            test_peer_updated_across_nodes, test_state_change_across_nodes, test_state_change_while_listen_down,
            test_presence_while_listen_down, test_presence_events_migrated_and_pruned,
            test_main_connection_backpressure,
            test_grace_reentry_keeps_details_across_nodes])
