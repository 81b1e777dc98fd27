#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every claudemeshctl command against a running claudemeshd: human output, --json parsed field
# by field, and the error paths (NoSuchMesh, IdempotencyConflict, bad arguments, access denied,
# commands a daemon without a broker link cannot do).
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
# No system bus: polkit is unreachable, so the daemon's own user gets the default-yes actions and
# AcceptHost (auth_self_keep) fails with AuthorizationUnavailable.
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
start_daemon
export T EXPECTED_VERSION
STATE=$(mesh_prop acme State)
export STATE

# --help, --version, no command = status
run 0 --help
for c in status meshes send inbox outbox requeue peers profile accept-host reconnect mark-read watch; do
        out_has "^  $c "
done
run 0 --version
out_has "^claudemeshctl $EXPECTED_VERSION$"
run 0
out_has "^ +Daemon: claudemeshd $EXPECTED_VERSION$"

# status
run 0 status
out_has "^ +Daemon: claudemeshd $EXPECTED_VERSION$"
out_has_text "  Status: $(prop Status)"
# in a pipe nothing is abbreviated (a terminal shows 16 hex digits and "…": ctl-tmux)
out_has "^ +Host: $(prop HostFingerprintState) \([0-9a-f]{64}\)$"
out_has "^ +Config: $T/config/config.json$"
out_has "^ +State: $T/state/claudemesh$"
out_has "^MESH +NAME +STATE +OUTBOX +UNREAD +FEATURES +LAST ERROR$"
out_has "^acme +acme +$STATE "
out_has "^beta +beta +$STATE "
if grep -q "$(printf '\033')" "$T/out"; then fail "colour codes in output that is not a terminal"; fi
run 0 --json status
json '
assert d["Version"] == os.environ["EXPECTED_VERSION"], d
assert d["ConfigFile"] == os.environ["T"] + "/config/config.json"
assert d["StateDirectory"] == os.environ["T"] + "/state/claudemesh"
assert d["ConfigError"] == ""
assert len(d["HostFingerprint"]) == 64
assert [m["Slug"] for m in d["Meshes"]] == ["acme", "beta"]
assert d["Meshes"][0]["Id"] == "mesh-acme-0123456789abcdef"
assert d["Meshes"][0]["State"] == os.environ["STATE"]
assert len(d["Meshes"][1]["MemberPubkey"]) == 64
assert d["Meshes"][0]["Features"] == [] and d["Meshes"][0]["UnreadCount"] == 0, d["Meshes"][0]'

# meshes
run 0 meshes
out_has "^MESH +NAME +STATE +BROKER +MEMBER$"
out_has "^acme +acme +$STATE +ws://127.0.0.1:7900/ws +member-acme-0123456789$"
run 0 --json meshes
json '
assert [m["Slug"] for m in d] == ["acme", "beta"]
assert d[1]["BrokerUrl"] == "ws://127.0.0.1:7900/ws" and d[1]["MemberId"] == "member-beta-0123456789"'

# send: human, --json with every option, "-" from standard input, repeats and conflicts
run 0 send --mesh acme '*' hello --id k1
out_has "^Queued as k1\.$"
run 0 send --mesh acme '*' hello --id k1
out_has "^Queued as k1\.$"
[ "$(sql outbox.db "SELECT count(*) FROM outbox WHERE client_message_id='k1'")" = 1 ] || fail "a repeated send wrote a row"
run 0 --json send -m acme -p now --meta '{"b":1,"a":2}' --reply-to r-9 --id k2 @backend 'with options'
json 'assert d == {"client_message_id": "k2", "status": "queued", "broker_message_id": ""}, d'
[ "$(sql outbox.db "SELECT priority||' '||meta||' '||reply_to||' '||target_spec FROM outbox WHERE client_message_id='k2'")" = 'now {"a":2,"b":1} r-9 @backend' ] ||
        fail "send options not stored: $(sql outbox.db "SELECT * FROM outbox WHERE client_message_id='k2'")"
printf 'line one\nline two\n\n' | "$CLAUDEMESHCTL" --json send -m acme '#t1' - > "$T/out" || fail "send - failed"
json 'assert d["status"] == "queued" and len(d["client_message_id"]) == 26, d'
STDIN_ID=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["client_message_id"])' < "$T/out")
export STDIN_ID
[ "$(sql outbox.db "SELECT body FROM outbox WHERE client_message_id='$STDIN_ID'")" = "$(printf 'line one\nline two')" ] ||
        fail "the message from standard input was not sent as read, less its trailing newlines"
run 5 send -m acme '*' 'another text' --id k1
err_has "^Cannot send the message: outbox_pending_fingerprint_mismatch: "
run 6 send -m nope '*' hello
err_has "No mesh \"nope\""
err_has "^'claudemeshctl meshes' lists the configured meshes\.$"
! grep -q -- "--mesh" "$T/err" || fail "a named mesh drew the --mesh hint: $(cat "$T/err")"
run 6 send '*' hello
err_has "Several meshes"
err_has "Name the mesh with --mesh"
run 6 send '*' hello
err_has "Several meshes are attached; name one, or set"
run 2 send -m acme -p urgent '*' hello
err_has "priority"
err_has "See 'claudemeshctl --help'"
run 2 send -m acme '*' ''

# outbox
run 0 outbox
out_has "^ROW +ID +MESH +STATUS +TO +PRIORITY +TRIES +QUEUED +OUTCOME$"
out_has "^[0-9A-Z]{26} +k1 +acme +pending +\* +next +0 +(just now|[0-9]+ s ago) +-$"
out_has "^[0-9A-Z]{26} +k2 +acme +pending +@backend +now +0 "
run 0 --json outbox --mesh acme --limit 2
json '
assert len(d) == 2, d
assert d[0]["client_message_id"] == os.environ["STDIN_ID"] and d[1]["client_message_id"] == "k2"
assert d[1]["priority"] == "now" and d[1]["reply_to_id"] == "r-9" and d[1]["status"] == "pending"
assert d[1]["mesh"] == "acme" and d[1]["attempts"] == 0 and d[1]["enqueued_at"] > 1.7e15'
run 0 --json outbox --mesh beta
json 'assert d == [], d'
run 0 outbox --mesh beta
out_has "^The outbox is empty\.$"
run 2 outbox --status lost
run 6 outbox --mesh nope

# requeue
K1_ROW=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k1'")
K2_ROW=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k2'")
run 0 requeue "$K1_ROW" --new-id k1b
out_has "^Requeued as row [0-9A-Z]{26} with client message id k1b\.$"
[ "$(sql outbox.db "SELECT status FROM outbox WHERE client_message_id='k1'")" = aborted ] || fail "k1 not aborted"
run 0 --json requeue "$K2_ROW"
json 'assert len(d["new_row_id"]) == 26 and len(d["new_client_message_id"]) == 26, d'
run 0 outbox --status aborted
out_has "^$K1_ROW +k1 +acme +aborted .* requeued as [0-9A-Z]{26}$"
run 5 requeue "$K1_ROW"
err_has "neither pending nor dead"
run 5 requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k1b'")" --new-id k2
run 6 requeue 01ZZZZZZZZZZZZZZZZZZZZZZZZ
err_has "'claudemeshctl outbox' lists the rows"
! grep -q ListOutbox "$T/err" || fail "the error names a D-Bus method: $(cat "$T/err")"
# the message id (the ID column) works as well as the row id
K3_ROW=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k1b'")
sql outbox.db "UPDATE outbox SET status = 'dead' WHERE id = '$K3_ROW'"
run 0 requeue k1b --new-id k1c
[ "$(sql outbox.db "SELECT superseded_by IS NOT NULL FROM outbox WHERE id = '$K3_ROW'")" = 1 ] ||
        fail "requeue by message id did not requeue row $K3_ROW"

# inbox, over rows stored as the receive path stores them
run 0 inbox
out_has "^No messages\.$"
run 0 --json inbox
json 'assert d == [], d'
MID=$(mesh_prop acme Id)
NOW=$(date +%s)
sql inbox.db "INSERT INTO inbox (id, client_message_id, mesh_id, topic, sender_pubkey, sender_name, body, received_at, meta)
              VALUES ('r1', 'c1', '$MID', NULL, 'pk1', 'alice', 'first message', $((NOW - 7200))000000, '{\"k\":[1,\"two\"]}'),
                     ('r2', 'c2', '$MID', 't1', 'pk2', '', 'second
has two lines', $((NOW - 300))000000, NULL),
                     ('r3', 'c3', '$MID', NULL, 'pk1', 'alice', 'third', $((NOW - 10))000000, NULL)"
run 0 inbox
out_has "^RECEIVED +MESH +FROM +TOPIC +MESSAGE$"
out_has "^2 h ago +acme +alice +- +first message$"
# in a pipe a body is whole, its newline escaped (a terminal shows the first line: ctl-tmux)
out_has "^5 min ago +acme +pk2 +t1 +second\\\\nhas two lines$"
out_has "^1[0-9] s ago +acme +alice +- +third$"
[ "$(sed -n '2p;4p' "$T/out" | awk '{print $NF}' | tr '\n' ' ')" = "message third " ] || fail "inbox not oldest first: $(cat "$T/out")"
run 0 --json inbox --mesh acme
json '
assert [m["id"] for m in d] == ["r3", "r2", "r1"], d
assert d[1]["body"] == "second\nhas two lines" and d[1]["topic"] == "t1" and d[1]["sender_pubkey"] == "pk2"
assert d[0]["mesh"] == "acme" and d[0]["sender_name"] == "alice"
assert d[2]["meta"] == {"k": [1, "two"]}, d[2]
assert "meta" not in d[0] and isinstance(d[0]["received_at"], int), d[0]'
run 0 --json inbox --from pk1 --limit 1
json 'assert [m["id"] for m in d] == ["r3"], d'
run 0 --json inbox --topic t1
json 'assert [m["id"] for m in d] == ["r2"], d'
run 0 --json inbox --since "$(date -u -d @$((NOW - 600)) +%Y-%m-%dT%H:%M:%SZ)"
json 'assert [m["id"] for m in d] == ["r3", "r2"], d'
run 2 inbox --since yesterday

# accept-host: without polkit the daemon refuses auth_self_keep actions; the action is named.
# Calls allow interactive authorization (flag 4) unless --no-ask-password.
busctl --user --json=short monitor org.claudemesh.Daemon1 > "$T/monitor" 2>&1 &
MONITOR=$!
CLEANUP_PIDS="$CLEANUP_PIDS $MONITOR"
sleep 0.3
run 4 accept-host
err_has "^Cannot accept the host fingerprint: access denied \(polkit action org\.claudemesh\.daemon1\.accept-host\): "
err_has "start polkitd"
run 4 --no-ask-password accept-host
err_has "org\.claudemesh\.daemon1\.accept-host"
wait_until sh -c "[ \$(grep -c '\"member\":\"AcceptHost\"' '$T/monitor') = 2 ]" || fail "monitor: $(cat "$T/monitor")"
kill "$MONITOR"
/usr/bin/python3 - "$T/monitor" <<'PY' || fail "interactive authorization flags: $(grep AcceptHost "$T/monitor")"
import json, sys
calls = [m for m in (json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")) if m.get("member") == "AcceptHost" and m["type"] == "method_call"]
assert [c["flags"] & 4 for c in calls] == [4, 0], calls
PY

# Commands that need the broker link; this daemon runs --offline. An older daemon lacks them.
if has_method ListPeers; then
        run 1 peers --mesh acme
        err_has "^Cannot list the peers: Mesh \"acme\" has no broker link"
        err_has "claudemeshctl reconnect"
        run 6 peers --mesh nope
else
        expect_unknown_method peers --mesh acme
fi
if has_method SetProfile; then
        run 1 profile --mesh acme --summary 'reviewing' --status working --visible yes --capability a --capability b
        err_has "^Cannot set the profile: Mesh \"acme\" has no broker link"
        run 2 profile --mesh acme --status sleeping
        err_has "must be idle, working or dnd"
else
        expect_unknown_method profile --mesh acme --summary reviewing
fi
if has_method Reconnect; then
        run 1 reconnect --mesh acme
        err_has "^Cannot reconnect: Mesh \"acme\" has no broker link"
else
        expect_unknown_method reconnect --mesh acme
fi
if has_method MarkRead; then
        run 0 mark-read --mesh acme
        out_has "^Marked the messages of acme as read\.$"
        [ "$(mesh_prop acme UnreadCount | sed 's/^u //')" = 0 ] || fail "UnreadCount not 0 after mark-read"
        run 0 --json mark-read --mesh acme
        json 'assert d == {"mesh": "acme"}, d'
        run 6 mark-read --mesh nope
else
        expect_unknown_method mark-read --mesh acme
fi
# profile without options shows the profile: not connected here
run 1 profile --mesh acme
err_has "^Cannot show the profile"
run 2 profile --visible maybe

# bad arguments
run 2 frobnicate
err_has "^Unknown command 'frobnicate'\.$"
err_has "See 'claudemeshctl --help'"
run 2 --frobnicate status
err_has "See 'claudemeshctl --help'"
run 2 send onlyone
err_has "^'send' takes 2 arguments, not 1\.$"
run 2 requeue
run 2 status extra
run 2 status --mesh acme
err_has "^--mesh does not apply to 'status'\.$"
run 2 outbox --follow
for n in 0 abc -1 100001; do
        run 2 inbox -n $n
        err_has "^--limit takes a whole number from 1 to 100000, not '$n'\.$"
done
run 0 outbox -n 100000
run 2 send --mesh

# the daemon absent: no name on the bus and no activation file
stop_daemon
for c in status meshes "send -m acme @all x" inbox outbox "requeue $K1_ROW" "peers -m acme" accept-host; do
        run 3 $c
        err_has "claudemeshd is not running: start it with 'systemctl --user start claudemesh'"
        err_has "journalctl --user -u claudemesh"
done
run 3 --json status
[ ! -s "$T/out" ] || fail "--json printed something for a failed call: $(cat "$T/out")"
# no session bus at all
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/no-session-bus" run 3 status
err_has "^Cannot connect to the session bus: "
err_has "inside your login session"
echo ok
