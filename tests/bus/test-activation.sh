#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# D-Bus activation: the first call to org.claudemesh.Daemon1 starts the daemon from the
# activation file, generated from dbus/org.claudemesh.Daemon1.service.in.
. "$(dirname "$0")/lib.sh"

write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
start_session_bus_with_env() {
        # dbus-daemon passes its own environment to the services it starts
        CLAUDEMESH_CONFIG_DIR="$T/config" XDG_STATE_HOME="$T/state" CLAUDEMESH_LOG_TARGET=stderr \
                DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus" start_session_bus
}
mkdir -p "$T/services"
sed "s|@libexecdir@/claudemeshd|$CLAUDEMESHD --offline|" "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.service.in" \
        > "$T/services/org.claudemesh.Daemon1.service"
grep -q "^Exec=$CLAUDEMESHD --offline$" "$T/services/org.claudemesh.Daemon1.service" || fail "Exec= not substituted"
start_session_bus_with_env

busctl --user list --activatable | grep -q '^org.claudemesh.Daemon1 ' || fail "name not activatable"
busctl --user status org.claudemesh.Daemon1 >/dev/null 2>&1 && fail "daemon runs before the first call"
[ "$(busctl --user get-property $DAEMON HostFingerprintState)" = 's "first-run"' ] || fail "activated call failed"
pid=$(busctl --user status org.claudemesh.Daemon1 | sed -n 's/^PID=//p')
[ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm)" = claudemeshd ] || fail "the name is not owned by claudemeshd"
[ "$(mesh_prop acme State)" = offline ] || fail "acme State"
kill "$pid"
echo ok
