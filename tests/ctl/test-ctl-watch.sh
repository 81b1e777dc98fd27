#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl watch and inbox --follow while things happen: a config.json edit (the daemon
# reloads it by itself: PropertiesChanged, InterfacesAdded), a session registered, changing its
# profile and ending (its Session1 object and properties), the daemon stopping and starting,
# a signal forged by another bus client (ignored), and Ctrl+C / SIGTERM ending them with 0.
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
ACME=$("$MAKE_MESH_ENTRY" acme)
write_config "$T/config" "$ACME"
start_daemon
MID=$(mesh_prop acme Id)
sql inbox.db "INSERT INTO inbox (id, client_message_id, mesh_id, topic, sender_pubkey, sender_name, body, received_at)
              VALUES ('r1', 'c1', '$MID', 't1', 'pk1', 'alice', 'already here', $(date +%s)000000)"

# background CMD...: claudemeshctl in the background, output in $T/bg-N.out; sets BG (its pid)
N=0
background() {
        N=$((N + 1))
        "$CLAUDEMESHCTL" "$@" > "$T/bg-$N.out" 2> "$T/bg-$N.err" &
        BG=$!
        CLEANUP_PIDS="$CLEANUP_PIDS $BG"
}
has() { grep -Eq -- "$2" "$T/bg-$1.out"; }
wait_has() {    # wait_has N PATTERN: output N gets a line matching PATTERN within 5 s
        wait_until has "$1" "$2" || fail "output $1 lacks /$2/: $(cat "$T/bg-$1.out" "$T/bg-$1.err")"
}
stop_with() {   # stop_with SIGNAL PID: it must exit 0
        kill "-$1" "$2"
        rc=0; wait "$2" || rc=$?
        [ $rc = 0 ] || fail "claudemeshctl exited $rc on SIG$1"
}

background watch; WATCH=$BG; WATCH_N=$N
background --json watch; JWATCH=$BG; JWATCH_N=$N
background watch --mesh acme; MWATCH=$BG; MWATCH_N=$N
background inbox --follow; FOLLOW=$BG; FOLLOW_N=$N
background --json inbox --follow --mesh acme; JFOLLOW=$BG; JFOLLOW_N=$N
wait_has $WATCH_N "^Watching claudemeshd; press Ctrl\+C to stop\.$"
wait_has $MWATCH_N "^Watching claudemeshd"
wait_has $FOLLOW_N "^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8}  acme  alice #t1: already here$"
wait_has $JFOLLOW_N '"id":"r1"'
# --json watch prints nothing until an event: give its match time to be installed
wait_until busctl --user status org.claudemesh.Daemon1
sleep 0.3

# a signal with the daemon's interface from another client is not the daemon's
busctl --user emit /org/claudemesh/Daemon1 org.claudemesh.Daemon1 Delivered sss acme forged bm-forged

# config.json changes: acme renamed, beta added
write_config "$T/config" "$(printf '%s' "$ACME" | sed 's/"name":"acme"/"name":"Acme Corp"/')" "$("$MAKE_MESH_ENTRY" beta)"
wait_has $WATCH_N '^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8}  changed +acme +.*Name="Acme Corp"'
wait_has $WATCH_N '^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8}  mesh-added +beta$'
wait_has $WATCH_N '  changed +daemon +Status="2 meshes: '
wait_has $MWATCH_N '  changed +acme +.*Name="Acme Corp"'
wait_has $JWATCH_N '"event":"InterfacesAdded"'
wait_has $JWATCH_N '"event":"PropertiesChanged","object":"daemon"'

# a session: registered by a process of its own, its profile set, ended with its process
rm -f "$T/holder.session"
/usr/bin/python3 "$SOURCE_ROOT/tests/e2e/session-holder.py" "$T/holder.session" acme worker s-watch \
        > "$T/holder.log" 2>&1 &
HOLDER=$!
CLEANUP_PIDS="$CLEANUP_PIDS $HOLDER"
wait_until test -s "$T/holder.session" || fail "the session holder did not register: $(cat "$T/holder.log")"
SPATH=$(cut -d' ' -f1 "$T/holder.session")
case $SPATH in /org/*) ;; *) fail "RegisterSession: $(cat "$T/holder.session")" ;; esac
wait_has $WATCH_N '  session-added +acme +worker \(s-watch\)$'
wait_has $MWATCH_N '  session-added +acme +worker \(s-watch\)$'
busctl --user call org.claudemesh.Daemon1 "$SPATH" org.claudemesh.Session1 SetProfile a{sv} 2 \
        status s working summary s 'fixing the tests' || fail "SetProfile"
wait_has $WATCH_N '  changed +s-watch +.*Summary="fixing the tests"'
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || :
wait_has $WATCH_N '  session-removed +- +s-watch$'
wait_has $JWATCH_N '"event":"InterfacesRemoved","session":"s-watch"'

# the daemon going away and coming back
stop_daemon
wait_has $WATCH_N '  daemon-stopped +- +:'
start_daemon
wait_has $WATCH_N '  daemon-started +- +:'
wait_has $JWATCH_N '"event":"DaemonStarted"'

stop_with INT $WATCH
stop_with TERM $JWATCH
stop_with INT $MWATCH
stop_with INT $FOLLOW
stop_with TERM $JFOLLOW

if grep -q forged "$T/bg-$WATCH_N.out" "$T/bg-$JWATCH_N.out"; then fail "watch showed a signal another client forged"; fi
if grep -q "mesh-added" "$T/bg-$MWATCH_N.out"; then fail "watch --mesh acme showed beta: $(cat "$T/bg-$MWATCH_N.out")"; fi
for n in $WATCH_N $MWATCH_N $FOLLOW_N; do
        [ ! -s "$T/bg-$n.err" ] || fail "stderr of output $n: $(cat "$T/bg-$n.err")"
done
# every --json line is one object with a time and an event name
/usr/bin/python3 - "$T/bg-$JWATCH_N.out" "$T/bg-$JFOLLOW_N.out" <<'PY' || fail "--json stream: $(cat "$T/bg-$JWATCH_N.out")"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
assert all(e["time"] > 1.7e15 for e in events), events
names = [e["event"] for e in events]
assert "PropertiesChanged" in names and "InterfacesAdded" in names, names
assert "DaemonStopped" in names and "DaemonStarted" in names, names
added = [e for e in events if e["event"] == "InterfacesAdded"][0]
assert added["mesh"] == "beta" and added["interfaces"]["org.claudemesh.Mesh1"]["Slug"] == "beta", added
acme = [e for e in events if e["event"] == "PropertiesChanged" and e.get("mesh") == "acme"]
assert acme and acme[0]["changed"]["Name"] == "Acme Corp" and acme[0]["object"] == "mesh", acme
assert acme[0]["interface"] == "org.claudemesh.Mesh1"
session = [e for e in events if e["event"] == "InterfacesAdded" and "session" in e]
assert session[0]["session"] == "s-watch" and session[0]["mesh"] == "acme", session
changed = [e for e in events if e["event"] == "PropertiesChanged" and e["object"] == "session"]
assert changed and changed[-1]["session"] == "s-watch" and changed[-1]["interface"] == "org.claudemesh.Session1", changed
assert changed[-1]["changed"]["Summary"] == "fixing the tests", changed
follow = [json.loads(line) for line in open(sys.argv[2])]
assert [m["id"] for m in follow] == ["r1"] and follow[0]["body"] == "already here", follow
PY

# errors before waiting: an unknown mesh
run 6 watch --mesh nope
err_has "No mesh 'nope' is configured"
run 6 inbox --follow --mesh nope
stop_daemon
# and no daemon at all (no activation file on this bus)
run 3 watch
err_has "claudemeshd is not running: start it with 'systemctl --user start claudemesh'"
run 3 inbox --follow
echo ok
