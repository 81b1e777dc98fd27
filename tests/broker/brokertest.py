# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the broker tests: a broker process on a free loopback port with a temporary
database, the admin commands, and a WebSocket client that speaks the upstream protocol
(signed hello with PyNaCl, frames as JSON). Run with /usr/bin/python3 (Debian's
python3-websockets and python3-nacl)."""

import asyncio
import atexit
import base64
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import nacl.signing
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tap  # noqa: E402

BROKER = os.environ.get("CLAUDEMESH_BROKER", "claudemesh-broker")
# Under `meson test --setup valgrind` the broker runs under valgrind too, and slower.
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--quiet"] if os.environ.get("CLAUDEMESH_UNDER_VALGRIND") == "1" else []
TIMEOUT = 30.0 if VALGRIND else 5.0


# The storage engine the broker runs on: "sqlite" (a file per broker) or "postgresql" (a
# database per broker on a PostgreSQL server this process starts, see PgServer).
BACKEND = os.environ.get("CLAUDEMESH_TEST_BACKEND", "sqlite")
skip = tap.skip


class PgServer:
    """A private PostgreSQL server: initdb and pg_ctl in a temporary directory, run as an
    unprivileged user (nobody when the tests run as root), listening on a Unix socket in that
    directory and on 127.0.0.1 (a free port; TCP needs the password in tcp_uri(), as other
    local users can reach it), stopped at exit. Each database() is a fresh, empty database
    on it."""

    def __init__(self):
        self.bindir = self.find_bindir()
        if not self.bindir:
            skip("PostgreSQL server binaries (initdb, pg_ctl; Debian's postgresql package) not found")
        self.dir = tempfile.mkdtemp(prefix="broker-pg-")
        self.data = os.path.join(self.dir, "data")
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.dir, *self.ids())
        self.n = 0
        self.started = False
        self.port = free_port()
        self.password = base64.b32encode(os.urandom(20)).decode().lower()
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        if self.user:
            os.chown(pwfile, *self.ids())
        atexit.register(self.stop)
        self.run("initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
        self.run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-w", "-t", "60",
                 "-o", f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
                       " -c fsync=off"
                       " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start")
        self.started = True

    @staticmethod
    def find_bindir():
        for d in [os.environ.get("CLAUDEMESH_PG_BINDIR", "")] + sorted(
                (os.path.join("/usr/lib/postgresql", v, "bin") for v in
                 (os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else [])), reverse=True):
            if d and os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
                return d
        return None

    def ids(self):
        import pwd
        pw = pwd.getpwnam(self.user)
        return pw.pw_uid, pw.pw_gid

    def run(self, tool, *args):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if p.returncode != 0:
            raise AssertionError(f"{tool} failed ({p.returncode}): {p.stderr}{p.stdout}")
        return p

    def psql(self, dbname, sql):
        return subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p", str(self.port),
                               "-U", "postgres",
                               "-d", dbname, "-At", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x01", "-c", sql],
                              capture_output=True, text=True, timeout=60)

    def database(self):
        self.n += 1
        name = f"broker{self.n}"
        p = self.psql("postgres", f"CREATE DATABASE {name}")
        if p.returncode != 0:
            raise AssertionError(f"CREATE DATABASE failed: {p.stderr}")
        return name, f"postgresql:///{name}?host={self.dir}&port={self.port}&user=postgres"

    def tcp_uri(self, name):
        """The database by a host name over TCP, which the broker resolves."""
        return f"postgresql://postgres:{self.password}@localhost:{self.port}/{name}"

    def stop(self):
        if self.started:
            self.started = False
            try:
                self.run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            except (AssertionError, subprocess.TimeoutExpired) as e:
                print(f"pg_ctl stop: {e}", file=sys.stderr)
        shutil.rmtree(self.dir, ignore_errors=True)


_pg = None


def pg_server():
    global _pg
    if _pg is None:
        _pg = PgServer()
    return _pg


class PgConn:
    """The few calls the tests make on an sqlite3 connection (execute, fetchone, fetchall,
    iteration, with), run through psql against a broker's PostgreSQL database."""

    def __init__(self, dbname):
        self.dbname = dbname
        self.rows = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def literal(v):
        if v is None:
            return "NULL"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, bytes):
            return "'\\x" + v.hex() + "'::bytea"
        return "'" + str(v).replace("'", "''") + "'"

    @staticmethod
    def value(v):
        if v == "\x01":
            return None
        if v.lstrip("-").isdigit():
            return int(v)
        return v

    def execute(self, sql, params=()):
        parts = sql.split("?")
        assert len(parts) == len(params) + 1, f"{len(params)} parameters for {sql}"
        text = parts[0] + "".join(self.literal(p) + rest for p, rest in zip(params, parts[1:]))
        p = pg_server().psql(self.dbname, text)
        if p.returncode != 0:
            raise AssertionError(f"psql failed: {p.stderr} ({text})")
        # psql ends its output with a newline after the last record.
        out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
        out = out[:-1] if out.endswith("\x1e") else out
        self.rows = [tuple(self.value(v) for v in r.split("\x1f")) for r in out.split("\x1e")] if out else []
        return self

    def fetchone(self):
        return self.rows[0] if self.rows else None

    def fetchall(self):
        return list(self.rows)

    def __iter__(self):
        return iter(self.rows)


PORT_LOCKS = "/tmp/claudemesh-test-ports"
_port_leases = []  # lock files held until this process exits


def _port_range():
    """Ports below the kernel's ephemeral range: a port taken with bind(0) can be given
    again as some client's source port, and a broker restarted on it then fails with
    EADDRINUSE."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - 12000), max(1025, low)


def free_port():
    """A loopback port for this process alone: outside the ephemeral range, and leased with
    an flock on PORT_LOCKS/<port>.lock that the other tests running in parallel honour
    (tests/e2e/lib.sh takes the same locks)."""
    import fcntl
    import random
    os.makedirs(PORT_LOCKS, mode=0o1777, exist_ok=True)
    first, end = _port_range()
    for _ in range(1000):
        port = random.randrange(first, end)
        fd = os.open(os.path.join(PORT_LOCKS, f"{port}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            os.close(fd)
            continue
        _port_leases.append(fd)
        return port
    raise AssertionError(f"no free loopback port in {first}..{end - 1}")


class Broker:
    def __init__(self, *args, db=None, preexec=None):
        self.tmp = tempfile.TemporaryDirectory(prefix="broker-test-")
        self.pg_dbname = None
        if db is None and BACKEND == "postgresql":
            self.pg_dbname, db = pg_server().database()
        self.db = db or os.path.join(self.tmp.name, "broker.db")
        self.port = free_port()
        self.args = list(args)
        self.preexec = preexec  # runs in the broker's process before exec (limits)
        self.proc = None
        self.clients = []
        self.log = open(os.path.join(self.tmp.name, "broker.log"), "w+")

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def tls(self):
        return "--tls-cert" in self.args

    @property
    def http(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def admin(self, *args, check=True):
        p = subprocess.run([BROKER, "--db", self.db, "--listen", f"127.0.0.1:{self.port}", *args],
                           capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise AssertionError(f"admin {args} failed ({p.returncode}): {p.stderr}")
        return p

    def start(self):
        # Timed lines: a failure's log then says when each thing happened.
        env = dict(os.environ, CLAUDEMESH_LOG_TARGET="stderr", CLAUDEMESH_LOG_LEVEL="debug",
                   CLAUDEMESH_LOG_TIME="monotonic")
        self.proc = subprocess.Popen([*VALGRIND, BROKER, "--db", self.db, "--listen", f"127.0.0.1:{self.port}", *self.args],
                                     stdout=self.log, stderr=self.log, env=env, preexec_fn=self.preexec)
        deadline = time.monotonic() + 10 * (6 if VALGRIND else 1)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.logtext()}")
            try:
                with urllib.request.urlopen(self.http + "/health", timeout=1,
                                            context=ssl._create_unverified_context() if self.tls else None) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("broker did not come up:\n" + self.logtext())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60 if VALGRIND else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        return rc

    def logtext(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def close(self):
        self.stop()
        self.log.close()
        self.tmp.cleanup()

    def sql(self):
        """A connection to the broker's database, read with execute().fetchone()/fetchall()."""
        if self.pg_dbname:
            return PgConn(self.pg_dbname)
        import sqlite3
        return sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)

    def mesh(self, name="acme"):
        return json.loads(self.admin("mesh", "create", name).stdout)

    def member(self, mesh, name, *extra):
        return json.loads(self.admin("member", "add", mesh, name, *extra).stdout)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Client:
    """One WebSocket connection. Frames that arrive while waiting for something else are
    kept, so tests can assert on them later."""

    def __init__(self, broker, entry, session=True, session_id=None, display_name=None):
        self.broker = broker
        self.entry = entry
        self.member_key = nacl.signing.SigningKey(bytes.fromhex(entry["secretKey"])[:32]) \
            if "secretKey" in entry else None
        self.session_key = nacl.signing.SigningKey.generate() if session else None
        self.session_id = session_id or f"test-{uuid.uuid4()}"
        self.display_name = display_name
        self.ws = None
        self.inbox = []
        self.hello_ack = None
        broker.clients.append(self)

    @property
    def session_pubkey(self):
        return self.session_key.verify_key.encode().hex() if self.session_key else None

    @property
    def routing_key(self):
        return self.session_pubkey or self.entry["pubkey"]

    async def connect(self, path="/ws"):
        self.ws = await websockets.connect(f"ws://127.0.0.1:{self.broker.port}{path}", ping_interval=None,
                                           max_size=None, open_timeout=TIMEOUT)
        return self

    def hello_frame(self, timestamp=None, **override):
        ts = fresh_timestamp(self.entry["pubkey"]) if timestamp is None else timestamp
        e = self.entry
        signed = f"{e['meshId']}|{e['memberId']}|{e['pubkey']}|{ts}".encode()
        frame = {"type": "hello", "meshId": e["meshId"], "memberId": e["memberId"], "pubkey": e["pubkey"],
                 "sessionId": self.session_id, "pid": os.getpid(), "cwd": "/tmp", "hostname": "testhost",
                 "peerType": "ai", "channel": "claudemesh-test", "timestamp": ts,
                 "signature": self.member_key.sign(signed).signature.hex()}
        if self.session_key:
            frame["sessionPubkey"] = self.session_pubkey
        if self.display_name:
            frame["displayName"] = self.display_name
        frame.update(override)
        return {k: v for k, v in frame.items() if v is not None}

    async def hello(self, **override):
        if not self.ws:
            await self.connect()
        await self.send_json(self.hello_frame(**override))
        self.hello_ack = await self.expect("hello_ack")
        return self.hello_ack

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj))

    async def recv(self, timeout=TIMEOUT):
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    def inbox_summary(self):
        """What is kept, short enough for a CI log: the count by type, then the last frames."""
        counts = {}
        for f in self.inbox:
            counts[f.get("type")] = counts.get(f.get("type"), 0) + 1
        last = [str(f)[:300] for f in self.inbox[-3:]]
        return f"{len(self.inbox)} frames kept {counts}, the last: {last}"

    async def expect(self, type_, timeout=TIMEOUT, **match):
        """The first kept or new frame of this type whose fields equal match."""
        def ok(f):
            return f.get("type") == type_ and all(f.get(k) == v for k, v in match.items())
        for i, f in enumerate(self.inbox):
            if ok(f):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_} {match} within {timeout}s; got {self.inbox_summary()}")
            try:
                f = await self.recv(left)
            except asyncio.TimeoutError:
                continue
            if ok(f):
                return f
            self.inbox.append(f)

    async def expect_any(self, types, timeout=TIMEOUT):
        """The first kept or new frame whose type is one of types."""
        for i, f in enumerate(self.inbox):
            if f.get("type") in types:
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"none of {types} within {timeout}s; got {self.inbox_summary()}")
            try:
                f = await self.recv(left)
            except asyncio.TimeoutError:
                continue
            if f.get("type") in types:
                return f
            self.inbox.append(f)

    async def nothing(self, type_, wait=0.5, **match):
        """Asserts that no such frame arrives within wait seconds."""
        try:
            f = await self.expect(type_, timeout=wait, **match)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {f}")

    async def send(self, target, text="hi", id=None, **extra):
        id = id or str(uuid.uuid4())
        frame = {"type": "send", "id": id, "targetSpec": target, "priority": "next",
                 "nonce": b64(os.urandom(24)), "ciphertext": b64(text.encode())}
        frame.update(extra)
        await self.send_json({k: v for k, v in frame.items() if v is not None})
        return await self.expect("ack", id=id)

    async def close(self):
        if self.ws:
            await self.ws.close()


class SessionClient(Client):
    """A per-session connection as upstream's CLI 1.37 opens it: session_hello with a parent
    attestation signed by the member key (wire-protocol-head §2)."""

    def __init__(self, broker, entry, session_key=None, session_id=None, display_name=None):
        super().__init__(broker, entry, session=False, session_id=session_id or str(uuid.uuid4()),
                         display_name=display_name)
        self.session_key = session_key or nacl.signing.SigningKey.generate()

    def session_hello_frame(self, timestamp=None, expires_at=None, attestation=None, **override):
        now = int(time.time() * 1000)
        e = self.entry
        sk = self.session_pubkey
        ts = fresh_timestamp(sk) if timestamp is None else timestamp
        exp = now + 12 * 3600 * 1000 if expires_at is None else expires_at
        att_sig = self.member_key.sign(f"claudemesh-session-attest|{e['pubkey']}|{sk}|{exp}".encode()).signature.hex()
        hello_sig = self.session_key.sign(
            f"claudemesh-session-hello|{e['meshId']}|{e['pubkey']}|{sk}|{ts}".encode()).signature.hex()
        frame = {"type": "session_hello", "meshId": e["meshId"], "parentMemberId": e["memberId"],
                 "parentMemberPubkey": e["pubkey"], "sessionPubkey": sk,
                 "parentAttestation": {"sessionPubkey": sk, "parentMemberPubkey": e["pubkey"], "expiresAt": exp,
                                       "signature": att_sig},
                 "displayName": self.display_name, "sessionId": self.session_id, "pid": os.getpid(),
                 "cwd": "/tmp", "hostname": "testhost", "peerType": "ai", "channel": "claudemesh-session",
                 "timestamp": ts, "signature": hello_sig}
        if attestation:
            frame["parentAttestation"].update(attestation)
        frame.update(override)
        return {k: v for k, v in frame.items() if v is not None}

    async def hello(self, **override):
        if not self.ws:
            await self.connect()
        await self.send_json(self.session_hello_frame(**override))
        self.hello_ack = await self.expect("hello_ack")
        return self.hello_ack


_last_timestamp = {}


def fresh_timestamp(key):
    """Now in ms, but later than any earlier hello signed by key: the broker refuses a second
    use of a signed hello, and two of one member's hellos in the same millisecond are one."""
    ts = max(int(time.time() * 1000), _last_timestamp.get(key, 0) + 1)
    _last_timestamp[key] = ts
    return ts


def peer_updates(client):
    """The peer_updated pushes client has received and no expect() has taken."""
    return [f for f in client.inbox if f.get("event") == "peer_updated"]


async def change_while_hidden(subject, watcher):
    """subject hides, changes its status, shows itself again and changes its summary: watcher,
    which asked for peer_updated, hears only of the second change, carrying both values."""
    await subject.send_json({"type": "set_visible", "visible": False, "_reqId": "v"})
    await subject.expect("ack", id="v")
    await subject.send_json({"type": "set_status", "status": "dnd"})
    await subject.send_json({"type": "set_visible", "visible": True, "_reqId": "v2"})
    await subject.expect("ack", id="v2")
    await subject.send_json({"type": "set_summary", "summary": "back"})
    u = await watcher.expect("push", event="peer_updated")
    assert u["eventData"]["status"] == "dnd" and u["eventData"]["summary"] == "back", u
    assert peer_updates(watcher) == [], peer_updates(watcher)


async def inside_rate_window(window_sec, need_sec=60):
    """The limiter counts in fixed windows of the wall clock (bucket = now / window): a test
    that spends a budget waits, when fewer than need_sec seconds are left of the current
    window, for the next one, so its sends never straddle a boundary and find a fresh budget."""
    left = window_sec - time.time() % window_sec
    if left < need_sec:
        await asyncio.sleep(left + 0.2)


async def closed(client, timeout=TIMEOUT):
    """Waits for the broker to close the socket; returns (code, reason)."""
    try:
        while True:
            client.inbox.append(await client.recv(timeout))
    except websockets.ConnectionClosed:
        pass
    return client.ws.close_code, client.ws.close_reason


async def sync(client):
    """A round trip: every frame the broker sent the client before it is in client.inbox."""
    await client.send_json({"type": "list_peers", "_reqId": "sync"})
    return await client.expect("peers_list", _reqId="sync")


async def with_cleanup(test, broker):
    try:
        await test(broker)
    finally:
        # Drop the sockets at once: a polite close would wait for the broker's close frame.
        for c in broker.clients:
            if c.ws:
                c.ws.transport.abort()


def log_digest(text):
    """text with runs of lines already among the four before them, times aside (a throttle
    going on and off, a retry), told as one count, so a CI log's tail shows what happened
    before them."""
    out, recent, skipped = [], [], 0
    for line in text.splitlines():
        bare = re.sub(r"^(<\d>)\[ *\d+\.\d+\] ", r"\1", line)
        if bare in recent:
            skipped += 1
            continue
        if skipped:
            out.append(f"[{skipped} repeated lines]")
            skipped = 0
        out.append(line)
        recent = (recent + [bare])[-4:]
    if skipped:
        out.append(f"[{skipped} repeated lines]")
    return "\n".join(out) + "\n"


def run_one(t, *broker_args):
    """Runs the async test(broker) against a fresh broker; raises on failure."""
    if BACKEND != "sqlite" and getattr(t, "sqlite_only", False):
        raise tap.Skip("SQLite only: it builds or reads the database file itself")
    b = Broker(*broker_args, *getattr(t, "broker_args", []), preexec=getattr(t, "broker_preexec", None))
    try:
        b.start()
        asyncio.run(asyncio.wait_for(with_cleanup(t, b), 600 if VALGRIND else 60))
        rc = b.stop()
        # SIGTERM is a clean shutdown (and, under ASan, a leak check).
        assert rc == 0, f"broker exited with {rc} on SIGTERM"
    except tap.Skip:
        raise
    except BaseException:
        print("---- broker log ----\n" + log_digest(b.logtext())[-6000:], flush=True)
        raise
    finally:
        b.close()


def run(tests, *broker_args):
    """Runs each async test(broker) (those named on the command line, else all) against a fresh
    broker, as TAP cases; exits non-zero on failure."""
    tap.run([(t.__name__, lambda t=t: run_one(t, *broker_args)) for t in tap.selected(tests)])
