# SPDX-License-Identifier: LGPL-2.1-or-later
"""wait-inbox.py BUS MESH PREFIX COUNT TIMEOUT

Polls ListInbox on the daemon at BUS until its messages whose client_message_id starts with
PREFIX- are exactly PREFIX-0 .. PREFIX-(COUNT-1), each once; exits 1 with what is missing or
extra when TIMEOUT seconds pass first."""
import json
import os
import subprocess
import sys
import time

bus, mesh, prefix, count, timeout = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
want = {"%s-%d" % (prefix, i) for i in range(count)}
env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="unix:path=" + bus)
end = time.monotonic() + timeout
ids = []
while True:
    out = subprocess.run(["busctl", "--user", "--json=short", "call", "org.claudemesh.Daemon1", "/org/claudemesh/Daemon1",
                          "org.claudemesh.Daemon1", "ListInbox", "sa{sv}", mesh, "1", "limit", "u", "1000"],
                         env=env, capture_output=True, text=True)
    if out.returncode == 0:
        rows = json.loads(out.stdout)["data"][0]
        ids = [r["client_message_id"]["data"] for r in rows if r["client_message_id"]["data"].startswith(prefix + "-")]
        if len(ids) == len(set(ids)) and set(ids) == want:
            sys.exit(0)
    if time.monotonic() > end:
        break
    time.sleep(0.2)
missing = sorted(want - set(ids))
extra = sorted(set(ids) - want)
print("%s: %d of %d received, %d duplicated, missing %s, extra %s" %
      (prefix, len(set(ids) & want), count, len(ids) - len(set(ids)), missing[:10], extra[:10]), file=sys.stderr)
sys.exit(1)
