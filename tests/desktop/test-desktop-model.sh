#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The extension's model (desktop/gnome-shell/model.js, the ES module the 45+ build ships) under
# plain gjs, against our broker and two real daemons on private buses: "not running" before bob's
# daemon exists, Start through the systemctl fallback when D-Bus activation cannot (bob's bus has
# no service directory), peers, the badge count and the message rows after a DM, Reply with the
# right reply_to_id, a peer's new status and summary (PeerChanged) and a session's (Session1,
# PropertiesChanged) without a call, Reply chosen on a notification of python-dbusmock's
# notification server without inline-reply reaching the model as ReplyRequested and the reply
# sent as the extension's dialog sends it, Mark read, the daemon restarting (name owner change),
# and stop() leaving no subscription and no bus name and reporting nothing more. The dialog
# itself (St) is driven in test-desktop-shell.sh. Also: a DM costs the model no call (MessageReceived
# carries the row), and no timer or idle source is anywhere in the extension.
# Skipped (77) without gjs.
. "$(dirname "$0")/../e2e/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# event-driven only: no timeout, interval or idle source in the extension's code
if grep -n 'timeout_add\|setTimeout\|setInterval\|idle_add\|Mainloop\.' "$EXT_SOURCE_DIR"/*.js; then
        fail "the extension uses a timer or an idle source"
fi
command -v gjs >/dev/null 2>&1 || { echo "SKIP: gjs is not installed"; exit 77; }

broker_start --presence-grace 0  # peer_left at once
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup alice "$A"
daemon_setup bob "$B"
# bob's desktop: a notification server with actions and without inline-reply, as GNOME Shell's
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 -m dbusmock --session --template notification_daemon \
        --parameters '{"capabilities": "body actions"}' > "$T/dbusmock.log" 2>&1 &
PIDS="$PIDS $!"
wait_until 10 on bob busctl --user status org.freedesktop.Notifications > /dev/null || fail "dbusmock did not start"
daemon_start alice
wait_connected alice demo

# what "Start" runs when activation fails: bob's daemon, in the background, as systemctl would
cat > "$T/start-bob" <<EOF
#!/bin/sh
echo started >> "$T/bob/starts"
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus" \
        CLAUDEMESH_CONFIG_DIR="$T/bob/config" XDG_STATE_HOME="$T/bob/state" XDG_RUNTIME_DIR="$T/bob/run" \
        CLAUDEMESH_LOG_TARGET=stderr CLAUDEMESH_WORKER="$CLAUDEMESH_WORKER" \
        "$CLAUDEMESHD" >> "$T/bob.log" 2>&1 < /dev/null &
echo \$! > "$T/bob/started.pid"
EOF
chmod +x "$T/start-bob"
mkdir -p -m 0700 "$T/bob/run"

mkfifo "$T/model.in"
env DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" gjs -m "$HERE/model-driver.js" "[\"$T/start-bob\"]" \
        < "$T/model.in" > "$T/model.out" 2> "$T/model.log" &
PIDS="$PIDS $!"
exec 3> "$T/model.in"
cmd() { echo "$*" >&3; }
answer() {  # answer CMD: waits for the driver's answer to CMD, prints it
        wait_until 20 /usr/bin/python3 "$HERE/view-check.py" --answer "$T/model.out" "$1" ||
                fail "no answer to $1: $(tail -3 "$T/model.out") $(cat "$T/model.log")"
        /usr/bin/python3 "$HERE/view-check.py" --answer "$T/model.out" "$1"
}
expect() {  # expect WHAT PYEXPR
        wait_until 20 /usr/bin/python3 "$HERE/view-check.py" "$T/model.out" "$2" ||
                fail "$1: $(/usr/bin/python3 "$HERE/view-check.py" "$T/model.out" "$2"; cat "$T/model.log")"
}

expect "not running" 'v["running"] is False and v["status"] == "claudemesh is not running" and v["meshes"] == [] and v["badge"] == ""'
cmd start
answer start | grep -qx 'OK start "started"' || fail "Start: $(answer start)"
PIDS="$PIDS $(cat "$T/bob/started.pid")"
expect "running after Start" \
        'v["running"] is True and [(m["slug"], m["state"], m["dot"]) for m in v["meshes"]] == [("demo", "connected", "connected")]
         and [p["name"] for p in v["peers"]] == ["alice"]'

# from here the model's calls are recorded: a DM must cause none (the signal carries the row)
DRIVER=$(sed -n 's/^NAME //p' "$T/model.out")
monitor bob "$T/bob.mon"
gcall_on alice Send demo "$BOB" "$(printf 'tests pass\nship it?')" "{'client_message_id': <'dm-1'>}" || fail "alice's Send: $(cat "$T/reply")"
expect "the DM" \
        'v["unread"] == 1 and v["badge"] == "1" and len(v["messages"]) == 1 and v["messages"][0]["sender"] == "alice"
         and v["messages"][0]["text"] == "tests pass ship it?" and __import__("re").fullmatch(r"\d\d:\d\d", v["messages"][0]["time"])'

BMID=$(inbox_json bob demo | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0][0]["broker_message_id"]["data"])')
cmd reply "yes, ship it"
answer reply | grep -q '^OK reply {"clientMessageId":"[0-9A-Z]\{26\}","status":"queued"}$' || fail "Reply: $(answer reply)"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'yes, ship it'" ||
        fail "alice did not receive the reply"
inbox_json alice demo | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["data"][0] if r["body"]["data"] == "yes, ship it"]
assert len(rows) == 1 and rows[0]["reply_to_id"]["data"] == sys.argv[1], rows
' "$BMID" || fail "the reply does not name $BMID in reply_to_id"

# alice's new status and summary reach the row by PeerChanged, with no call of the model
gcall_on alice SetProfile demo "{'status': <'working'>, 'summary': <'writing tests'>}" || fail "SetProfile: $(cat "$T/reply")"
expect "PeerChanged" '[(p["name"], p["status"], p["summary"]) for p in v["peers"]] == [("alice", "working", "writing tests")]'

# Reply chosen on the notification (the model owns org.claudemesh.ShellExtension, so the daemon
# offers it): ReplyRequested names dm-1 by its broker id; the dialog's send answers it
notify_calls() {
        on bob busctl --user --json=short call org.freedesktop.Notifications /org/freedesktop/Notifications \
                org.freedesktop.DBus.Mock GetCalls
}
notify_calls | /usr/bin/python3 -c '
import json, sys
calls = [c for c in json.load(sys.stdin)["data"][0] if c[1] == "Notify"]
assert len(calls) == 1 and calls[0][2][5]["data"] == ["reply", "Reply", "mark-read", "Mark read"], calls
assert "\n" not in calls[0][2][4]["data"], calls  # no "how to reply" line: the extension is there
' || fail "bob's notification of dm-1: $(notify_calls)"
on bob busctl --user call org.freedesktop.Notifications /org/freedesktop/Notifications org.freedesktop.DBus.Mock \
        EmitSignal sssav org.freedesktop.Notifications ActionInvoked us 2 u 1 s reply || fail "ActionInvoked"
wait_until 20 grep -q '^REPLYREQ ' "$T/model.out" || fail "no ReplyRequested reached the model: $(cat "$T/model.log")"
/usr/bin/python3 -c '
import json, sys
t = [json.loads(l[9:]) for l in open(sys.argv[1]) if l.startswith("REPLYREQ ")]
assert len(t) == 1 and t[0]["mesh"] == "demo" and t[0]["replyToId"] == sys.argv[2] and t[0]["name"] == "alice", t
assert t[0]["text"] == "tests pass ship it?", t
' "$T/model.out" "$BMID" || fail "the reply target: $(grep REPLYREQ "$T/model.out")"
cmd replyto "from the notification"
answer replyto | grep -q '^OK replyto {"clientMessageId":"[0-9A-Z]\{26\}","status":"queued"}$' || fail "replyto: $(answer replyto)"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'from the notification'" ||
        fail "alice did not receive the reply sent from the notification"
inbox_json alice demo | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["data"][0] if r["body"]["data"] == "from the notification"]
assert len(rows) == 1 and rows[0]["reply_to_id"]["data"] == sys.argv[1], rows
' "$BMID" || fail "the reply from the notification does not name $BMID in reply_to_id"

# a session on bob's daemon is listed with its status and summary, follows SetProfile, and goes
# with its process
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 "$HERE/../e2e/session-holder.py" "$T/sess" demo \
        build-agent > "$T/holder.log" 2>&1 &
HOLDER=$!
PIDS="$PIDS $HOLDER"
wait_until 20 test -s "$T/sess" || fail "no session: $(cat "$T/holder.log")"
SPATH=$(cut -d' ' -f1 "$T/sess")
expect "the session" '[(x["name"], x["status"], x["summary"], x["mesh"]) for x in v["sessions"]] == [("build-agent", "idle", "", "demo")]
         and [p["name"] for p in v["peers"]] == ["alice"]'
on bob busctl --user call org.claudemesh.Daemon1 "$SPATH" org.claudemesh.Session1 SetProfile 'a{sv}' 2 \
        status s working summary s "compiling the world" || fail "Session1.SetProfile"
expect "the session's new status" '[(x["status"], x["summary"]) for x in v["sessions"]] == [("working", "compiling the world")]'
kill "$HOLDER"
expect "the session gone" 'v["sessions"] == []'

cmd markread
answer markread | grep -qx 'OK markread null' || fail "Mark read: $(answer markread)"
expect "Mark read" 'v["unread"] == 0 and v["badge"] == ""'
model_calls() {
        /usr/bin/python3 -c '
import json, sys
calls = []
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("type") == "method_call" and m.get("sender") == sys.argv[2]:
        calls.append(m["member"])
print(" ".join(calls))' "$T/bob.mon" "$DRIVER"
}
wait_until 10 sh -c "grep -q '\"member\":\"MarkRead\"' $T/bob.mon" || fail "the monitor did not see MarkRead"
# the session's own presence on the broker comes and goes as PeerJoined/PeerLeft, which the
# model answers with ListPeers (one or two, as the signals overlap)
model_calls | grep -Eqx 'Send Send( ListPeers){1,2} MarkRead' ||
        fail "the model's calls for a DM, two replies, a PeerChanged, a session and Mark read: $(model_calls)"

# bob's daemon dies and comes back: the name owner changes twice
kill "$(cat "$T/bob/started.pid")"
expect "not running after the daemon died" 'v["running"] is False and v["messages"] == [] and v["peers"] == []'
daemon_start bob
expect "running again" 'v["running"] is True and len(v["messages"]) == 1 and v["unread"] == 0 and [p["name"] for p in v["peers"]] == ["alice"]'

# stop(): nothing subscribed (the bus holds no match rule of the model any more), nothing reported
match_rules() {  # the driver's match rules that name claudemesh, counted
        on bob busctl --user --json=short call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.Debug.Stats \
                GetAllMatchRules | /usr/bin/python3 -c 'import json,sys; print(sum("claudemesh" in r for r in json.load(sys.stdin)["data"][0].get(sys.argv[1], [])))' "$DRIVER"
}
[ "$(match_rules)" -ge 5 ] || fail "the model's match rules are not visible: $(match_rules)"
cmd stop
answer stop > /dev/null
cmd handlers
answer handlers | grep -qx 'OK handlers 0' || fail "stop() left handlers: $(answer handlers)"
rules_gone() { [ "$(match_rules)" = 0 ]; }
wait_until 10 rules_gone || fail "stop() left $(match_rules) match rules on the bus"
before=$(/usr/bin/python3 "$HERE/view-check.py" --count "$T/model.out")
gcall_on alice Send demo "$BOB" "after stop" "{'client_message_id': <'dm-2'>}" || fail "alice's Send"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'after stop'" ||
        fail "bob did not receive dm-2"
daemon_stop bob
cmd handlers
answer handlers > /dev/null
[ "$(/usr/bin/python3 "$HERE/view-check.py" --count "$T/model.out")" = "$before" ] || fail "the model reported changes after stop()"
exec 3>&-

