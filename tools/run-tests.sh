#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configures (warnings are errors), builds and runs the whole test suite; ends with one line
# "N passed, N failed[, N skipped]" and exits non-zero on any failure. Tests that need root
# (real polkitd, systemd --user, journald) skip themselves when run as another user.
# BUILD_DIR (default: build) picks the build directory; extra arguments go to `meson test`.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
[ -f "$B/build.ninja" ] || meson setup "$B" -Dwerror=true
meson compile -C "$B"
rc=0
meson test -C "$B" --print-errorlogs "$@" > "$B/test-output.txt" 2>&1 || rc=$?
cat "$B/test-output.txt"
count() {
        sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$B/test-output.txt" | tail -n 1
}
ok=$(count Ok); xfail=$(count 'Expected Fail'); fail=$(count Fail); xpass=$(count 'Unexpected Pass')
skipped=$(count Skipped); timeout=$(count Timeout)
passed=$(( ${ok:-0} + ${xfail:-0} ))
failed=$(( ${fail:-0} + ${xpass:-0} + ${timeout:-0} ))
if [ -z "$ok" ]; then
        echo "meson test did not report results" >&2
        failed=$(( failed + 1 ))
fi
[ "$rc" = 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "$passed passed, $failed failed, ${skipped:-0} skipped"
[ "$failed" = 0 ]
