#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# For bench/session-memory: one process that registers COUNT sessions (ids PREFIX-0 …), waits
# (at most 120 s) until each one's broker connection is up, writes "COUNT CONNECTED" to OUT and
# stays alive until it is killed (the sessions live as long as this process).
# session-holders.py OUT MESH PREFIX COUNT
import os
import signal
import sys
import time

import dbus

out, mesh, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bus = dbus.SessionBus()
daemon = dbus.Interface(bus.get_object("org.claudemesh.Daemon1", "/org/claudemesh/Daemon1"),
                        "org.claudemesh.Daemon1")
paths = [daemon.RegisterSession(mesh, dbus.Dictionary({"display_name": "%s-%d" % (prefix, k),
                                                       "session_id": "%s-%d" % (prefix, k)}, signature="sv"))
         for k in range(count)]


def connected():
    n = 0
    for p in paths:
        state = bus.get_object("org.claudemesh.Daemon1", p).Get(
            "org.claudemesh.Session1", "State", dbus_interface="org.freedesktop.DBus.Properties")
        n += state == "connected"
    return n


deadline = time.monotonic() + 120
n = connected()
while n < count and time.monotonic() < deadline:
    time.sleep(0.5)
    n = connected()
with open(out + ".tmp", "w") as f:
    f.write("%d %d\n" % (count, n))
os.rename(out + ".tmp", out)
while True:
    signal.pause()
