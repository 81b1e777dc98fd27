#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A broker that refuses the connection (nothing listens): the mesh's LastError says so, rather
# than libwebsockets' "closed before established", and the worker's log lines name the mesh.
. "$(dirname "$0")/lib.sh"

broker_start
mesh_create demo > /dev/null
daemon_setup alice "$(member_entry demo alice)"
broker_stop
daemon_start alice
last_error() {
        on alice busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo \
                org.claudemesh.Mesh1 LastError
}
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 LastError | grep -q refused" ||
        fail "LastError: $(last_error)"
last_error | grep -q "127.0.0.1:$BROKER_PORT" || fail "LastError does not name the broker: $(last_error)"
# the worker's own lines name their mesh (the daemon runs two workers when it has two meshes)
grep -q "^<[0-9]>Mesh demo: .*refused.*; reconnecting in [0-9]* ms (attempt" "$T/alice.log" || fail "no worker line names the mesh: $(tail -5 "$T/alice.log")"
echo "ok: $(last_error)"
