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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import tap  # noqa: E402

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


def probe_as_nobody():
    if os.getuid() != 0:
        raise tap.Skip("not root")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        raise tap.Skip("setpriv not found")
    if subprocess.run([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "test", "-x", WORKER]).returncode:
        raise tap.Skip(f"nobody cannot execute {WORKER}")
    probe([setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"], "nobody")


def main():
    tap.run([(f"probe as uid {os.getuid()}", lambda: probe([], f"uid {os.getuid()}")),
             ("probe as nobody", probe_as_nobody)])


if __name__ == "__main__":
    main()
