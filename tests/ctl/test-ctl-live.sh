#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl against daemons linked through our broker (tests/e2e/lib.sh): status of a
# connected mesh, peers, profile, a peer joining, reconnect, and a message sent with
# claudemeshctl arriving at the other daemon's inbox --follow and watch (MessageReceived) while
# the sender's watch shows Delivered; a message to a session shown from its Session1 object.
. "$SOURCE_ROOT/tests/e2e/lib.sh"

# ctl_on CODE DAEMON ARG...: claudemeshctl on that daemon's bus must exit CODE; output in $T/out, $T/err
ctl_on() {
        want=$1; name=$2; shift 2
        rc=0
        on "$name" "$CLAUDEMESHCTL" "$@" > "$T/out" 2> "$T/err" || rc=$?
        [ "$rc" = "$want" ] || fail "claudemeshctl $* on $name exited $rc, expected $want: $(cat "$T/out" "$T/err")"
}
out_has() { grep -Eq -- "$1" "$T/out" || fail "stdout lacks /$1/: $(cat "$T/out")"; }
json() {
        /usr/bin/python3 -c "import json, os, sys
d = json.load(open(sys.argv[1]))
$1" "$T/out" || fail "JSON check failed: $1; stdout: $(cat "$T/out")"
}
# bg_on DAEMON FILE ARG...: claudemeshctl in the background; sets BG
bg_on() {
        name=$1; file=$2; shift 2
        # not through on(): $! must be claudemeshctl itself, which the SIGINT below is for
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/$name/bus" "$CLAUDEMESHCTL" "$@" > "$file" 2>&1 &
        BG=$!
        PIDS="$PIDS $BG"
}
file_has() { grep -Eq -- "$2" "$1"; }

alice_and_bob

# status: a connected mesh with the broker's features
ctl_on 0 alice status
out_has "^demo +demo +connected +"
ctl_on 0 alice --json status
json '
m = d["Meshes"][0]
assert m["Slug"] == "demo" and m["State"] == "connected", m
assert isinstance(m["Features"], (list, dict)) and len(m["Features"]) > 0, m'

# peers, and a profile change reaching the other side
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus '$CLAUDEMESHCTL' peers | grep -q '^bob '" ||
        fail "alice's peers lack bob"
ctl_on 0 alice peers
out_has "^NAME +STATUS +SUMMARY +GROUPS +HOST +CONNECTED +PUBKEY$"
out_has "^alice \(you\) +"
ctl_on 0 alice profile --summary 'reviewing PR 42' --status working --capability review
out_has "^Updated the profile\.$"
ctl_on 0 alice --json profile --mesh demo --visible yes
json 'assert d == {"mesh": "demo", "profile": {"visible": True}}, d'
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus '$CLAUDEMESHCTL' peers | grep -q '^alice  *working  *reviewing PR 42 '" ||
        fail "bob does not see alice's profile: $(on bob "$CLAUDEMESHCTL" peers)"
ctl_on 0 bob --json peers --mesh demo
json '
alice = [p for p in d if p["display_name"] == "alice"][0]
bob = [p for p in d if p["display_name"] == "bob"][0]
assert alice["summary"] == "reviewing PR 42" and alice["status"] == "working" and not alice["self"], alice
assert bob["self"] is True and len(bob["pubkey"]) == 64, bob'

# test_follow_message_received: a message sent with claudemeshctl shows up in the receiver's
# inbox --follow (human and --json) and watch as it arrives, and Delivered in the sender's watch
test_follow_message_received() {
        bg_on bob "$T/follow" inbox --follow; FOLLOW=$BG
        bg_on bob "$T/follow.json" --json inbox --follow --mesh demo; JFOLLOW=$BG
        bg_on bob "$T/bob.watch" watch; BWATCH=$BG
        bg_on alice "$T/alice.watch" watch; AWATCH=$BG
        wait_until 5 file_has "$T/bob.watch" "^Watching" || fail "bob's watch did not start"
        wait_until 5 file_has "$T/alice.watch" "^Watching" || fail "alice's watch did not start"
        sleep 0.5

        printf 'hello bob\nsecond line\n' | on alice "$CLAUDEMESHCTL" send --id live-1 bob - > "$T/out" ||
                fail "send to bob"
        wait_until 10 file_has "$T/follow" "  demo  alice: hello bob\\\\nsecond line$" || fail "inbox --follow: $(cat "$T/follow")"
        wait_until 10 file_has "$T/follow.json" '"client_message_id":"live-1"' || fail "--json follow: $(cat "$T/follow.json")"
        wait_until 10 file_has "$T/bob.watch" "  message +demo +from alice: hello bob\\\\nsecond line$" || fail "bob's watch: $(cat "$T/bob.watch")"
        wait_until 10 file_has "$T/alice.watch" "  delivered +demo +live-1 → " || fail "alice's watch: $(cat "$T/alice.watch")"
        for p in $FOLLOW $JFOLLOW $BWATCH $AWATCH; do
                kill -INT "$p"; wait "$p" || fail "claudemeshctl ended with $? on SIGINT"
        done
        /usr/bin/python3 - "$T/follow.json" <<'PY' || fail "--json follow line: $(cat "$T/follow.json")"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
assert len(rows) == 1, rows
assert rows[0]["body"] == "hello bob\nsecond line" and rows[0]["sender_name"] == "alice" and rows[0]["mesh"] == "demo", rows
PY
        ctl_on 0 bob inbox
        out_has "^(just now|[0-9]+ s ago) +demo +alice +- +hello bob\\\\nsecond line$"
}
test_follow_message_received

# test_session_message: a DM to a session's key is the session's; bob's watch shows it as such
test_session_message() {
        rm -f "$T/s.session"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 "$SOURCE_ROOT/tests/e2e/session-holder.py" \
                "$T/s.session" demo worker s-live > "$T/holder.log" 2>&1 &
        HOLDER=$!
        PIDS="$PIDS $HOLDER"
        wait_until 10 test -s "$T/s.session" || fail "the session holder did not register: $(cat "$T/holder.log")"
        SKEY=$(cut -d' ' -f2 "$T/s.session")
        case $SKEY in [0-9a-f]*) ;; *) fail "RegisterSession: $(cat "$T/s.session")" ;; esac
        bg_on bob "$T/s.watch" watch; SWATCH=$BG
        bg_on bob "$T/s.json" --json watch --mesh demo; SJWATCH=$BG
        wait_until 5 file_has "$T/s.watch" "^Watching" || fail "bob's watch did not start"
        wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus '$CLAUDEMESHCTL' --json peers | grep -q '$SKEY'" ||
                fail "alice does not see bob's session"
        sleep 0.5
        ctl_on 0 alice send --id live-s "$SKEY" 'hello worker'
        wait_until 10 file_has "$T/s.watch" "  message +demo +from alice to session s-live: hello worker$" ||
                fail "bob's watch of the session: $(cat "$T/s.watch")"
        wait_until 10 file_has "$T/s.json" '"session":"s-live","message"' || fail "--json: $(cat "$T/s.json")"
        for p in $SWATCH $SJWATCH; do
                kill -INT "$p"; wait "$p" || fail "claudemeshctl ended with $? on SIGINT"
        done
        kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || :
        /usr/bin/python3 - "$T/s.json" <<'PY' || fail "--json session message: $(cat "$T/s.json")"
import json, sys
rows = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "MessageReceived"]
assert len(rows) == 1, rows
assert rows[0]["session"] == "s-live" and rows[0]["mesh"] == "demo", rows
assert rows[0]["message"]["body"] == "hello worker" and rows[0]["message"]["client_message_id"] == "live-s", rows
PY
}
test_session_message

# a peer joining, as alice's watch shows it
CAROL=$(member_entry demo carol)
bg_on alice "$T/peers.watch" watch --mesh demo; PWATCH=$BG
bg_on alice "$T/peers.json" --json watch; PJWATCH=$BG
wait_until 5 file_has "$T/peers.watch" "^Watching" || fail "alice's watch did not start"
sleep 0.5
daemon_setup carol "$CAROL"
daemon_start carol
wait_until 10 file_has "$T/peers.watch" "  peer-joined +demo +carol \\([0-9a-f]{64}\\)$" || fail "peer-joined: $(cat "$T/peers.watch")"
wait_until 10 file_has "$T/peers.json" '"event":"PeerJoined"' || fail "--json PeerJoined: $(cat "$T/peers.json")"
# and changing its profile: PeerChanged with the new status and summary
wait_connected carol demo
ctl_on 0 carol profile --status working --summary 'writing the docs'
wait_until 10 file_has "$T/peers.watch" "  peer-changed +demo +carol \\([0-9a-f]{64}\\) working: writing the docs$" ||
        fail "peer-changed: $(cat "$T/peers.watch")"
wait_until 10 file_has "$T/peers.json" '"event":"PeerChanged".*"status":"working","summary":"writing the docs"' ||
        fail "--json PeerChanged: $(cat "$T/peers.json")"
kill -INT "$PWATCH" "$PJWATCH"
wait "$PWATCH" || fail "watch ended with $? on SIGINT"
wait "$PJWATCH" || fail "--json watch ended with $? on SIGINT"
/usr/bin/python3 - "$T/peers.json" <<'PY' || fail "--json peer events: $(cat "$T/peers.json")"
import json, sys
joined = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "PeerJoined"]
assert joined[0]["mesh"] == "demo" and joined[0]["peer"]["display_name"] == "carol", joined
assert len(joined[0]["peer"]["pubkey"]) == 64, joined
changed = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "PeerChanged"]
# the broker may report the summary and the status one at a time: the last has both
assert changed[-1]["mesh"] == "demo" and changed[-1]["peer"]["display_name"] == "carol", changed
assert changed[-1]["peer"]["status"] == "working" and changed[-1]["peer"]["summary"] == "writing the docs", changed
PY

# reconnect: the link drops and comes back
ctl_on 0 alice reconnect --mesh demo
out_has "^Reconnecting demo\.$"
wait_connected alice demo

echo ok
