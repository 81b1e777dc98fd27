#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The local mesh demo: builds if needed, starts claudemesh-broker with a fresh mesh and two
# members, runs two claudemeshd (alice and bob, each with its own config, state and private
# session bus), sends a message from alice with busctl, and shows it arriving at bob (the
# MessageReceived signal and the inbox row). Then it shuts everything down; nothing is left
# running. --no-build skips the build (the test suite runs it that way).
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
say() { printf '\n==> %s\n' "$*"; }

if [ "${1:-}" != "--no-build" ]; then
        if [ ! -f "$B/build.ninja" ]; then
                say "Configuring the build in $B/"
                meson setup "$B" >/dev/null
        fi
        say "Building claudemeshd, claudemesh-worker, claudemesh-broker and claudemeshctl"
        meson compile -C "$B" >/dev/null
fi
B=$(cd "$B" && pwd)
export CLAUDEMESHD="$B/src/daemon/claudemeshd" CLAUDEMESH_BROKER="$B/src/broker/claudemesh-broker" \
       CLAUDEMESH_WORKER="$B/src/worker/claudemesh-worker"
. tests/e2e/lib.sh
PING_MS=30000 LIVENESS_MS=75000

say "Starting claudemesh-broker on 127.0.0.1 with a fresh database"
broker_start
echo "    listening on $(BROKER_URL)"
say "Creating the mesh \"demo\" and two members, alice and bob (each gets a keypair)"
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B_ENTRY=$(member_entry demo bob)
BOB=$(printf '%s' "$B_ENTRY" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
echo "    bob's public key: $BOB"

say "Starting two daemons, each with its own config.json, state and private session bus"
daemon_setup alice "$A"
daemon_setup bob "$B_ENTRY"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo
on alice "$B/src/ctl/claudemeshctl" --no-ask-password status | sed 's/^/    alice: /'

say "Watching bob's bus for MessageReceived"
on bob busctl --user monitor --match "type='signal',interface='org.claudemesh.Daemon1',member='MessageReceived'" \
        > "$T/bob-signals" 2>&1 &
PIDS="$PIDS $!"
sleep 0.5

say "alice sends with busctl: Send(mesh, to, message, options)"
echo "    busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 Send sssa{sv} \\"
echo "        demo $BOB 'hello bob, from alice' 2 priority s now client_message_id s demo-1"
on alice busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 Send 'sssa{sv}' \
        demo "$BOB" 'hello bob, from alice' 2 priority s now client_message_id s demo-1 | sed 's/^/    reply: /'

say "bob receives it"
wait_until 10 grep -q 'hello bob, from alice' "$T/bob-signals" || fail "bob did not get the MessageReceived signal"
grep -A2 'STRING "body"' "$T/bob-signals" | grep 'STRING "hello' | sed 's/^ */    signal MessageReceived, body: /'
on bob "$B/src/ctl/claudemeshctl" --no-ask-password inbox --mesh demo | sed 's/^/    bob inbox: /'
on alice "$B/src/ctl/claudemeshctl" --no-ask-password outbox --mesh demo | sed 's/^/    alice outbox: /'
on bob "$B/src/ctl/claudemeshctl" --no-ask-password inbox --mesh demo | grep -q 'hello bob, from alice' ||
        fail "the message is not in bob's inbox"

say "Shutting down the daemons, the buses and the broker"
for d in alice bob; do kill "$(daemon_pid $d)"; wait "$(daemon_pid $d)" 2>/dev/null || true; done
broker_stop
echo "    done; nothing is left running and the demo's files are removed"
