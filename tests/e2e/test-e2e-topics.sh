#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# "#name" resolves to the topic id the wire wants (wire-protocol §3.5), from the broker's
# topic_list: a topic created after the daemon connected is found by asking again; the stored
# target and the fingerprint's destination_ref are "#<id>", so "#name" and "#<id>" are the same
# request; an unknown topic goes dead with topic_not_found; with the broker gone, "#x" is taken
# as given. Needs a broker that answers topic_list.
. "$(dirname "$0")/lib.sh"

if ! grep -q topic_list_response "$CLAUDEMESH_BROKER"; then
        echo "SKIP: this claudemesh-broker does not answer topic_list"
        exit 77
fi

broker_start
mesh_create demo >/dev/null
daemon_setup alice "$(member_entry demo alice)"
daemon_start alice
wait_connected alice demo
monitor alice "$T/alice.mon"

# created after alice connected (and listed the topics): not in her cache yet
ID=$(broker_admin topic create demo general | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
[ -n "$ID" ] || fail "no topic id"

row() {  # row CLIENT_MESSAGE_ID: "status target last_error" of alice's row
        on alice busctl --user --json=short call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 \
                ListOutbox 'sa{sv}' demo 1 limit u 500 |
                /usr/bin/python3 -c 'import json,sys
for r in json.load(sys.stdin)["data"][0]:
    if r["client_message_id"]["data"] == sys.argv[1]:
        print(r["status"]["data"], r["target"]["data"], r["last_error"]["data"])' "$1"
}

gcall_on alice Send demo '#general' "hello topic" "{'client_message_id': <'t1'>}" || fail "Send #general: $(cat "$T/reply")"
grep -q "('t1', 'queued', '')" "$T/reply" || fail "Send #general: $(cat "$T/reply")"
[ "$(row t1 | cut -d' ' -f2)" = "#$ID" ] || fail "#general stored as $(row t1)"
wait_until 10 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 OutboxDepth)\" = 'u 0' ]" ||
        fail "t1 not delivered: $(row t1)"
[ "$(row t1 | cut -d' ' -f1)" = done ] || fail "t1: $(row t1)"

# the same request by id: the fingerprint covers "#<id>", so this is a repeat, not a conflict
gcall_on alice Send demo "#$ID" "hello topic" "{'client_message_id': <'t1'>}" || fail "Send #<id> repeat: $(cat "$T/reply")"
grep -q "('t1', 'done', '[^']\+')" "$T/reply" || fail "#<id> is not the same request as #general: $(cat "$T/reply")"

# a topic nobody created: asked again, then sent as given; the broker refuses, the row dies visibly
gcall_on alice Send demo '#nope' "lost" "{'client_message_id': <'t2'>}" || fail "Send #nope: $(cat "$T/reply")"
wait_until 10 sh -c "grep '\"member\":\"SendFailed\"' $T/alice.mon | grep -q t2" || fail "no SendFailed for #nope: $(row t2)"
row t2 | grep -q "^dead #nope topic_not_found" || fail "#nope: $(row t2)"

# the broker gone: "#x" is not resolved, it is taken as given (and waits for the link)
broker_stop
wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 State)\" != 's \"connected\"' ]" ||
        fail "alice did not notice the broker leave"
gcall_on alice Send demo '#later' "offline" "{'client_message_id': <'t3'>}" || fail "Send offline: $(cat "$T/reply")"
[ "$(row t3 | cut -d' ' -f1-2)" = "pending #later" ] || fail "offline #later: $(row t3)"
echo ok
