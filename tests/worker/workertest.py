# SPDX-License-Identifier: LGPL-2.1-or-later
"""Plays claudemeshd for claudemesh-worker: a SOCK_SEQPACKET socketpair with the worker's end
on fd 3, the "start" packet, signatures for its hellos (the harness holds the member key, as
the daemon does), and a record of every packet the worker sends. Run with /usr/bin/python3
(Debian's python3-nacl and python3-websockets)."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import nacl.signing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "broker"))
import brokertest as bt  # noqa: E402
import tap  # noqa: E402  (brokertest put tests/ on the path)

WORKER = os.environ.get("CLAUDEMESH_WORKER", "claudemesh-worker")
TIMEOUT = bt.TIMEOUT * 2
SESSIONS_MAX = 256  # WORKER_SESSIONS_MAX, worker-channel.h


class Session:
    """One session the harness opened on the worker: its key, held by the daemon."""

    def __init__(self, conn, name, refuse=None):
        self.conn = conn
        self.name = name
        self.key = nacl.signing.SigningKey.generate()
        self.pubkey = self.key.verify_key.encode().hex()
        self.session_id = f"worker-session-{uuid.uuid4()}"
        self.refuse = refuse      # None: sign; a string: refuse with it (every request, or refuse_only's kind)
        self.refuse_only = None
        self.signed = []          # (kind "attest"|"hello", expiresAt or timestamp, request_id), in order


class Worker:
    def __init__(self, entry, url, ping_ms=30000, liveness_ms=75000, allow_self_signed=False,
                 session=True, sign=True, display_name=None):
        self.entry = entry
        self.key = nacl.signing.SigningKey(bytes.fromhex(entry["secretKey"])[:32])
        self.session_key = nacl.signing.SigningKey.generate() if session else None
        self.session_id = f"worker-test-{uuid.uuid4()}"
        self.url = url
        self.start_packet = {
            "type": "start", "broker_url": url, "mesh_id": entry["meshId"], "member_id": entry["memberId"],
            "pubkey": entry["pubkey"], "session_id": self.session_id, "pid": os.getpid(), "cwd": "/tmp",
            "hostname": "worker-test", "ping_interval_ms": ping_ms, "liveness_timeout_ms": liveness_ms,
            "allow_self_signed": allow_self_signed,
        }
        if self.session_key:
            self.start_packet["session_pubkey"] = self.session_key.verify_key.encode().hex()
        if display_name:
            self.start_packet["display_name"] = display_name
        self.sign = sign          # True: sign; a string: answer with that error
        self.packets = []         # everything received, in order, with a monotonic timestamp
        self.pending = []
        self.stderr = []
        self.proc = None
        self.sock = None
        self.unsent = []          # packets waiting for room in the channel, in order
        self.signed = []
        self.event = None
        self.eof = False
        self.sessions = {}        # conn -> Session, as opened with open_session()
        self.bad_sign = []        # sign requests of a form the daemon must refuse
        self.keep_frames = True   # False: "frame" packets are not kept (floods of peer_joined)

    @property
    def routing_key(self):
        return self.session_key.verify_key.encode().hex() if self.session_key else self.entry["pubkey"]

    def spawn(self, start=True):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        child_fd = child.fileno()

        def to_fd3():
            os.dup2(child_fd, 3)

        env = dict(os.environ, CLAUDEMESH_LOG_TARGET="stderr", CLAUDEMESH_LOG_LEVEL="debug")
        # stderr is a pipe, as under the daemon: RLIMIT_FSIZE=0 applies.
        self.proc = subprocess.Popen([WORKER], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, close_fds=False, preexec_fn=to_fd3, env=env)
        child.close()
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.sock = parent
        self.sock.setblocking(False)
        if start:
            self.send(self.start_packet)
        return self

    async def logged(self, text, timeout=5.0):
        """True once a stderr line contains text: the reader thread may lag behind the channel."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(text in line for line in self.stderr):
                return True
            await asyncio.sleep(0.05)
        return False

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip("\n"))

    def log(self):
        return "\n".join(self.stderr[-80:])

    def send(self, packet):
        # The socket is non-blocking for the reader on the event loop. A burst (256
        # session_open) can fill it while a slow worker (ASan, valgrind) catches up; what does
        # not fit waits, in order, for the loop to find room, and meanwhile the reader goes on
        # reading: the worker waits for that before it reads more of ours.
        data = json.dumps(packet).encode()
        if not self.unsent:
            try:
                self.sock.send(data)
                return
            except BlockingIOError:
                asyncio.get_running_loop().add_writer(self.sock.fileno(), self._on_writable)
        self.unsent.append(data)

    def _on_writable(self):
        while self.unsent:
            try:
                self.sock.send(self.unsent[0])
            except BlockingIOError:
                return
            self.unsent.pop(0)
        asyncio.get_running_loop().remove_writer(self.sock.fileno())

    def _ensure_reader(self):
        # Packets are read (and signing requests answered) as they come, whatever the test is
        # waiting for, so their timestamps are when the worker sent them.
        if self.event is None:
            self.event = asyncio.Event()
            asyncio.get_running_loop().add_reader(self.sock.fileno(), self._on_readable)

    def _on_readable(self):
        while True:
            try:
                data = self.sock.recv(300000)
            except BlockingIOError:
                return
            if not data:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
                self.eof = True
                self.event.set()
                return
            p = json.loads(data)
            if p["type"] == "frame" and not self.keep_frames:
                continue
            p["_t"] = time.monotonic()
            self.packets.append(p)
            if p["type"] == "sign":
                self._answer_sign(p)
            self.pending.append(p)
            self.event.set()

    def _answer_sign(self, p):
        payload = p["payload"]
        if p.get("conn"):
            self._answer_session_sign(p)
            return
        e = self.entry
        parts = payload.split("|")
        assert parts[:3] == [e["meshId"], e["memberId"], e["pubkey"]], payload
        assert abs(int(parts[3]) - time.time() * 1000) < 60000, payload
        self.signed.append(payload)
        if self.sign is True:
            self.send({"type": "signature", "request_id": p["request_id"],
                       "signature": self.key.sign(payload.encode()).signature.hex()})
        else:
            self.send({"type": "signature", "request_id": p["request_id"], "error": self.sign})

    def _answer_session_sign(self, p):
        """As the daemon does (SESSIONS-CONTRACT): the attestation with the member key, the
        hello with that session's key, each only in exactly its form and with a fresh time."""
        payload, s = p["payload"], self.sessions.get(p["conn"])
        e, now = self.entry, time.time() * 1000
        parts = payload.split("|")
        key = kind = None
        if s and len(parts) == 4 and parts[:3] == ["claudemesh-session-attest", e["pubkey"], s.pubkey] \
                and abs(int(parts[3]) - (now + 12 * 3600 * 1000)) <= 60000:
            key, kind = self.key, "attest"
        elif s and len(parts) == 5 and parts[:4] == ["claudemesh-session-hello", e["meshId"], e["pubkey"], s.pubkey] \
                and abs(int(parts[4]) - now) <= 60000:
            key, kind = s.key, "hello"
        if key is None:
            self.bad_sign.append(p)
            self.send({"type": "signature", "request_id": p["request_id"], "error": "not a session payload"})
            return
        s.signed.append((kind, int(parts[-1]), p["request_id"]))
        if s.refuse and s.refuse_only in (None, kind):
            self.send({"type": "signature", "request_id": p["request_id"], "error": s.refuse})
        else:
            self.send({"type": "signature", "request_id": p["request_id"],
                       "signature": key.sign(payload.encode()).signature.hex()})

    def open_session(self, conn, name=None, refuse=None, refuse_only=None, groups=None, send=True):
        """Opens session connection conn with a fresh session key, as the daemon does."""
        s = Session(conn, name or f"session-{conn}", refuse)
        s.refuse_only = refuse_only
        packet = {"type": "session_open", "conn": conn, "session_pubkey": s.pubkey,
                  "session_id": s.session_id, "display_name": s.name, "pid": os.getpid(), "cwd": "/tmp"}
        if groups:
            packet["groups"] = groups
        self.sessions[conn] = s
        if send:
            self.send(packet)
        return s

    def close_session(self, conn):
        self.send({"type": "session_close", "conn": conn})

    async def expect(self, type_, timeout=TIMEOUT, **match):
        """The first kept or new packet of this type whose fields equal match (a callable
        value is a predicate)."""
        def ok(p):
            if p.get("type") != type_:
                return False
            for k, v in match.items():
                if callable(v):
                    if not v(p.get(k)):
                        return False
                elif p.get(k) != v:
                    return False
            return True
        self._ensure_reader()
        deadline = time.monotonic() + timeout
        while True:
            for i, p in enumerate(self.pending):
                if ok(p):
                    return self.pending.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                raise AssertionError(f"no {type_} {match} within {timeout}s; got {self.pending[-10:]}\n"
                                     f"---- worker log ----\n{self.log()}")
            self.event.clear()
            try:
                await asyncio.wait_for(self.event.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def state(self, state, timeout=TIMEOUT, **match):
        return await self.expect("state", timeout, state=state, **match)

    def flush(self):
        """Forgets the packets kept so far: later expectations see only new ones."""
        self.pending.clear()

    async def nothing(self, type_, wait, **match):
        """Asserts that no such packet arrives within wait seconds (earlier ones don't count)."""
        self.flush()
        try:
            p = await self.expect(type_, wait, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {p}\n---- worker log ----\n{self.log()}")

    async def connected(self, timeout=TIMEOUT, conn=None):
        """The next "connected" of that connection (None: the member's, whose packets carry no conn)."""
        await self.state("connected", timeout, conn=conn)
        return self

    def frame(self, frame, conn=None):
        self.send({"type": "send", "frame": frame, **({"conn": conn} if conn is not None else {})})

    def proc_status(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)

    def stop(self, timeout=10):
        """Closes the channel, as a dying daemon does; the worker must exit 0 on its own."""
        if not self.proc:
            return 0
        if self.event is not None and not self.eof:
            try:
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            except RuntimeError:
                pass
        if self.unsent:
            try:
                asyncio.get_running_loop().remove_writer(self.sock.fileno())
            except RuntimeError:
                pass
        self.sock.close()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the worker did not exit when the channel closed\n" + self.log())
        self.proc = None
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def run_one(t, *broker_args):
    """Runs the async test(broker, workers) against a fresh broker; raises on failure."""
    b = bt.Broker(*broker_args, *getattr(t, "broker_args", []))
    workers = []
    try:
        b.start()
        asyncio.run(asyncio.wait_for(bt.with_cleanup(lambda br: t(br, workers), b), 120))
        for w in workers:
            rc = w.stop()
            assert rc == 0, f"worker exited with {rc}\n{w.log()}"
    except tap.Skip:
        raise
    except BaseException:
        for w in workers:
            print("---- worker log ----\n" + w.log(), flush=True)
        print("---- broker log ----\n" + b.logtext()[-4000:], flush=True)
        raise
    finally:
        for w in workers:
            w.kill()
        b.close()


def run(tests, *broker_args):
    """Runs each async test(broker, workers) (those named on the command line, else all)
    against a fresh broker, as TAP cases; exits non-zero on failure."""
    tap.run([(t.__name__, lambda t=t: run_one(t, *broker_args)) for t in tap.selected(tests)])


def sigstop(proc):
    proc.send_signal(signal.SIGSTOP)


def sigcont(proc):
    proc.send_signal(signal.SIGCONT)
