#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Our broker and two daemons, each on its own private session bus with its own config and
# state: alice sends to bob by pubkey, by display name, to everyone and to a topic; bob gets
# MessageReceived and an inbox row, alice gets Delivered; peers and profiles are visible across;
# a daemon attached to two meshes at once.
. "$(dirname "$0")/lib.sh"

broker_start --presence-grace 0
MESH=$(mesh_create demo)
OTHER=$(mesh_create other)
A=$(member_entry demo alice)
B=$(member_entry demo bob)
A2=$(member_entry other alice)
B2=$(member_entry other bob)
daemon_setup alice "$A" "$A2"
daemon_setup bob "$B" "$B2"
# bob is in the group "backend" (config.json's top-level groups, sent in the hello)
/usr/bin/python3 - "$T/bob/config/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["groups"] = [{"name": "backend", "role": "member"}]
json.dump(c, open(sys.argv[1], "w"))
PY
daemon_start alice
daemon_start bob
for d in alice bob; do for s in demo other; do wait_connected $d $s; done; done

# the broker's features are on the mesh object
on alice busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 Features |
        grep -q client_message_id_dedupe || fail "Features does not show the broker's features"

# peers: each sees the other (and itself), by display name
wait_until 10 sh -c ". $(dirname "$0")/lib-peers.sh; peers_have alice demo bob" || fail "alice does not see bob"
gcall_on alice ListPeers demo || fail "ListPeers: $(cat "$T/reply")"
BOB_KEY=$(sed -n "s/.*'pubkey': <'\([0-9a-f]\{64\}\)'>, 'member_pubkey': <'[0-9a-f]*'>, 'display_name': <'bob'>.*/\1/p" "$T/reply")
[ -n "$BOB_KEY" ] || fail "bob's routing key not in ListPeers: $(head -c 600 "$T/reply")"
grep -q "'self': <true>" "$T/reply" || fail "alice is not marked self"
BOB_MEMBER=$(printf '%s' "$B" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["pubkey"])')

monitor bob "$T/bob.mon"
monitor alice "$T/alice.mon"

send() {  # send ID TO TEXT
        gcall_on alice Send demo "$2" "$3" "{'client_message_id': <'$1'>}" || fail "Send $1: $(cat "$T/reply")"
}
received() {  # received ID TEXT: bob's inbox has it
        gcall_on bob ListInbox demo "@a{sv} {}" && grep -q "'client_message_id': <'$1'>.*'body': <'$2'>" "$T/reply"
}
send dm-key "$BOB_MEMBER" "to your member key"
send dm-name bob "to your name"
send bcast '*' "to everyone"
TOPIC=$(broker_admin topic create demo general | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
send topic "#$TOPIC" "to the topic"
send group "@backend" "to the backend group"
for m in "dm-key:to your member key" "dm-name:to your name" "bcast:to everyone" "topic:to the topic" \
         "group:to the backend group"; do
        wait_until 10 received "${m%%:*}" "${m#*:}" || fail "bob did not receive ${m%%:*}: $(head -c 800 "$T/reply")"
done

# signals: MessageReceived on bob's bus, Delivered on alice's, once per message
sleep 0.5
PYTHONPATH="$(dirname "$0")" /usr/bin/python3 - "$T/bob.mon" "$T/alice.mon" <<'PY' || fail "signals"
import sys
from busmon import signals
received = [d[1]["client_message_id"]["data"] for d in signals(sys.argv[1], "MessageReceived")]
delivered = [d[1] for d in signals(sys.argv[2], "Delivered")]
want = ["bcast", "dm-key", "dm-name", "group", "topic"]
assert sorted(received) == want, received
assert sorted(delivered) == want, delivered
PY
gcall_on alice ListOutbox demo "{'status': <'done'>}"
[ "$(grep -o "'status': <'done'>" "$T/reply" | wc -l)" = 5 ] || fail "alice's outbox rows are not done: $(head -c 600 "$T/reply")"
# the DMs travelled sealed, the broadcast and topic post in the clear (as upstream does); the
# sender is named
inbox_json bob demo > "$T/inbox.json" || fail "ListInbox as JSON"
/usr/bin/python3 - "$T/inbox.json" <<'PY' || fail "inbox rows: $(head -c 1500 "$T/inbox.json")"
import json, sys
rows = {r["client_message_id"]["data"]: r for r in json.load(open(sys.argv[1]))["data"][0]}
enc = {k: json.loads(v["meta"]["data"])["encrypted"] for k, v in rows.items()}
assert enc == {"dm-key": True, "dm-name": True, "bcast": False, "topic": False, "group": False}, enc
assert all(r["sender_name"]["data"] == "alice" for r in rows.values()), [r["sender_name"] for r in rows.values()]
assert all(len(r["broker_message_id"]["data"]) > 0 for r in rows.values())
PY

# profile: alice's summary reaches bob's peer list
gcall_on alice SetProfile demo "{'summary': <'reviewing PR 42'>, 'status': <'working'>}" || fail "SetProfile: $(cat "$T/reply")"
wait_until 10 sh -c ". $(dirname "$0")/lib-peers.sh; peers_have bob demo 'reviewing PR 42'" || fail "bob does not see alice's summary"
# a profile over the broker's frame limit is a size error, and nothing of it goes out
big=$(head -c 70000 /dev/zero | tr '\0' s)
gcall_on alice SetProfile demo "{'status': <'idle'>, 'summary': <'$big'>}" && fail "a 70 KB summary was taken"
grep -q "Error.PayloadTooLarge: The profile is too large: its \"set_summary\" frame would be 700[0-9][0-9] bytes, the broker takes at most 65536" \
        "$T/reply" || fail "oversized SetProfile: $(head -c 300 "$T/reply")"
# a field given twice is refused, not "last wins"
gcall_on alice SetProfile demo "{'summary': <'a'>, 'summary': <'b'>}" && fail "a repeated profile field was taken"
grep -qF 'Profile field "summary" is given twice.' "$T/reply" || fail "repeated field: $(head -c 300 "$T/reply")"
sleep 0.5
. "$(dirname "$0")/lib-peers.sh"
peers_have bob demo 'reviewing PR 42' || fail "a refused SetProfile changed alice's summary"

# the second mesh works at the same time
gcall_on bob Send other '*' "hello other mesh" "{'client_message_id': <'o1'>}" || fail "Send on other"
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus gdbus call --session --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListInbox other '@a{sv} {}' | grep -q 'hello other mesh'" ||
        fail "alice did not receive on the second mesh"
# a permanent broker error ends the row as dead with SendFailed, and it is not retried
send bad-topic "#no-such-topic" "nobody reads this"
wait_until 10 sh -c "grep '\"member\":\"SendFailed\"' $T/alice.mon | grep -q bad-topic" || fail "no SendFailed for bad-topic"
gcall_on alice ListOutbox demo "{'status': <'dead'>}"
grep -q "'client_message_id': <'bad-topic'>" "$T/reply" || fail "bad-topic is not dead: $(head -c 400 "$T/reply")"
grep -q "topic_not_found" "$T/reply" || fail "the dead row does not say why"

# bob leaves: alice gets PeerLeft (the broker's presence grace is 0 here)
daemon_stop bob
wait_until 10 sh -c "grep '\"member\":\"PeerLeft\"' $T/alice.mon | grep -q bob" || fail "no PeerLeft for bob"
echo ok
