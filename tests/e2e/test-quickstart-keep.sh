#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/demo.sh --keep leaves the broker and both daemons running with an environment file that
# reaches them; tools/demo.sh --stop stops every process it left and removes its files.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/cm-keep.XXXXXX)
export DEMO_KEPT="$W/kept.env"
cleanup() { [ -f "$DEMO_KEPT" ] && "$SRC/tools/demo.sh" --stop >/dev/null 2>&1; rm -rf "$W"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; cat "$W/out" >&2 2>/dev/null; exit 1; }

"$SRC/tools/demo.sh" --no-build --keep > "$W/out" 2>&1 || fail "demo.sh --keep failed"
[ -f "$DEMO_KEPT" ] || fail "no $DEMO_KEPT"
. "$DEMO_KEPT"
for p in $DEMO_PIDS; do kill -0 "$p" || fail "process $p is not running"; done
[ "$(echo $DEMO_PIDS | wc -w)" = 5 ] || fail "expected the broker, two daemons and two buses: $DEMO_PIDS"
env_file=$(sed -n 's/^ *\. \(.*alice\.env\)$/\1/p' "$W/out")
[ -f "$env_file" ] || fail "demo.sh --keep printed no environment file for alice"

# by hand, as the printed lines say: alice's status and a send to bob, who receives it
(. "$env_file"; claudemeshctl --no-ask-password status) > "$W/status" || fail "claudemeshctl status: $(cat "$W/status")"
grep -q "demo" "$W/status" || fail "alice's status names no mesh demo: $(cat "$W/status")"
(. "$env_file"; claudemeshctl --no-ask-password send --mesh demo bob 'by hand') > /dev/null || fail "send by hand failed"
bob_env=${env_file%alice.env}bob.env
for _ in $(seq 100); do
        (. "$bob_env"; claudemeshctl --no-ask-password inbox --mesh demo) | grep -q 'by hand' && break
        sleep 0.1
done
(. "$bob_env"; claudemeshctl --no-ask-password inbox --mesh demo) | grep -q 'by hand' || fail "bob did not receive it"

"$SRC/tools/demo.sh" --keep > "$W/out2" 2>&1 && fail "a second --keep ran while one is kept"
"$SRC/tools/demo.sh" --stop > "$W/out" 2>&1 || fail "demo.sh --stop failed"
for p in $DEMO_PIDS; do ! kill -0 "$p" 2>/dev/null || fail "process $p still runs after --stop"; done
[ ! -e "$DEMO_DIR" ] || fail "$DEMO_DIR is left"
[ ! -e "$DEMO_KEPT" ] || fail "$DEMO_KEPT is left"
rc=0; "$SRC/tools/demo.sh" --stop > /dev/null 2>&1 || rc=$?
[ $rc = 1 ] || fail "--stop with nothing kept exited $rc"
echo "ok: --keep left 5 processes reachable by hand, --stop stopped them all"
