#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl mcp under an MCP client we did not write: the official SDK's Client and
# StdioClientTransport (npm @modelcontextprotocol/sdk) spawn it on two daemons linked through our
# broker, each server a session of its own (--name, --session-id, --group). alice-code's
# send_message reaches bob-code's client as notifications/claude/channel with upstream's content
# and meta (a DM by name, a group, a topic at priority now); a peer joining and leaving;
# list_peers, set_status, read_inbox and a tool error; two servers on one daemon are two peers
# and a DM to one never reaches the other; bob's server killed: its presence ends at
# once; restarted with the same session id: the same key, and what was sent to it meanwhile is
# pushed once (or summed past ten) and never again, also while messages keep arriving during the
# attach.
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

# two servers on one daemon: two sessions, two peers
node "$CLIENT" pair > "$T/out" 2>&1 || fail "two sessions of one member: $(cat "$T/out")"
# bob's server killed and restarted with its session id (writes bob's session key to $T/bob-key)
node "$CLIENT" restart > "$T/out" 2>&1 || fail "restart: $(cat "$T/out")"
# sent to bob's session while away: three pushed once; twelve pushed or summed, each once
node "$CLIENT" backlog 3 > "$T/out" 2>&1 || fail "backlog of 3: $(cat "$T/out")"
node "$CLIENT" backlog 12 > "$T/out" 2>&1 || fail "backlog of 12: $(cat "$T/out")"
# sent while bob's server attaches: each message once, pushed or counted, never both
node "$CLIENT" race 30 > "$T/out" 2>&1 || fail "messages racing the backlog: $(cat "$T/out")"
echo ok
