#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs as the test user inside `systemd --user` (see test-user-manager.sh). $1: staged files.
set -eu
B=$1
fail() {
        echo "FAIL: $*" >&2
        systemctl --user status claudemesh.service >&2 || true
        journalctl --user -u claudemesh.service --no-pager >&2 || true
        exit 1
}
wait_until() {
        i=0
        until "$@" >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -gt 200 ] && return 1
                sleep 0.05
        done
}
DAEMON="org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1"

mkdir -p "$HOME/.claudemesh" "$HOME/.config/systemd/user" "$XDG_RUNTIME_DIR/dbus-1/services"
chmod 700 "$HOME/.claudemesh"
/usr/bin/python3 -c 'import json,sys; print(json.dumps({"version": 1, "meshes": [json.load(open(sys.argv[1]))]}))' \
        "$B/entry.json" > "$HOME/.claudemesh/config.json"
chmod 600 "$HOME/.claudemesh/config.json"
cp "$B/claudemesh.service" "$HOME/.config/systemd/user/"
cp "$B/org.claudemesh.Daemon1.service" "$XDG_RUNTIME_DIR/dbus-1/services/"
# systemd --user may have started the bus before that directory existed: have it read the file
# now, as a package install does, or activation later finds no such name
busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus ReloadConfig ||
        fail "ReloadConfig failed"
systemctl --user daemon-reload

systemctl --user enable --now claudemesh.service || fail "enable --now failed"
[ -L "$HOME/.config/systemd/user/default.target.wants/claudemesh.service" ] || fail "not enabled"
systemctl --user is-active -q claudemesh.service || fail "not active after enable --now"
[ "$(busctl --user get-property $DAEMON HostFingerprintState)" = 's "first-run"' ] || fail "busctl did not reach it"
# the worker connects from inside the unit's sandbox
connected() {
        [ "$(busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/acme org.claudemesh.Mesh1 State)" = 's "connected"' ]
}
wait_until connected || fail "mesh acme did not connect: $(busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/acme org.claudemesh.Mesh1 LastError)"
worker=$(pgrep -P "$(systemctl --user show -p MainPID --value claudemesh.service)" -f claudemesh-worker) ||
        fail "no worker under the daemon"
grep -q '^Seccomp:[[:space:]]*2' "/proc/$worker/status" || fail "the worker is not under its seccomp filter"
systemctl --user show -p StatusText --value claudemesh.service | grep -q '^1 mesh: acme (connected)$' ||
        fail "StatusText: $(systemctl --user show -p StatusText --value claudemesh.service)"
# systemd 252 puts a user unit's StateDirectory= under ~/.config, later versions under ~/.local/state
state=$(busctl --user get-property $DAEMON StateDirectory | sed 's/^s "\(.*\)"$/\1/')
case "$state" in
"$HOME/.config/claudemesh" | "$HOME/.local/state/claudemesh") ;;
*) fail "StateDirectory is $state, not the unit's StateDirectory=" ;;
esac
[ -f "$state/host_fingerprint.json" ] || fail "no host_fingerprint.json in $state"

# Its lines reach the journal under the unit, with their priorities. (The structured fields of
# the native protocol are checked in test-journal.sh: in this faked boot the journal socket is
# not visible inside a PrivateUsers= unit, so the daemon falls back to <N>-prefixed stderr.)
journalctl --user --flush 2>/dev/null || true
wait_until sh -c 'journalctl --user -u claudemesh.service -o json PRIORITY=6 | grep -q "\"MESSAGE\":\"Ready: 1 mesh: acme ("' ||
        fail "no Ready line in the journal"

# SIGKILL: Restart=on-failure brings it back
pid=$(systemctl --user show -p MainPID --value claudemesh.service)
kill -9 "$pid"
wait_until sh -c "p=\$(systemctl --user show -p MainPID --value claudemesh.service); [ \"\$p\" != 0 ] && [ \"\$p\" != $pid ] && systemctl --user is-active -q claudemesh.service" ||
        fail "not restarted after SIGKILL"
[ "$(systemctl --user show -p NRestarts --value claudemesh.service)" = 1 ] || fail "NRestarts is not 1"
wait_until busctl --user get-property $DAEMON Version || fail "bus name not back after the restart"
wait_until connected || fail "mesh acme did not reconnect after the restart"

# stopped, the first call starts it again through SystemdService=claudemesh.service
systemctl --user stop claudemesh.service
systemctl --user is-active -q claudemesh.service && fail "still active after stop"
wait_until sh -c 'journalctl --user -u claudemesh.service -o cat | grep -q "^Stopping on Terminated"' ||
        fail "no stopping line in the journal"
busctl --user get-property $DAEMON Version >/dev/null || fail "D-Bus activation call failed"
systemctl --user is-active -q claudemesh.service || fail "D-Bus activation did not start the unit"
systemctl --user reload claudemesh.service || fail "reload failed"
systemctl --user stop claudemesh.service

# claudemesh.socket: the first /v1 connection starts the service and is served; while it runs,
# upstream clients find it at ~/.claudemesh/daemon/daemon.sock with a live pid beside it
cp "$B/claudemesh.socket" "$HOME/.config/systemd/user/"
systemctl --user daemon-reload
systemctl --user enable --now claudemesh.socket || fail "enable --now claudemesh.socket failed"
[ -S "$XDG_RUNTIME_DIR/claudemesh/daemon.sock" ] || fail "the socket unit did not create its socket"
systemctl --user is-active -q claudemesh.service && fail "the service runs before any connection"
version=$(curl -sS --max-time 10 --unix-socket "$XDG_RUNTIME_DIR/claudemesh/daemon.sock" \
        -H 'accept: application/json' http://localhost/v1/version) || fail "no answer on the activated socket"
echo "$version" | grep -q '"ipc_api":"v1"' || fail "/v1/version answered $version"
systemctl --user is-active -q claudemesh.service || fail "the connection did not start the service"
pid=$(systemctl --user show -p MainPID --value claudemesh.service)
[ "$(cat "$HOME/.claudemesh/daemon/daemon.pid")" = "$pid" ] || fail "daemon.pid does not hold $pid"
curl -sS --max-time 10 --unix-socket "$HOME/.claudemesh/daemon/daemon.sock" http://localhost/v1/health |
        grep -q "\"pid\":$pid" || fail "the config-dir socket does not reach the daemon"
systemctl --user stop claudemesh.service
[ ! -e "$HOME/.claudemesh/daemon/daemon.pid" ] || fail "daemon.pid left behind after stop"
[ -S "$XDG_RUNTIME_DIR/claudemesh/daemon.sock" ] || fail "the service removed the socket unit's socket"
systemctl --user disable --now claudemesh.socket
echo ok
