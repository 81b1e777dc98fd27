#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A damaged outbox is never silently replaced by a fresh one: an outbox.db emptied to 0 bytes,
# or missing while its marker says the daemon kept one, refuses sends and listings with what to
# do, keeps the bus up saying so, and leaves the file as it is. Put back, the accepted sends are
# all still there: 0 lost, 0 duplicated.
. "$(dirname "$0")/../bus/lib.sh"

N=40
start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
S="$T/state/claudemesh"

start_daemon
i=0
while [ $i -lt $N ]; do
        gcall Send acme '*' "m$i" "{'client_message_id': <'keep-$i'>}" || fail "Send keep-$i: $(cat "$T/last-reply")"
        i=$((i + 1))
done
stop_daemon
[ -f "$S/outbox.db.created" ] || fail "no marker beside outbox.db"
cp "$S/outbox.db" "$T/outbox.db.saved"

# emptied: refused, reported, untouched
rm -f "$S/outbox.db-wal" "$S/outbox.db-shm"
: > "$S/outbox.db"
start_daemon
gexpect OutboxUnavailable Send acme '*' m "{'client_message_id': <'lost-1'>}"
grep -q "outbox.db is empty (0 bytes).*Sends are refused" "$T/last-reply" || fail "empty outbox: $(cat "$T/last-reply")"
prop Status | grep -q "outbox unavailable: .*outbox.db is empty" || fail "Status: $(prop Status)"
stop_daemon
[ -f "$S/outbox.db" ] && [ ! -s "$S/outbox.db" ] || fail "the empty outbox.db was touched"

# missing while the marker says there was one: refused, and no fresh file takes its place
rm "$S/outbox.db"
start_daemon
gexpect OutboxUnavailable Send acme '*' m "{'client_message_id': <'lost-1'>}"
grep -q "outbox.db is missing, but .*outbox.db.created shows claudemeshd kept an outbox there" "$T/last-reply" ||
        fail "missing outbox: $(cat "$T/last-reply")"
gexpect OutboxUnavailable ListOutbox '' "@a{sv} {}"
stop_daemon
[ ! -e "$S/outbox.db" ] || fail "a fresh outbox.db was created in place of the lost one"

# put back: every accepted send is there once, and the same ids are still duplicates
cp "$T/outbox.db.saved" "$S/outbox.db"
start_daemon
gcall Send acme '*' m0 "{'client_message_id': <'keep-0'>}" || fail "Send after restore: $(cat "$T/last-reply")"
grep -q "('keep-0', 'queued', '')" "$T/last-reply" || fail "keep-0 after restore: $(cat "$T/last-reply")"
stop_daemon
kept=$(sql outbox.db "SELECT count(DISTINCT client_message_id) FROM outbox WHERE client_message_id LIKE 'keep-%'")
rows=$(sql outbox.db "SELECT count(*) FROM outbox WHERE client_message_id LIKE 'keep-%'")
[ "$kept" = $N ] || fail "$((N - kept)) accepted sends lost"
[ "$rows" = $N ] || fail "$((rows - N)) accepted sends duplicated"

# the way out the message gives: without the marker, a fresh outbox
rm "$S/outbox.db" "$S/outbox.db.created"
rm -f "$S/outbox.db-wal" "$S/outbox.db-shm"
start_daemon
gcall Send acme '*' m "{'client_message_id': <'fresh-1'>}" || fail "fresh outbox: $(cat "$T/last-reply")"
[ -f "$S/outbox.db.created" ] || fail "no marker beside the fresh outbox.db"
stop_daemon
echo "fault-damaged-outbox: $N messages, 2 damages (emptied, missing), 0 lost, 0 duplicated"
