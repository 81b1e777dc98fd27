#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""claudemesh-worker --sandbox-probe: the real sandbox, then open(), execve(), an AF_UNIX
connect and new AF_UNIX sockets must all fail, while an internet socket still works. As the
current user and, when root, again as nobody (unprivileged: Landlock and seccomp need
NO_NEW_PRIVS there)."""

import os
import shutil
import subprocess
import sys

WORKER = os.environ.get("CLAUDEMESH_WORKER", "claudemesh-worker")
ATTEMPTS = ["open", "open-write", "connect-unix", "socket-unix", "socketpair-unix", "execve"]


def probe(prefix, who):
    # stdout and stderr are pipes, as under the daemon (RLIMIT_FSIZE=0 then applies).
    p = subprocess.run([*prefix, WORKER, "--sandbox-probe"], capture_output=True, text=True, timeout=30)
    lines = dict(line.split(": ", 1) for line in p.stdout.splitlines() if ": " in line)
    print(f"-- as {who} (exit {p.returncode})\n{p.stdout}{p.stderr}", end="", flush=True)
    assert p.returncode == 0, (who, p.returncode, p.stdout, p.stderr)
    assert lines.get("sandbox", "").startswith("applied"), lines
    for a in ATTEMPTS:
        assert lines.get(a, "").startswith("blocked ("), (who, a, lines)
    assert lines.get("socket-inet") == "allowed (expected)", lines


def main():
    probe([], f"uid {os.getuid()}")
    if os.getuid() == 0:
        setpriv = shutil.which("setpriv")
        if not setpriv:
            print("-- setpriv not found: not probing as nobody")
        elif subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-x", WORKER]).returncode:
            print(f"-- nobody cannot execute {WORKER}: not probing as nobody")
        else:
            probe([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], "nobody")
    sys.exit(0)


if __name__ == "__main__":
    main()
