# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the end-to-end tests (sourced): our broker on a free loopback port, and
# daemons, each with its own private session bus, config and state. Needs CLAUDEMESHD,
# CLAUDEMESH_BROKER, CLAUDEMESH_WORKER and SEND_CLIENT from meson.
set -eu

T=$(mktemp -d /tmp/cm-e2e.XXXXXX)
chmod 755 "$T"
export T
PIDS=""
cleanup() {
        for p in $PIDS; do kill "$p" 2>/dev/null || true; done
        for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
        rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() {
        echo "FAIL: $*" >&2
        for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f:" >&2; tail -n 40 "$f" >&2; }; done
        exit 1
}

wait_until() {  # wait_until SECONDS CMD...
        limit=$(( $1 * 20 )); shift; i=0
        until "$@" >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -gt $limit ] && return 1
                sleep 0.05
        done
}

# pid_gone PID: true once PID has exited (a zombie nobody reaps has exited too).
pid_gone() {
        ! kill -0 "$1" 2>/dev/null || [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" = Z ]
}

# lease_port VAR: a loopback port for this test alone, in VAR. Taken below the ephemeral
# range (a bind(0) port can come back as some client's source port, and a broker restarted
# on it then fails with EADDRINUSE) and leased with an flock that this shell holds on fd 4, 5
# or 6 until it exits, the same locks tests/broker/brokertest.py takes. Three leases at most,
# and not in $(...), where the lock would die with the subshell.
PORT_LEASES=0
lease_port() {
        [ $PORT_LEASES -lt 3 ] || fail "lease_port: a test leases three ports at most"
        _fd=$((4 + PORT_LEASES))
        _port=$(/usr/bin/python3 -c 'import os, random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
first = max(1024, low - 12000)
for _ in range(1000):
    port = random.randrange(first, max(first + 1, low))
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    except OSError:
        continue
    print(port)
    break') || fail "lease_port: no port"
        mkdir -p /tmp/claudemesh-test-ports; chmod 1777 /tmp/claudemesh-test-ports 2>/dev/null || true
        eval "exec $_fd>>/tmp/claudemesh-test-ports/$_port.lock"
        if ! flock -n $_fd; then
                eval "exec $_fd>&-"
                lease_port "$1"
                return
        fi
        PORT_LEASES=$((PORT_LEASES + 1))
        eval "$1=$_port"
}

# broker_start [OPTIONS...]: our broker with its database in $T, rate limiter off
BROKER_PID=""
broker_start() {
        [ -n "${BROKER_PORT:-}" ] || lease_port BROKER_PORT
        "$CLAUDEMESH_BROKER" --listen "127.0.0.1:$BROKER_PORT" --db "$T/broker.db" --rate-limit 0 "$@" \
                >> "$T/broker.log" 2>&1 &
        BROKER_PID=$!
        PIDS="$PIDS $BROKER_PID"
        wait_until 10 curl -sf "http://127.0.0.1:$BROKER_PORT/health" || fail "broker did not answer /health"
}
broker_stop() {
        kill "$BROKER_PID"; wait "$BROKER_PID" 2>/dev/null || true
}
broker_admin() {
        "$CLAUDEMESH_BROKER" --db "$T/broker.db" "$@"
}
BROKER_URL() { echo "ws://127.0.0.1:$BROKER_PORT/ws"; }

# mesh_create NAME → prints the mesh id
mesh_create() {
        broker_admin mesh create "$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# member_entry MESH NAME → a config.json mesh entry (one line)
member_entry() {
        broker_admin member add "$1" "$2" --broker-url "$(BROKER_URL)" |
                /usr/bin/python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))'
}

# private_bus DIR: a session bus on DIR/bus, its pid in DIR/bus.pid. Its configuration names no
# service directory: the stock session.conf's <standard_session_servicedirs/> would let any call to
# a name nobody owns D-Bus-activate an installed claudemeshd with the user's real home. The limits
# are session.conf's, which the fault tests' thousands of calls need.
private_bus() {
        cat > "$1/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path=$1/bus</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
  <limit name="max_incoming_bytes">1000000000</limit>
  <limit name="max_outgoing_bytes">1000000000</limit>
  <limit name="max_message_size">1000000000</limit>
  <limit name="max_completed_connections">100000</limit>
  <limit name="max_incomplete_connections">10000</limit>
  <limit name="max_connections_per_user">100000</limit>
  <limit name="max_names_per_connection">50000</limit>
  <limit name="max_match_rules_per_connection">50000</limit>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
CONF
        # never $(dbus-daemon --fork ...): the forked daemon keeps the pipe open
        dbus-daemon --config-file="$1/bus.conf" --fork --print-pid=1 > "$1/bus.pid" 2>/dev/null
        PIDS="$PIDS $(cat "$1/bus.pid")"
}

# daemon_setup NAME ENTRY...: config dir, state dir and a private bus for daemon NAME
daemon_setup() {
        name=$1; shift
        mkdir -p "$T/$name/config" "$T/$name/state"
        chmod 700 "$T/$name/config"
        { printf '{"version":1,"displayName":"%s","meshes":[' "$name"; first=1
          for e in "$@"; do [ $first = 1 ] || printf ','; first=0; printf '%s' "$e"; done
          printf ']}\n'; } > "$T/$name/config/config.json"
        chmod 600 "$T/$name/config/config.json"
        private_bus "$T/$name"
}

# daemon_start NAME: claudemeshd NAME on its bus, with a runtime dir of its own for its /v1 socket
# (linked from its config dir's daemon/daemon.sock); short liveness values keep fault tests quick;
# $DAEMON_ARGS adds options; $SYSTEM_BUS names a system bus for it (by default none is there)
daemon_start() {
        name=$1
        mkdir -p -m 0700 "$T/$name/run"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/$name/bus" DBUS_SYSTEM_BUS_ADDRESS="${SYSTEM_BUS:-unix:path=$T/no-system-bus}" \
                CLAUDEMESH_CONFIG_DIR="$T/$name/config" XDG_STATE_HOME="$T/$name/state" XDG_RUNTIME_DIR="$T/$name/run" \
                CLAUDEMESH_LOG_TARGET=stderr CLAUDEMESH_WORKER="$CLAUDEMESH_WORKER" \
                CLAUDEMESH_PING_INTERVAL_MS="${PING_MS:-1000}" CLAUDEMESH_LIVENESS_TIMEOUT_MS="${LIVENESS_MS:-3000}" \
                "$CLAUDEMESHD" ${DAEMON_ARGS:-} >> "$T/$name.log" 2>&1 &
        eval "DAEMON_$name=$!"
        PIDS="$PIDS $!"
        wait_until 10 on "$name" busctl --user status org.claudemesh.Daemon1 || fail "daemon $name did not start"
}
daemon_pid() { eval "echo \$DAEMON_$1"; }
# daemon_stop NAME: SIGTERM; the daemon must exit 0 (under ASan that includes no leaks)
daemon_stop() {
        pid=$(daemon_pid "$1")
        kill "$pid"
        wait "$pid" || fail "daemon $1 exited with $? on SIGTERM: $(tail -20 "$T/$1.log")"
}

# on NAME CMD...: run CMD against daemon NAME's bus
on() {
        name=$1; shift
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/$name/bus" "$@"
}

mesh_state() {  # mesh_state DAEMON SLUG
        on "$1" busctl --user get-property org.claudemesh.Daemon1 "/org/claudemesh/Daemon1/mesh/$2" \
                org.claudemesh.Mesh1 State | cut -d'"' -f2
}
wait_connected() {  # wait_connected DAEMON SLUG
        wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/$1/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/$2 org.claudemesh.Mesh1 State)\" = 's \"connected\"' ]" ||
                fail "$1: mesh $2 did not connect (state $(mesh_state "$1" "$2"))"
}

# alice_and_bob [BROKER_OPTIONS...]: our broker, mesh "demo", and daemons alice and bob on it,
# both connected
alice_and_bob() {
        broker_start "$@"
        mesh_create demo > /dev/null
        daemon_setup alice "$(member_entry demo alice)"
        daemon_setup bob "$(member_entry demo bob)"
        daemon_start alice
        daemon_start bob
        wait_connected alice demo
        wait_connected bob demo
}

gcall_on() {  # gcall_on DAEMON METHOD ARGS...: output in $T/reply
        name=$1; method=$2; shift 2
        on "$name" gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 \
                --method "org.claudemesh.Daemon1.$method" "$@" > "$T/reply" 2>&1
}

# inbox_json DAEMON SLUG: the inbox as JSON (busctl --json), newest first, up to 1000 rows
inbox_json() {
        on "$1" busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
                ListInbox 'sa{sv}' "$2" 1 limit u 1000
}

inbox_count() {  # inbox_count DAEMON SLUG
        gcall_on "$1" ListInbox "$2" "{'limit': <uint32 1000>}" >/dev/null || { echo 0; return; }
        grep -o "'client_message_id': <" "$T/reply" | wc -l
}

# monitor DAEMON FILE: the daemon's signals, one JSON object a line, into FILE, in the background
monitor() {
        on "$1" busctl --user --json=short monitor org.claudemesh.Daemon1 > "$2" 2>&1 &
        PIDS="$PIDS $!"
        sleep 0.3
}

# v1_call DAEMON METHOD PATH [CURL ARGS...]: a request on the daemon's /v1 socket; the status in
# $T/status, the body in $T/body
v1_call() {
        name=$1 method=$2 path=$3; shift 3
        curl -sS --max-time 10 --unix-socket "$T/$name/config/daemon/daemon.sock" -X "$method" -o "$T/body" \
                -w '%{http_code}' "$@" "http://localhost$path" > "$T/status"
}
# v1_expect STATUS BODY DAEMON METHOD PATH [CURL ARGS...]: exactly that answer
v1_expect() {
        status=$1 body=$2; shift 2
        v1_call "$@" || fail "$*: curl failed"
        [ "$(cat "$T/status") $(cat "$T/body")" = "$status $body" ] ||
                fail "$*: expected $status $body, got $(cat "$T/status") $(cat "$T/body")"
}
