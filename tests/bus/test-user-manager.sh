#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The real user unit under a real `systemd --user` (faked boot: private mount namespace and a
# delegated cgroup of its own, see user-manager-env.sh): enable --now, busctl reaches it, the
# journal has its structured entries, SIGKILL gets it restarted, D-Bus activation goes through
# SystemdService=, and claudemesh.socket starts it on the first /v1 connection. Needs root (to set up the namespace and cgroups).
set -eu
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
[ -x /lib/systemd/systemd ] || { echo "systemd is not installed"; exit 77; }
[ -d /sys/fs/cgroup/unified ] && [ -d /sys/fs/cgroup/systemd ] || { echo "needs the hybrid cgroup layout"; exit 77; }

TUSER=${TUSER:-cmtest}
id "$TUSER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$TUSER"
# Not under /tmp: the unit's PrivateTmp= would hide the binary, the home and the runtime dir.
S=$(mktemp -d /var/lib/claudemesh-test.XXXXXX)
BROKER=""
trap '[ -n "$BROKER" ] && kill "$BROKER"; rm -rf "$S"' EXIT INT TERM
chmod 755 "$S"
mkdir -p "$S/bin" "$S/home" "$S/run"
install -m 0755 "$CLAUDEMESHD" "$CLAUDEMESH_WORKER" "$(dirname "$0")/test-user-manager-inner.sh" "$S/bin/"

# A real broker, so the worker runs inside the unit's hardening (seccomp filter, namespaces)
# and has to connect from there.
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$CLAUDEMESH_BROKER" --listen "127.0.0.1:$PORT" --db "$S/broker.db" > "$S/broker.log" 2>&1 &
BROKER=$!
i=0; until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; do
        i=$((i + 1)); [ $i -gt 200 ] && { cat "$S/broker.log"; echo "broker did not start"; exit 1; }; sleep 0.05; done
"$CLAUDEMESH_BROKER" --db "$S/broker.db" mesh create acme >/dev/null
"$CLAUDEMESH_BROKER" --db "$S/broker.db" member add acme alice --broker-url "ws://127.0.0.1:$PORT/ws" > "$S/bin/entry.json"
chmod 644 "$S/bin/entry.json"

sed -e "s|@libexecdir@/claudemeshd|$S/bin/claudemeshd|" \
    -e "/^ExecStart=/a Environment=CLAUDEMESH_WORKER=$S/bin/claudemesh-worker" \
    "$CLAUDEMESH_SERVICE_IN" > "$S/bin/claudemesh.service"
cp "$SOURCE_ROOT/units/claudemesh.socket" "$S/bin/"
sed "s|@libexecdir@/claudemeshd|$S/bin/claudemeshd|" "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.service.in" \
        > "$S/bin/org.claudemesh.Daemon1.service"
chown "$TUSER:" "$S/home" "$S/run"
chmod 700 "$S/run"

UHOME="$S/home" RUNDIR="$S/run" TUSER="$TUSER" sh "$(dirname "$0")/user-manager-env.sh" \
        "$S/bin/test-user-manager-inner.sh" "$S/bin"
