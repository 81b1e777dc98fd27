#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The generated unit passes `systemd-analyze verify` silently and scores at most 1.5 in
# `systemd-analyze security`. $1 is a copy of the unit whose ExecStart= points into the build
# tree, since verify checks that the binary exists.
set -eu
unit="$1"

if ! command -v systemd-analyze >/dev/null; then
        echo "systemd-analyze not installed; skipping"
        exit 77
fi

# A flood must not run the broker out of descriptors at the default 1024 (issue 11).
grep -q '^LimitNOFILE=65536$' "$unit" || { echo "no LimitNOFILE=65536 in $unit"; exit 1; }

out=$(systemd-analyze verify --man=no "$unit" 2>&1) || { echo "$out"; exit 1; }
if [ -n "$out" ]; then
        echo "systemd-analyze verify is not silent:"
        echo "$out"
        exit 1
fi

# --threshold is the exposure times ten; above it the command fails.
if ! out=$(systemd-analyze security --offline=true --threshold=15 "$unit" 2>&1); then
        echo "$out"
        exit 1
fi
echo "$out" | tail -n 1
