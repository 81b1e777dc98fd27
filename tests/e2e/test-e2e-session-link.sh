#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sessions on the broker: two daemons on our broker; sessions registered by real processes each
# get their own presence. A DM to session A1's key reaches only A1 (its MessageReceived, not A2's
# nor the daemon's); two sessions of one member are two peers (peer_role session); a session's
# Send arrives at bob with the session's key as sender; killing the registering process ends its
# presence at bob (PeerLeft); the same session_id comes back with the same key and what arrived
# meanwhile; a group post and a broadcast reach each identity they address once; a session's
# profile and presence come back after its worker dies; kill -9 of alice with session sends
# pending: delivered once after the restart; a DM stored but not announced when alice died is
# announced once on the session's object when it registers again.
. "$(dirname "$0")/lib.sh"
HOLDER="$(dirname "$0")/session-holder.py"
MON="/usr/bin/python3 $(dirname "$0")/sessmon.py"

alice_and_bob --presence-grace 0
monitor alice "$T/a-signals"
monitor bob "$T/b-signals"

# hold FILE NAME [SESSION_ID [GROUP]]: a session owner on alice's bus in the background; its pid in
# HOLDER_PID
hold() {
        rm -f "$T/$1.session"
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" /usr/bin/python3 "$HOLDER" "$T/$1.session" demo "$2" \
                ${3:+"$3"} ${4:+"$4"} >> "$T/holder.log" 2>&1 &
        HOLDER_PID=$!
        PIDS="$PIDS $HOLDER_PID"
        wait_until 10 test -s "$T/$1.session" || fail "holder $1 did not register"
        grep -q '^/org/' "$T/$1.session" || fail "holder $1: $(cat "$T/$1.session")"
}
path_of() { cut -d' ' -f1 "$T/$1.session"; }
key_of() { cut -d' ' -f2 "$T/$1.session"; }
prop() { on alice busctl --user get-property org.claudemesh.Daemon1 "$1" org.claudemesh.Session1 "$2"; }
connected() { [ "$(prop "$1" State)" = 's "connected"' ]; }
scall() {  # scall PATH METHOD SIGNATURE ARGS...
        p=$1; shift
        on alice busctl --user --json=short call org.claudemesh.Daemon1 "$p" org.claudemesh.Session1 "$@"
}
peers_json() {  # peers_json DAEMON FILE
        on "$1" busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 \
                org.claudemesh.Daemon1 ListPeers s demo > "$2"
}
role_is() {  # role_is DAEMON PUBKEY ROLES
        peers_json "$1" "$T/peers-$1" && [ "$($MON peer-role "$T/peers-$1" "$2")" = "$3" ]
}
signals() { $MON count "$@"; }
got() { [ "$(signals "$@")" -ge 1 ]; }
bob_rows() { inbox_json bob demo > "$T/b-inbox" && $MON rows "$T/b-inbox" "$@"; }
bob_has() { [ "$(bob_rows "$@")" -ge 1 ]; }
session_rows() { scall "$1" ListInbox 'a{sv}' 0 > "$T/s-inbox" && $MON rows "$T/s-inbox" "$2"; }
session_has() { [ "$(session_rows "$1" "$2")" -ge 1 ]; }
DAEMON=/org/claudemesh/Daemon1
BOB_KEY=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["meshes"][0]["pubkey"])' \
        "$T/bob/config/config.json")

hold a1 agent-a1 a1 review
A1_PID=$HOLDER_PID
hold a2 agent-a2 a2
A1=$(path_of a1); K1=$(key_of a1); A2=$(path_of a2); K2=$(key_of a2)
wait_until 20 connected "$A1" || fail "a1 did not connect: $(prop "$A1" State)"
wait_until 20 connected "$A2" || fail "a2 did not connect: $(prop "$A2" State)"
got "$T/a-signals" "$A1" PropertiesChanged connected || fail "no PropertiesChanged of a1's State"

# each session is a peer of its own, at bob and at alice (two sessions of one member: two peers)
wait_until 10 role_is bob "$K1" session || fail "bob's peers for a1: $($MON peer-role "$T/peers-bob" "$K1")"
wait_until 10 role_is bob "$K2" session || fail "bob's peers for a2"
wait_until 10 role_is alice "$K1" session || fail "alice does not see a1 as a peer"
wait_until 10 role_is alice "$K2" session || fail "alice does not see a2 as a peer"
grep -q "refused to sign" "$T/alice.log" && fail "alice refused a session signature: $(grep 'refused to sign' "$T/alice.log")"

# a session registered without a name takes alice's displayName: "alice" then means the session,
# not alice's daemon presence (upstream's send skips control-plane rows), so the send is no longer
# ambiguous and reaches the session, not alice's own inbox
hold a0 -
A0=$(path_of a0); K0=$(key_of a0); A0_PID=$HOLDER_PID
[ "$(prop "$A0" DisplayName)" = 's "alice"' ] || fail "a0's name: $(prop "$A0" DisplayName)"
wait_until 20 connected "$A0" || fail "a0 did not connect: $(prop "$A0" State)"
wait_until 10 role_is bob "$K0" session || fail "bob's peers for a0"
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo alice \
        "for alice by name" 0 > "$T/reply" 2>&1 || fail "bob's Send to alice by name: $(cat "$T/reply")"
wait_until 20 got "$T/a-signals" "$A0" MessageReceived "for alice by name" || fail "a0 did not get the DM by name"
[ "$(signals "$T/a-signals" $DAEMON MessageReceived "for alice by name")" = 0 ] || fail "alice's daemon got it"
kill "$A0_PID"
wait "$A0_PID" 2>/dev/null || true
wait_until 10 role_is bob "$K0" "" || fail "a0's presence did not end at bob"

# a DM from bob to a1's key reaches a1 only
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo "$K1" \
        "for a1 only" 0 > /dev/null || fail "bob's Send to a1"
wait_until 20 got "$T/a-signals" "$A1" MessageReceived "for a1 only" || fail "a1 got no MessageReceived"
[ "$(signals "$T/a-signals" "$A2" MessageReceived "for a1 only")" = 0 ] || fail "a2 got a1's DM"
[ "$(signals "$T/a-signals" $DAEMON MessageReceived "for a1 only")" = 0 ] || fail "the daemon announced a1's DM"
session_has "$A1" "body=for a1 only" || fail "a1's inbox: $(cat "$T/s-inbox")"
[ "$(session_rows "$A2" "body=for a1 only")" = 0 ] || fail "a2's inbox has a1's DM"
$MON rows "$T/s-inbox" recipient_pubkey="$K1" > /dev/null
[ "$(prop "$A1" UnreadCount)" = "u 1" ] || fail "a1's UnreadCount: $(prop "$A1" UnreadCount)"
scall "$A1" MarkRead '' > /dev/null || fail "a1's MarkRead"
[ "$(prop "$A1" UnreadCount)" = "u 0" ] || fail "a1's UnreadCount after MarkRead: $(prop "$A1" UnreadCount)"

# a post to a1's group reaches a1 only; a broadcast and a topic post reach each identity once
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo @review \
        "for reviewers" 0 > /dev/null || fail "bob's Send to @review"
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo '*' \
        "for everyone" 0 > /dev/null || fail "bob's broadcast"
broker_admin topic create demo general > /dev/null
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo '#general' \
        "on the topic" 0 > /dev/null || fail "bob's topic post"
wait_until 20 got "$T/a-signals" "$A1" MessageReceived "for reviewers" || fail "a1 did not get the @review post"
for p in "$A1" "$A2" $DAEMON; do
        wait_until 20 got "$T/a-signals" "$p" MessageReceived "for everyone" || fail "$p did not get the broadcast"
        wait_until 20 got "$T/a-signals" "$p" MessageReceived "on the topic" || fail "$p did not get the topic post"
done
[ "$(signals "$T/a-signals" "$A2" MessageReceived "for reviewers")" = 0 ] || fail "a2 got the @review post"
[ "$(signals "$T/a-signals" $DAEMON MessageReceived "for reviewers")" = 0 ] || fail "alice got the @review post"
for p in "$A1" "$A2" $DAEMON; do
        [ "$(signals "$T/a-signals" "$p" MessageReceived "for everyone")" = 1 ] || fail "$p got the broadcast twice"
        [ "$(signals "$T/a-signals" "$p" MessageReceived "on the topic")" = 1 ] || fail "$p got the topic post twice"
done
scall "$A1" MarkRead '' > /dev/null || fail "a1's MarkRead"

# a session's profile is its presence's
scall "$A2" SetProfile 'a{sv}' 2 status s working summary s "fixing 14" > /dev/null || fail "a2's SetProfile"
status_is() { peers_json bob "$T/peers-bob" && grep -q '"fixing 14"' "$T/peers-bob"; }
wait_until 10 status_is || fail "bob does not see a2's summary: $(cat "$T/peers-bob")"

# the worker dies: every session connection comes back with the next worker
kill -KILL "$(pgrep -P "$(daemon_pid alice)" -f claudemesh-worker)"
wait_until 10 sh -c "grep -q 'claudemesh-worker .*restarting' '$T/alice.log'" || fail "alice did not see its worker die"
wait_until 60 connected "$A1" || fail "a1 did not reconnect after the worker died: $(prop "$A1" State)"
wait_until 60 connected "$A2" || fail "a2 did not reconnect after the worker died"
wait_until 10 status_is || fail "a2's summary did not come back with its connection"

# a session's Send goes out as the session
scall "$A2" Send 'ssa{sv}' bob "from a2" 1 client_message_id s a2-1 > "$T/reply" || fail "a2's Send: $(cat "$T/reply")"
grep -q '"a2-1"' "$T/reply" || fail "a2's Send reply: $(cat "$T/reply")"
wait_until 20 bob_has "body=from a2" || fail "bob did not get a2's message"
[ "$(bob_rows "body=from a2" "sender_pubkey=$K2")" = 1 ] || fail "a2's message at bob: $(cat "$T/b-inbox")"
# the member's ids and a session's are apart: the member may use a2's id for another message
on alice busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo bob \
        "from alice" 1 client_message_id s a2-1 > "$T/reply" || fail "alice's Send with a2's id: $(cat "$T/reply")"
wait_until 20 bob_has "body=from alice" || fail "bob did not get alice's message with a2's id"
# the same id again from a2: the duplicate table's answer, nothing new
scall "$A2" Send 'ssa{sv}' bob "from a2" 1 client_message_id s a2-1 > "$T/reply" || fail "a2's resend"
grep -q '"done"\|"queued"\|"inflight"' "$T/reply" || fail "a2's resend reply: $(cat "$T/reply")"

# killing a1's process ends its presence at bob
kill -KILL "$A1_PID"
wait_until 10 got "$T/b-signals" $DAEMON PeerLeft "$K1" || fail "bob saw no PeerLeft of a1"
grep -q "Session a1 (agent-a1) on mesh demo ended: its process exited" "$T/alice.log" || fail "no log of a1's end"

# what is sent to a1 while it is away arrives when a1 registers again with its session_id
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo "$K1" \
        "while away" 0 > /dev/null || fail "bob's Send to the absent a1"
hold a1-again agent-a1 a1
[ "$(key_of a1-again)" = "$K1" ] || fail "a1 came back with $(key_of a1-again), not $K1"
wait_until 60 session_has "$A1" "body=while away" || fail "a1's inbox after it came back: $(cat "$T/s-inbox")"
[ "$(session_rows "$A1" "body=while away")" = 1 ] || fail "a1 has 'while away' twice"
[ "$(session_rows "$A1" "body=for a1 only")" = 1 ] || fail "a1 lost its earlier row"

# kill -9 of alice with a session's send pending (the broker is away): delivered once after the restart
broker_stop
wait_until 20 sh -c "! DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property \
        org.claudemesh.Daemon1 $A2 org.claudemesh.Session1 State | grep -q '\"connected\"'" || fail "a2 stays connected"
scall "$A2" Send 'ssa{sv}' "$BOB_KEY" "across the crash" 1 client_message_id s a2-crash > "$T/reply" ||
        fail "a2's Send while the broker is away: $(cat "$T/reply")"
on alice busctl --user --json=short call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 ListOutbox 'sa{sv}' \
        demo 0 > "$T/outbox"
[ "$($MON rows "$T/outbox" client_message_id=a2-crash status=pending)" = 1 ] || fail "outbox: $(cat "$T/outbox")"
# sessions without a session_id: their key dies with them, so do their sends, with the reason
hold e1 ephemeral-1
E1=$(path_of e1)
scall "$E1" Send 'ssa{sv}' "$BOB_KEY" "never out" 1 client_message_id s e-close > /dev/null || fail "e1's Send"
scall "$E1" Close '' > /dev/null || fail "e1's Close"
wait_until 10 got "$T/a-signals" $DAEMON SendFailed session_ended || fail "no SendFailed of e1's send"
got "$T/a-signals" $DAEMON SendFailed e-close || fail "the SendFailed does not name e-close"
hold e2 ephemeral-2
scall "$(path_of e2)" Send 'ssa{sv}' "$BOB_KEY" "never out either" 1 client_message_id s e-crash > /dev/null ||
        fail "e2's Send"
kill -KILL "$(daemon_pid alice)"
wait "$(daemon_pid alice)" 2>/dev/null || true
monitor bob "$T/b-signals-2"
broker_start --presence-grace 0
wait_connected bob demo
daemon_start alice
wait_connected alice demo
monitor alice "$T/a-signals-2"
on alice busctl --user --json=short call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 ListOutbox 'sa{sv}' \
        demo 0 > "$T/outbox"
[ "$($MON rows "$T/outbox" client_message_id=e-crash status=dead)" = 1 ] || fail "e2's send after the crash: $(cat "$T/outbox")"
grep -q 'session_ended: the daemon stopped' "$T/outbox" || fail "e2's send has no reason: $(cat "$T/outbox")"
[ "$($MON rows "$T/outbox" client_message_id=a2-crash status=pending)" = 1 ] || fail "a2's send did not wait for a2"
hold a2-again agent-a2 a2
[ "$(key_of a2-again)" = "$K2" ] || fail "a2 came back with another key"
wait_until 60 bob_has "body=across the crash" || fail "a2's pending send did not arrive after the crash"
wait_until 20 got "$T/a-signals-2" $DAEMON Delivered a2-crash || fail "no Delivered of a2-crash"
[ "$(bob_rows "body=across the crash" "sender_pubkey=$K2")" = 1 ] || fail "a2-crash at bob: $(cat "$T/b-inbox")"
[ "$(signals "$T/b-signals-2" $DAEMON MessageReceived "across the crash")" = 1 ] || fail "a2-crash announced twice"

# alice dies between storing a DM to a1 and announcing it: announced once, on a1's object, when
# a1 registers again after the restart
daemon_stop alice
export CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT=1
daemon_start alice
unset CLAUDEMESH_TEST_CRASH_AFTER_INBOX_COMMIT
wait_connected alice demo
hold a1-crash agent-a1 a1
wait_until 20 connected "$A1" || fail "a1 did not connect before the crash"
on bob busctl --user call org.claudemesh.Daemon1 $DAEMON org.claudemesh.Daemon1 Send 'sssa{sv}' demo "$K1" \
        "in the crash window" 0 > /dev/null || fail "bob's Send into the crash window"
wait "$(daemon_pid alice)" 2>/dev/null && fail "alice did not die after the inbox commit"
daemon_start alice
monitor alice "$T/a-signals-3"
wait_connected alice demo
hold a1-after agent-a1 a1
wait_until 20 got "$T/a-signals-3" "$A1" MessageReceived "in the crash window" ||
        fail "the row stored before the crash was not announced to a1"
wait_until 20 connected "$A1" || fail "a1 did not connect after the crash"
[ "$(session_rows "$A1" "body=in the crash window")" = 1 ] || fail "a1's inbox after the crash: $(cat "$T/s-inbox")"
[ "$(signals "$T/a-signals-3" "$A1" MessageReceived "in the crash window")" = 1 ] || fail "announced twice"
[ "$(signals "$T/a-signals-3" $DAEMON MessageReceived "in the crash window")" = 0 ] || fail "announced as alice's"

daemon_stop alice
daemon_stop bob
echo "session link: own presence, DMs to the session only, sends as the session, once across a crash"
