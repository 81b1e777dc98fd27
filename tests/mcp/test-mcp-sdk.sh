#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl mcp under an MCP client we did not write: the official SDK's Client and
# StdioClientTransport (npm @modelcontextprotocol/sdk) spawn it on two daemons linked through our
# broker. alice's send_message reaches bob's client as notifications/claude/channel with
# upstream's content and meta (a DM by name, a group, a topic at priority now); a peer joining
# and leaving; list_peers, set_status, read_inbox and a tool error; what arrives while bob has no
# MCP server is pushed once when one attaches (one summary line past ten) and never again, also
# while messages keep arriving during the attach.
. "$SOURCE_ROOT/tests/e2e/lib.sh"

if ! command -v node >/dev/null 2>&1; then
        echo "SKIP: node is not installed (Debian: apt-get install nodejs npm)"
        exit 77
fi
MCP_SDK_DIR=${CLAUDEMESH_MCP_SDK_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/claudemesh-tests/mcp-sdk}
if [ ! -f "$MCP_SDK_DIR/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
        if ! command -v npm >/dev/null 2>&1; then
                echo "SKIP: the MCP SDK is not in $MCP_SDK_DIR and npm is not installed to fetch it"
                exit 77
        fi
        "$SOURCE_ROOT/tools/install-mcp-sdk.sh" "$MCP_SDK_DIR" > /dev/null ||
                fail "cannot install @modelcontextprotocol/sdk with npm into $MCP_SDK_DIR"
fi
export MCP_SDK_DIR CLAUDEMESHCTL
CLIENT="$SOURCE_ROOT/tests/mcp/mcp-sdk-client.mjs"

broker_start --presence-grace 0
mesh_create demo > /dev/null
daemon_setup alice "$(member_entry demo alice)"
daemon_setup bob "$(member_entry demo bob)"
# bob is in the group "backend" (config.json's top-level groups, sent in the hello)
/usr/bin/python3 - "$T/bob/config/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["groups"] = [{"name": "backend", "role": "member"}]
json.dump(c, open(sys.argv[1], "w"))
PY
CAROL=$(member_entry demo carol)
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected bob demo
wait_until 10 sh -c ". $SOURCE_ROOT/tests/e2e/lib-peers.sh; peers_have alice demo bob" || fail "alice does not see bob"
TOPIC=$(broker_admin topic create demo general | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

# live: the clients run while carol joins and leaves when the script says it listens
node "$CLIENT" live "$TOPIC" > "$T/live.out" 2>&1 &
LIVE=$!
PIDS="$PIDS $LIVE"
wait_until 60 test -e "$T/join-ready" || fail "live part: $(cat "$T/live.out")"
daemon_setup carol "$CAROL"
daemon_start carol
wait_until 60 test -e "$T/leave-ready" || fail "live part: $(cat "$T/live.out")"
daemon_stop carol
wait "$LIVE" || fail "live part: $(cat "$T/live.out")"

unread() {  # unread DAEMON: the mesh's UnreadCount
        on "$1" busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo \
                org.claudemesh.Mesh1 UnreadCount | cut -d' ' -f2
}
# send_away FROM TO: alice sends "away FROM" … "away TO" while bob has no MCP server, and they arrive
send_away() {
        i=$1
        while [ "$i" -le "$2" ]; do
                on alice "$CLAUDEMESHCTL" send bob "away $((i - $1 + 1))" > /dev/null || fail "send away $i"
                i=$((i + 1))
        done
        wait_until 20 sh -c "[ \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user get-property org.claudemesh.Daemon1 /org/claudemesh/Daemon1/mesh/demo org.claudemesh.Mesh1 UnreadCount)\" = 'u $(($2 - $1 + 1))' ]" ||
                fail "bob's unread count is $(unread bob), not $(($2 - $1 + 1))"
}

# three messages while detached: each pushed once on attach, oldest first; a restart pushes nothing
send_away 1 3
node "$CLIENT" backlog 3 > "$T/out" 2>&1 || fail "backlog of 3: $(cat "$T/out")"
[ "$(unread bob)" = 0 ] || fail "the backlog was not marked read: $(unread bob)"
node "$CLIENT" backlog 0 > "$T/out" 2>&1 || fail "restart after the backlog: $(cat "$T/out")"

# twelve: one summary line, read_inbox lists them as unread, and a restart pushes nothing
send_away 1 12
node "$CLIENT" backlog 12 > "$T/out" 2>&1 || fail "backlog of 12: $(cat "$T/out")"
node "$CLIENT" backlog 0 > "$T/out" 2>&1 || fail "restart after the summary: $(cat "$T/out")"

# sent while bob's server attaches: each message once, pushed or counted, never both
node "$CLIENT" race 30 > "$T/out" 2>&1 || fail "messages racing the backlog: $(cat "$T/out")"
node "$CLIENT" backlog 0 > "$T/out" 2>&1 || fail "restart after the race: $(cat "$T/out")"
echo ok
