#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The upstream-compatible /v1 socket: where upstream clients look for it, the request pipeline
# (query token, Host, Origin, routing), the pid file, stale and live sockets, --no-compat, and
# socket activation through systemd-socket-activate.
. "$(dirname "$0")/lib.sh"

start_session_bus
write_config "$T/config"
SOCK="$XDG_RUNTIME_DIR/claudemesh/daemon.sock"
LINK="$T/config/daemon/daemon.sock"
PIDFILE="$T/config/daemon/daemon.pid"

# code PATH-TO-SOCKET URL [CURL ARGS...]: prints "<status> <body>"
code() {
        sock=$1 url=$2; shift 2
        curl -sS --max-time 5 --unix-socket "$sock" -o "$T/body" -w '%{http_code}' "$@" "$url"
        printf ' %s' "$(cat "$T/body")"
}
expect() {
        want=$1; shift
        got=$(code "$@")
        [ "$got" = "$want" ] || fail "$*: expected $want, got $got"
}

start_daemon
[ -S "$SOCK" ] || fail "no socket at $SOCK"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "socket mode $(stat -c %a "$SOCK")"
[ "$(stat -c %a "$XDG_RUNTIME_DIR/claudemesh")" = 700 ] || fail "socket directory is not 0700"
[ "$(readlink "$LINK")" = "$SOCK" ] || fail "$LINK does not point at $SOCK"
[ "$(cat "$PIDFILE")" = "$DAEMON_PID" ] || fail "daemon.pid does not hold $DAEMON_PID"
[ "$(stat -c %a "$PIDFILE")" = 600 ] || fail "daemon.pid mode $(stat -c %a "$PIDFILE")"

# an upstream-style client at the config-dir path (reference §2.7)
curl -sS --max-time 5 --unix-socket "$LINK" -D "$T/headers" -o "$T/body" \
        -H 'host: localhost' -H 'accept: application/json' http://localhost/v1/version
grep -qi '^content-type: application/json' "$T/headers" || fail "no JSON content type: $(cat "$T/headers")"
/usr/bin/python3 - "$T/body" "$EXPECTED_VERSION" <<'PY' || fail "bad /v1/version: $(cat "$T/body")"
import json, sys
v = json.load(open(sys.argv[1]))
assert v["ipc_api"] == "v1" and v["daemon_version"] == sys.argv[2] and v["schema_version"] == 1, v
assert v["ipc_features"] == ["version", "health", "send", "inbox", "outbox", "events", "peers", "profile",
                           "state", "sessions"], v
PY
expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$LINK" http://localhost/v1/health

# the pipeline, in order
expect '400 {"error":"token must be in Authorization header, not query string"}' "$SOCK" \
        'http://evil.example/v1/health?token=x' -H 'Origin: http://evil.example'
expect '403 {"error":"forbidden host"}' "$SOCK" http://evil.example/v1/health -H 'Origin: http://evil.example'
expect '403 {"error":"forbidden host"}' "$SOCK" http://localhost.evil.example/v1/health
expect '403 {"error":"forbidden origin"}' "$SOCK" http://localhost/v1/health -H 'Origin: http://localhost'
for host in localhost LOCALHOST:3000 127.0.0.1 127.0.0.1:80 '[::1]' '[::1]:47823'; do
        expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$SOCK" http://localhost/v1/health -H "Host: $host"
done
expect '404 {"error":"not found"}' "$SOCK" http://localhost/v1/nope
expect '404 {"error":"not found"}' "$SOCK" http://localhost/v1/health -X POST -d '{}'
expect '404 {"error":"not found"}' "$SOCK" http://localhost/v1/version/
# upstream's skills and memory (ipc/server.ts:428-546) live on its broker: 501 naming the feature
for url in /v1/skills /v1/skills/deploy /v1/memory; do
        feature=${url#/v1/}; feature=${feature%%/*}
        expect "501 {\"error\":\"not_implemented\",\"feature\":\"$feature\"}" "$SOCK" "http://localhost$url"
done
expect '501 {"error":"not_implemented","feature":"memory"}' "$SOCK" http://localhost/v1/memory -d '{"content":"x"}'
expect '501 {"error":"not_implemented","feature":"memory"}' "$SOCK" http://localhost/v1/memory/m1 -X DELETE
expect '404 {"error":"not found"}' "$SOCK" http://localhost/v1/skills -X DELETE
expect '404 {"error":"not found"}' "$SOCK" http://localhost/v1/skillsx
# no mesh attached: upstream's 503 for /v1/peers (ipc/server.ts:341-344)
expect '503 {"error":"broker not initialised"}' "$SOCK" http://localhost/v1/peers

# a request libmicrohttpd itself refuses: 400, and its complaint goes through our log
/usr/bin/python3 - "$SOCK" <<'PY' || fail "a malformed Content-Length was not refused with 400"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nContent-Length: zz\r\n\r\n")
assert s.recv(100).startswith(b"HTTP/1.1 400 "), "no 400"
PY
grep -q "^<4>libmicrohttpd: Failed to parse .Content-Length. header" "$T/daemon.log" ||
        fail "libmicrohttpd's message did not reach the daemon's log"

# a second daemon (its own bus, same directories) leaves the live one's socket, link and pid alone
first=$DAEMON_PID
bus1=$DBUS_SESSION_BUS_ADDRESS
mv "$T/session-bus.pid" "$T/session-bus1.pid"
start_session_bus
start_daemon
second=$DAEMON_PID
grep -q "Another daemon answers on $SOCK" "$T/daemon.log" || fail "the second daemon did not say why it has no /v1 socket"
[ "$(cat "$PIDFILE")" = "$first" ] || fail "the second daemon clobbered daemon.pid"
expect "200 {\"ok\":true,\"pid\":$first,\"brokers\":{}}" "$LINK" http://localhost/v1/health
kill "$second"; wait "$second" || fail "second daemon exited with $?"
[ "$(cat "$PIDFILE")" = "$first" ] || fail "the second daemon removed the first one's daemon.pid"
export DBUS_SESSION_BUS_ADDRESS="$bus1"
DAEMON_PID=$first

# clean exit removes what it published
stop_daemon
[ ! -e "$SOCK" ] && [ ! -e "$LINK" ] && [ ! -e "$PIDFILE" ] || fail "left behind: $(ls -la "$T/config/daemon" "$XDG_RUNTIME_DIR/claudemesh")"

# a crash leaves them stale; the next start replaces them
start_daemon
wait_until test -f "$PIDFILE" || fail "no daemon.pid after start"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
[ -S "$SOCK" ] && [ -f "$PIDFILE" ] || fail "SIGKILL did not leave a stale socket and pid file"
start_daemon
expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$LINK" http://localhost/v1/health
[ "$(cat "$PIDFILE")" = "$DAEMON_PID" ] || fail "stale daemon.pid not replaced"
stop_daemon

# --no-compat: no socket, nothing published
start_daemon --no-compat
[ ! -e "$SOCK" ] && [ ! -e "$LINK" ] && [ ! -e "$PIDFILE" ] || fail "--no-compat still published the /v1 socket"
stop_daemon

# $CLAUDEMESH_DAEMON_DIR (upstream's newer lookup, apps/cli/src/daemon/paths.ts:22-24): the socket
# is linked there too, the directory made 0700; a clean exit removes the link
UPDIR="$T/up/daemon"
CLAUDEMESH_DAEMON_DIR="$UPDIR" start_daemon
[ "$(readlink "$UPDIR/daemon.sock")" = "$SOCK" ] || fail "$UPDIR/daemon.sock does not point at $SOCK"
[ "$(stat -c %a "$UPDIR")" = 700 ] || fail "$UPDIR is not 0700"
expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$UPDIR/daemon.sock" http://localhost/v1/health
stop_daemon
[ ! -e "$UPDIR/daemon.sock" ] || fail "the link in CLAUDEMESH_DAEMON_DIR was left behind"
# ... never over a live daemon's socket there: it keeps answering, and stays after we exit
/usr/bin/python3 - "$UPDIR/daemon.sock" "$T/fake-up.ready" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
open(sys.argv[2], "w").close()
while True:
    s.accept()[0].close()
PY
FAKE=$!
CLEANUP_PIDS="$CLEANUP_PIDS $FAKE"
wait_until test -e "$T/fake-up.ready" || fail "the stand-in daemon did not start"
CLAUDEMESH_DAEMON_DIR="$UPDIR" start_daemon
grep -q "Another daemon answers on $UPDIR/daemon.sock" "$T/daemon.log" || fail "no word about the live socket in $UPDIR"
[ -S "$UPDIR/daemon.sock" ] && [ ! -L "$UPDIR/daemon.sock" ] || fail "the live socket in $UPDIR was replaced"
expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$LINK" http://localhost/v1/health
stop_daemon
[ -S "$UPDIR/daemon.sock" ] || fail "our exit removed the other daemon's socket"
kill "$FAKE"; wait "$FAKE" 2>/dev/null || true
# ... and a relative path is not taken
( cd "$T" && CLAUDEMESH_DAEMON_DIR="rel/daemon" start_daemon && stop_daemon ) || fail "a relative CLAUDEMESH_DAEMON_DIR"
[ ! -e "$T/rel" ] || fail "a relative CLAUDEMESH_DAEMON_DIR was used"
grep -q "Ignoring CLAUDEMESH_DAEMON_DIR=rel/daemon: not an absolute path" "$T/daemon.log" || fail "no word about the relative path"

# socket activation: the first connection starts the daemon, which takes the fd named "compat"
# and closes the other one
ACT="$T/activate/daemon.sock"
mkdir -m 0700 "$T/activate"
: > "$T/daemon.log"
CLAUDEMESH_CONFIG_DIR="$T/config" XDG_STATE_HOME="$T/state" CLAUDEMESH_LOG_TARGET=stderr \
        systemd-socket-activate -l "$ACT" -l "$T/activate/other.sock" --fdname=compat:other \
        -E DBUS_SESSION_BUS_ADDRESS -E CLAUDEMESH_CONFIG_DIR -E XDG_STATE_HOME -E XDG_RUNTIME_DIR \
        -E CLAUDEMESH_LOG_TARGET "$CLAUDEMESHD" --offline >> "$T/daemon.log" 2>&1 &
DAEMON_PID=$!; CLEANUP_PIDS="$CLEANUP_PIDS $DAEMON_PID"
wait_until test -S "$ACT" || fail "systemd-socket-activate did not listen"
busctl --user status org.claudemesh.Daemon1 >/dev/null 2>&1 && fail "the daemon runs before any connection"
expect "200 {\"ok\":true,\"pid\":$DAEMON_PID,\"brokers\":{}}" "$ACT" http://localhost/v1/health
[ "$(readlink "$LINK")" = "$ACT" ] || fail "$LINK does not point at the activated socket"
[ ! -e "$SOCK" ] || fail "the activated daemon bound a socket of its own"
grep -q 'Closing socket fd 4 ("other")' "$T/daemon.log" || fail "the unknown fd was not closed and logged"
stop_daemon
[ -S "$ACT" ] || fail "the daemon removed the socket it was given"
[ ! -e "$LINK" ] && [ ! -e "$PIDFILE" ] || fail "the activated daemon left its link or pid file"
echo ok
