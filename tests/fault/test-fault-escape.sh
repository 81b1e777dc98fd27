#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A peer whose display name, summary and messages carry terminal escapes (title changes, a clear
# screen, an OSC 52 clipboard write, a C1 CSI, bidi overrides, DEL): every human output of
# claudemeshctl shows them escaped, --json gives them back exactly, a real terminal (tmux) keeps
# its title, screen and clipboard; and the messages all arrive, each once.
. "$(dirname "$0")/lib-fault.sh"
H="$FAULT_DIR/hostile-text.py"
hostile() { /usr/bin/python3 "$H" "$@"; }
hostile write "$T"

fault_mesh
# alice's display name is hostile: it reaches bob with her hello
daemon_stop alice
/usr/bin/python3 - "$T/alice/config/config.json" "$T/name" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["displayName"] = open(sys.argv[2], encoding="utf-8").read()
json.dump(c, open(sys.argv[1], "w"))
PY
daemon_start alice
wait_connected alice demo

ctl() {  # ctl CODE DAEMON ARG...: output in $T/out, $T/err
        want=$1; name=$2; shift 2
        rc=0
        on "$name" "$CLAUDEMESHCTL" "$@" > "$T/out" 2> "$T/err" || rc=$?
        [ "$rc" = "$want" ] || fail "claudemeshctl $* on $name exited $rc, expected $want: $(cat -v "$T/out" "$T/err")"
}
bg() {  # bg FILE ARG...: claudemeshctl on bob's bus in the background; sets BG
        file=$1; shift
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" "$CLAUDEMESHCTL" "$@" > "$file" 2>&1 &
        BG=$!
        PIDS="$PIDS $BG"
}

ctl 0 alice profile --summary "$(cat "$T/summary")"
bg "$T/follow" inbox --follow; FOLLOW=$BG
bg "$T/follow.json" --json inbox --follow; JFOLLOW=$BG
bg "$T/watch" watch; WATCH=$BG
wait_until 5 grep -q "^Watching" "$T/watch" || fail "watch did not start"
sleep 0.3

# one message with claudemeshctl, and a stream of them with the same body
ctl 0 alice send --id ctl-1 "$BOB" - < "$T/body"
FAULT_MESSAGES=100 FAULT_BODY=$(cat "$T/body")
fault_stream esc "$FAULT_MESSAGES"
wait "$STREAM" || fail "the send client failed: $(tail -5 "$T/send-client.log")"
wait_until 20 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus '$CLAUDEMESHCTL' --json peers | grep -q PWNED-SUMMARY" ||
        fail "bob never saw alice's summary"
wait_until 20 grep -q "esc-99" "$T/follow.json" || fail "--json inbox --follow: $(cat -v "$T/follow.json")"
wait_until 5 grep -q "PWNED-BODY" "$T/watch" || fail "watch showed no message: $(cat -v "$T/watch")"
for p in $FOLLOW $JFOLLOW $WATCH; do kill -INT "$p"; wait "$p" || fail "claudemeshctl ended with $? on SIGINT"; done

NAME_SHOWN='alice\x1b]0;PWNED-NAME\x07\u202e'
BODY_SHOWN='hi \x1b]0;PWNED-BODY\x07 \x1b[2J\x1b[H'
hostile check "$T/follow" "$NAME_SHOWN: $BODY_SHOWN \\x1b]52;c;cHduZWQ=\\x07 \\u009b31mC1 \\u202eevil\\u202c \\u2066iso\\u2069 \\u200f del\\x7f tab\\tend\\nsecond line \\x1b[2J" ||
        fail "inbox --follow: $(cat -v "$T/follow")"
hostile check "$T/watch" "from $NAME_SHOWN: $BODY_SHOWN" || fail "watch: $(cat -v "$T/watch")"
hostile json "$T/follow.json" '
esc = [m for m in d if m["client_message_id"] == "ctl-1"]
assert len(esc) == 1 and esc[0]["body"] == BODY and esc[0]["sender_name"] == NAME, esc' ||
        fail "--json inbox --follow: $(cat -v "$T/follow.json")"

ctl 0 bob inbox
hostile check "$T/out" "$NAME_SHOWN" "$BODY_SHOWN" || fail "inbox: $(cat -v "$T/out")"
ctl 0 bob --json inbox --limit 1000
hostile json "$T/out" '
esc = [m for m in d if m["client_message_id"] == "ctl-1"]
assert len(esc) == 1 and esc[0]["body"] == BODY and esc[0]["sender_name"] == NAME, esc' ||
        fail "--json inbox: $(cat -v "$T/out")"
ctl 0 bob peers
# in a pipe nothing is cut: the whole summary, its tab and newline escaped
hostile check "$T/out" "$NAME_SHOWN" 'busy\tnow\x1b]2;PWNED-SUMMARY\x1b\' '\u2067\nline two' || fail "peers: $(cat -v "$T/out")"
# the tab and the newline in the summary leave the table one line a peer, its columns aligned
/usr/bin/python3 - "$T/out" <<'PY' || fail "the peers table is broken: $(cat -v "$T/out")"
import sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
assert len(lines) == 3, lines
for column in ("STATUS", "SUMMARY", "GROUPS"):
    start = lines[0].index(column)
    assert all(l[start - 2:start] == "  " and l[start] != " " for l in lines[1:]), (column, lines)
PY
ctl 0 bob --json peers
hostile json "$T/out" '
alice = [p for p in d if "PWNED-NAME" in p["display_name"]]
assert len(alice) == 1 and alice[0]["display_name"] == NAME and alice[0]["summary"] == SUMMARY, d' ||
        fail "--json peers: $(cat -v "$T/out")"
# an error quoting the hostile text back: to a peer by that name, with a tail no one has
ctl 6 alice send "$(cat "$T/name")-nobody" "hello"
hostile check "$T/err" 'PWNED-NAME\x07\u202e-nobody' || fail "send's error: $(cat -v "$T/err")"

# a real terminal: the title, the screen and the clipboard (tmux takes OSC 52 into a paste buffer
# with set-clipboard on) stay as they were
TMUX_SOCKET="$T/tmux.sock"
tm() { tmux -S "$TMUX_SOCKET" "$@"; }
cleanup_tmux() { tm kill-server 2>/dev/null || true; cleanup; }
trap cleanup_tmux EXIT INT TERM
tm -f /dev/null new-session -d -x 200 -y 50 "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME=$T \
        DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus PS1='$ ' sh"
tm set-option -g set-clipboard on
tm set-option -g allow-rename on
type_line() { tm send-keys -l "$1"; tm send-keys Enter; }
screen_has() { tm capture-pane -p > "$T/screen"; grep -q -- "$1" "$T/screen"; }
title() { tm display-message -p '#{pane_title}'; }
type_line "printf '\\033]2;SAFE-TITLE\\007'; echo TOP-MARKER"
wait_until 5 screen_has "^TOP-MARKER" || fail "tmux did not start: $(cat "$T/screen")"
[ "$(title)" = SAFE-TITLE ] || fail "the pane title is $(title)"
type_line "$CLAUDEMESHCTL inbox --limit 3; $CLAUDEMESHCTL peers; $CLAUDEMESHCTL watch & sleep 1; kill -INT \$!; echo END-\$((40 + 2))"
wait_until 10 screen_has "^END-42" || fail "claudemeshctl in tmux: $(cat "$T/screen")"
screen_has "^TOP-MARKER" || fail "the screen was cleared: $(cat "$T/screen")"
screen_has "PWNED-BODY" || fail "the inbox is not on the screen: $(cat "$T/screen")"
[ "$(title)" = SAFE-TITLE ] || fail "claudemeshctl changed the pane title to $(title)"
[ -z "$(tm list-buffers)" ] || fail "claudemeshctl wrote the clipboard: $(tm list-buffers)"
# the same text printed raw does all of that: the checks above can fail
type_line "cat '$T/body'; echo; echo RAW-\$((40 + 2))"
wait_until 10 screen_has "^RAW-42" || fail "cat in tmux: $(cat "$T/screen")"
[ "$(title)" = PWNED-BODY ] || fail "raw text did not change the title ($(title)): the check is blind"
[ -n "$(tm list-buffers)" ] || fail "raw text did not reach the clipboard: the check is blind"

fault_report esc
