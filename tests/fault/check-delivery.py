# SPDX-License-Identifier: LGPL-2.1-or-later
"""check-delivery.py ANSWERS SENDER_BUS RECEIVER_BUS MESH COUNT TIMEOUT RECEIVER_INBOX_DB

Compares what the sender answered with what the receiver stored. ANSWERS holds send-client's
lines ("ok <client_message_id> <status> <broker id>", "error <id> <name> <message>"). Polls the
receiver's inbox until every answered id is there (read from its inbox.db, read-only: ListInbox
lists at most the newest 1,000 rows, and a slow machine makes a case send more) and the sender's ListOutbox until none of
their rows is pending, inflight or dead, or TIMEOUT seconds pass. Prints one line:
  answered=A received=R lost=L duplicated=D not_done=N errors=E
and exits 1, with details on stderr, unless COUNT ids were answered, none errored, none was lost
or duplicated and no row is left undone."""
import json
import os
import sqlite3
import subprocess
import sys
import time

answers, sender_bus, receiver_bus, mesh = sys.argv[1:5]
count, timeout = int(sys.argv[5]), float(sys.argv[6])
inbox_db = sys.argv[7]


def call(bus, method, *args):
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="unix:path=" + bus)
    out = subprocess.run(["busctl", "--user", "--json=short", "call", "org.claudemesh.Daemon1",
                          "/org/claudemesh/Daemon1", "org.claudemesh.Daemon1", method, "sa{sv}", mesh] + list(args),
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return [{k: v["data"] for k, v in row.items()} for row in json.loads(out.stdout)["data"][0]]


answered, errors = set(), []
for line in open(answers):
    parts = line.split()
    if parts and parts[0] == "ok":
        answered.add(parts[1])
    elif parts and parts[0] == "error":
        errors.append(line.strip())

end = time.monotonic() + timeout
received, not_done = [], sorted(answered)
while True:
    try:
        with sqlite3.connect("file:%s?mode=ro" % inbox_db, uri=True, timeout=5) as db:
            ids = [r[0] for r in db.execute("SELECT client_message_id FROM inbox")]
        received = [i for i in ids if i in answered]
    except sqlite3.Error as e:     # not created yet, or busy: ask again
        print("reading %s: %s" % (inbox_db, e), file=sys.stderr)
    lost = answered - set(received)
    if not lost:
        # the rows not done, status by status: ListOutbox gives at most 500 rows a call
        waiting = set()
        for status in ("pending", "inflight", "dead"):
            rows = call(sender_bus, "ListOutbox", "2", "status", "s", status, "limit", "u", "500")
            if rows is None:    # the call failed: count them all as waiting, and ask again
                waiting |= answered
            else:
                waiting |= {r["client_message_id"] for r in rows}
        not_done = sorted(answered & waiting)
        if not not_done:
            break
    if time.monotonic() > end:
        break
    time.sleep(0.2)

duplicated = len(received) - len(set(received))
print("answered=%d received=%d lost=%d duplicated=%d not_done=%d errors=%d" %
      (len(answered), len(set(received)), len(lost), duplicated, len(not_done), len(errors)))
problems = []
if len(answered) != count:
    problems.append("%d of %d sends answered" % (len(answered), count))
if errors:
    problems.append("errors: %s" % errors[:5])
if lost:
    problems.append("lost: %s" % sorted(lost)[:10])
if duplicated:
    problems.append("duplicated: %s" % sorted({i for i in received if received.count(i) > 1})[:10])
if not_done:
    problems.append("not done at the sender: %s" % not_done[:10])
if problems:
    print("; ".join(problems), file=sys.stderr)
    sys.exit(1)
