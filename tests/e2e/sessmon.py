#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Reads lib.sh's monitor file and busctl --json output for the session tests.

sessmon.py count FILE PATH MEMBER [TEXT]   signals MEMBER sent from object PATH (whose text has TEXT)
sessmon.py peer-role JSONFILE PUBKEY       the peer_role of PUBKEY's rows in a ListPeers reply
sessmon.py rows JSONFILE [KEY=VALUE...]    how many ListInbox rows have every KEY=VALUE
"""
import json
import sys


def count(path, obj, member, text=None):
    n = 0
    for line in open(path):
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("type") != "signal" or m.get("path") != obj or m.get("member") != member:
            continue
        if text is None or text in json.dumps(m.get("payload")):
            n += 1
    return n


def rows(path):
    reply = json.load(open(path))
    return [{k: v["data"] for k, v in row.items()} for row in reply["data"][0]]


cmd = sys.argv[1]
if cmd == "count":
    print(count(*sys.argv[2:]))
elif cmd == "peer-role":
    print(" ".join(sorted(r.get("peer_role", "?") for r in rows(sys.argv[2]) if r["pubkey"] == sys.argv[3])))
elif cmd == "rows":
    want = dict(a.split("=", 1) for a in sys.argv[3:])
    print(sum(1 for r in rows(sys.argv[2]) if all(str(r.get(k)) == v for k, v in want.items())))
else:
    sys.exit("unknown command " + cmd)
