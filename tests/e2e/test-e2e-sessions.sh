#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sessions: two real processes register sessions of one member on alice's daemon; each is its own
# object with its own key; killing a process with SIGKILL ends its session at once (no polling, no
# token); the same session_id comes back with the same key (kept 0600); a live id cannot be taken
# twice; a session registered by a process that exits at once does not outlive it.
. "$(dirname "$0")/lib.sh"
HOLDER="$(dirname "$0")/session-holder.py"

broker_start --presence-grace 0
MESH_ID=$(mesh_create demo)
daemon_setup alice "$(member_entry demo alice)"
# alice's bus also takes the unprivileged test user, who must not see or use alice's sessions
TUSER=${TUSER:-cmtest}
id "$TUSER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$TUSER"
OLD_BUS=$(cat "$T/alice/bus.pid")
kill "$OLD_BUS"
# It unlinks its socket as it exits: a bus started before then would lose its own.
wait_until 10 pid_gone "$OLD_BUS" || fail "alice's first bus did not exit"
sed -i 's|<policy context="default">|<policy context="default"><allow user="*"/>|' "$T/alice/bus.conf"
rm -f "$T/alice/bus"
dbus-daemon --config-file="$T/alice/bus.conf" --fork --print-pid=1 > "$T/alice/bus.pid" 2>/dev/null
PIDS="$PIDS $(cat "$T/alice/bus.pid")"
chmod 666 "$T/alice/bus"
daemon_start alice
wait_connected alice demo

# hold FILE NAME SESSION_ID [GROUP...]: a session owner in the background, writing $T/FILE.session;
# its pid in HOLDER_PID
hold() {
        file=$1; shift
        rm -f "$T/$file.session"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" /usr/bin/python3 "$HOLDER" "$T/$file.session" demo "$@" \
                >> "$T/holder.log" 2>&1 &
        HOLDER_PID=$!
        PIDS="$PIDS $HOLDER_PID"
        wait_until 10 test -s "$T/$file.session" || fail "holder $file did not register"
}
path_of() { cut -d' ' -f1 "$T/$1.session"; }
key_of() { cut -d' ' -f2 "$T/$1.session"; }
prop() {  # prop PATH NAME
        on alice busctl --user get-property org.claudemesh.Daemon1 "$1" org.claudemesh.Session1 "$2"
}
object_gone() { ! prop "$1" Id; }

monitor alice "$T/signals"

hold a-proc agent-a agent-a review
A_PID=$HOLDER_PID
hold b-proc agent-b agent-b
B_PID=$HOLDER_PID
grep -q '^/org/claudemesh/Daemon1/session/' "$T/a-proc.session" || fail "a: $(cat "$T/a-proc.session")"
A=$(path_of a-proc); B=$(path_of b-proc)
[ "$A" != "$B" ] || fail "two sessions share the object $A"
[ "$(key_of a-proc)" != "$(key_of b-proc)" ] || fail "two sessions share a key"
echo "$(key_of a-proc)" | grep -Eq '^[0-9a-f]{64}$' || fail "a's key: $(key_of a-proc)"
[ "$(prop "$A" Pid)" = "u $A_PID" ] || fail "a's Pid is $(prop "$A" Pid), its process is $A_PID"
[ "$(prop "$A" DisplayName)" = 's "agent-a"' ] || fail "a's DisplayName: $(prop "$A" DisplayName)"
[ "$(prop "$A" Mesh)" = 's "demo"' ] || fail "a's Mesh: $(prop "$A" Mesh)"
[ "$(prop "$A" Groups)" = 'as 1 "review"' ] || fail "a's Groups: $(prop "$A" Groups)"
[ "$(prop "$A" Status)" = 's "idle"' ] || fail "a's Status: $(prop "$A" Status)"
# the key files: one per session id, 0600, a 32-byte seed
n=0
for f in "$T/alice/state/claudemesh/sessions/"*.session-key; do
        [ "$(stat -c '%a %s' "$f")" = "600 32" ] || fail "$f: $(stat -c '%a %s' "$f")"
        n=$((n + 1))
done
[ $n = 2 ] || fail "$n session key files, not 2"
# ObjectManager lists both
on alice busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.freedesktop.DBus.ObjectManager \
        GetManagedObjects > "$T/managed" || fail "GetManagedObjects"
grep -q "$A" "$T/managed" && grep -q "$B" "$T/managed" || fail "ObjectManager: $(cat "$T/managed")"
grep -q "InterfacesAdded" "$T/signals" || fail "no InterfacesAdded for the sessions"

# another uid sees neither the object nor its methods
as_other() {
        setpriv --reuid="$TUSER" --regid="$TUSER" --init-groups env -i PATH=/usr/bin:/bin \
                DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" "$@"
}
as_other busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 Version \
        >/dev/null || fail "the test user cannot reach alice's bus"
as_other busctl --user get-property org.claudemesh.Daemon1 "$A" org.claudemesh.Session1 PublicKey 2> "$T/err" &&
        fail "uid $TUSER read a's PublicKey"
as_other busctl --user call org.claudemesh.Daemon1 "$A" org.claudemesh.Session1 Close 2> "$T/err" &&
        fail "uid $TUSER closed a"
as_other busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.freedesktop.DBus.ObjectManager \
        GetManagedObjects > "$T/managed-other" || fail "GetManagedObjects as $TUSER"
grep -q "/session/" "$T/managed-other" && fail "uid $TUSER sees sessions: $(cat "$T/managed-other")"
prop "$A" Id >/dev/null || fail "a is gone after the test user's tries"

# the owner's profile; a bad status is refused and changes nothing
on alice busctl --user call org.claudemesh.Daemon1 "$A" org.claudemesh.Session1 SetProfile 'a{sv}' 2 \
        status s working summary s "reviewing PR 7" || fail "SetProfile"
[ "$(prop "$A" Summary)" = 's "reviewing PR 7"' ] || fail "a's Summary: $(prop "$A" Summary)"
on alice busctl --user call org.claudemesh.Daemon1 "$A" org.claudemesh.Session1 SetProfile 'a{sv}' 1 \
        status s sleeping 2> "$T/err" && fail "status sleeping was taken"
grep -q "status must be idle, working or dnd" "$T/err" || fail "SetProfile error: $(cat "$T/err")"
[ "$(prop "$A" Status)" = 's "working"' ] || fail "a's Status after a refused change: $(prop "$A" Status)"

# a live session id cannot be taken by another process
hold a-twice agent-a-again agent-a
grep -q "^ERROR org.claudemesh.Daemon1.Error.SessionInUse " "$T/a-twice.session" ||
        fail "a second agent-a: $(cat "$T/a-twice.session")"
kill "$HOLDER_PID"
# bad input is refused with the reason
on alice busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 RegisterSession \
        'sa{sv}' demo 1 session_id s '../../etc' 2> "$T/err" && fail "a session_id with slashes was taken"
grep -q "session_id must be" "$T/err" || fail "bad session_id: $(cat "$T/err")"
on alice busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 RegisterSession \
        'sa{sv}' nosuch 0 2> "$T/err" && fail "an unknown mesh was taken"
grep -q "NoSuchMesh\|No mesh" "$T/err" || fail "unknown mesh: $(cat "$T/err")"

# SIGKILL: no goodbye from the process, the kernel's pidfd ends the session
kill -KILL "$A_PID"
wait_until 10 object_gone "$A" || fail "session a outlived its process"
prop "$B" Id >/dev/null || fail "session b ended with a"
grep -q "InterfacesRemoved" "$T/signals" || fail "no InterfacesRemoved for a"
grep -q "Session agent-a (agent-a) on mesh demo ended: its process exited" "$T/alice.log" || fail "no log of a's end"

# the same id again: the same key
hold a-again agent-a agent-a
[ "$(key_of a-again)" = "$(key_of a-proc)" ] || fail "agent-a came back with $(key_of a-again), not $(key_of a-proc)"
[ "$(path_of a-again)" = "$A" ] || fail "agent-a came back at $(path_of a-again)"

# Close ends it too
on alice busctl --user call org.claudemesh.Daemon1 "$A" org.claudemesh.Session1 Close || fail "Close"
object_gone "$A" || fail "a closed session is still there"

# a damaged key file is set aside, not trusted: a new key
KEY=$(/usr/bin/python3 -c 'import hashlib,sys; print(hashlib.sha256(sys.argv[1].encode() + b"\0" + sys.argv[2].encode()).hexdigest())' \
        "$MESH_ID" agent-a)
F="$T/alice/state/claudemesh/sessions/$KEY.session-key"
[ -f "$F" ] || fail "no key file $F"
printf 'short' > "$F"
hold a-damaged agent-a agent-a
[ "$(key_of a-damaged)" != "$(key_of a-proc)" ] || fail "a damaged key file gave the old key"
[ "$(stat -c '%a %s' "$F")" = "600 32" ] || fail "the new key file: $(stat -c '%a %s' "$F")"
ls "$F".malformed-* >/dev/null || fail "the damaged key file was not set aside"
kill "$HOLDER_PID"

# registered by a process that exits right after (busctl): the session goes with it
P=$(on alice busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
        RegisterSession 'sa{sv}' demo 1 display_name s oneshot | cut -d'"' -f2) || fail "RegisterSession from busctl"
wait_until 10 object_gone "$P" || fail "the session of an exited busctl stays"

daemon_stop alice
echo "sessions: 2 sessions of one member, SIGKILL ends one, same id same key"
