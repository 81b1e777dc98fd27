#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# What claudemeshctl says when the daemon cannot use config.json (mode 0644 at its start): send
# names the config error instead of suggesting --mesh; status says the error once, in its own
# line, and does not claim that no meshes are configured. A first run's host state is not
# coloured as a warning.
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)"
chmod 644 "$T/config/config.json"
start_daemon

run 6 send bob hi
err_has "^claudemeshd cannot use its config: .*chmod 600"
! grep -q -- "--mesh" "$T/err" || fail "the --mesh hint follows a config error: $(cat "$T/err")"

run 0 status
out_has "^ *Config error: .*mode 0644"
[ "$(grep -c "mode 0644" "$T/out")" = 1 ] || fail "the config error is said more than once: $(cat "$T/out")"
out_has "^No meshes: claudemeshd cannot use its config"
! grep -q "No meshes are configured" "$T/out" || fail "status claims no meshes are configured"
# every field's colon in one column
[ "$(grep -E '^ *[A-Z][a-z]+( error)?: ' "$T/out" | awk '{ print index($0, ": ") }' | sort -u | wc -l)" = 1 ] ||
        fail "the fields are not aligned: $(cat "$T/out")"

# on a terminal: first-run is not yellow (a warning), mismatch-style colours are for problems
script -qec "$CLAUDEMESHCTL status" /dev/null > "$T/tty" 2>&1 || fail "status on a terminal: $(cat "$T/tty")"
grep -a "Host:" "$T/tty" | grep -q "first-run" || fail "no first-run host line: $(cat "$T/tty")"
! grep -a "Host:" "$T/tty" | grep -q "$(printf '\033\\[33m')" || fail "first-run shown in yellow"

chmod 600 "$T/config/config.json"
wait_until sh -c "[ \"\$(busctl --user get-property $DAEMON ConfigError)\" = 's \"\"' ]" || fail "ConfigError stays"
run 6 send bob hi
! grep -q "cannot use its config" "$T/err" || fail "a stale config hint: $(cat "$T/err")"
echo ok
