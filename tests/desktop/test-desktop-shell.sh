#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The GNOME Shell extension in a real gnome-shell --headless (mutter's virtual monitor, no GPU) on
# bob's private session bus, with our broker and two real daemons: enabled without errors
# (org.gnome.Shell.Extensions), a DM updates the badge and the menu (read back from the St actors
# through org.gnome.Shell.Eval, --unsafe-mode), Reply… sends with reply_to_id, Reply on the
# daemon's notification (gnome-shell's own notification server, which has no inline-reply) opens
# the extension's dialog through ReplyRequested and its reply names the message, Mark read clears
# the badge, PeerLeft/PeerJoined/PeerChanged update the peers, a session is listed with its status
# and summary, a connecting and a failed mesh show their dot and
# reason, the daemon dying shows "not running" and Start D-Bus-activates it again, Open inbox runs
# the terminal; disable() leaves no actor, handler or match rule. A screenshot of the open menu is
# kept in $ARTIFACT_DIR.
#
# The build loaded is the one for the gnome-shell installed here ($EXT_LEGACY_DIR for 43/44,
# $EXT_ESM_DIR for 45+). Skipped (77) without gnome-shell.
. "$(dirname "$0")/../e2e/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
UUID=claudemesh@claudemesh.org

command -v gnome-shell >/dev/null 2>&1 || { echo "SKIP: gnome-shell is not installed"; exit 77; }
major=$(gnome-shell --version | sed -n 's/^GNOME Shell \([0-9]*\).*/\1/p')
[ -n "$major" ] || fail "cannot read the version of $(gnome-shell --version)"
if [ "$major" -lt 45 ]; then EXT="$EXT_LEGACY_DIR"; else EXT="$EXT_ESM_DIR"; fi

# bob's bus can activate claudemeshd (for Start) from a service directory of the test's own; the
# activated daemon gets bob's config, state and runtime dirs from a wrapper
private_bus() {
        mkdir -p "$1/services"
        cat > "$1/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:path=$1/bus</listen>
  <auth>EXTERNAL</auth>
  <servicedir>$1/services</servicedir>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
        dbus-daemon --config-file="$1/bus.conf" --fork --print-pid=1 > "$1/bus.pid" 2>/dev/null
        PIDS="$PIDS $(cat "$1/bus.pid")"
}

broker_start --presence-grace 0  # peer_left at once
mesh_create demo >/dev/null
A=$(member_entry demo alice)
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
# a second broker advertising no features, and a mesh on it that requires one: failed, with a reason
lease_port P2
"$CLAUDEMESH_BROKER" --listen "127.0.0.1:$P2" --db "$T/broker2.db" --rate-limit 0 --legacy >> "$T/broker2.log" 2>&1 &
PIDS="$PIDS $!"
wait_until 10 curl -sf "http://127.0.0.1:$P2/health" || fail "the second broker did not answer /health"
"$CLAUDEMESH_BROKER" --db "$T/broker2.db" mesh create strict > /dev/null
STRICT=$("$CLAUDEMESH_BROKER" --db "$T/broker2.db" member add strict bob --broker-url "ws://127.0.0.1:$P2/ws" |
        /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); e["requiredFeatures"]=["client_message_id_dedupe"]; print(json.dumps(e))')
# and a mesh whose broker is not there: connecting, then backoff, again and again
mesh_create later >/dev/null
lease_port P3
LATER=$(member_entry later bob | /usr/bin/python3 -c 'import json,sys; e=json.load(sys.stdin); e["brokerUrl"]="ws://127.0.0.1:'"$P3"'/ws"; print(json.dumps(e))')
daemon_setup alice "$A"
daemon_setup bob "$B" "$STRICT" "$LATER"
cat > "$T/bob/activate-claudemeshd" <<EOF
#!/bin/sh
export CLAUDEMESH_CONFIG_DIR="$T/bob/config" XDG_STATE_HOME="$T/bob/state" XDG_RUNTIME_DIR="$T/bob/run"
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus" CLAUDEMESH_LOG_TARGET=stderr CLAUDEMESH_WORKER="$CLAUDEMESH_WORKER"
echo activated >> "$T/bob/activations"
exec "$CLAUDEMESHD" >> "$T/bob.log" 2>&1
EOF
chmod +x "$T/bob/activate-claudemeshd"
printf '[D-BUS Service]\nName=org.claudemesh.Daemon1\nExec=%s\n' "$T/bob/activate-claudemeshd" \
        > "$T/bob/services/org.claudemesh.Daemon1.service"
# and gnome-shell's notification service, as the desktop's session bus starts it
cp /usr/share/dbus-1/services/org.gnome.Shell.Notifications.service "$T/bob/services/" ||
        fail "gnome-shell's org.gnome.Shell.Notifications.service is not installed"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo

# alice says what she is doing before the shell looks
gcall_on alice SetProfile demo "{'status': <'working'>, 'summary': <'reviewing the parser'>}" || fail "SetProfile: $(cat "$T/reply")"

# "Open inbox" runs x-terminal-emulator from the shell's PATH: a stand-in that records its arguments
mkdir -p "$T/bin"
printf '#!/bin/sh\necho "$*" >> "%s"\n' "$T/terminal-args" > "$T/bin/x-terminal-emulator"
chmod +x "$T/bin/x-terminal-emulator"

# the extension, installed for the user of the shell
mkdir -p "$T/shell/data/gnome-shell/extensions/$UUID" "$T/shell/home" "$T/shell/config" "$T/shell/system"
mkdir -p -m 0700 "$T/shell/run"
cp "$EXT"/extension.js "$EXT"/indicator.js "$EXT"/model.js "$EXT"/metadata.json "$EXT"/stylesheet.css \
        "$T/shell/data/gnome-shell/extensions/$UUID/"
# the shell wants a system bus (logind, accounts): an empty private one
private_bus "$T/shell/system"
# env execs gnome-shell: $! is the shell itself, which the cleanup kills
env DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/shell/system/bus" XDG_RUNTIME_DIR="$T/shell/run" \
        XDG_DATA_HOME="$T/shell/data" XDG_CONFIG_HOME="$T/shell/config" HOME="$T/shell/home" \
        GSETTINGS_BACKEND=memory NO_AT_BRIDGE=1 PATH="$T/bin:$PATH" \
        gnome-shell --headless --virtual-monitor 1280x800 --wayland --no-x11 --unsafe-mode > "$T/shell.log" 2>&1 &
SHELL_PID=$!
PIDS="$PIDS $SHELL_PID"

ev() { on bob /usr/bin/python3 "$HERE/shell-eval.py" "$@"; }
wait_until 60 ev 'Main.layoutManager._startingUp === false' || fail "gnome-shell did not start"
ev 'global.context.unsafe_mode' | grep -qx true || fail "gnome-shell is not in unsafe mode"

ext_info() {
        on bob gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell \
                --method org.gnome.Shell.Extensions.GetExtensionInfo "$UUID"
}
ext_info | grep -q "'uuid': <'$UUID'>" || fail "gnome-shell did not find the extension: $(ext_info)"
on bob gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell \
        --method org.gnome.Shell.Extensions.EnableExtension "$UUID" > "$T/enable" || fail "EnableExtension: $(cat "$T/enable")"
# ExtensionState.ENABLED is 1, ERROR 3
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell --method org.gnome.Shell.Extensions.GetExtensionInfo $UUID | grep -q \"'state': <1.0>\"" ||
        fail "the extension is not enabled: $(ext_info) $(grep -i -A5 claudemesh "$T/shell.log")"
ext_info | grep -q "'error': <''>" || fail "the extension reports an error: $(ext_info)"

# gnome-shell's notification service (org.gnome.Shell.Notifications, which the shell starts and
# which owns org.freedesktop.Notifications for it) took the daemon's notifications: no inline-reply
wait_until 20 on bob busctl --user status org.freedesktop.Notifications > /dev/null ||
        fail "gnome-shell's notification service did not start"

C="Main.extensionManager.lookup('$UUID').stateObj.controller"
# Eval answers JSON.stringify() of the value
STATE="({view: $C.model.view(), ui: $C.indicator.describe()})"
state() { ev --state "$STATE" "$1"; }
expect() {  # expect WHAT PYEXPR: wait until the panel shows it
        wait_until 20 state "$2" || fail "$1: $(state "$2" 2>&1; grep -A8 'JS ERROR\|claudemesh' "$T/shell.log" | tail -30)"
}

expect "meshes, dots and peers at start" \
        's["ui"]["badge"] is None and s["ui"]["meshes"][0] == "demo — connected" and s["ui"]["meshes"][2] == "strict — failed"
         and s["ui"]["meshes"][1] in ("later — connecting", "later — backoff")
         and [d.split()[-1] for d in s["ui"]["dots"]] == ["claudemesh-dot-connected", "claudemesh-dot-connecting", "claudemesh-dot-failed"]
         and any(r.startswith("closed 4010") for r in s["ui"]["rows"])
         and s["ui"]["peers"] == ["alice (working) — reviewing the parser · demo"]
         and s["ui"]["messages"] == [] and s["ui"]["markReadSensitive"] is False'

# alice's next summary reaches the row through PeerChanged
gcall_on alice SetProfile demo "{'summary': <'fixing the build'>}" || fail "SetProfile: $(cat "$T/reply")"
expect "PeerChanged" 's["ui"]["peers"] == ["alice (working) — fixing the build · demo"]'

# a session on bob's daemon, with its status and summary
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" /usr/bin/python3 "$HERE/../e2e/session-holder.py" "$T/sess" demo \
        build-agent > "$T/holder.log" 2>&1 &
PIDS="$PIDS $!"
wait_until 20 test -s "$T/sess" || fail "no session: $(cat "$T/holder.log")"
on bob busctl --user call org.claudemesh.Daemon1 "$(cut -d' ' -f1 "$T/sess")" org.claudemesh.Session1 SetProfile 'a{sv}' 2 \
        status s working summary s "running the tests" || fail "Session1.SetProfile"
expect "the session" 's["ui"]["sessions"] == ["build-agent (working) — running the tests · demo"]'

# a DM: the badge and the message row, sender and time; the hostile part shown escaped
gcall_on alice Send demo "$BOB" "$(printf 'build is green\033[31m, can you review?')" "{'client_message_id': <'dm-1'>}" ||
        fail "alice's Send: $(cat "$T/reply")"
expect "the DM in the badge and the menu" \
        's["ui"]["badge"] == "1" and len(s["ui"]["messages"]) == 1
         and __import__("re").fullmatch(r"alice · \d\d:\d\d: build is green\\u001b\[31m, can you review\?", s["ui"]["messages"][0])
         and s["ui"]["markReadSensitive"] is True'

# the screenshot of the open menu, before anything is read
: "${ARTIFACT_DIR:=$T}"
mkdir -p "$ARTIFACT_DIR"
ev "$C.indicator.menu.open(false); true" > /dev/null || fail "cannot open the menu"
on bob gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell/Screenshot \
        --method org.gnome.Shell.Screenshot.Screenshot false false "$ARTIFACT_DIR/gnome-shell-menu.png" > "$T/shot" ||
        fail "Screenshot: $(cat "$T/shot")"
head -c 8 "$ARTIFACT_DIR/gnome-shell-menu.png" | od -An -c | grep -q 'P   N   G' || fail "the screenshot is not a PNG"
ev "$C.indicator.menu.close(false); true" > /dev/null

# Open inbox: claudemeshctl inbox in a terminal
ev "$C.indicator.items.openInbox.activate(null); true" > /dev/null
wait_until 10 test -s "$T/terminal-args" || fail "Open inbox started no terminal"
[ "$(cat "$T/terminal-args")" = "-e claudemeshctl inbox --follow" ] || fail "Open inbox ran: $(cat "$T/terminal-args")"

# Reply…: the dialog sends a DM to alice naming bob's copy of the message in reply_to_id
BMID=$(inbox_json bob demo | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0][0]["broker_message_id"]["data"])')
[ -n "$BMID" ] || fail "bob's message has no broker_message_id"
ev "$C.indicator.items.messages[0].activate(null); $C.dialog.entry.set_text('looking now'); $C.dialog.sendReply(); true" > /dev/null ||
        fail "Reply…"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'looking now'" ||
        fail "alice did not receive the reply"
inbox_json alice demo | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["data"][0] if r["body"]["data"] == "looking now"]
assert len(rows) == 1, rows
assert rows[0]["reply_to_id"]["data"] == sys.argv[1], rows[0]["reply_to_id"]
assert rows[0]["sender_name"]["data"] == "bob", rows[0]["sender_name"]
' "$BMID" || fail "the reply's reply_to_id or sender"
ev "$C.dialog === null" | grep -qx true || fail "the reply dialog did not close after sending"

# Reply on the daemon's notification in gnome-shell's own tray: ReplyRequested opens the dialog
# (the daemon offers Reply because the extension owns org.claudemesh.ShellExtension)
NOTE="Main.messageTray.getSources().flatMap(s => s.notifications).find(n => n.title === 'alice (demo)')"
note_actions() { ev "$NOTE.actions.map(a => a.label)" | grep -qx '\["Reply","Mark read"\]'; }
wait_until 20 note_actions ||
        fail "the notification's actions: $(ev "Main.messageTray.getSources().map(s => [s.title, s.notifications.map(n => [n.title, n.actions.map(a => a.label)])])" 2>&1)"
ev "$NOTE.actions.find(a => a.label === 'Reply').callback(); true" > /dev/null || fail "Reply on the notification"
dialog_open() { ev "$C.dialog !== null && $C.dialog.entry.get_parent().get_children()[0].text" | grep -qx '"Reply to alice"'; }
wait_until 20 dialog_open || fail "ReplyRequested did not open the dialog: $(ev "$C.dialog" 2>&1)"
ev "$C.dialog.entry.set_text('on it, from the notification'); $C.dialog.sendReply(); true" > /dev/null ||
        fail "sending from the dialog"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 ListInbox 'sa{sv}' demo 0 | grep -q 'on it, from the notification'" ||
        fail "alice did not receive the reply from the notification"
inbox_json alice demo | /usr/bin/python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin)["data"][0] if r["body"]["data"] == "on it, from the notification"]
assert len(rows) == 1 and rows[0]["reply_to_id"]["data"] == sys.argv[1], rows
' "$BMID" || fail "the reply from the notification does not name $BMID"

# Mark read clears the badge, through UnreadCount's PropertiesChanged
ev "$C.indicator.items.markRead.activate(null); true" > /dev/null
expect "Mark read" 's["ui"]["badge"] is None and s["view"]["unread"] == 0 and s["ui"]["markReadSensitive"] is False'
[ "$(on bob busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 UnreadCount)" = "u 0" ] ||
        fail "UnreadCount is not 0 after Mark read"

# peers follow PeerLeft and PeerJoined
daemon_stop alice
expect "alice left" 'not any(p.startswith("alice") for p in s["ui"]["peers"])'
daemon_start alice
expect "alice is back" 'any(p.startswith("alice") for p in s["ui"]["peers"])'

# the daemon goes away: "not running" with Start, which D-Bus-activates it; the menu comes back
daemon_stop bob
expect "not running" 's["view"]["running"] is False and s["ui"]["start"] is True
        and s["ui"]["rows"][0] == "claudemesh is not running" and s["ui"]["badge"] is None'
ev "$C.indicator.items.start.activate(null); true" > /dev/null
wait_until 20 on bob busctl --user status org.claudemesh.Daemon1 || fail "Start did not start the daemon: $(tail "$T/bob.log")"
grep -q activated "$T/bob/activations" || fail "the daemon was not started through D-Bus activation"
expect "running again after Start" \
        's["view"]["running"] is True and s["ui"]["meshes"][0] == "demo — connected" and len(s["ui"]["messages"]) == 1
         and any(p.startswith("alice") for p in s["ui"]["peers"])'

# disable(): the indicator is gone, the model holds no subscription or handler, and no connection
# of the shell has a match rule for claudemesh left on the bus
# (the daemon's own rule, for the extension's name, is not the shell's)
DAEMON_UNIQUE=$(on bob busctl --user call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus GetNameOwner s \
        org.claudemesh.Daemon1 | cut -d'"' -f2)
shell_rules() {
        on bob busctl --user --json=short call org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.Debug.Stats \
                GetAllMatchRules | /usr/bin/python3 -c 'import json,sys; print(sum("claudemesh" in r for name, rules in json.load(sys.stdin)["data"][0].items() if name != sys.argv[1] for r in rules))' "$DAEMON_UNIQUE"
}
[ "$(shell_rules)" -ge 5 ] || fail "the extension's match rules are not visible: $(shell_rules)"
ev "globalThis.cmTestModel = $C.model; true" > /dev/null
on bob gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell \
        --method org.gnome.Shell.Extensions.DisableExtension "$UUID" > /dev/null || fail "DisableExtension"
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus gdbus call --session --dest org.gnome.Shell --object-path /org/gnome/Shell --method org.gnome.Shell.Extensions.GetExtensionInfo $UUID | grep -q \"'state': <2.0>\"" ||
        fail "the extension did not disable: $(ext_info)"
ev "Main.panel.statusArea['claudemesh'] === undefined && globalThis.cmTestModel.liveHandlers === 0" | grep -qx true ||
        fail "disable() left the indicator or handlers behind"
# and the extension's bus name went with it: the daemon no longer offers Reply on notifications
wait_until 10 sh -c "! DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user status org.claudemesh.ShellExtension" ||
        fail "disable() left org.claudemesh.ShellExtension owned"
ev "delete globalThis.cmTestModel; true" > /dev/null
rules_gone() { [ "$(shell_rules)" = 0 ]; }
wait_until 10 rules_gone || fail "disable() left $(shell_rules) match rules on the bus"
if grep -n 'claudemesh@claudemesh.org\|JS ERROR.*claudemesh' "$T/shell.log" | grep -i 'error\|exception' > "$T/errors"; then
        fail "gnome-shell logged errors of the extension: $(cat "$T/errors")"
fi
echo "screenshot: $ARTIFACT_DIR/gnome-shell-menu.png"
