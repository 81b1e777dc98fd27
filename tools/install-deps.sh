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
had_pipewire=$(dpkg-query -W -f '${Status}' pipewire 2>/dev/null | grep -c 'ok installed' || true)
# gnome-shell and gjs are for tests/desktop (a headless gnome-shell, the extension's model under
# gjs): on bookworm about 195 packages, 122 MB to fetch, under 2 minutes of the CI's install.
apt-get install -y -q --no-install-recommends \
        gcc meson ninja-build pkg-config scdoc \
        libsystemd-dev libwebsockets-dev libuv1-dev libsodium-dev libjson-c-dev libsqlite3-dev libseccomp-dev libmicrohttpd-dev \
        systemd dbus dbus-bin dbus-daemon dbus-user-session dbus-broker libglib2.0-bin polkitd pkexec \
        python3 python3-websockets python3-nacl python3-dbusmock sqlite3 curl tmux util-linux valgrind bash-completion \
        postgresql libpq-dev \
        gnome-shell gjs
# Node.js and npm for the MCP tests, from Debian only where none is installed: a machine with
# NodeSource's nodejs (which bundles npm) cannot install Debian's npm beside it.
if ! command -v npm > /dev/null; then
        apt-get install -y -q --no-install-recommends nodejs npm
fi
# The MCP tests (tests/mcp) drive `claudemeshctl mcp` with the official MCP SDK client from npm;
# it goes to the cache directory they look in (they fetch it themselves when it is missing, and
# skip only without npm).
"$(dirname "$0")/install-mcp-sdk.sh" > /dev/null ||
        echo "install-deps: could not install @modelcontextprotocol/sdk from npm; the MCP tests will try again" >&2
# gnome-shell pulls in pipewire, which enables pipewire and wireplumber for every user session:
# they connect to the user bus as soon as a `systemd --user` starts, before tests/bus's user
# manager test has put its activation file in place, so the bus never sees it. Where pipewire came
# only with gnome-shell (a build or CI machine), its user units go back to disabled; a desktop
# that had it keeps its audio.
if [ "$had_pipewire" = 0 ]; then
        systemctl --global disable pipewire.service pipewire.socket pipewire-pulse.service \
                pipewire-pulse.socket wireplumber.service
fi
