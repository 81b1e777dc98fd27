#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl status and watch on a real terminal (a tmux pane, read back with capture-pane):
# the table's columns line up, NO_COLOR=1 leaves no escape codes while a terminal without it
# gets colour, and a watch line appears when config.json changes; Ctrl+C ends watch with 0.
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
ACME=$("$MAKE_MESH_ENTRY" acme)
write_config "$T/config" "$ACME" "$("$MAKE_MESH_ENTRY" beta-with-a-long-slug)"
start_daemon

TMUX_SOCKET="$T/tmux.sock"
tm() { tmux -S "$TMUX_SOCKET" "$@"; }
cleanup_tmux() { tm kill-server 2>/dev/null || true; cleanup; }
trap cleanup_tmux EXIT INT TERM
# a plain sh with a fixed prompt, so that what the test reads is only claudemeshctl's output
tm -f /dev/null new-session -d -x 120 -y 40 "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME=$T \
        DBUS_SESSION_BUS_ADDRESS=$DBUS_SESSION_BUS_ADDRESS PS1='$ ' sh"
# $T/screen: the text; $T/screen-e: with its colours as escape codes
screen() { tm capture-pane -p > "$T/screen"; tm capture-pane -p -e > "$T/screen-e"; }
screen_has() { screen; grep -Eq -- "$1" "$T/screen"; }
wait_screen() { wait_until screen_has "$1" || fail "the terminal lacks /$1/: $(cat "$T/screen")"; }
type_line() { tm send-keys -l "$1"; tm send-keys Enter; }

# each command ends with its own marker, so that no wait can match the previous one's
type_line "clear; NO_COLOR=1 $CLAUDEMESHCTL status; echo status-rc=\$?"
wait_screen "^status-rc=0$"
if grep -q "$(printf '\033')" "$T/screen-e"; then fail "escape codes with NO_COLOR=1: $(cat -v "$T/screen-e")"; fi
/usr/bin/python3 - "$T/screen" <<'PY' || fail "status is not aligned: $(cat "$T/screen")"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
labels = [l for l in lines if re.match(r"^ +(Daemon|Status|Host|Config|State): ", l)]
assert len(labels) == 5, labels
assert len({l.index(":") for l in labels}) == 1, "labels not right-aligned"
header = [l for l in lines if l.startswith("MESH ")][0]
rows = [l for l in lines if l.startswith(("acme ", "beta-with-a-long-slug "))]
assert len(rows) == 2, rows
for column in ("NAME", "STATE", "OUTBOX"):
    start = header.index(column)
    for row in rows:
        assert row[start - 2:start] == "  " and row[start] != " ", (column, row)
assert all(len(l) <= 120 and not l.endswith(" ") for l in [header] + rows), "trailing blanks or too wide"
PY

# without NO_COLOR a terminal gets colour (the bold header)
type_line "clear; $CLAUDEMESHCTL status; echo colour-rc=\$?"
wait_screen "colour-rc=0$"
grep -q "$(printf '\033\\[1mMESH')" "$T/screen-e" || fail "no colour on a terminal: $(cat -v "$T/screen-e")"

type_line "clear; NO_COLOR=1 $CLAUDEMESHCTL watch"
wait_screen "^Watching claudemeshd; press Ctrl\+C to stop\.$"
sleep 0.3
write_config "$T/config" "$(printf '%s' "$ACME" | sed 's/"name":"acme"/"name":"Acme Corp"/')"
wait_screen "^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8}  changed +acme +Id=.* Name=\"Acme Corp\""
wait_screen "^[A-Z][a-z]{2} [0-9]{2} [0-9:]{8}  mesh-removed +beta-with-a-long-slug$"
tm send-keys C-c
# the prompt first: typing ahead of a slow exit would put the echo's output behind it
wait_screen '^(\^C)?\$ ?$'
type_line "echo watch-rc=\$?"
wait_screen "^watch-rc=0$"
if grep -q "$(printf '\033')" "$T/screen-e"; then fail "escape codes in watch with NO_COLOR=1: $(cat -v "$T/screen-e")"; fi

# a table fits the terminal: on 60 columns the widest columns give way, cut with "…" counted in
# display columns (a CJK character takes two), and --full cuts nothing; keys are abbreviated
MID=$(mesh_prop acme Id)
NOW=$(date +%s)
sql inbox.db "INSERT INTO inbox (id, client_message_id, mesh_id, topic, sender_pubkey, sender_name, body, received_at)
              VALUES ('w1', 'cw1', '$MID', 'ops', 'pk1', '名前さん', '長い本文 that goes on and on and on well past sixty columns END
second line', $((NOW - 60))000000)"
tm resize-window -x 60 -y 40
type_line "clear; NO_COLOR=1 $CLAUDEMESHCTL inbox; echo fit-rc=\$?"
wait_screen "^fit-rc=0$"
/usr/bin/python3 - "$T/screen" <<'PY' || fail "inbox does not fit 60 columns: $(cat "$T/screen")"
import sys, unicodedata
def width(s):
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
header = [l for l in lines if l.startswith("RECEIVED ")][0]
row = [l for l in lines if "名前さん" in l][0]
assert width(row) <= 60 and width(header) <= 60, (width(row), row)
assert row.endswith("…") and "END" not in row and "second" not in row, row
# the TOPIC column starts at the same display column in the header and the row
assert width(row[:row.index("ops")]) == width(header[:header.index("TOPIC")]), (header, row)
PY
type_line "clear; NO_COLOR=1 $CLAUDEMESHCTL --full inbox; echo full-rc=\$?"
wait_screen "^full-rc=0$"
tm capture-pane -p -J > "$T/screen"
grep -q 'past sixty columns END\\nsecond line$' "$T/screen" || fail "--full cut the body: $(cat "$T/screen")"
type_line "clear; NO_COLOR=1 $CLAUDEMESHCTL status; echo abbrev-rc=\$?"
wait_screen "^abbrev-rc=0$"
grep -Eq '^ +Host: [a-z-]+ \([0-9a-f]{16}…\)$' "$T/screen" || fail "no abbreviated fingerprint: $(cat "$T/screen")"

stop_daemon
echo ok
