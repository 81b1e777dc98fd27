#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Native journal logging: structured fields and stable MESSAGE_IDs, and the catalog entries that
# explain them (journalctl -x). journald runs by hand in a private mount namespace, so nothing on
# the host changes. Needs root (mount namespace).
set -eu
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 77; }
[ -x /lib/systemd/systemd-journald ] || { echo "journald is not installed"; exit 77; }
exec unshare -m --propagation private sh "$(dirname "$0")/test-journal-inner.sh"
