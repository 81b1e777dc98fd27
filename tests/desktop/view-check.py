#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""view-check.py FILE PYEXPR: exit 0 when PYEXPR (Python, on several lines if need be) is true of
the last "VIEW <json>" line model-driver.js wrote to FILE (as v), 1 otherwise (printing it).
view-check.py --count FILE: prints how many VIEW lines FILE has.
view-check.py --answer FILE CMD: prints the last "OK CMD <json>" or "ERR CMD ..." line's rest."""
import json
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--count":
        print(sum(1 for line in lines(sys.argv[2]) if line.startswith("VIEW ")))
    elif len(sys.argv) == 4 and sys.argv[1] == "--answer":
        hits = [line for line in lines(sys.argv[2]) if line.split(" ")[:2] in (["OK", sys.argv[3]], ["ERR", sys.argv[3]])]
        if not hits:
            sys.exit(1)
        print(hits[-1])
    elif len(sys.argv) == 3:
        views = [line[5:] for line in lines(sys.argv[1]) if line.startswith("VIEW ")]
        v = json.loads(views[-1]) if views else None
        if v is None or not eval(f"({sys.argv[2]})", {"v": v}):  # the test's own expression
            print(json.dumps(v, indent=1, ensure_ascii=False))
            sys.exit(1)
    else:
        raise SystemExit(__doc__)


main()
