# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the bus tests (sourced). Needs CLAUDEMESHD and MAKE_MESH_ENTRY from meson.
set -eu

T=$(mktemp -d /tmp/cm-bus.XXXXXX)
chmod 755 "$T"
# the daemon's /v1 socket goes to $XDG_RUNTIME_DIR/claudemesh: keep it in the test's own dir
export XDG_RUNTIME_DIR="$T/run"
mkdir -m 0700 "$XDG_RUNTIME_DIR"
CLEANUP_PIDS=""
cleanup() {
        for p in $CLEANUP_PIDS; do kill "$p" 2>/dev/null || true; done
        for p in $CLEANUP_PIDS; do wait "$p" 2>/dev/null || true; done
        rm -rf "$T"
}
trap cleanup EXIT INT TERM

fail() {
        echo "FAIL: $*" >&2
        [ -f "$T/daemon.log" ] && { echo "--- daemon log:" >&2; cat "$T/daemon.log" >&2; }
        exit 1
}

# write_config DIR ENTRY...: a config.json (0600, dir 0700) holding the given mesh entries
write_config() {
        dir=$1; shift
        mkdir -p "$dir"; chmod 700 "$dir"
        { printf '{"version":1,"meshes":['; first=1
          for e in "$@"; do [ $first = 1 ] || printf ','; first=0; printf '%s' "$e"; done
          printf ']}\n'; } > "$dir/config.json.tmp"
        chmod 600 "$dir/config.json.tmp"
        mv "$dir/config.json.tmp" "$dir/config.json"
}

# a session bus of our own: only our activation files, eavesdropping allowed for busctl monitor
start_session_bus() {
        mkdir -p "$T/services"
        cat > "$T/session.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path=$T/session_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$T/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
        # never $(dbus-daemon --fork ...): the forked daemon keeps the pipe open
        dbus-daemon --config-file="$T/session.conf" --fork --print-pid=1 > "$T/session-bus.pid" 2>/dev/null
        CLEANUP_PIDS="$CLEANUP_PIDS $(cat "$T/session-bus.pid")"
        export DBUS_SESSION_BUS_ADDRESS="unix:path=$T/session_bus_socket"
}

wait_for_name() {
        i=0
        until busctl --user status org.claudemesh.Daemon1 >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -gt 200 ] && fail "org.claudemesh.Daemon1 did not appear"
                sleep 0.05
        done
}

# start_daemon [ARG...]: runs claudemeshd in the background with $T/config and $T/state, --offline:
# these tests are about the bus and the stores; the broker link has tests/e2e
start_daemon() {
        CLAUDEMESH_CONFIG_DIR="$T/config" XDG_STATE_HOME="$T/state" CLAUDEMESH_LOG_TARGET=stderr \
                "$CLAUDEMESHD" --offline "$@" >> "$T/daemon.log" 2>&1 &
        DAEMON_PID=$!
        CLEANUP_PIDS="$CLEANUP_PIDS $DAEMON_PID"
        wait_for_name
}

stop_daemon() {
        kill "$DAEMON_PID"
        wait "$DAEMON_PID" || fail "claudemeshd exited with $? on SIGTERM"
}

DAEMON="org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1"
MESH_PREFIX=/org/claudemesh/Daemon1/mesh

prop() {        # prop NAME: a manager property, value only
        busctl --user get-property $DAEMON "$1" | sed -e 's/^s "\(.*\)"$/\1/' -e 's/\\"/"/g'
}
mesh_prop() {   # mesh_prop SLUG NAME
        busctl --user get-property org.claudemesh.Daemon1 "$MESH_PREFIX/$1" org.claudemesh.Mesh1 "$2" |
                sed -e 's/^s "\(.*\)"$/\1/' -e 's/\\"/"/g'
}

# wait_until CMD...: retry for up to 5 s
wait_until() {
        i=0
        until "$@" >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -gt 100 ] && return 1
                sleep 0.05
        done
}

# call_manager METHOD: calls a Daemon1 method with dbus-send, which (unlike busctl) prints the
# D-Bus error name: "Error org.claudemesh.Daemon1.Error.X: message". Output in $T/last-reply.
call_manager() {
        dbus-send --session --print-reply --dest=org.claudemesh.Daemon1 /org/claudemesh/Daemon1 \
                "org.claudemesh.Daemon1.$1" > "$T/last-reply" 2>&1
}

# expect_error NAME METHOD: the call must fail with that error name; the message is in $T/last-reply
expect_error() {
        if call_manager "$2"; then fail "$2 succeeded, expected $1"; fi
        grep -q "^Error $1: " "$T/last-reply" || fail "$2: expected $1, got: $(cat "$T/last-reply")"
}

# gcall METHOD ARG...: a Daemon1 call through gdbus, whose GVariant syntax handles a{sv}
# ("{'priority': <'now'>}"). Reply or "GDBus.Error:<name>: <message>" in $T/last-reply.
gcall() {
        method=$1; shift
        gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 \
                --method "org.claudemesh.Daemon1.$method" "$@" > "$T/last-reply" 2>&1
}

# gexpect ERROR METHOD ARG...: the call fails with org.claudemesh.Daemon1.Error.ERROR
gexpect() {
        err=$1; shift
        if gcall "$@"; then fail "$(echo "$1 $2 $3 $4" | cut -c1-120) succeeded, expected $err: $(head -c 300 "$T/last-reply")"; fi
        grep -q "GDBus.Error:org.claudemesh.Daemon1.Error.$err: " "$T/last-reply" ||
                fail "expected $err, got: $(head -c 300 "$T/last-reply")"
}

# gexpect_args SENTENCE METHOD ARG...: the call fails with org.freedesktop.DBus.Error.InvalidArgs
# saying exactly SENTENCE (a wrong option type or an unknown option)
gexpect_args() {
        sentence=$1; shift
        if gcall "$@"; then fail "$(echo "$1 $2 $3 $4" | cut -c1-120) succeeded, expected InvalidArgs: $(head -c 300 "$T/last-reply")"; fi
        grep -qxF "Error: GDBus.Error:org.freedesktop.DBus.Error.InvalidArgs: $sentence" "$T/last-reply" ||
                fail "expected InvalidArgs \"$sentence\", got: $(head -c 300 "$T/last-reply")"
}

# sql DB STATEMENT: a statement on one of the daemon's stores, next to the running daemon
sql() {
        sqlite3 -cmd '.timeout 5000' "$T/state/claudemesh/$1" "$2"
}
