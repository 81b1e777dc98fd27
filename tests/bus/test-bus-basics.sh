#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The daemon on a private session bus without polkit: objects, properties, config errors and
# reloads, PropertiesChanged/InterfacesAdded/InterfacesRemoved, the no-polkit fallback.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # no polkit here

acme=$("$MAKE_MESH_ENTRY" acme ws://127.0.0.1:7900/ws)
beta=$("$MAKE_MESH_ENTRY" beta wss://broker.example/ws)
bad=$("$MAKE_MESH_ENTRY" gamma | sed 's/"pubkey":"[0-9a-f]*"/"pubkey":"NOT-HEX"/')
write_config "$T/config" "$acme" "$beta" "$bad"
start_daemon

[ "$(prop Version)" = "$EXPECTED_VERSION" ] || fail "Version is $(prop Version)"
[ "$(prop HostFingerprintState)" = "first-run" ] || fail "HostFingerprintState $(prop HostFingerprintState)"
[ "$(prop ConfigFile)" = "$T/config/config.json" ] || fail "ConfigFile $(prop ConfigFile)"
[ "$(prop StateDirectory)" = "$T/state/claudemesh" ] || fail "StateDirectory $(prop StateDirectory)"
[ -f "$T/state/claudemesh/host_fingerprint.json" ] || fail "host_fingerprint.json not written"
[ "$(stat -c %a "$T/state/claudemesh/host_fingerprint.json")" = 600 ] || fail "host_fingerprint.json mode"
[ "$(stat -c %a "$T/state/claudemesh")" = 700 ] || fail "state dir mode"

# one object per entry with a usable slug; the broken one is there, marked invalid
busctl --user tree org.claudemesh.Daemon1 > "$T/tree"
for s in acme beta gamma; do grep -q "$MESH_PREFIX/$s" "$T/tree" || fail "no object for $s"; done
[ "$(mesh_prop acme State)" = offline ] || fail "acme State $(mesh_prop acme State)"
[ "$(mesh_prop acme Slug)" = acme ] || fail "acme Slug"
[ "$(mesh_prop beta BrokerUrl)" = "wss://broker.example/ws" ] || fail "beta BrokerUrl"
[ "$(mesh_prop acme MemberPubkey)" = "$(printf '%s' "$acme" | sed 's/.*"pubkey":"\([0-9a-f]*\)".*/\1/')" ] ||
        fail "acme MemberPubkey"
[ "$(mesh_prop gamma State)" = invalid ] || fail "gamma State $(mesh_prop gamma State)"
mesh_prop gamma LastError | grep -q 'mesh "gamma".*pubkey' || fail "gamma LastError: $(mesh_prop gamma LastError)"
prop ConfigError | grep -q "config.json.*gamma" || fail "ConfigError: $(prop ConfigError)"
prop Status | grep -q "3 meshes: acme (offline) beta (offline) gamma (invalid)" || fail "Status: $(prop Status)"

# ObjectManager lists the same objects with their properties
busctl --user call org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.freedesktop.DBus.ObjectManager \
        GetManagedObjects > "$T/objects"
grep -q '"org.claudemesh.Mesh1"' "$T/objects" || fail "GetManagedObjects: $(cat "$T/objects")"
[ "$(grep -o "$MESH_PREFIX/[a-z]*" "$T/objects" | sort -u | wc -l)" = 3 ] || fail "GetManagedObjects count"

# Reload is allowed without polkit for our own uid, and reports the broken entry
expect_error org.claudemesh.Daemon1.Error.ConfigInvalid Reload
grep -q 'gamma' "$T/last-reply" || fail "Reload error does not name the mesh"

# AcceptHost needs polkit: refused with a reason
expect_error org.claudemesh.Daemon1.Error.AuthorizationUnavailable AcceptHost
grep -q 'org.claudemesh.daemon1.accept-host' "$T/last-reply" || fail "no action named: $(cat "$T/last-reply")"

# Editing the file reloads it by itself: signals for the changed, added and removed objects
busctl --user monitor org.claudemesh.Daemon1 > "$T/monitor" 2>&1 &
MON=$!; CLEANUP_PIDS="$CLEANUP_PIDS $MON"
sleep 0.3
delta=$("$MAKE_MESH_ENTRY" delta)
beta2=$(printf '%s' "$beta" | sed 's|wss://broker.example/ws|wss://other.example/ws|')
write_config "$T/config" "$acme" "$beta2" "$delta"
wait_until sh -c "[ \"\$(busctl --user get-property $DAEMON ConfigError)\" = 's \"\"' ]" ||
        fail "ConfigError not cleared: $(prop ConfigError)"
[ "$(mesh_prop beta BrokerUrl)" = "wss://other.example/ws" ] || fail "beta BrokerUrl not reloaded"
[ "$(mesh_prop delta State)" = offline ] || fail "delta not added"
busctl --user tree org.claudemesh.Daemon1 | grep -q "$MESH_PREFIX/gamma" && fail "gamma still exported"
call_manager Reload || fail "Reload failed on a good config: $(cat "$T/last-reply")"
sleep 0.3
kill $MON
grep -q 'Member=InterfacesAdded' "$T/monitor" || fail "no InterfacesAdded"
grep -q 'Member=InterfacesRemoved' "$T/monitor" || fail "no InterfacesRemoved"
grep 'Member=PropertiesChanged' "$T/monitor" | grep -q "Path=$MESH_PREFIX/beta " || fail "no PropertiesChanged for beta"
grep 'Member=PropertiesChanged' "$T/monitor" | grep -q "Path=/org/claudemesh/Daemon1 " ||
        fail "no PropertiesChanged on the manager (ConfigError changed)"

# A file that does not parse keeps the meshes and says why
printf '{"meshes": [' > "$T/config/config.json"
expect_error org.claudemesh.Daemon1.Error.ConfigInvalid Reload
grep -q "$T/config/config.json" "$T/last-reply" || fail "parse error does not name the file"
[ "$(mesh_prop acme State)" = offline ] || fail "acme dropped on a broken file"
prop Status | grep -q "config error" || fail "Status does not mention the error: $(prop Status)"

# Mode 0644 is refused with the command that fixes it
write_config "$T/config" "$acme"
chmod 644 "$T/config/config.json"
expect_error org.claudemesh.Daemon1.Error.ConfigInvalid Reload
grep -q "chmod 600" "$T/last-reply" || fail "mode error without the fix: $(cat "$T/last-reply")"
chmod 600 "$T/config/config.json"
call_manager Reload || fail "Reload after chmod: $(cat "$T/last-reply")"

# SIGHUP reloads too
write_config "$T/config" "$acme" "$beta"
kill -HUP "$DAEMON_PID"
wait_until sh -c "busctl --user tree org.claudemesh.Daemon1 | grep -q $MESH_PREFIX/beta" || fail "SIGHUP did not reload"

stop_daemon

# A changed host: the stored fingerprint no longer matches, the meshes stay detached
fp="$T/state/claudemesh/host_fingerprint.json"
sed -i 's/"fingerprint": *"[0-9a-f]*"/"fingerprint": "0000000000000000000000000000000000000000000000000000000000000000"/' "$fp"
start_daemon
[ "$(prop HostFingerprintState)" = mismatch ] || fail "HostFingerprintState $(prop HostFingerprintState)"
[ "$(mesh_prop acme State)" = detached ] || fail "acme State $(mesh_prop acme State)"
mesh_prop acme LastError | grep -qi "accept-host" || fail "detached LastError: $(mesh_prop acme LastError)"
prop Status | grep -q "Host fingerprint mismatch" || fail "Status: $(prop Status)"
grep -q "0000000000000000" "$fp" || fail "a mismatch must not overwrite the stored fingerprint"
stop_daemon
grep -q '^<4>Host fingerprint mismatch' "$T/daemon.log" || fail "no mismatch warning on stderr"
echo "ok"
