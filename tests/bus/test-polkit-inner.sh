#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Run by test-polkit.sh as the unprivileged test user: one round of polkit checks.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" != 0 ] || fail "must not run as root: polkit would allow everything"

start_session_bus
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"

# http_send ID: POST /v1/send on the compat socket; "<status> <body>" in $T/http
http_send() {
        curl -sS --max-time 10 --unix-socket "$T/config/daemon/daemon.sock" -o "$T/http.body" -w '%{http_code}' \
                -d "{\"to\":\"*\",\"message\":\"hi\",\"client_message_id\":\"$1\"}" http://localhost/v1/send > "$T/http"
        printf ' %s' "$(cat "$T/http.body")" >> "$T/http"
}

case "$1" in
rules)
        # rules say NO to reload (default yes) and YES to accept-host (default auth_self_keep)
        start_daemon
        stop_daemon
        sed -i 's/"fingerprint": *"[0-9a-f]*"/"fingerprint": "1111111111111111111111111111111111111111111111111111111111111111"/' \
                "$T/state/claudemesh/host_fingerprint.json"
        start_daemon
        [ "$(mesh_prop acme State)" = detached ] || fail "acme State $(mesh_prop acme State)"
        expect_error org.freedesktop.DBus.Error.AccessDenied Reload
        grep -q "org.claudemesh.daemon1.reload" "$T/last-reply" || fail "denial does not name the action"
        call_manager AcceptHost || fail "AcceptHost refused: $(cat "$T/last-reply")"
        [ "$(prop HostFingerprintState)" = match ] || fail "HostFingerprintState $(prop HostFingerprintState)"
        [ "$(mesh_prop acme State)" = offline ] || fail "acme did not attach: $(mesh_prop acme State)"
        grep -q 1111111111111111 "$T/state/claudemesh/host_fingerprint.json" && fail "fingerprint not rewritten"
        # a refused Send writes nothing; reading is still allowed
        if gcall Send acme '*' hi "{'client_message_id': <'p1'>}"; then fail "Send allowed against the rule"; fi
        grep -q "GDBus.Error:org.freedesktop.DBus.Error.AccessDenied: Not authorized by polkit for action org.claudemesh.daemon1.send" \
                "$T/last-reply" || fail "Send denial: $(cat "$T/last-reply")"
        # the /v1 route asks polkit the same question, for the uid and pid behind the socket
        http_send h1
        grep -q '^403 {"error":"Not authorized by polkit for action org.claudemesh.daemon1.send","dbus_error":"org.freedesktop.DBus.Error.AccessDenied"}$' \
                "$T/http" || fail "HTTP send denial: $(cat "$T/http")"
        gcall ListOutbox acme "@a{sv} {}" || fail "ListOutbox refused: $(cat "$T/last-reply")"
        grep -q "^(@aa{sv} \[\],)$" "$T/last-reply" || fail "a refused Send wrote a row: $(cat "$T/last-reply")"
        stop_daemon
        grep -q '^<5>Refused org.claudemesh.daemon1.reload' "$T/daemon.log" || fail "denial not logged"
        ;;
defaults)
        start_daemon
        call_manager Reload || fail "Reload refused under the default policy: $(cat "$T/last-reply")"
        expect_error org.freedesktop.DBus.Error.InteractiveAuthorizationRequired AcceptHost
        grep -q "org.claudemesh.daemon1.accept-host" "$T/last-reply" || fail "no action in the message"
        # allowing interaction does not help without an authentication agent: a plain denial
        if gdbus call --session --interactive --dest org.claudemesh.Daemon1 --object-path /org/claudemesh/Daemon1 \
                --method org.claudemesh.Daemon1.AcceptHost > "$T/out" 2>&1; then
                fail "AcceptHost allowed without authentication"
        fi
        grep -q "DBus.Error.AccessDenied: Not authorized by polkit for action org.claudemesh.daemon1.accept-host" "$T/out" ||
                fail "interactive denial: $(cat "$T/out")"
        # the parked calls did not block the loop: properties answer at once
        [ "$(prop HostFingerprintState)" = first-run ] || fail "HostFingerprintState $(prop HostFingerprintState)"
        # every send-path method through polkitd's defaults
        gcall Send acme '*' hi "{'client_message_id': <'p1'>}" || fail "Send: $(cat "$T/last-reply")"
        grep -q "('p1', 'queued', '')" "$T/last-reply" || fail "Send: $(cat "$T/last-reply")"
        http_send h1
        grep -q '^202 {"client_message_id":"h1","status":"queued"}$' "$T/http" || fail "HTTP send: $(cat "$T/http")"
        gcall ListOutbox acme "{'status': <'pending'>}" || fail "ListOutbox: $(cat "$T/last-reply")"
        row=$(sed -n "s/.*'id': <'\([0-9A-Z]\{26\}\)'>.*/\1/p" "$T/last-reply")
        [ -n "$row" ] || fail "ListOutbox: $(cat "$T/last-reply")"
        gcall Requeue "$row" "{'client_message_id': <'p2'>}" || fail "Requeue: $(cat "$T/last-reply")"
        gcall ListInbox acme "@a{sv} {}" || fail "ListInbox: $(cat "$T/last-reply")"
        stop_daemon
        ;;
hung-polkitd)
        start_daemon
        http_send h1
        grep -q '^503 {"error":"polkit did not answer in time for org.claudemesh.daemon1.send; nothing was done, try again","dbus_error":"org.freedesktop.DBus.Error.Timeout"}$' \
                "$T/http" || fail "HTTP send with polkitd stopped: $(cat "$T/http")"
        [ "$(sql outbox.db "SELECT count(*) FROM outbox")" = 0 ] || fail "a send refused for a timeout was stored"
        # stopping while a request waits for polkit: the daemon exits cleanly, the client is let go
        http_send h2 &
        client=$!
        sleep 0.5
        stop_daemon
        wait "$client" && fail "a request that waited for polkit was answered as if done: $(cat "$T/http")"
        [ "$(sql outbox.db "SELECT count(*) FROM outbox")" = 0 ] || fail "a send stored while the daemon stopped"
        ;;
no-polkitd)
        start_daemon
        call_manager Reload || fail "Reload refused without polkitd: $(cat "$T/last-reply")"
        gcall Send acme '*' hi "@a{sv} {}" || fail "Send refused without polkitd: $(cat "$T/last-reply")"
        http_send h1
        grep -q '^202 ' "$T/http" || fail "HTTP send refused without polkitd: $(cat "$T/http")"
        expect_error org.claudemesh.Daemon1.Error.AuthorizationUnavailable AcceptHost
        stop_daemon
        ;;
*)
        fail "unknown round $1"
        ;;
esac
echo "round $1 ok"
