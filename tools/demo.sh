#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A local look at claudemeshd: builds if needed, then runs the daemon on a private session bus
# with a demo config of two freshly made mesh identities, shows what it offers on the bus,
# edits the config while it runs, and shuts everything down. Leaves nothing running.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
say() { printf '\n==> %s\n' "$*"; }

if [ ! -f "$B/build.ninja" ]; then
        say "Configuring the build in $B/"
        meson setup "$B" >/dev/null
fi
say "Building"
meson compile -C "$B" src/daemon/claudemeshd tests/bus/make-mesh-entry >/dev/null

D=$(mktemp -d /tmp/claudemesh-demo.XXXXXX)
BUS_PID=""; DAEMON_PID=""
cleanup() {
        [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
        [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null || true
        rm -rf "$D"
}
trap cleanup EXIT INT TERM

say "Writing a demo config.json with two meshes (acme, beta) in $D/config"
mkdir -m 0700 "$D/config"
printf '{"version":1,"meshes":[%s,%s]}\n' "$("$B/tests/bus/make-mesh-entry" acme ws://127.0.0.1:7900/ws)" \
        "$("$B/tests/bus/make-mesh-entry" beta ws://127.0.0.1:7900/ws)" > "$D/config/config.json"
chmod 600 "$D/config/config.json"

say "Starting a private session bus and claudemeshd on it"
dbus-daemon --session --fork --address="unix:path=$D/bus" --print-pid=1 > "$D/bus.pid" 2>/dev/null
BUS_PID=$(cat "$D/bus.pid")
export DBUS_SESSION_BUS_ADDRESS="unix:path=$D/bus"
CLAUDEMESH_CONFIG_DIR="$D/config" XDG_STATE_HOME="$D/state" CLAUDEMESH_LOG_TARGET=stderr \
        "$B/src/daemon/claudemeshd" --offline 2> "$D/daemon.log" &
DAEMON_PID=$!
i=0
until busctl --user status org.claudemesh.Daemon1 >/dev/null 2>&1; do
        i=$((i + 1)); [ $i -gt 100 ] && { cat "$D/daemon.log"; echo "claudemeshd did not start" >&2; exit 1; }
        sleep 0.05
done

say "The objects it offers (busctl --user tree org.claudemesh.Daemon1)"
busctl --user tree org.claudemesh.Daemon1
say "Its status line and host fingerprint state"
busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
        Status HostFingerprintState
say "The mesh acme (busctl --user introspect ... /org/claudemesh/Daemon1/mesh/acme)"
busctl --user introspect org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/acme org.claudemesh.Mesh1

say "Breaking beta's entry in config.json: the daemon reloads by itself and says what is wrong"
sed -i 's/"slug":"beta","name":"beta","pubkey":"[0-9a-f]*"/"slug":"beta","name":"beta","pubkey":"oops"/' \
        "$D/config/config.json"
sleep 0.3
busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/beta org.claudemesh.Mesh1 \
        State LastError

say "Stopping claudemeshd (SIGTERM); its log:"
kill "$DAEMON_PID"; wait "$DAEMON_PID"; DAEMON_PID=""
cat "$D/daemon.log"
say "Done. Nothing is left running; the demo files are removed."
