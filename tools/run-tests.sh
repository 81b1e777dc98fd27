#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Configures (warnings are errors), builds and runs the whole test suite, one line per test as
# each ends; ends with one line "N passed, N failed[, N skipped]" and exits non-zero on any
# failure, a failed build included. Tests that need root (real polkitd, systemd --user,
# journald) skip themselves when run as another user.
# BUILD_DIR (default: build) picks the build directory; extra arguments go to `meson test`.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD_DIR:-build}
say() { printf '\n==> %s\n' "$*"; }
build_failed() {
        echo "run-tests: $1 failed (the errors are above)" >&2
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
}

if [ -f "$B/build.ninja" ]; then
        # The demo configures its build directory without -Dwerror=true, and a directory set up
        # before the project moved to warning_level 2 keeps 3, whose -Wpedantic rejects the "%m"
        # of log messages: set both.
        opts="$B/meson-info/intro-buildoptions.json"
        if ! grep -q '"name": "werror", "value": true' "$opts" 2>/dev/null ||
           ! grep -q '"name": "warning_level", "value": "2"' "$opts" 2>/dev/null; then
                meson configure "$B" -Dwerror=true -Dwarning_level=2 || build_failed "meson configure"
        fi
else
        say "Configuring the build in $B/ with -Dwerror=true"
        meson setup "$B" -Dwerror=true || build_failed "meson setup"
fi
say "Building (warnings are errors)"
meson compile -C "$B" || build_failed "the build"
say "Running the tests (one line per test as it ends; the logs of failures follow)"
rc_file="$B/test-rc.txt"
{ rc=0; meson test -C "$B" --print-errorlogs "$@" 2>&1 || rc=$?; echo "$rc" > "$rc_file"; } | tee "$B/test-output.txt"
rc=$(cat "$rc_file")
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
