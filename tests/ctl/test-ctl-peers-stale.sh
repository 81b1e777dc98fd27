#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl peers says when its list is stale: with the broker down the daemon answers from
# its last list, and both the table and --json say so and since when; a daemon that never had a
# list says it has none instead of "No peers are connected".
. "$SOURCE_ROOT/tests/e2e/lib.sh"

ctl_on() {  # ctl_on CODE DAEMON ARG...: output in $T/out, $T/err
        want=$1; name=$2; shift 2
        rc=0
        on "$name" "$CLAUDEMESHCTL" "$@" > "$T/out" 2> "$T/err" || rc=$?
        [ "$rc" = "$want" ] || fail "claudemeshctl $* on $name exited $rc, expected $want: $(cat "$T/out" "$T/err")"
}
out_has() { grep -Eq -- "$1" "$T/out" || fail "stdout lacks /$1/: $(cat "$T/out")"; }
err_has() { grep -Eq -- "$1" "$T/err" || fail "stderr lacks /$1/: $(cat "$T/err")"; }
json() {
        /usr/bin/python3 -c "import json, os, sys, time
d = json.load(open(sys.argv[1]))
$1" "$T/out" || fail "JSON check failed: $1; stdout: $(cat "$T/out")"
}

broker_start --presence-grace 0
mesh_create demo > /dev/null
daemon_setup alice "$(member_entry demo alice)"
daemon_setup bob "$(member_entry demo bob)"
daemon_setup carol "$(member_entry demo carol)"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus '$CLAUDEMESHCTL' peers | grep -q '^bob '" ||
        fail "alice's peers lack bob"

# fresh: no marker, stale false
ctl_on 0 alice peers
out_has "^bob +"
! grep -q "stale" "$T/out" || fail "a fresh list is called stale: $(cat "$T/out")"
ctl_on 0 alice --json peers
json '
assert len(d) == 2 and all(p["stale"] is False for p in d), d
assert all(abs(p["updated_at"] / 1e6 - time.time()) < 600 for p in d), d'

# the broker goes away: the last list, marked stale, exit 0
broker_stop
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 State)\" != 's \"connected\"' ]" ||
        fail "alice still connected with the broker down"
ctl_on 0 alice peers
out_has "^bob +"
out_has "^\(stale: no word from the broker since [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z, ([0-9]+ (s|min) ago|just now)\)$"
ctl_on 0 alice --json peers
json '
assert len(d) == 2 and all(p["stale"] is True for p in d), d
assert len({p["updated_at"] for p in d}) == 1 and d[0]["updated_at"] > 0, d
assert d[0]["updated_at"] / 1e6 <= time.time(), d'

# never connected: no list to show, and no claim that nobody is there
daemon_start carol
ctl_on 1 carol peers --mesh demo
err_has "^Cannot list the peers: Mesh \"demo\" is not connected to its broker; it has no peer list from before\."
! grep -q "No peers are connected" "$T/out" || fail "carol claims nobody is connected"
echo ok
