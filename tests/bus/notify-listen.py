# SPDX-License-Identifier: LGPL-2.1-or-later
"""notify-listen.py SOCKET OUT: a stand-in for systemd's notify socket.

Records every sd_notify datagram in OUT, one per line. When READY=1 arrives it asks the bus
right away whether org.claudemesh.Daemon1 is owned and appends "name-owned=yes|no", so the
test can tell that readiness came after the name. Exits after STOPPING=1 (or 30 s).
"""
import os
import socket
import subprocess
import sys
import time

path, out_path = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
open(out_path + ".bound", "w").close()
end = time.monotonic() + 30
with open(out_path, "w", buffering=1) as out:
    while time.monotonic() < end:
        try:
            msg = s.recv(4096).decode()
        except socket.timeout:
            continue
        out.write(msg.replace("\n", "|") + "\n")
        if "READY=1" in msg.split("\n"):
            owned = subprocess.run(["busctl", "--user", "status", "org.claudemesh.Daemon1"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
            out.write("name-owned=%s\n" % ("yes" if owned else "no"))
        if "STOPPING=1" in msg.split("\n"):
            break
os.unlink(path)
