#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Each program is linked only against what it uses: SQLite into the daemon and the broker, not
# into the sandboxed worker or claudemeshctl (no store there); libmicrohttpd into the daemon only
# when it serves the /v1 API (COMPAT=yes, from -Dcompat).
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v readelf > /dev/null || { echo "readelf (binutils) is not installed"; exit 77; }

# check PROGRAM LIBRARY yes|no: whether PROGRAM has LIBRARY among its DT_NEEDED entries
check() {
        needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
        [ -n "$needed" ] || fail "no DT_NEEDED entries read from $1"
        if echo "$needed" | grep -q "^$2\.so"; then have=yes; else have=no; fi
        [ "$have" = "$3" ] || fail "$(basename "$1") linked against $2: $have, want $3 (it needs: $(echo $needed))"
        echo "$(basename "$1") → $2: $have"
}
check "$CLAUDEMESHD" libsqlite3 yes
check "$CLAUDEMESHD" libmicrohttpd "$COMPAT"
check "$CLAUDEMESH_WORKER" libsqlite3 no
check "$CLAUDEMESHCTL" libsqlite3 no
[ -z "${CLAUDEMESH_BROKER:-}" ] || check "$CLAUDEMESH_BROKER" libsqlite3 yes
