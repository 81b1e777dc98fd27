#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Poison rows never wedge the outbox. Hundreds of rows that can never be sent are put into the
# sender's real outbox.db with SQL, older than anything else: DMs to 64 hex that is no ed25519
# key (cannot be sealed), posts whose frame is over the broker's limit, posts to a topic the
# broker does not know. Each must go dead at once with its reason and a SendFailed signal, and
# good sends queued behind them must reach the receiver promptly, each exactly once. Then two
# dead rows requeued (over the bus and over POST /v1/outbox/requeue) are delivered with no other
# send to wake the drain.
. "$(dirname "$0")/../e2e/lib.sh"

N_KEY=${POISON_KEY:-300}
N_BIG=${POISON_BIG:-100}
N_TOPIC=${POISON_TOPIC:-100}
N_GOOD=${GOOD_SENDS:-50}

broker_start
MESH=$(mesh_create demo)
daemon_setup alice "$(member_entry demo alice)"
B=$(member_entry demo bob)
BOB=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')
daemon_setup bob "$B"
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo

# alice stops; her outbox gets the poison, an hour old so it comes first, and two dead rows to requeue
daemon_stop alice
DB="$T/alice/state/claudemesh/outbox.db"
BAD=$(head -c 64 /dev/zero | tr '\0' a)
OLD=$(( $(date +%s) * 1000000 - 3600000000 ))
poison() {  # poison PREFIX COUNT KIND TARGET BODY-SQL
        sqlite3 -cmd '.timeout 5000' "$DB" "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < $2 - 1)
                INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec, priority, body,
                                    request_fingerprint, enqueued_at, next_attempt_at, status)
                SELECT printf('00%s%06d', upper('$1'), i), printf('$1-%d', i), '$MESH', '$3', '$4', '$4', 'next', $5,
                       randomblob(32), $OLD + i, $OLD + i, 'pending' FROM c" || fail "cannot insert $1 rows"
}
poison key "$N_KEY" dm "$BAD" "CAST('never sealed' AS BLOB)"
poison big "$N_BIG" topic '*' "CAST(replace(hex(zeroblob(35000)), '0', 'y') AS BLOB)"
poison topic "$N_TOPIC" topic '#no-such-topic' "CAST('nobody reads this' AS BLOB)"
sqlite3 -cmd '.timeout 5000' "$DB" "INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec,
                priority, body, request_fingerprint, enqueued_at, next_attempt_at, status, last_error)
        VALUES ('00DEADA', 'dead-a', '$MESH', 'dm', '$BOB', '$BOB', 'next', CAST('requeued over the bus' AS BLOB),
                randomblob(32), $OLD, $OLD, 'dead', 'test'),
               ('00DEADB', 'dead-b', '$MESH', 'dm', '$BOB', '$BOB', 'next', CAST('requeued over /v1' AS BLOB),
                randomblob(32), $OLD, $OLD, 'dead', 'test')" || fail "cannot insert the dead rows"
POISON=$((N_KEY + N_BIG + N_TOPIC))

# every signal on alice's bus, from before her daemon starts
on alice busctl --user --json=short monitor > "$T/alice-signals" 2>&1 &
PIDS="$PIDS $!"
sleep 0.3
start=$(date +%s%N)
daemon_start alice
wait_connected alice demo
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus" "$SEND_CLIENT" --mesh demo --to "$BOB" --count "$N_GOOD" \
        --callers 4 --prefix good > "$T/good.answers" 2>> "$T/send-client.log" || fail "the good sends were refused"
/usr/bin/python3 "$(dirname "$0")/wait-inbox.py" "$T/bob/bus" demo good "$N_GOOD" 60 2> "$T/wait.err" ||
        fail "good sends behind $POISON poison rows: $(cat "$T/wait.err")"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))

q() { sqlite3 -cmd '.timeout 5000' "$DB" "$1"; }
wait_until 30 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT count(*) FROM outbox WHERE status = 'dead' AND client_message_id NOT LIKE 'dead-%'\")\" = $POISON ]" ||
        fail "poison rows not all dead: $(q "SELECT status, count(*) FROM outbox GROUP BY status")"
[ "$(q "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'key-%' AND last_error LIKE 'cannot_seal: %$BAD%'")" = "$N_KEY" ] ||
        fail "unsealable rows: $(q "SELECT last_error FROM outbox WHERE client_message_id = 'key-0'")"
[ "$(q "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'big-%' AND last_error LIKE 'payload_too_large: %'")" = "$N_BIG" ] ||
        fail "oversized rows: $(q "SELECT last_error FROM outbox WHERE client_message_id = 'big-0'")"
[ "$(q "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'topic-%' AND last_error LIKE 'topic_not_found%'")" = "$N_TOPIC" ] ||
        fail "unknown-topic rows: $(q "SELECT last_error FROM outbox WHERE client_message_id = 'topic-0'")"
wait_until 20 sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT count(*) FROM outbox WHERE client_message_id LIKE 'good-%' AND status = 'done'\")\" = $N_GOOD ]" ||
        fail "good rows not all done"
wait_until 10 sh -c "[ \$(grep -c '\"member\":\"SendFailed\"' '$T/alice-signals') -ge $POISON ]" ||
        fail "$(grep -c '"member":"SendFailed"' "$T/alice-signals") SendFailed signals for $POISON poison rows"
failed=$(grep -c '"member":"SendFailed"' "$T/alice-signals")
[ "$failed" = "$POISON" ] || fail "$failed SendFailed signals for $POISON poison rows"

# Requeue starts the drain itself: nothing else is sent from here on
gcall_on alice Requeue 00DEADA "{'client_message_id': <'rq-0'>}" || fail "Requeue: $(cat "$T/reply")"
code=$(curl -s -o "$T/http" -w '%{http_code}' --unix-socket "$T/alice/config/daemon/daemon.sock" \
        -H 'content-type: application/json' -d '{"id":"00DEADB","new_client_message_id":"rq-1"}' \
        http://localhost/v1/outbox/requeue)
[ "$code" = 200 ] || fail "POST /v1/outbox/requeue: $code $(cat "$T/http")"
/usr/bin/python3 "$(dirname "$0")/wait-inbox.py" "$T/bob/bus" demo rq 2 20 2> "$T/wait.err" ||
        fail "requeued rows not delivered: $(cat "$T/wait.err")"
inbox_json bob demo | grep -q 'requeued over the bus' || fail "the requeued body did not arrive"

echo "poison rows: $POISON (unsealable $N_KEY, oversized $N_BIG, unknown topic $N_TOPIC), all dead, $failed SendFailed"
echo "good sends: $N_GOOD delivered, 0 lost, 0 duplicated, in ${elapsed_ms} ms from daemon start"
echo "requeued: 2 delivered (bus and /v1) with no other send"
echo ok
