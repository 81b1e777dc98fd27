#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A descriptor flood on the /v1 socket: the daemon runs with RLIMIT_NOFILE 128:256 (it raises the
# soft limit to 256 itself) and 2,000 half-open connections are opened at once. The daemon holds
# at most its /v1 connection cap of them (256 less the reserve), the D-Bus methods (Send, which
# polkit checks and the outbox stores, and ListOutbox) keep working throughout, every send is
# stored once (0 lost, 0 duplicated), the idle connections are closed after the idle timeout, an
# event stream opened before stays open past it (its keepalives arrive), and /v1 serves again
# once the flood is gone. libmicrohttpd's messages about it are rate-limited.
. "$(dirname "$0")/../bus/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
cat > "$T/claudemeshd-lowfd" <<SH
#!/bin/sh
exec prlimit --nofile=128:256 -- "$CLAUDEMESHD" "\$@"
SH
chmod +x "$T/claudemeshd-lowfd"
CLAUDEMESHD="$T/claudemeshd-lowfd" start_daemon
grep -Eq '^Max open files +256 +256 ' "/proc/$DAEMON_PID/limits" ||
        fail "the soft limit was not raised: $(grep 'open files' "/proc/$DAEMON_PID/limits")"

PYTHONPATH="$(dirname "$0")/../bus" /usr/bin/python3 - "$T" "$DAEMON_PID" <<'PY' || fail "the flood checks failed"
import errno, os, resource, socket, sqlite3, subprocess, sys, threading, time
from compat_client import request

T, PID = sys.argv[1], int(sys.argv[2])
SOCK = os.path.join(T, "config/daemon/daemon.sock")
FLOOD = 2000
CAP = 128             # 256 less the reserve (half, at least 128): compat-http.h
IDLE_TIMEOUT = 10     # COMPAT_IDLE_TIMEOUT_SEC
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
assert hard > FLOOD + 100, f"this test needs {FLOOD + 100} descriptors, the hard limit is {hard}"

def daemon_fds():
    return len(os.listdir(f"/proc/{PID}/fd"))

def gdbus(method, *args):
    return subprocess.run(["gdbus", "call", "--session", "--dest", "org.claudemesh.Daemon1", "--object-path",
                           "/org/claudemesh/Daemon1", "--method", "org.claudemesh.Daemon1." + method, *args],
                          capture_output=True, text=True, timeout=20)

# an event stream, opened before the flood: it must outlive the idle timeout
stream = socket.socket(socket.AF_UNIX)
stream.connect(SOCK)
stream.sendall(b"GET /v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
stream_opened = time.monotonic()
stream_data = []
def read_stream():
    while True:
        try:
            d = stream.recv(4096)
        except OSError:
            d = b""
        stream_data.append((time.monotonic() - stream_opened, d))
        if not d:
            return
reader = threading.Thread(target=read_stream, daemon=True)
reader.start()
deadline = time.monotonic() + 5
while not any(b": connected" in d for _, d in stream_data):
    assert time.monotonic() < deadline, f"the stream did not start: {stream_data}"
    time.sleep(0.05)
baseline = daemon_fds()

# the flood: half-open connections (a request line and half a header, never finished)
flood, backlog_full = [], 0
started = time.monotonic()
for _ in range(FLOOD):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        s.connect(SOCK)
        s.send(b"GET /v1/health HTTP/1.1\r\nHost: loc")
        flood.append(s)
    except OSError as e:
        assert e.errno in (errno.EAGAIN, errno.ECONNREFUSED), e
        backlog_full += 1
        s.close()
time.sleep(1)  # let the daemon accept what it will
peak = daemon_fds()
assert peak <= baseline + CAP, f"the daemon holds {peak} descriptors, {baseline} before the flood"

# the bus keeps working: sends (polkit-checked, stored) and reads
SENDS = 30
for i in range(SENDS):
    r = gdbus("Send", "acme", "*", f"during the flood {i}", "{'client_message_id': <'flood-%d'>}" % i)
    assert r.returncode == 0 and f"('flood-{i}', 'queued', '')" in r.stdout, r
    if i % 10 == 0:
        r = gdbus("ListOutbox", "acme", "{}")
        assert r.returncode == 0 and "flood-0" in r.stdout, r
peak = max(peak, daemon_fds())

# the idle ones are closed after the timeout (those accepted first; the backlog follows)
closed = 0
deadline = started + IDLE_TIMEOUT + 6
while time.monotonic() < deadline and closed == 0:
    time.sleep(0.5)
    for s in flood:
        try:
            if s.recv(4096) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except ConnectionResetError:
            closed += 1
closed_after = time.monotonic() - started
assert 0 < closed <= CAP, f"{closed} idle connections closed {closed_after:.1f}s into the flood"
assert closed_after >= IDLE_TIMEOUT - 1, f"idle connections closed after {closed_after:.1f}s"

# the flood goes away; /v1 serves again
for s in flood:
    s.close()
gone = time.monotonic()
while True:
    try:
        st = request(SOCK, "GET", "/v1/health")[0]
    except OSError:
        st = None
    if st == 200:
        break
    assert time.monotonic() - gone < IDLE_TIMEOUT + 5, f"/v1 does not serve after the flood: {st}"
    time.sleep(0.1)
recovery = time.monotonic() - gone

# the stream lived through the idle timeout, with its keepalive
deadline = stream_opened + 15 + 5
while not any(b": keepalive" in d for _, d in stream_data):
    assert time.monotonic() < deadline, f"no keepalive on the stream: {stream_data}"
    time.sleep(0.2)
assert all(d for _, d in stream_data), f"the stream was closed: {stream_data}"
stream.close()

with sqlite3.connect(os.path.join(T, "state/claudemesh/outbox.db"), timeout=5) as db:
    got = db.execute("SELECT client_message_id, count(*) FROM outbox GROUP BY client_message_id").fetchall()
assert sorted(got) == sorted((f"flood-{i}", 1) for i in range(SENDS)), got
print(f"fault-v1-flood: {FLOOD} connections ({backlog_full} refused by a full backlog), daemon descriptors "
      f"{baseline} -> peak {peak} (limit 256), {SENDS} sends and {SENDS // 10} listings over D-Bus during the flood: "
      f"0 lost, 0 duplicated; {closed} idle connections closed after {closed_after:.1f}s; /v1 back "
      f"{recovery:.1f}s after the flood")
PY

# one line per refused or closed connection would be thousands: rate-limited
mhd_lines=$(grep -c 'libmicrohttpd' "$T/daemon.log" || true)
echo "fault-v1-flood: $mhd_lines libmicrohttpd log lines"
[ "$mhd_lines" -le 40 ] || fail "$mhd_lines lines of libmicrohttpd's messages for one flood"
stop_daemon
echo "fault-v1-flood: ok"
