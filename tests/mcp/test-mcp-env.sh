#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl mcp takes its session's name and id from CLAUDEMESH_DISPLAY_NAME and
# CLAUDEMESH_SESSION_ID, as upstream's launcher hands them to a Claude Code session, so a
# wrapper made for upstream keeps one identity per Claude Code session: the same id, the same
# key. --name and --session-id win over them; an empty variable counts as unset.
. "$SOURCE_ROOT/tests/e2e/lib.sh"

broker_start
mesh_create demo > /dev/null
daemon_setup bob "$(member_entry demo bob)"
daemon_start bob
wait_connected bob demo

sessions() {  # one line per session object: "<Id> <DisplayName> <PublicKey>"
        for path in $(on bob busctl --user --list tree org.claudemesh.Daemon1 | grep '/session/'); do
                on bob busctl --user --json=short get-property org.claudemesh.Daemon1 "$path" org.claudemesh.Session1 \
                        Id DisplayName PublicKey |
                        /usr/bin/python3 -c 'import json,sys; print(" ".join(json.loads(l)["data"] for l in sys.stdin))'
        done
}

# mcp_start ARGS...: a server whose stdin stays open (a fifo held by this shell) until mcp_stop
mcp_start() {
        rm -f "$T/in"
        mkfifo "$T/in"
        on bob "$CLAUDEMESHCTL" mcp --no-tools "$@" < "$T/in" > "$T/mcp.out" 2> "$T/mcp.err" &
        MCP=$!
        PIDS="$PIDS $MCP"
        exec 7> "$T/in"
}
mcp_stop() {
        exec 7>&-
        wait "$MCP" || fail "claudemeshctl mcp exited with $?: $(cat "$T/mcp.err")"
        wait_until 10 sh -c "[ -z \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user --list tree org.claudemesh.Daemon1 | grep /session/)\" ]" ||
                fail "the session outlived its server"
}

CLAUDEMESH_SESSION_ID=cc-7f3a CLAUDEMESH_DISPLAY_NAME=reviewer mcp_start
wait_until 10 sh -c "[ -n \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user --list tree org.claudemesh.Daemon1 | grep /session/)\" ]" ||
        fail "no session: $(cat "$T/mcp.err")"
FIRST=$(sessions)
echo "$FIRST" | grep -Eq '^cc-7f3a reviewer [0-9a-f]{64}$' || fail "the session from the environment: $FIRST"
mcp_stop

# again with the same id: the same key; the options win over the environment
CLAUDEMESH_SESSION_ID=cc-7f3a CLAUDEMESH_DISPLAY_NAME=reviewer mcp_start --name lead
wait_until 10 sh -c "[ -n \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user --list tree org.claudemesh.Daemon1 | grep /session/)\" ]" ||
        fail "no session: $(cat "$T/mcp.err")"
AGAIN=$(sessions)
[ "$AGAIN" = "cc-7f3a lead ${FIRST##* }" ] || fail "the same id must give the same key, --name winning: $AGAIN (was $FIRST)"
mcp_stop

CLAUDEMESH_SESSION_ID=cc-7f3a mcp_start --session-id other
wait_until 10 sh -c "[ -n \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user --list tree org.claudemesh.Daemon1 | grep /session/)\" ]" ||
        fail "no session: $(cat "$T/mcp.err")"
case "$(sessions)" in
"other "*) ;;
*) fail "--session-id must win over CLAUDEMESH_SESSION_ID: $(sessions)" ;;
esac
mcp_stop

# empty: a fresh identity, named from config.json
CLAUDEMESH_SESSION_ID= CLAUDEMESH_DISPLAY_NAME= mcp_start
wait_until 10 sh -c "[ -n \"\$(DBUS_SESSION_BUS_ADDRESS=unix:path=$T/bob/bus busctl --user --list tree org.claudemesh.Daemon1 | grep /session/)\" ]" ||
        fail "no session: $(cat "$T/mcp.err")"
set -- $(sessions)
[ "$1" != cc-7f3a ] && [ "$2" = bob ] || fail "empty variables must count as unset: $*"
mcp_stop
echo ok
