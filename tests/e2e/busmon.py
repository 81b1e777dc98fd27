# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reads what `busctl monitor --json=short` wrote (lib.sh's monitor)."""
import json


def signals(path, member):
    """The argument lists of every signal named member, in order."""
    out = []
    for line in open(path):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("member") == member:
            out.append(m["payload"]["data"])
    return out
