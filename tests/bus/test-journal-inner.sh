#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run by test-journal.sh inside a private mount namespace.
. "$(dirname "$0")/lib.sh"

for d in /run/systemd /run/log /var/log/journal /var/lib/systemd/catalog /usr/lib/systemd/catalog; do
        mkdir -p "$d"; mount -t tmpfs tmpfs "$d"
done
/lib/systemd/systemd-journald >/dev/null 2>&1 &
JOURNALD=$!
CLEANUP_PIDS="$CLEANUP_PIDS $JOURNALD"
wait_until test -S /run/systemd/journal/socket || fail "journald did not start"
cp "$SOURCE_ROOT/units/claudemesh.catalog" /usr/lib/systemd/catalog/
journalctl --update-catalog

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
bad=$("$MAKE_MESH_ENTRY" gamma | sed 's/"brokerUrl":"[^"]*"/"brokerUrl":"http:\/\/nope"/')
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$bad"

# stderr connected to journald, and JOURNAL_STREAM saying so, as systemd sets it up
run_daemon() {
        CLAUDEMESH_CONFIG_DIR="$T/config" XDG_STATE_HOME="$T/state" systemd-cat -t claudemeshd \
                sh -c 'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" --offline' "$CLAUDEMESHD" &
        DAEMON_PID=$!
        CLEANUP_PIDS="$CLEANUP_PIDS $DAEMON_PID"
        wait_for_name
}
run_daemon
stop_daemon
sed -i 's/"fingerprint": *"[0-9a-f]*"/"fingerprint": "2222222222222222222222222222222222222222222222222222222222222222"/' \
        "$T/state/claudemesh/host_fingerprint.json"
run_daemon
stop_daemon
journalctl --sync

entry() {  # entry MESSAGE_ID: the JSON of the last entry with that id
        journalctl -o json --no-pager MESSAGE_ID="$1" | tail -n 1
}
check() {  # check MESSAGE_ID FIELD=VALUE...: the entry exists, came natively, and has these fields
        e=$(entry "$1"); id=$1; shift
        [ -n "$e" ] || fail "no journal entry with MESSAGE_ID=$id"
        printf '%s' "$e" | grep -q '"_TRANSPORT":"journal"' || fail "$id did not use the native protocol: $e"
        printf '%s' "$e" | grep -q '"SYSLOG_IDENTIFIER":"claudemeshd"' || fail "$id: no SYSLOG_IDENTIFIER: $e"
        printf '%s' "$e" | grep -q '"CODE_FILE":' || fail "$id: no CODE_FILE: $e"
        for f in "$@"; do
                printf '%s' "$e" | grep -q "\"${f%%=*}\":\"${f#*=}" || fail "$id: no ${f}: $e"
        done
}
check b69d507d495e4737940c5a1c4a5c2d06 PRIORITY=6 CLAUDEMESH_VERSION="$EXPECTED_VERSION"
check af6faf87c0584c6eb622986bd1c4ffbe PRIORITY=6 "MESSAGE=Ready: "
check 08eabbdb1f1c4576b0f65e1ed3189e3e PRIORITY=6
check b8cf43ae296a4bda95aa153c7a63b154 PRIORITY=3 CLAUDEMESH_CONFIG_FILE="$T/config/config.json"
entry b8cf43ae296a4bda95aa153c7a63b154 | grep -q 'mesh \\"gamma\\".*brokerUrl' || fail "config error does not name mesh and field"
check ad303f520d5643648b454a5bebed5470 PRIORITY=4 CLAUDEMESH_HOST_FINGERPRINT=
entry ad303f520d5643648b454a5bebed5470 | grep -q '"CLAUDEMESH_HOST_FINGERPRINT":"[0-9a-f]\{64\}"' || fail "no fingerprint field"

# every MESSAGE_ID the code defines has a catalog entry that journalctl -x shows
for id in $(sed -n 's/^#define CM_MESSAGE_[A-Z_]* *"\([0-9a-f]\{32\}\)"$/\1/p' "$SOURCE_ROOT/src/shared/message-ids.h"); do
        journalctl --list-catalog "$id" 2>/dev/null | grep -q "^$id " || fail "catalog has no entry for $id"
done
journalctl -x --no-pager MESSAGE_ID=ad303f520d5643648b454a5bebed5470 | grep -q "claudemeshctl accept-host" ||
        fail "journalctl -x does not explain the host mismatch"
echo ok
