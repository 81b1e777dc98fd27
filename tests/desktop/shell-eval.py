#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs JavaScript in the test's gnome-shell (org.gnome.Shell.Eval, --unsafe-mode) on the session
bus of DBUS_SESSION_BUS_ADDRESS and prints its result.

shell-eval.py JS                 prints what JS evaluates to (as JSON); exit 1 when it threw
shell-eval.py --state JS PYEXPR  JS's value (as JSON) exit 0 when the Python expression
                                 PYEXPR is true of it (as s), 1 when false (the JSON is printed)"""
import json
import subprocess
import sys


def shell_eval(js):
    out = subprocess.run(["busctl", "--user", "--json=short", "call", "org.gnome.Shell", "/org/gnome/Shell",
                          "org.gnome.Shell", "Eval", "s", js], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise SystemExit(f"Eval: {out.stderr.strip()}")
    ok, result = json.loads(out.stdout)["data"]
    if not ok:
        raise SystemExit(f"Eval threw: {result}")
    return result


def main():
    if len(sys.argv) == 2:
        print(shell_eval(sys.argv[1]))
    elif len(sys.argv) == 4 and sys.argv[1] == "--state":
        s = json.loads(shell_eval(sys.argv[2]))
        if not eval(f"({sys.argv[3]})", {"s": s}):  # the test's own expression, on several lines
            print(json.dumps(s, indent=1, ensure_ascii=False))
            sys.exit(1)
    else:
        raise SystemExit(__doc__)


main()
