#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The daemon follows config changes without a Reload: a config folder created after it started
# (the first join), a chmod of config.json, the folder removed and created again. A schema
# created from nothing is not reported as migrated. claudemeshd --bogus exits 2.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"

rc=0; "$CLAUDEMESHD" --bogus 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "claudemeshd --bogus exited $rc, not 2 as a command-line error"

has_mesh() { busctl --user tree org.claudemesh.Daemon1 2>/dev/null | grep -q "$MESH_PREFIX/$1"; }

# no config folder at all when the daemon starts
start_daemon
[ -n "$(prop ConfigError)" ] || [ "$(busctl --user tree org.claudemesh.Daemon1 | grep -c "$MESH_PREFIX/")" = 0 ] ||
        fail "meshes without a config"
grep -q "Not watching" "$T/daemon.log" && fail "the daemon gave up watching: $(cat "$T/daemon.log")"
acme=$("$MAKE_MESH_ENTRY" acme ws://127.0.0.1:7900/ws)
write_config "$T/config" "$acme"
wait_until has_mesh acme || fail "a config folder created after the start was not seen"

# chmod: 0644 is refused, 0600 accepted again, each without a Reload
chmod 644 "$T/config/config.json"
wait_until sh -c "busctl --user get-property $DAEMON ConfigError | grep -q 600" ||
        fail "chmod 644 not seen: ConfigError '$(prop ConfigError)'"
chmod 600 "$T/config/config.json"
wait_until sh -c "[ \"\$(busctl --user get-property $DAEMON ConfigError)\" = 's \"\"' ]" ||
        fail "chmod 600 not seen: ConfigError '$(prop ConfigError)'"
has_mesh acme || fail "acme gone after the chmod"

# the folder removed, then created again with another mesh
rm -rf "$T/config"
wait_until sh -c "! busctl --user tree org.claudemesh.Daemon1 | grep -q $MESH_PREFIX/acme" ||
        fail "the removed folder's mesh stays"
beta=$("$MAKE_MESH_ENTRY" beta ws://127.0.0.1:7900/ws)
write_config "$T/config" "$beta"
wait_until has_mesh beta || fail "a config folder created again was not seen"

! grep -q "migrated the schema" "$T/daemon.log" || fail "new stores reported as migrated: $(grep migrated "$T/daemon.log")"
stop_daemon
echo "ok: folder created, chmod, folder re-created, all without Reload; --bogus exits 2"
