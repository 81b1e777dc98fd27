# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the claudemeshctl tests (sourced), on top of tests/bus/lib.sh: CLAUDEMESHCTL and the
# bus test variables come from tests/ctl/meson.build.
. "$SOURCE_ROOT/tests/bus/lib.sh"

# run CODE ARG...: claudemeshctl must exit with CODE; its output is in $T/out and $T/err
run() {
        want=$1; shift
        rc=0
        "$CLAUDEMESHCTL" "$@" > "$T/out" 2> "$T/err" || rc=$?
        [ "$rc" = "$want" ] || fail "claudemeshctl $* exited $rc, expected $want; stdout: $(cat "$T/out"); stderr: $(cat "$T/err")"
}

# out_has / err_has PATTERN: grep -E on the last run's output
out_has() { grep -Eq -- "$1" "$T/out" || fail "stdout lacks /$1/: $(cat "$T/out")"; }
out_has_text() { grep -Fq -- "$1" "$T/out" || fail "stdout lacks \"$1\": $(cat "$T/out")"; }
err_has() { grep -Eq -- "$1" "$T/err" || fail "stderr lacks /$1/: $(cat "$T/err")"; }

# json PYTHON: runs PYTHON with d = the last run's stdout parsed as JSON; an assert failing fails
json() {
        /usr/bin/python3 -c "import json, os, sys
d = json.load(open(sys.argv[1]))
$1" "$T/out" || fail "JSON check failed: $1; stdout: $(cat "$T/out")"
}

# has_method NAME: the running daemon offers Daemon1.NAME
has_method() {
        busctl --user introspect org.claudemesh.Daemon1 /org/claudemesh/Daemon1 org.claudemesh.Daemon1 |
                grep -q "^\.$1 \+method"
}

# expect_unknown_method CMD ARG...: a command whose method an older daemon lacks says so, exit 1
expect_unknown_method() {
        run 1 "$@"
        err_has "the running claudemeshd does not offer it \(Unknown method"
        err_has "systemctl --user restart claudemesh"
}
