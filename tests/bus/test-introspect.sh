#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The committed dbus/org.claudemesh.Daemon1.xml is what the running daemon introspects.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
start_daemon

busctl --user introspect --xml-interface org.claudemesh.Daemon1 /org/claudemesh/Daemon1 > "$T/manager.xml"
busctl --user introspect --xml-interface org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/acme > "$T/mesh.xml"
# a session lives as long as its process: one that stays, for its object
/usr/bin/python3 "$(dirname "$0")/../e2e/session-holder.py" "$T/session" acme probe probe-1 > "$T/holder.log" 2>&1 &
holder=$!
CLEANUP_PIDS="$CLEANUP_PIDS $holder"
i=0
until [ -s "$T/session" ]; do i=$((i + 1)); [ $i -lt 200 ] || fail "no session registered"; sleep 0.05; done
grep -q "^/org/claudemesh/Daemon1/session/" "$T/session" || fail "RegisterSession: $(cat "$T/session")"
busctl --user introspect --xml-interface org.claudemesh.Daemon1 "$(cut -d' ' -f1 "$T/session")" > "$T/session.xml"
kill "$holder"
api="/usr/bin/python3 $(dirname "$0")/dbus-api.py"
$api normalize "$T/manager.xml" "$T/mesh.xml" "$T/session.xml" > "$T/live"
$api normalize "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.xml" > "$T/committed"
grep -q 'interface org.claudemesh.Daemon1' "$T/live" || fail "no Daemon1 interface introspected"
grep -q 'interface org.claudemesh.Mesh1' "$T/live" || fail "no Mesh1 interface introspected"
grep -q 'interface org.claudemesh.Session1' "$T/live" || fail "no Session1 interface introspected"
diff -u "$T/committed" "$T/live" || fail "dbus/org.claudemesh.Daemon1.xml differs from the running daemon (- committed, + live)"

# the ObjectManager sits on the manager object, as desktop clients expect
grep -q 'interface name="org.freedesktop.DBus.ObjectManager"' "$T/manager.xml" || fail "no ObjectManager"
stop_daemon
echo ok
