#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The sd_notify protocol against our own NOTIFY_SOCKET: READY=1 only once the bus name is owned,
# STATUS= with the summary, WATCHDOG=1 keeps coming, STOPPING=1 on SIGTERM.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"

/usr/bin/python3 "$(dirname "$0")/notify-listen.py" "$T/notify.sock" "$T/notify.out" &
LISTENER=$!
CLEANUP_PIDS="$CLEANUP_PIDS $LISTENER"
wait_until test -e "$T/notify.out.bound" || fail "notify listener did not start"

export NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000
start_daemon
unset NOTIFY_SOCKET WATCHDOG_USEC
sleep 1.5
stop_daemon
wait "$LISTENER" || fail "notify listener failed"

cat "$T/notify.out"
[ "$(grep -c '^READY=1' "$T/notify.out")" = 1 ] || fail "READY=1 not sent exactly once"
grep -A1 '^READY=1' "$T/notify.out" | grep -q '^name-owned=yes$' || fail "READY=1 came before the bus name was owned"
grep -q '^READY=1|STATUS=1 mesh: acme (offline)$' "$T/notify.out" || fail "no STATUS= with the summary"
[ "$(grep -c '^WATCHDOG=1$' "$T/notify.out")" -ge 3 ] || fail "WATCHDOG=1 did not keep coming"
tail -n 1 "$T/notify.out" | grep -q '^STOPPING=1' || fail "STOPPING=1 is not the last notification"
echo ok
