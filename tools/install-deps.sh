#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what claudemesh needs to build and to run its tests, from Debian (bookworm or later).
set -eu
if [ "$(id -u)" != 0 ]; then
        echo "Run as root (sudo $0): it installs Debian packages." >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# gnome-shell and gjs are for tests/desktop (a headless gnome-shell, the extension's model under
# gjs): on bookworm about 195 packages, 122 MB to fetch, under 2 minutes of the CI's install.
apt-get install -y -q --no-install-recommends \
        gcc meson ninja-build pkg-config scdoc \
        libsystemd-dev libwebsockets-dev libuv1-dev libsodium-dev libjson-c-dev libsqlite3-dev libseccomp-dev libmicrohttpd-dev \
        systemd dbus dbus-bin dbus-daemon dbus-user-session dbus-broker libglib2.0-bin polkitd pkexec \
        python3 python3-websockets python3-nacl python3-dbusmock sqlite3 curl tmux util-linux valgrind bash-completion \
        postgresql libpq-dev \
        gnome-shell gjs
