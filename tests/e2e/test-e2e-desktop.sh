#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Desktop integration: notifications through org.freedesktop.Notifications (python3-dbusmock's
# notification daemon template stands in for the desktop's on bob's private bus — no real
# notification server runs here) for DMs and mentions only, silenced by dnd; UnreadCount and
# MarkRead with PropertiesChanged.
. "$(dirname "$0")/lib.sh"

broker_start
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$A"
daemon_setup bob "$B"
on bob /usr/bin/python3 -m dbusmock --session --template notification_daemon > "$T/dbusmock.log" 2>&1 &
PIDS="$PIDS $!"
wait_until 10 on bob busctl --user status org.freedesktop.Notifications || fail "dbusmock did not start"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo

notify_calls() {
        on bob gdbus call --session --dest org.freedesktop.Notifications --object-path /org/freedesktop/Notifications \
                --method org.freedesktop.DBus.Mock.GetCalls > "$T/calls"
        grep -o "'Notify'" "$T/calls" | wc -l
}
deliver() {  # deliver ID TO TEXT: alice sends, bob has it
        gcall_on alice Send demo "$2" "$3" "{'client_message_id': <'$1'>}" || fail "Send $1: $(cat "$T/reply")"
        wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListInbox demo '@a{sv} {}' | grep -q \"'$1'\"" ||
                fail "bob did not receive $1"
        sleep 0.3
}
unread() {
        on bob busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 UnreadCount
}

[ "$(notify_calls)" = 0 ] || fail "notifications before any message"
deliver n1 "$BOB" "$(printf 'first line\nsecond line')"
[ "$(notify_calls)" = 1 ] || fail "a DM did not notify: $(cat "$T/calls")"
# this server has no actions: the second line says how to reply, naming the message's broker id
N1=$(inbox_json bob demo | /usr/bin/python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin)["data"][0] if r["client_message_id"]["data"] == "n1"][0]
print(r["broker_message_id"]["data"], r["sender_pubkey"]["data"])')
on bob busctl --user --json=short call org.freedesktop.Notifications /org/freedesktop/Notifications \
        org.freedesktop.DBus.Mock GetCalls > "$T/calls.json"
/usr/bin/python3 - "$T/calls.json" $N1 <<'PY' ||
import json, sys
calls = [c for c in json.load(open(sys.argv[1]))["data"][0] if c[1] == "Notify"]
summary, body = calls[-1][2][3]["data"], calls[-1][2][4]["data"]
assert summary == "alice (demo)", summary
assert body == f"first line…\nReply: claudemeshctl send --mesh demo --reply-to {sys.argv[2]} {sys.argv[3]} '…'", body
PY
        fail "summary/body: $(cat "$T/calls.json")"
grep -q "second line" "$T/calls" && fail "the notification shows more than the first line"
deliver n2 '*' "a broadcast for everyone"
[ "$(notify_calls)" = 1 ] || fail "a broadcast notified (dmsOnly is the default)"
deliver n3 '*' "ping @bob, can you look?"
[ "$(notify_calls)" = 2 ] || fail "a mention did not notify"
grep -q "<'Mentioned by alice (demo)'>" "$T/calls" || fail "mention summary: $(cat "$T/calls")"

# a peer whose name and DM carry terminal escapes, bidi overrides and markup: the summary shows
# them escaped, the body too, with & < > as entities (servers read the body as markup)
daemon_setup carol "$(member_entry demo carol)"
/usr/bin/python3 - "$T/carol/config/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["displayName"] = "carol\x1b]0;TITLE\x07\u202e<i>"
json.dump(c, open(sys.argv[1], "w"))
PY
daemon_start carol
wait_connected carol demo
on carol busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 Send 'sssa{sv}' \
        demo "$BOB" "$(printf '<b>bold</b> & \033]0;T\007 \342\200\256rtl \302\233\177\nsecond')" \
        1 client_message_id s hostile-1 > /dev/null || fail "carol's Send"
wait_until 10 sh -c "[ \$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.freedesktop.Notifications --object-path /org/freedesktop/Notifications --method org.freedesktop.DBus.Mock.GetCalls | grep -o \"'Notify'\" | wc -l) = 3 ]" ||
        fail "carol's DM did not notify: $(cat "$T/calls")"
on bob busctl --user --json=short call org.freedesktop.Notifications /org/freedesktop/Notifications \
        org.freedesktop.DBus.Mock GetCalls > "$T/calls.json"
/usr/bin/python3 - "$T/calls.json" <<'PY' || fail "carol's notification: $(cat "$T/calls.json")"
import json, sys
calls = [c for c in json.load(open(sys.argv[1]))["data"][0] if c[1] == "Notify"]
summary, body = calls[-1][2][3]["data"], calls[-1][2][4]["data"]
assert summary == "carol\\x1b]0;TITLE\\x07\\u202e<i> (demo)", summary
first, hint = body.split("\n")
assert first == "&lt;b&gt;bold&lt;/b&gt; &amp; \\x1b]0;T\\x07 \\u202ertl \\u009b\\x7f…", body
assert hint.startswith("Reply: claudemeshctl send --mesh demo --reply-to "), hint
PY
daemon_stop carol

gcall_on bob SetProfile demo "{'status': <'dnd'>}" || fail "SetProfile dnd"
deliver n4 "$BOB" "while you are busy"
[ "$(notify_calls)" = 3 ] || fail "dnd did not silence the DM"

# UnreadCount counts them all; MarkRead clears it, with PropertiesChanged
[ "$(unread)" = "u 5" ] || fail "UnreadCount: $(unread)"
monitor bob "$T/bob.mon"
gcall_on bob MarkRead demo || fail "MarkRead: $(cat "$T/reply")"
[ "$(unread)" = "u 0" ] || fail "UnreadCount after MarkRead: $(unread)"
sleep 0.3
grep '"member":"PropertiesChanged"' "$T/bob.mon" | grep -q UnreadCount || fail "no PropertiesChanged for UnreadCount"
# the mark survives a restart
daemon_stop bob
daemon_start bob
[ "$(unread)" = "u 0" ] || fail "UnreadCount after a restart: $(unread)"
wait_connected bob demo
deliver n5 "$BOB" "one more"
[ "$(unread)" = "u 1" ] || fail "UnreadCount after one more: $(unread)"
echo ok
