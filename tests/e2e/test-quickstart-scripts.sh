#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's scripts around a fake `meson` on PATH: a failed build shows its errors and fails
# both scripts (run-tests.sh still ends with its "N passed, N failed" line); run-tests.sh turns
# -Dwerror=true (and warning_level 2) on in a build directory configured without it, streams the
# per-test lines and counts a failing test.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/cm-scripts.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir -p "$W/bin" "$W/build/meson-info"
touch "$W/build/build.ninja"
cat > "$W/bin/meson" <<'FAKE'
#!/bin/sh
echo "meson $*" >> "$FAKE_LOG"
case "$1" in
compile)
        [ "${FAKE_COMPILE:-ok}" = ok ] && exit 0
        echo "../src/daemon/main.c:12:1: error: expected ';' before '}' token"
        echo "ninja: build stopped: subcommand failed."
        exit 1 ;;
test)
        echo " 1/2 unit / test-one        OK              0.01s"
        echo " 2/2 unit / test-two        FAIL            0.02s   exit status 1"
        echo
        echo "Ok:                 1"
        echo "Expected Fail:      0"
        echo "Fail:               1"
        echo "Unexpected Pass:    0"
        echo "Skipped:            0"
        echo "Timeout:            0"
        exit 1 ;;
esac
exit 0
FAKE
chmod +x "$W/bin/meson"
export PATH="$W/bin:$PATH" FAKE_LOG="$W/log" BUILD_DIR="$W/build"

# a failed build: both scripts fail and show the compiler's error
echo '[{"name": "werror", "value": true}, {"name": "warning_level", "value": "2"}]' > "$W/build/meson-info/intro-buildoptions.json"
rc=0; FAKE_COMPILE=fail "$SRC/tools/demo.sh" > "$W/out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "demo.sh exited $rc on a failed build: $(cat "$W/out")"
grep -q "error: expected ';'" "$W/out" || fail "demo.sh hid the build error: $(cat "$W/out")"
grep -q "the build failed" "$W/out" || fail "demo.sh did not say the build failed"
rc=0; FAKE_COMPILE=fail "$SRC/tools/run-tests.sh" > "$W/out" 2>&1 || rc=$?
[ $rc = 1 ] || fail "run-tests.sh exited $rc on a failed build"
grep -q "error: expected ';'" "$W/out" || fail "run-tests.sh hid the build error: $(cat "$W/out")"
[ "$(tail -n 1 "$W/out")" = "0 passed, 1 failed, 0 skipped" ] || fail "run-tests.sh ended with: $(tail -n 1 "$W/out")"
! grep -q "^meson test" "$W/log" || fail "run-tests.sh ran the tests after a failed build"
echo "ok: a failed build fails both scripts and shows its errors"

# a build directory without -Dwerror=true (the demo's) is reconfigured; the tests stream
: > "$W/log"
echo '[{"name": "werror", "value": false}]' > "$W/build/meson-info/intro-buildoptions.json"
rc=0; "$SRC/tools/run-tests.sh" > "$W/out" 2>&1 || rc=$?
grep -qx "meson configure $W/build -Dwerror=true -Dwarning_level=2" "$W/log" ||
        fail "run-tests.sh did not turn werror on: $(cat "$W/log")"
grep -q "2/2 unit / test-two  *FAIL" "$W/out" || fail "run-tests.sh did not show the per-test lines"
[ $rc = 1 ] || fail "run-tests.sh exited $rc with a failing test"
[ "$(tail -n 1 "$W/out")" = "1 passed, 1 failed, 0 skipped" ] || fail "run-tests.sh ended with: $(tail -n 1 "$W/out")"
echo '[{"name": "werror", "value": true}, {"name": "warning_level", "value": "2"}]' > "$W/build/meson-info/intro-buildoptions.json"
: > "$W/log"
"$SRC/tools/run-tests.sh" > "$W/out" 2>&1 || true
! grep -q "^meson configure" "$W/log" || fail "run-tests.sh reconfigured a -Dwerror=true build directory"
# one set up with the warning level of before (3: -Wpedantic rejects "%m") is moved to 2
echo '[{"name": "werror", "value": true}, {"name": "warning_level", "value": "3"}]' > "$W/build/meson-info/intro-buildoptions.json"
: > "$W/log"
"$SRC/tools/run-tests.sh" > "$W/out" 2>&1 || true
grep -qx "meson configure $W/build -Dwerror=true -Dwarning_level=2" "$W/log" ||
        fail "run-tests.sh did not move warning_level to 2: $(cat "$W/log")"
echo "ok: run-tests.sh builds with -Dwerror=true, streams each test and counts the failure"
