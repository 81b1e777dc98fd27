#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Notification actions against python3-dbusmock's notification daemon (with and without the
# inline-reply capability) on bob's private bus, and its logind template on a private system bus:
# "Mark read" clears the count, a reply typed in the notification reaches alice answering the
# right message, one notification per sender (replaces_id), only a count while the session is
# locked. Without inline-reply: the body says how to reply, and while something owns
# org.claudemesh.ShellExtension "Reply" emits ReplyRequested naming the message and its sender.
. "$(dirname "$0")/lib.sh"

broker_start
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$A"
daemon_setup bob "$B"

start_notifications() {  # start_notifications CAPABILITIES
        on bob /usr/bin/python3 -m dbusmock --session --template notification_daemon \
                --parameters "{\"capabilities\": \"$1\"}" >> "$T/dbusmock.log" 2>&1 &
        MOCK=$!
        PIDS="$PIDS $MOCK"
        wait_until 10 on bob busctl --user status org.freedesktop.Notifications || fail "dbusmock did not start"
}
start_notifications "body actions inline-reply"

# logind with bob's graphical session, which session/auto names for a process outside any session
mkdir -p "$T/sys"
private_bus "$T/sys"
SYS="unix:path=$T/sys/bus"
DBUS_SYSTEM_BUS_ADDRESS=$SYS /usr/bin/python3 -m dbusmock --system --template logind > "$T/logind.log" 2>&1 &
PIDS="$PIDS $!"
wait_until 10 env DBUS_SYSTEM_BUS_ADDRESS=$SYS busctl --system status org.freedesktop.login1 || fail "logind mock did not start"
DBUS_SYSTEM_BUS_ADDRESS=$SYS busctl --system call org.freedesktop.login1 /org/freedesktop/login1 \
        org.freedesktop.DBus.Mock AddSession ssusb auto seat0 "$(id -u)" "$(id -un)" true > /dev/null ||
        fail "AddSession"
set_locked() {
        DBUS_SYSTEM_BUS_ADDRESS=$SYS busctl --system call org.freedesktop.login1 /org/freedesktop/login1/session/auto \
                org.freedesktop.login1.Session SetLockedHint b "$1" || fail "SetLockedHint $1"
        sleep 0.5 # the daemon reads it again on PropertiesChanged
}

daemon_start alice
SYSTEM_BUS=$SYS daemon_start bob
wait_connected alice demo
wait_connected bob demo

# notes: one line per Notify the mock got: replaces_id|summary|body|actions|hint keys
notes() {
        on bob busctl --user --json=short call org.freedesktop.Notifications /org/freedesktop/Notifications \
                org.freedesktop.DBus.Mock GetCalls | /usr/bin/python3 -c '
import json, sys
for c in json.load(sys.stdin)["data"][0]:
    if c[1] != "Notify":
        continue
    a = [x["data"] for x in c[2]]
    print("%d|%s|%s|%s|%s" % (a[1], a[3], a[4].replace("\n", "\\n"), ",".join(a[5]), ",".join(sorted(a[6]))))'
}
deliver() {  # deliver ID TEXT: alice DMs bob, bob has it and has shown it
        before=$(notes | wc -l)
        gcall_on alice Send demo "$BOB" "$2" "{'client_message_id': <'$1'>}" || fail "Send $1: $(cat "$T/reply")"
        wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListInbox demo '@a{sv} {}' | grep -q \"'$1'\"" ||
                fail "bob did not receive $1"
        wait_until 10 sh -c "[ \$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock GetCalls | grep -o '\"Notify\"' | wc -l) -gt $before ]" ||
                fail "$1 was not shown: $(notes)"
}
emit() {  # emit MEMBER SIGNATURE ARGS...: a signal from the notification server
        member=$1; sig=$2; shift 2
        on bob busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock \
                EmitSignal sssav org.freedesktop.Notifications "$member" "$sig" $(($# / 2)) "$@" || fail "EmitSignal $member"
}
unread() {
        on bob busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 UnreadCount
}

# With inline-reply: Reply (typed in the notification) and Mark read; the second message from the
# same sender replaces the first (the mock answers a new Notify with 1, 2, …)
deliver m1 "first question"
deliver m2 "second question"
notes > "$T/n"
cat "$T/n"
[ "$(wc -l < "$T/n")" = 2 ] || fail "two DMs, not two notifications"
[ "$(sed -n 1p "$T/n")" = "0|alice (demo)|first question|inline-reply,Reply,mark-read,Mark read|category,desktop-entry,x-kde-reply-placeholder-text" ] ||
        fail "first notification: $(sed -n 1p "$T/n")"
[ "$(sed -n 2p "$T/n" | cut -d'|' -f1-3)" = "1|alice (demo)|second question" ] ||
        fail "the second message did not replace the first: $(sed -n 2p "$T/n")"

# Mark read: another program's notification id changes nothing, ours clears the count
[ "$(unread)" = "u 2" ] || fail "UnreadCount: $(unread)"
emit ActionInvoked us u 7 s mark-read
emit ActionInvoked us u 1 s default
sleep 0.5
[ "$(unread)" = "u 2" ] || fail "an action that is not ours marked read: $(unread)"
emit ActionInvoked us u 1 s mark-read
wait_until 10 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 UnreadCount)\" = 'u 0' ]" ||
        fail "Mark read did not clear the count: $(unread)"

# The reply typed in the notification: a DM from bob to alice answering m2 (by its broker id)
M2=$(inbox_json bob demo | /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"][0]:
    if r["client_message_id"]["data"] == "m2":
        print(r["broker_message_id"]["data"])')
[ -n "$M2" ] || fail "m2 has no broker id in bob's inbox"
emit NotificationReplied us u 1 s "on it"
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'on it'" ||
        fail "the reply did not reach alice: $(tail -5 "$T/bob.log")"
inbox_json alice demo | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["data"][0] if r["body"]["data"] == "on it"]
assert len(rows) == 1, rows
r = rows[0]
assert r["reply_to_id"]["data"] == sys.argv[1], r["reply_to_id"]
assert r["sender_name"]["data"] == "bob", r["sender_name"]  # from bob'"'"'s daemon (its session key)
' "$M2" || fail "alice's row of the reply"
# a reply to a notification that is not ours sends nothing
emit NotificationReplied us u 9 s "not mine"
sleep 0.5
inbox_json alice demo | grep -q "not mine" && fail "a reply to another notification was sent"

# A closed notification is forgotten: the next message starts a new one
emit NotificationClosed uu u 1 u 2
sleep 0.3
deliver m3 "after closing"
[ "$(notes | tail -n 1 | cut -d'|' -f1-3)" = "0|alice (demo)|after closing" ] || fail "after NotificationClosed: $(notes | tail -n 1)"

# A DM to one of bob's sessions is its agent's (its MCP server shows it to the agent): no
# notification, unless it mentions bob. The session's inbox has it before bob's daemon answers
# ListInbox, and the notification would have been asked for when the row was stored.
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 "$(dirname "$0")/session-holder.py" \
        "$T/agent.session" demo agent >> "$T/holder.log" 2>&1 &
AGENT_PID=$!
PIDS="$PIDS $AGENT_PID"
wait_until 10 test -s "$T/agent.session" || fail "the agent did not register"
read -r AGENT AGENT_KEY < "$T/agent.session"
[ -n "$AGENT_KEY" ] || fail "the agent: $(cat "$T/agent.session")"
agent_has() {
        on bob busctl --user call org.claudemesh.Daemon1 "$AGENT" org.claudemesh.Session1 ListInbox 'a{sv}' 0 |
                grep -q "$1"
}
gcall_on alice Send demo "$AGENT_KEY" "for the agent" "{'client_message_id': <'s1'>}" || fail "Send s1: $(cat "$T/reply")"
wait_until 20 agent_has "for the agent" || fail "the agent did not receive s1"
deliver m3b "after the agent's"
notes | grep -q "for the agent" && fail "a DM to a session was shown: $(notes)"
before=$(notes | wc -l)
gcall_on alice Send demo "$AGENT_KEY" "@bob have a look" "{'client_message_id': <'s2'>}" || fail "Send s2: $(cat "$T/reply")"
wait_until 20 sh -c "[ \$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock GetCalls | grep -o '\"Notify\"' | wc -l) -gt $before ]" ||
        fail "a session's DM mentioning bob was not shown: $(notes)"
# the summary names the session the mail reached: bob did not get it himself
[ "$(notes | tail -n 1 | cut -d'|' -f2-3)" = "Mentioned by alice to session agent (demo)|@bob have a look" ] ||
        fail "the mention: $(notes | tail -n 1)"
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true

# A server without inline-reply (GNOME Shell) and no extension: Mark read, and the body says how to
# reply. The new server knows none of the old ids.
kill "$MOCK"
wait "$MOCK" 2>/dev/null || true
start_notifications "body actions"
sleep 0.5
deliver m4 "on another desktop"
ids() {  # ids CLIENT_MESSAGE_ID: its broker id and sender key in bob's inbox
        inbox_json bob demo | /usr/bin/python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin)["data"][0] if r["client_message_id"]["data"] == sys.argv[1]][0]
print(r["broker_message_id"]["data"], r["sender_pubkey"]["data"])' "$1"
}
set -- $(ids m4)
M4=$1 ALICE=$2
[ "$(notes)" = "0|alice (demo)|on another desktop\\nReply: claudemeshctl send --mesh demo --reply-to $M4 $ALICE '…'|mark-read,Mark read|category,desktop-entry" ] ||
        fail "without inline-reply: $(notes)"

# The extension comes (a stand-in owns its name): Reply without a hint; choosing it emits
# ReplyRequested with the message's broker id and its sender, and sends nothing by itself
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 -m dbusmock --session org.claudemesh.ShellExtension \
        /org/claudemesh/ShellExtension org.claudemesh.ShellExtension >> "$T/dbusmock.log" 2>&1 &
EXT=$!
PIDS="$PIDS $EXT"
wait_until 10 on bob busctl --user status org.claudemesh.ShellExtension > /dev/null || fail "the extension stand-in did not start"
sleep 0.5 # the daemon hears NameOwnerChanged
deliver m4b "with the extension"
set -- $(ids m4b)
M4B=$1
[ "$(notes | tail -n 1)" = "1|alice (demo)|with the extension|reply,Reply,mark-read,Mark read|category,desktop-entry" ] ||
        fail "with the extension: $(notes | tail -n 1)"
monitor bob "$T/bob.mon"
emit ActionInvoked us u 1 s reply
wait_until 10 grep -q '"member":"ReplyRequested"' "$T/bob.mon" || fail "no ReplyRequested: $(cat "$T/bob.mon")"
/usr/bin/python3 - "$T/bob.mon" "$M4B" "$ALICE" <<'PY' || fail "ReplyRequested: $(grep ReplyRequested "$T/bob.mon")"
import json, sys
sigs = [m for m in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")) if m.get("member") == "ReplyRequested"]
assert len(sigs) == 1, sigs
assert sigs[0]["path"] == "/org/claudemesh/Daemon1" and sigs[0]["interface"] == "org.claudemesh.Daemon1", sigs
assert sigs[0]["payload"]["data"] == ["demo", sys.argv[2], sys.argv[3]], sigs[0]["payload"]
PY
# the extension goes: the hint comes back
kill "$EXT"
wait "$EXT" 2>/dev/null || true
sleep 0.5
deliver m4c "extension gone"
set -- $(ids m4c)
[ "$(notes | tail -n 1 | cut -d'|' -f3-4)" = "extension gone\\nReply: claudemeshctl send --mesh demo --reply-to $1 $ALICE '…'|mark-read,Mark read" ] ||
        fail "after the extension went: $(notes | tail -n 1)"

# Locked: only a count, replaced as it grows; unlocked: the messages again
set_locked true
deliver m5 "secret one"
deliver m6 "secret two"
notes | tail -n 2 > "$T/n"
cat "$T/n"
[ "$(sed -n 1p "$T/n")" = "0|1 new message|||category,desktop-entry" ] || fail "locked, first: $(cat "$T/n")"
[ "$(sed -n 2p "$T/n")" = "2|2 new messages|||category,desktop-entry" ] || fail "locked, second: $(cat "$T/n")"
notes | grep -q secret && fail "a message was shown while locked"
set_locked false
deliver m7 "back again"
[ "$(notes | tail -n 1 | cut -d'|' -f2-3 | sed 's/\\nReply: .*//')" = "alice (demo)|back again" ] || fail "after unlocking: $(notes | tail -n 1)"

# A message that comes while the Notify of the one before is unanswered waits for its id and
# replaces it: a server that takes a second to answer, two DMs sent back to back
emit NotificationClosed uu u 1 u 2
on bob busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock \
        AddMethod sssss org.freedesktop.Notifications Notify susssasa{sv}i u "$(printf '%s\n' \
        "__import__('time').sleep(1)" 'if args[1]:' '    ret = args[1]' 'else:' '    ret = self.next_id' \
        '    self.next_id += 1')" || fail "AddMethod Notify"
before=$(notes | wc -l)
gcall_on alice Send demo "$BOB" "slow one" "{'client_message_id': <'m8'>}" || fail "Send m8: $(cat "$T/reply")"
gcall_on alice Send demo "$BOB" "slow two" "{'client_message_id': <'m9'>}" || fail "Send m9: $(cat "$T/reply")"
wait_until 20 sh -c "[ \$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock GetCalls | grep -o '\"Notify\"' | wc -l) -ge $((before + 2)) ]" ||
        fail "the slow server did not get both: $(notes)"
sleep 1.5 # a third Notify would come now
notes | tail -n +$((before + 1)) | cut -d'|' -f1-3 | sed 's/\\nReply: .*//' > "$T/n"
cat "$T/n"
# this server gave 1 (m4, replaced by m7, now closed) and 2 (the count): m8 gets 3
[ "$(cat "$T/n")" = "$(printf '0|alice (demo)|slow one\n3|alice (demo)|slow two')" ] ||
        fail "a message during a pending Notify did not replace it: $(cat "$T/n")"

daemon_stop bob
daemon_stop alice
echo ok
