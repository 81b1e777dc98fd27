#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# A session's owner process for the tests: registers a session on the daemon of
# $DBUS_SESSION_BUS_ADDRESS, writes "<object path> <public key>" to OUT and stays alive until it
# is killed (the session lives as long as this process).
# session-holder.py OUT MESH NAME [SESSION_ID [GROUP...]]; NAME "-" registers without a display_name
import signal
import sys

import dbus

out, mesh, name = sys.argv[1:4]
options = {"cwd": "/tmp"}
if name != "-":
    options["display_name"] = name
if len(sys.argv) > 4:
    options["session_id"] = sys.argv[4]
if len(sys.argv) > 5:
    options["groups"] = dbus.Array(sys.argv[5:], signature="s")
bus = dbus.SessionBus()
daemon = dbus.Interface(bus.get_object("org.claudemesh.Daemon1", "/org/claudemesh/Daemon1"),
                        "org.claudemesh.Daemon1")
try:
    path = daemon.RegisterSession(mesh, dbus.Dictionary(options, signature="sv"))
except dbus.DBusException as e:
    with open(out + ".tmp", "w") as f:
        f.write("ERROR %s %s\n" % (e.get_dbus_name(), e.get_dbus_message()))
else:
    key = bus.get_object("org.claudemesh.Daemon1", path).Get(
        "org.claudemesh.Session1", "PublicKey", dbus_interface="org.freedesktop.DBus.Properties")
    with open(out + ".tmp", "w") as f:
        f.write("%s %s\n" % (path, key))
# written whole, then renamed: the test never reads half a line
import os
os.rename(out + ".tmp", out)
while True:
    signal.pause()
