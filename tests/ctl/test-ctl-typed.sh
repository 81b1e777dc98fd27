#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl reads the daemon's replies by their declared types and says so when a value has
# another type or a key every row has is missing, instead of printing "" or 0. The daemon here is
# a python-dbusmock double: our claudemeshd cannot be made to send wrong types, which is the
# point. The same double then sends correct rows, and --json prints them as real arrays and
# objects.
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
/usr/bin/python3 -m dbusmock --session org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
        > "$T/mock.log" 2>&1 &
CLEANUP_PIDS="$CLEANUP_PIDS $!"
wait_for_name org.claudemesh.Daemon1 || fail "the mock daemon did not start: $(cat "$T/mock.log")"

add_method() {  # add_method NAME IN OUT PYTHON
        busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.freedesktop.DBus.Mock \
                AddMethod sssss "" "$1" "$2" "$3" "$4" > /dev/null || fail "AddMethod $1"
}
KEY=$(printf 'ab%.0s' $(seq 32))

# groups as a string where the API says as
add_method ListPeers s aa{sv} "ret = [{'pubkey': '$KEY', 'display_name': 'carol', 'groups': 'backend'}]"
run 1 peers
err_has "^Cannot read the peers: the daemon sent 'groups' of a peer as s, where this claudemeshctl expects as\.$"
err_has "claudemeshctl --version"
[ ! -s "$T/out" ] || fail "a table was printed from a bad reply: $(cat "$T/out")"
run 1 --json peers
[ ! -s "$T/out" ] || fail "JSON was printed from a bad reply: $(cat "$T/out")"

# a row without a key every peer has
add_method ListPeers s aa{sv} "ret = [{'display_name': 'carol'}]"
run 1 peers
err_has "^Cannot read the peers: the daemon sent a peer without 'pubkey'\.$"

# received_at as a string in the inbox
add_method ListInbox sa{sv} aa{sv} "ret = [{'id': 'r1', 'mesh_id': 'm', 'mesh': 'acme', 'sender_pubkey': '$KEY', 'received_at': '1700000000000000'}]"
run 1 inbox
err_has "'received_at' of a message as s, where this claudemeshctl expects t"

# correct rows: keys a newer daemon adds are ignored, --json has real arrays and the meta object
add_method ListPeers s aa{sv} "ret = [{'pubkey': '$KEY', 'display_name': 'carol', 'groups': dbus.Array(['backend:lead', 'ops'], signature='s'), 'connected_at': dbus.UInt64(1700000000000000), 'self': False, 'from_the_future': dbus.Int32(7)}]"
run 0 --json peers
json '
assert d == [{"pubkey": "ab" * 32, "display_name": "carol", "groups": ["backend:lead", "ops"],
              "connected_at": 1700000000000000, "self": False}], d'
run 0 peers
out_has "^carol +- +- +@backend,@ops +- +"
add_method ListInbox sa{sv} aa{sv} "ret = [{'id': 'r1', 'mesh_id': 'm', 'mesh': 'acme', 'sender_pubkey': '$KEY', 'received_at': dbus.UInt64(1700000000000000), 'body': 'hi', 'meta': '{\"task\": {\"id\": 7}}'}]"
run 0 --json inbox
json 'assert d[0]["meta"] == {"task": {"id": 7}} and d[0]["received_at"] == 1700000000000000, d'
echo ok
