#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Crash safety of accepted sends: callers keep sending while the daemon is SIGKILLed at random
# moments, 20 times (N is large enough that the sends outlast the kills); D-Bus activation restarts it on the next call, and the callers repeat any
# call that got no answer with the same id. Afterwards every id that was answered "queued" is in
# the outbox exactly once, and no row is lost or duplicated.
. "$(dirname "$0")/lib.sh"

N=${CRASH_SENDS:-20000}
CYCLES=20
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
mkdir -p "$T/services"
sed "s|@libexecdir@/claudemeshd|$CLAUDEMESHD --offline|" "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.service.in" \
        > "$T/services/org.claudemesh.Daemon1.service"
CLAUDEMESH_CONFIG_DIR="$T/config" XDG_STATE_HOME="$T/state" CLAUDEMESH_LOG_TARGET=stderr \
        DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus" start_session_bus

"$SEND_CLIENT" --mesh acme --callers 4 --count "$N" --prefix crash --retry > "$T/answers" 2> "$T/client.err" &
CLIENT=$!
CLEANUP_PIDS="$CLEANUP_PIDS $CLIENT"

kills=0
while [ $kills -lt $CYCLES ]; do
        wait_until busctl --user status org.claudemesh.Daemon1 || break
        # somewhere between 20 and 200 ms into this life of the daemon
        sleep "0.$(( $(od -An -N1 -tu1 /dev/urandom) % 18 + 2 ))"
        pid=$(busctl --user status org.claudemesh.Daemon1 2>/dev/null | sed -n 's/^PID=//p')
        [ -n "$pid" ] || continue
        kill -KILL "$pid" 2>/dev/null && kills=$((kills + 1))
        kill -0 "$CLIENT" 2>/dev/null || break
done
wait "$CLIENT" || fail "the client failed: $(tail -n 5 "$T/client.err")"
echo "$kills kills during $N sends"
[ $kills -ge 5 ] || fail "only $kills kills landed while sending; the test did not test much"

ok_ids=$(grep -c '^ok crash-' "$T/answers")
[ "$ok_ids" = "$N" ] || fail "$ok_ids of $N ids were answered"
# every answered id exactly once, and nothing else
sqlite3 "$T/state/claudemesh/outbox.db" "SELECT client_message_id FROM outbox ORDER BY client_message_id" > "$T/stored"
sed -n 's/^ok \(crash-[0-9]*\) .*/\1/p' "$T/answers" | sort > "$T/answered"
sort "$T/stored" > "$T/stored.sorted"
[ "$(uniq -d "$T/stored.sorted" | wc -l)" = 0 ] || fail "duplicated rows"
diff "$T/answered" "$T/stored.sorted" > "$T/diff" || fail "outbox and answers differ: $(head "$T/diff")"
[ "$(sqlite3 "$T/state/claudemesh/outbox.db" "PRAGMA integrity_check")" = ok ] || fail "outbox.db damaged"
pid=$(busctl --user status org.claudemesh.Daemon1 2>/dev/null | sed -n 's/^PID=//p')
[ -n "$pid" ] && kill "$pid"
echo ok
