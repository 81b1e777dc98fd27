#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The private buses of the tests and the demo never D-Bus-activate an installed claudemeshd: an
# org.claudemesh.Daemon1 activation file in every standard session service directory (which the
# test points at its own dirs through XDG_DATA_HOME, XDG_DATA_DIRS and XDG_RUNTIME_DIR) runs a
# script leaving a marker. A bus with the stock session configuration runs it, which shows that
# the trap works; the buses of tests/e2e/lib.sh (the demo's too) and tests/bus/lib.sh do not.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

X="$T/xdg"
MARKER="$X/activated"
mkdir -p "$X/data-home/dbus-1/services" "$X/data-dir/dbus-1/services" "$X/run/dbus-1/services"
chmod 700 "$X/run"
printf '#!/bin/sh\necho "$0 ran: HOME=$HOME" >> "%s"\n' "$MARKER" > "$X/fake-claudemeshd"
chmod +x "$X/fake-claudemeshd"
for d in data-home data-dir run; do
        printf '[D-BUS Service]\nName=org.claudemesh.Daemon1\nExec=%s\n' "$X/fake-claudemeshd" \
                > "$X/$d/dbus-1/services/org.claudemesh.Daemon1.service"
done
export XDG_DATA_HOME="$X/data-home" XDG_DATA_DIRS="$X/data-dir" XDG_RUNTIME_DIR="$X/run"

# call_daemon BUS: a call to the daemon's name, then an explicit start; both must fail, as no one owns it
call_daemon() {
        if DBUS_SESSION_BUS_ADDRESS="unix:path=$1" dbus-send --session --print-reply --reply-timeout=5000 \
                --dest=org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.freedesktop.DBus.Peer.Ping > "$T/call" 2>&1; then
                fail "a Ping to org.claudemesh.Daemon1 on $1 was answered: $(cat "$T/call")"
        fi
        if DBUS_SESSION_BUS_ADDRESS="unix:path=$1" dbus-send --session --print-reply --reply-timeout=5000 \
                --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.StartServiceByName \
                string:org.claudemesh.Daemon1 uint32:0 >> "$T/call" 2>&1; then
                fail "StartServiceByName(org.claudemesh.Daemon1) on $1 succeeded: $(cat "$T/call")"
        fi
}
expect_no_activation() {  # expect_no_activation WHAT
        grep -q "ServiceUnknown\|was not provided by any .service files" "$T/call" ||
                fail "$1: expected ServiceUnknown: $(cat "$T/call")"
        [ ! -e "$MARKER" ] || fail "$1 activated org.claudemesh.Daemon1: $(cat "$MARKER")"
}

# the trap works: the stock session configuration finds the file and runs the script
mkdir "$T/stock"
dbus-daemon --session --fork --address="unix:path=$T/stock/bus" --print-pid=1 > "$T/stock/bus.pid" 2>/dev/null
PIDS="$PIDS $(cat "$T/stock/bus.pid")"
call_daemon "$T/stock/bus"
wait_until 5 test -e "$MARKER" || fail "the stock session bus did not activate the fake daemon: $(cat "$T/call")"
rm "$MARKER"

# tests/e2e/lib.sh, whose daemon_setup also makes every bus of tools/demo.sh
daemon_setup probe
call_daemon "$T/probe/bus"
expect_no_activation "tests/e2e/lib.sh's bus"
if grep -n "dbus-daemon\|dbus-run-session\|dbus-launch" "$HERE/../../tools/demo.sh"; then
        fail "tools/demo.sh starts a bus of its own instead of lib.sh's daemon_setup"
fi

# tests/bus/lib.sh (and tests/ctl/lib-ctl.sh, which sources it), in a subshell: it has its own $T
( . "$HERE/../bus/lib.sh"
  start_session_bus
  call_daemon "$T/session_bus_socket"
  expect_no_activation "tests/bus/lib.sh's bus" ) || fail "tests/bus/lib.sh's bus"

# the demo itself, start to end, with the trap set
: "${BUILD_DIR:?the demo needs BUILD_DIR}"
"$HERE/../../tools/demo.sh" --no-build > "$T/demo.log" 2>&1 || fail "the demo failed: $(tail -30 "$T/demo.log")"
[ ! -e "$MARKER" ] || fail "the demo activated org.claudemesh.Daemon1: $(cat "$MARKER")"
echo ok
