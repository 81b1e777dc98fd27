# SPDX-License-Identifier: LGPL-2.1-or-later
"""TAP for the Python harnesses, which meson runs with protocol: 'tap' so that each case shows
in its output ("ok 3 - test_conflict").

Importing this module moves the process's standard output to its standard error (file
descriptor 1 becomes a copy of 2, for child processes too): what the cases print, tracebacks and
logs land in meson's log of the test, and only TAP lines reach meson's parser."""

import os
import sys
import traceback

sys.stdout.flush()
_tap = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)

_running = False


class Skip(Exception):
    """Raised by a case (or through skip()) to report it skipped, with the reason."""


def _line(text):
    _tap.write(text + "\n")
    _tap.flush()


def skip(reason):
    """Skips the running case, or the whole file when called before run()."""
    if _running:
        raise Skip(reason)
    print(f"SKIP: {reason}", flush=True)
    _line(f"1..0 # SKIP {reason}")
    sys.exit(0)


def run(cases):
    """Runs (name, function) cases in order, one TAP line each; a case fails by raising. Exits
    non-zero when one failed."""
    global _running
    failed = 0
    _line(f"1..{len(cases)}")
    _running = True
    for n, (name, function) in enumerate(cases, 1):
        print(f"---- {name}", flush=True)
        try:
            function()
            _line(f"ok {n} - {name}")
        except Skip as e:
            print(f"skip {name}: {e}", flush=True)
            _line(f"ok {n} - {name} # SKIP {e}")
        except BaseException:
            failed += 1
            traceback.print_exc()
            sys.stderr.flush()
            _line(f"not ok {n} - {name}")
    _running = False
    sys.exit(1 if failed else 0)


def selected(functions):
    """The functions named on the command line, or all of them."""
    only = sys.argv[1:]
    unknown = set(only) - {f.__name__ for f in functions}
    if unknown:
        sys.exit(f"no such case: {' '.join(sorted(unknown))}")
    return [f for f in functions if not only or f.__name__ in only]
