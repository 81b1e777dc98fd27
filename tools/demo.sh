#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The local mesh demo: builds if needed, starts claudemesh-broker with a fresh mesh and two
# members, runs two claudemeshd (alice and bob, each with its own config, state and private
# session bus), sends a message from alice with busctl, and shows it arriving at bob (the
# MessageReceived signal and the inbox row). Then it shuts everything down; nothing is left
# running.
#   --no-build  skips the build (the test suite runs it that way)
#   --keep      leaves the broker and both daemons running, prints how to reach them
#   --stop      stops what --keep left running and removes its files
# $DEMO_KEPT (default: BUILD_DIR/demo-kept.env) records what --keep left running.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
KEPT=${DEMO_KEPT:-$B/demo-kept.env}
say() { printf '\n==> %s\n' "$*"; }

build=1 keep=0
for arg in "$@"; do
        case $arg in
        --no-build) build=0 ;;
        --keep) keep=1 ;;
        --stop)
                [ -f "$KEPT" ] || { echo "Nothing to stop: $KEPT does not exist." >&2; exit 1; }
                . "$KEPT"
                say "Stopping the demo's daemons, buses and broker"
                for p in $DEMO_PIDS; do kill "$p" 2>/dev/null || true; done
                # not our children any more: poll until they are gone
                for p in $DEMO_PIDS; do
                        i=0
                        while kill -0 "$p" 2>/dev/null; do
                                i=$((i + 1))
                                [ $i -le 100 ] || { kill -KILL "$p" 2>/dev/null || true; break; }
                                sleep 0.05
                        done
                done
                rm -rf "$DEMO_DIR"
                rm -f "$KEPT"
                echo "    done; nothing is left running and the demo's files are removed"
                exit 0 ;;
        *) echo "Unknown option $arg; use --no-build, --keep or --stop." >&2; exit 2 ;;
        esac
done
if [ $keep = 1 ] && [ -f "$KEPT" ]; then
        echo "A kept demo is still running ($KEPT): stop it first with $0 --stop." >&2
        exit 1
fi

if [ $build = 1 ]; then
        if [ ! -f "$B/build.ninja" ]; then
                say "Configuring the build in $B/"
                mkdir -p "$B"
                meson setup "$B" > "$B.setup.log" 2>&1 || {
                        cat "$B.setup.log" >&2
                        echo "demo: meson setup failed (above; also in $B.setup.log)" >&2
                        exit 1
                }
                rm -f "$B.setup.log"
        fi
        say "Building claudemeshd, claudemesh-worker, claudemesh-broker and claudemeshctl (a few minutes the first time)"
        # ninja prints one [done/total] line per step; its errors go to stdout as well
        meson compile -C "$B" || { echo "demo: the build failed (the errors are above)" >&2; exit 1; }
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

if [ $keep = 1 ]; then
        # hand the processes over to --stop: the EXIT trap must neither kill them nor remove $T
        for p in $PIDS; do
                case " $(daemon_pid alice) $(daemon_pid bob) $BROKER_PID $(cat "$T/alice/bus.pid") $(cat "$T/bob/bus.pid") " in
                *" $p "*) ;;
                *) kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true ;;
                esac
        done
        for d in alice bob; do
                cat > "$T/$d.env" <<ENV
export DBUS_SESSION_BUS_ADDRESS=unix:path=$T/$d/bus
export CLAUDEMESH_CONFIG_DIR=$T/$d/config
export PATH=$B/src/ctl:\$PATH
ENV
        done
        printf 'DEMO_DIR=%s\nDEMO_PIDS="%s"\n' "$T" "$(daemon_pid alice) $(daemon_pid bob) $BROKER_PID $(cat "$T/alice/bus.pid") $(cat "$T/bob/bus.pid")" > "$KEPT"
        trap - EXIT INT TERM
        say "Left running: the broker on $(BROKER_URL) and the daemons alice and bob"
        echo "    To act as alice (or bob), in a shell:"
        echo "        . $T/alice.env"
        echo "        claudemeshctl status; claudemeshctl send bob 'hi'; busctl --user tree org.claudemesh.Daemon1"
        echo "    Logs: $T/alice.log, $T/bob.log, $T/broker.log"
        echo "    Stop everything with: $0 --stop"
        exit 0
fi

say "Shutting down the daemons, the buses and the broker"
for d in alice bob; do kill "$(daemon_pid $d)"; wait "$(daemon_pid $d)" 2>/dev/null || true; done
broker_stop
echo "    done; nothing is left running and the demo's files are removed"
