#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# meson install script: journald reads message catalogs from its binary database, so a catalog
# installed into the running system is rebuilt into it. Packagers (DESTDIR set) leave that to
# the package's trigger.
set -eu
if [ -n "${DESTDIR:-}" ]; then
        exit 0
fi
if ! command -v journalctl >/dev/null 2>&1; then
        echo "journalctl not found: run 'journalctl --update-catalog' where the catalog is used" >&2
        exit 0
fi
echo "Updating the journal's message catalog (journalctl --update-catalog)"
journalctl --update-catalog || echo "journalctl --update-catalog failed; run it by hand" >&2
