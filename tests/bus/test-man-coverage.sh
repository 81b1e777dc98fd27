#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# org.claudemesh.Daemon1(5) documents every member of the committed XML and every named error.
set -eu
page="$SOURCE_ROOT/man/org.claudemesh.Daemon1.5.scd"
missing=0
count=$(/usr/bin/python3 "$(dirname "$0")/dbus-api.py" members "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.xml" | wc -l)
[ "$count" -gt 0 ] || { echo "no members found in the XML" >&2; exit 1; }
for m in $(/usr/bin/python3 "$(dirname "$0")/dbus-api.py" members "$SOURCE_ROOT/dbus/org.claudemesh.Daemon1.xml"); do
        member=${m##*.}
        grep -q "^\*$member\*" "$page" || { echo "man page lacks $m" >&2; missing=1; }
done
# the daemon's own error names, from the one error table of the core
errors=$(sed -n 's/.*DBUS_PREFIX "\([A-Za-z]*\)".*/\1/p' "$SOURCE_ROOT/src/daemon/core/cm-error.c")
[ -n "$errors" ] || { echo "no error names found in cm-error.c" >&2; exit 1; }
for e in $errors; do
        grep -q "org.claudemesh.Daemon1.Error.$e" "$page" || { echo "man page lacks error $e" >&2; missing=1; }
done
for a in $(sed -n 's/.*<action id="\([^"]*\)".*/\1/p' "$SOURCE_ROOT/polkit/org.claudemesh.daemon1.policy"); do
        grep -q "$a" "$page" || { echo "man page lacks polkit action $a" >&2; missing=1; }
done
[ $missing = 0 ]
echo ok
