#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Send, ListOutbox, Requeue and ListInbox over the bus against real outbox/inbox files: the
# 11-row duplicate table (later row states set with SQL, as the drain will), id rules, every
# validation error (writing nothing), requeue transitions, list filters, group commit and
# concurrent callers racing one id.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: send is allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
CLAUDEMESH_LOG_LEVEL=debug start_daemon
PK=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
rows() { sql outbox.db "SELECT count(*) FROM outbox"; }
status_of() { sql outbox.db "SELECT status FROM outbox WHERE client_message_id='$1'"; }
force() { sql outbox.db "UPDATE outbox SET $2 WHERE client_message_id='$1'"; }

# a new id is queued; the same request again changes nothing
gcall Send acme '*' hello "{'client_message_id': <'k1'>}" || fail "Send: $(cat "$T/last-reply")"
grep -q "('k1', 'queued', '')" "$T/last-reply" || fail "first Send: $(cat "$T/last-reply")"
[ "$(status_of k1)" = pending ] || fail "k1 not pending"
gcall Send acme '*' hello "{'client_message_id': <'k1'>}" || fail "repeat: $(cat "$T/last-reply")"
grep -q "('k1', 'queued', '')" "$T/last-reply" || fail "repeat Send: $(cat "$T/last-reply")"
[ "$(rows)" = 1 ] || fail "a repeated send wrote a row"

# pending + mismatch: body, destination, priority each make a different request
gexpect IdempotencyConflict Send acme '*' other "{'client_message_id': <'k1'>}"
grep -q "outbox_pending_fingerprint_mismatch: .*stored fingerprint [0-9a-f]\{16\})" "$T/last-reply" ||
        fail "conflict message: $(cat "$T/last-reply")"
gexpect IdempotencyConflict Send acme '@backend' hello "{'client_message_id': <'k1'>}"
gexpect IdempotencyConflict Send acme '*' hello "{'client_message_id': <'k1'>, 'priority': <'now'>}"
# "next" is the default priority; meta key order does not matter
gcall Send acme '*' hello "{'client_message_id': <'k1'>, 'priority': <'next'>}" || fail "explicit next"
gcall Send acme '*' m "{'client_message_id': <'k2'>, 'meta': <'{\"z\":1,\"a\":2}'>}" || fail "meta send"
gcall Send acme '*' m "{'client_message_id': <'k2'>, 'meta': <'{\"a\":2,\"z\":1}'>}" || fail "meta reordered: $(cat "$T/last-reply")"
gcall Send acme '*' m "{'client_message_id': <'k3'>, 'meta': <'{}'>}" || fail "empty meta"
gcall Send acme '*' m "{'client_message_id': <'k3'>}" || fail "{} meta and no meta differ: $(cat "$T/last-reply")"
[ "$(sql outbox.db "SELECT meta FROM outbox WHERE client_message_id='k2'")" = '{"a":2,"z":1}' ] ||
        fail "meta not stored canonically"

# inflight
force k1 "status='inflight'"
gcall Send acme '*' hello "{'client_message_id': <'k1'>}" || fail "inflight match"
grep -q "('k1', 'inflight', '')" "$T/last-reply" || fail "inflight match: $(cat "$T/last-reply")"
gexpect IdempotencyConflict Send acme '*' other "{'client_message_id': <'k1'>}"
grep -q "outbox_inflight_fingerprint_mismatch" "$T/last-reply" || fail "$(cat "$T/last-reply")"
# done: the original broker message id, no new row
force k1 "status='done', broker_message_id='bm-1'"
gcall Send acme '*' hello "{'client_message_id': <'k1'>}" || fail "done match"
grep -q "('k1', 'done', 'bm-1')" "$T/last-reply" || fail "done match: $(cat "$T/last-reply")"
gexpect IdempotencyConflict Send acme '*' other "{'client_message_id': <'k1'>}"
grep -q "outbox_done_fingerprint_mismatch.*broker message id bm-1" "$T/last-reply" || fail "$(cat "$T/last-reply")"
# dead: the reason travels with the conflict
gcall Send acme '*' d "{'client_message_id': <'k4'>}" || fail "k4"
force k4 "status='dead', last_error='payload too large: 70000 bytes'"
gexpect IdempotencyConflict Send acme '*' d "{'client_message_id': <'k4'>}"
grep -q "outbox_dead_fingerprint_match.*last error: payload too large" "$T/last-reply" || fail "$(cat "$T/last-reply")"
gexpect IdempotencyConflict Send acme '*' other "{'client_message_id': <'k4'>}"
grep -q "outbox_dead_fingerprint_mismatch" "$T/last-reply" || fail "$(cat "$T/last-reply")"
# aborted
gcall Send acme '*' a "{'client_message_id': <'k5'>}" || fail "k5"
force k5 "status='aborted', aborted_by='operator'"
gexpect IdempotencyConflict Send acme '*' a "{'client_message_id': <'k5'>}"
grep -q "outbox_aborted_fingerprint_match" "$T/last-reply" || fail "$(cat "$T/last-reply")"
gexpect IdempotencyConflict Send acme '*' other "{'client_message_id': <'k5'>}"
grep -q "outbox_aborted_fingerprint_mismatch" "$T/last-reply" || fail "$(cat "$T/last-reply")"

# ids: minted ULIDs; destinations normalized as the wire wants them
gcall Send acme "$(echo $PK | tr a-f A-F)" hi "@a{sv} {}" || fail "dm: $(cat "$T/last-reply")"
id=$(sed -n "s/^('\([0-9A-Z]\{26\}\)', 'queued', '')$/\1/p" "$T/last-reply")
[ -n "$id" ] || fail "minted id is not a ULID: $(cat "$T/last-reply")"
[ "$(sql outbox.db "SELECT kind||' '||destination_ref||' '||target_spec FROM outbox WHERE client_message_id='$id'")" = "dm $PK $PK" ] ||
        fail "dm not normalized"
gcall Send acme '@all' b "{'client_message_id': <'k6'>}" || fail "@all"
[ "$(sql outbox.db "SELECT target_spec FROM outbox WHERE client_message_id='k6'")" = '*' ] || fail "@all not sent as *"
gcall Send '' '#t1' b "@a{sv} {}" && fail "an empty mesh with two meshes configured was accepted"
grep -q "NoSuchMesh: Several meshes are attached; name one, or set .defaultMesh. in .*: acme, beta" "$T/last-reply" || fail "$(cat "$T/last-reply")"

# validation errors write nothing and leave the id free
before=$(rows)
long=$(head -c 129 /dev/zero | tr '\0' x)
gexpect InvalidArgument Send acme '*' '' "{'client_message_id': <'v1'>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'priority': <'urgent'>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'meta': <'[1]'>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'meta': <'{\"a\":1,\"a\":2}'>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'meta': <'{'>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'$long'>}"
gexpect_args "Unknown option 'colour'; known: priority, meta, reply_to_id, client_message_id." \
        Send acme '*' m "{'client_message_id': <'v1'>, 'colour': <'red'>}"
gexpect_args "Option 'priority' must be of type 's', got 'u'." \
        Send acme '*' m "{'client_message_id': <'v1'>, 'priority': <uint32 1>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'reply_to_id': <''>}"
gexpect InvalidArgument Send acme '*' m "{'client_message_id': <'v1'>, 'client_message_id': <'v2'>}"
grep -qF 'Option "client_message_id" is given twice.' "$T/last-reply" || fail "repeated option: $(cat "$T/last-reply")"
gexpect InvalidArgument Send acme '@' m "{'client_message_id': <'v1'>}"
gexpect InvalidArgument Send acme '#a b' m "{'client_message_id': <'v1'>}"
gexpect UnknownPeer Send acme alice m "{'client_message_id': <'v1'>}"
grep -q 'knows no peers yet' "$T/last-reply" || fail "unknown peer message: $(cat "$T/last-reply")"
gexpect NoSuchMesh Send nope '*' m "{'client_message_id': <'v1'>}"
# 64 hex digits that are no ed25519 key could never be sealed: refused on both front-ends, naming it
BADKEY=$(head -c 64 /dev/zero | tr '\0' a)
gexpect InvalidArgument Send acme "$BADKEY" m "{'client_message_id': <'v1'>}"
grep -q "\"$BADKEY\" is not a valid ed25519 public key" "$T/last-reply" || fail "bad key message: $(cat "$T/last-reply")"
code=$(curl -s -o "$T/http" -w '%{http_code}' --unix-socket "$T/config/daemon/daemon.sock" -H 'content-type: application/json' \
        -d "{\"to\":\"$BADKEY\",\"message\":\"m\",\"mesh\":\"acme\",\"client_message_id\":\"v1\"}" http://localhost/v1/send)
[ "$code" = 400 ] && grep -q "$BADKEY.*not a valid ed25519" "$T/http" || fail "/v1/send bad key: $code $(cat "$T/http")"
# meta: at most 16 KiB of canonical JSON; over that PayloadTooLarge on the bus, 413 on /v1
meta=$(/usr/bin/python3 -c 'import json; print(json.dumps({"k": "m" * (16384 - 8)}, separators=(",", ":")))')
over=$(/usr/bin/python3 -c 'import json; print(json.dumps({"k": "m" * (16384 - 7)}, separators=(",", ":")))')
gexpect PayloadTooLarge Send acme '*' m "{'client_message_id': <'v1'>, 'meta': <'$over'>}"
grep -q "Option \"meta\" is too large: 16385 bytes as canonical JSON, at most 16384" "$T/last-reply" || fail "big meta: $(head -c 300 "$T/last-reply")"
code=$(curl -s -o "$T/http" -w '%{http_code}' --unix-socket "$T/config/daemon/daemon.sock" -H 'content-type: application/json' \
        -d "{\"to\":\"*\",\"message\":\"m\",\"mesh\":\"acme\",\"client_message_id\":\"v1\",\"meta\":{\"k\":\"$(head -c 20000 /dev/zero | tr '\0' m)\"}}" \
        http://localhost/v1/send)
[ "$code" = 413 ] && grep -q "16384" "$T/http" || fail "/v1/send big meta: $code $(head -c 300 "$T/http")"
# sealed and base64'd, 49,000 bytes make a frame over 65,536; 48,000 fit
big=$(head -c 49000 /dev/zero | tr '\0' y)
gexpect PayloadTooLarge Send acme "$PK" "$big" "{'client_message_id': <'v1'>}"
big=$(head -c 48000 /dev/zero | tr '\0' y)
[ "$(rows)" = "$before" ] || fail "a refused send wrote a row"
gcall Send acme '*' m "{'client_message_id': <'meta-max'>, 'meta': <'$meta'>}" || fail "16 KiB meta refused: $(head -c 300 "$T/last-reply")"
gcall Send acme "$PK" "$big" "{'client_message_id': <'v1'>}" || fail "48 KB DM refused: $(head -c 300 "$T/last-reply")"

# Requeue: dead and pending rows only; the old row stays, aborted, pointing at its successor
gcall Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k4'")" "@a{sv} {}" || fail "requeue dead: $(cat "$T/last-reply")"
new_cmid=$(sed -n "s/^('[0-9A-Z]\{26\}', '\([0-9A-Z]\{26\}\)')$/\1/p" "$T/last-reply")
[ -n "$new_cmid" ] || fail "requeue reply: $(cat "$T/last-reply")"
[ "$(status_of k4)" = aborted ] || fail "old row not aborted"
[ "$(sql outbox.db "SELECT n.status||' '||n.body FROM outbox o JOIN outbox n ON n.id=o.superseded_by WHERE o.client_message_id='k4'")" = "pending d" ] ||
        fail "superseded_by does not point at a pending copy"
gcall Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k2'")" "{'client_message_id': <'k2-again'>}" ||
        fail "requeue pending with an id: $(cat "$T/last-reply")"
[ "$(status_of k2-again)" = pending ] || fail "given id not used"
gexpect ClientMessageIdInUse Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k3'")" "{'client_message_id': <'k1'>}"
[ "$(status_of k3)" = pending ] || fail "a refused requeue changed the row"
gexpect NotRequeueable Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k1'")" "@a{sv} {}"
gexpect NotRequeueable Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='k5'")" "@a{sv} {}"
gexpect NoSuchMessage Requeue 01ZZZZZZZZZZZZZZZZZZZZZZZZ "@a{sv} {}"

# ListOutbox: per mesh, status filter, limit, newest first
gcall ListOutbox acme "{'status': <'aborted'>}" || fail "ListOutbox: $(cat "$T/last-reply")"
[ "$(grep -o "'status': <'aborted'>" "$T/last-reply" | wc -l)" = 3 ] || fail "aborted filter: $(cat "$T/last-reply")"
grep -q "'superseded_by': <'[0-9A-Z]\{26\}'>" "$T/last-reply" || fail "superseded_by not listed"
gcall ListOutbox '' "{'limit': <uint32 2>}" || fail "ListOutbox limit: $(cat "$T/last-reply")"
[ "$(grep -o "'client_message_id'" "$T/last-reply" | wc -l)" = 2 ] || fail "limit not applied"
gcall ListOutbox beta "@a{sv} {}" || fail "ListOutbox beta"
grep -q "^(@aa{sv} \[\],)$" "$T/last-reply" || fail "beta outbox not empty: $(cat "$T/last-reply")"
gexpect InvalidArgument ListOutbox acme "{'status': <'lost'>}"
gexpect_args "Option 'limit' must be of type 'u', got 's'." ListOutbox acme "{'limit': <'2'>}"
gexpect_args "Option 'limit' must be of type 'u', got 'i'." ListOutbox acme "{'limit': <-1>}"
gexpect_args "Option 'status' must be of type 's', got 'as'." ListOutbox acme "{'status': <['dead']>}"
gexpect_args "Unknown option 'state'; known: status, limit." ListOutbox acme "{'state': <'dead'>}"
gexpect InvalidArgument ListOutbox acme "{'limit': <uint32 1>, 'limit': <uint32 2>}"
# a limit over the maximum is clamped, not refused
gcall ListOutbox acme "{'limit': <uint32 4000000000>}" || fail "a large limit: $(cat "$T/last-reply")"

# ListInbox over rows as the receive path stores them
gcall ListInbox acme "@a{sv} {}" || fail "ListInbox"
grep -q "^(@aa{sv} \[\],)$" "$T/last-reply" || fail "inbox not empty: $(cat "$T/last-reply")"
mid=$(busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/acme org.claudemesh.Mesh1 Id | cut -d'"' -f2)
for i in 1 2 3; do
        sql inbox.db "INSERT INTO inbox (id, client_message_id, mesh_id, topic, sender_pubkey, sender_name, body, received_at)
                      VALUES ('r$i', 'c$i', '$mid', $( [ $i = 2 ] && echo "'t1'" || echo NULL), 'pk$i', 'peer$i', 'body$i', ${i}000000)"
done
gcall ListInbox acme "@a{sv} {}" || fail "ListInbox"
[ "$(grep -o "'body': <'body[0-9]'>" "$T/last-reply" | tr -d "\n")" = "'body': <'body3'>'body': <'body2'>'body': <'body1'>" ] ||
        fail "inbox not newest first: $(cat "$T/last-reply")"
gcall ListInbox acme "{'topic': <'t1'>}" && grep -q "body2" "$T/last-reply" && ! grep -q body1 "$T/last-reply" || fail "topic filter"
gcall ListInbox acme "{'from': <'pk3'>}" && grep -q "body3" "$T/last-reply" && ! grep -q body2 "$T/last-reply" || fail "from filter"
gcall ListInbox acme "{'since': <uint64 2000000>, 'limit': <uint32 1>}" && grep -q "body3" "$T/last-reply" && ! grep -q body2 "$T/last-reply" || fail "since/limit"
gcall ListInbox acme "{'since': <uint64 2000000>}" && grep -q "body2" "$T/last-reply" && ! grep -q body1 "$T/last-reply" || fail "since"
gexpect_args "Option 'since' must be of type 't', got 's'." ListInbox acme "{'since': <'1970-01-01T00:00:02Z'>}"
gexpect_args "Option 'limit' must be of type 'u', got 't'." ListInbox acme "{'limit': <uint64 1>}"
gexpect_args "Option 'from' must be of type 's', got 'b'." ListInbox acme "{'from': <true>}"
gexpect_args "Unknown option 'sender'; known: since, from, topic, limit." ListInbox acme "{'sender': <'pk1'>}"
# SetProfile's fields are typed the same, checked before the mesh is looked up
gexpect_args "Option 'visible' must be of type 'b', got 's'." SetProfile acme "{'visible': <'yes'>}"
gexpect_args "Option 'capabilities' must be of type 'as', got 's'." SetProfile acme "{'capabilities': <'x'>}"
gexpect_args "Unknown option 'colour'; known: summary, status, visible, avatar, title, bio, capabilities." \
        SetProfile acme "{'colour': <'red'>}"

# group commit: 32 callers on their own connections, 320 sends, every one answered after its
# row is committed; calls that arrived together went into one transaction
"$SEND_CLIENT" --mesh acme --callers 32 --count 320 --prefix burst > "$T/burst" || fail "burst: $(grep -v '^ok' "$T/burst" | head)"
[ "$(grep -c '^ok burst-[0-9]* queued -$' "$T/burst")" = 320 ] || fail "burst answers"
[ "$(sql outbox.db "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'burst-%'")" = 320 ] || fail "burst rows"
grep -q 'Committed \([2-9]\|[1-9][0-9]\+\) accepted send(s) in one transaction' "$T/daemon.log" ||
        fail "no batch of more than one send was committed together"

# two groups of callers racing the same 50 ids: one row per id, every caller told "queued"
"$SEND_CLIENT" --mesh acme --callers 8 --count 50 --prefix race > "$T/race1" &
R1=$!
"$SEND_CLIENT" --mesh acme --callers 8 --count 50 --prefix race > "$T/race2" || fail "race 2"
wait $R1 || fail "race 1"
[ "$(cat "$T/race1" "$T/race2" | grep -c '^ok race-[0-9]* queued')" = 100 ] || fail "race answers"
[ "$(sql outbox.db "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'race-%'")" = 50 ] || fail "race rows"
stop_daemon

echo ok
