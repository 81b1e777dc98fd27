#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The shipped unit passes `systemd-analyze verify` without a word and scores an exposure of at
# most 2.0 in `systemd-analyze security` (the system's own hostnamed scores 1.5).
set -eu
T=$(mktemp -d /tmp/cm-units.XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -m 0700 "$T/run"
sed "s|@libexecdir@/claudemeshd|$CLAUDEMESHD|" "$CLAUDEMESH_SERVICE_IN" > "$T/claudemesh.service"

cp "$SOURCE_ROOT/units/claudemesh.socket" "$T/"
XDG_RUNTIME_DIR="$T/run" systemd-analyze --user verify --man=no "$T/claudemesh.service" "$T/claudemesh.socket" > "$T/verify" 2>&1 ||
        { cat "$T/verify"; echo "FAIL: verify failed"; exit 1; }
# unknown keys and bad values only warn, so any output at all is a failure
[ ! -s "$T/verify" ] || { cat "$T/verify"; echo "FAIL: verify printed warnings"; exit 1; }

XDG_RUNTIME_DIR="$T/run" systemd-analyze --user security --offline=true --threshold=20 "$T/claudemesh.service" > "$T/security" 2>&1 ||
        { cat "$T/security"; echo "FAIL: exposure above 2.0"; exit 1; }
grep 'Overall exposure' "$T/security"

# the hardening block stays sorted, so additions are easy to review
sed -n '/^# Hardening/,/^\[Install\]/p' "$CLAUDEMESH_SERVICE_IN" | grep -v '^#' | grep -v '^\[' | grep . > "$T/block"
sort -c "$T/block" || { echo "FAIL: hardening block not sorted"; exit 1; }
echo ok
