#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Authorization against the real polkitd on a private system bus. polkit authorizes uid 0
# unconditionally, so the daemon and its callers run as an unprivileged test user. Four rounds:
# a rules file that flips the defaults, the .policy defaults alone, a stopped polkitd (SIGSTOP),
# and a system bus without polkitd (the documented fallback). Needs root (polkitd switches to its own user).
set -eu
[ "$(id -u)" = 0 ] || { echo "needs root to run polkitd"; exit 77; }
[ -x /usr/lib/polkit-1/polkitd ] || { echo "polkitd is not installed"; exit 77; }

TUSER=${TUSER:-cmtest}
id "$TUSER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$TUSER"
S=$(mktemp -d /tmp/cm-polkit.XXXXXX)
chmod 755 "$S"
POLICY=/usr/share/polkit-1/actions/zz-cmtest-org.claudemesh.daemon1.policy
RULES=/etc/polkit-1/rules.d/49-cmtest-claudemesh.rules
PK_PID=""
cleanup() {
        [ -n "$PK_PID" ] && { kill -CONT "$PK_PID" 2>/dev/null; kill "$PK_PID" 2>/dev/null; wait "$PK_PID" 2>/dev/null; } || true
        [ -f "$S/system-bus.pid" ] && kill "$(cat "$S/system-bus.pid")" 2>/dev/null || true
        rm -f "$POLICY" "$RULES"
        rm -rf "$S"
}
trap cleanup EXIT INT TERM

cat > "$S/system.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$S/system_bus_socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow own="*"/><allow send_destination="*"/><allow receive_sender="*"/>
  </policy>
</busconfig>
CONF
install -m 0644 "$SOURCE_ROOT/polkit/org.claudemesh.daemon1.policy" "$POLICY"
# The test user may not be able to reach the build tree (a clone under a 0700 directory): stage
# what it runs in a directory it can read.
mkdir -m 0755 "$S/bin"
install -m 0755 "$CLAUDEMESHD" "$MAKE_MESH_ENTRY" "$(dirname "$0")/test-polkit-inner.sh" "$S/bin/"
install -m 0644 "$(dirname "$0")/lib.sh" "$S/bin/"
dbus-daemon --config-file="$S/system.conf" --fork --print-pid=1 > "$S/system-bus.pid" 2>/dev/null
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$S/system_bus_socket"

start_polkitd() {
        /usr/lib/polkit-1/polkitd --no-debug > "$S/polkitd.log" 2>&1 &
        PK_PID=$!
        i=0
        until busctl --system status org.freedesktop.PolicyKit1 >/dev/null 2>&1; do
                i=$((i + 1)); [ $i -gt 200 ] && { cat "$S/polkitd.log"; echo "polkitd did not start"; exit 1; }
                sleep 0.05
        done
}
stop_polkitd() {
        kill "$PK_PID"; wait "$PK_PID" 2>/dev/null || true; PK_PID=""
}
as_user() {
        setpriv --reuid="$TUSER" --regid="$TUSER" --init-groups env -i PATH=/usr/bin:/bin HOME=/nonexistent \
                DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" CLAUDEMESHD="$S/bin/claudemeshd" \
                MAKE_MESH_ENTRY="$S/bin/make-mesh-entry" "$S/bin/test-polkit-inner.sh" "$@"
}

cat > "$RULES" <<RULES
polkit.addRule(function(action, subject) {
        if (subject.user != "$TUSER")
                return polkit.Result.NOT_HANDLED;
        if (action.id == "org.claudemesh.daemon1.accept-host")
                return polkit.Result.YES;
        if (action.id == "org.claudemesh.daemon1.reload" || action.id == "org.claudemesh.daemon1.send")
                return polkit.Result.NO;
});
RULES
start_polkitd
as_user rules
stop_polkitd

rm -f "$RULES"
start_polkitd
as_user defaults
# a polkitd that does not answer: /v1 callers give up after 3 s, so the daemon must have refused
kill -STOP "$PK_PID"
as_user hung-polkitd
kill -CONT "$PK_PID"
stop_polkitd

as_user no-polkitd
echo ok
