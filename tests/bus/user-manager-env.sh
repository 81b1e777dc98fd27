#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# From design/test-env (tested recipe for this machine class).
# user-manager-env.sh CMD [ARGS...]
# Run CMD as an unprivileged test user under a real `systemd --user` (+ journald, + user bus via
# dbus.socket) on a machine whose PID 1 is NOT systemd.  Must start as root.  Everything that would
# touch the host is confined: private mount namespace (fake /run/systemd, private journal dirs) and a
# delegated sub-cgroup that mimics user@UID.service; both are removed at the end.
# Env: TUSER (default cmtest), UHOME (test HOME; units go in $UHOME/.config/systemd/user).
set -eu
TUSER=${TUSER:-cmtest}
id "$TUSER" >/dev/null 2>&1 || useradd -M -d /nonexistent -s /usr/sbin/nologin "$TUSER"
TUID=$(id -u "$TUSER")
UHOME=${UHOME:-$(mktemp -d /tmp/cm-uhome.XXXXXX)}; chown "$TUSER:" "$UHOME"
if [ -z "${RUNDIR:-}" ]; then RUNDIR=$(mktemp -d /tmp/cm-xdgrun.XXXXXX); chmod 700 "$RUNDIR"; chown "$TUSER:" "$RUNDIR"; fi
CG=user.slice/user-$TUID.slice/user@$TUID.service      # journald derives _SYSTEMD_USER_UNIT from this path
if [ "${1:-}" != "--inner" ]; then
  # ---- outer: delegated cgroup (hybrid hierarchy: name=systemd + unified), then a private mount ns
  for h in systemd unified; do
    mkdir -p /sys/fs/cgroup/$h/$CG
    chown -R "$TUSER:" /sys/fs/cgroup/$h/$CG
  done
  for h in systemd unified; do echo $$ > /sys/fs/cgroup/$h/$CG/cgroup.procs; done   # children inherit it
  rc=0
  unshare -m --propagation private env UHOME="$UHOME" RUNDIR="$RUNDIR" TUSER="$TUSER" "$0" --inner "$@" || rc=$?
  for h in systemd unified; do            # move back to the root cgroup, then remove the subtree
    echo $$ > /sys/fs/cgroup/$h/cgroup.procs
    [ -d /sys/fs/cgroup/$h/user.slice ] && find /sys/fs/cgroup/$h/user.slice -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$RUNDIR"
  exit $rc
fi
shift
# ---- inner (root, private mount namespace)
mount -t tmpfs -o mode=755 tmpfs /run/systemd
mkdir /run/systemd/system                       # sd_booted() -> true; systemd --user refuses to run otherwise
mkdir -m 0700 /run/systemd/unit-root            # needed by units using mount namespacing (ProtectSystem=, ...)
mkdir /run/systemd/inaccessible && ( cd /run/systemd/inaccessible && touch reg && mkdir dir && mkfifo fifo &&
  mknod chr c 0 0 && mknod blk b 0 0 && /usr/bin/python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')" &&
  chmod 0000 reg dir fifo sock chr blk )
mount -t tmpfs -o mode=755 tmpfs /run/log
mount -t tmpfs -o mode=2755 tmpfs /var/log/journal
/lib/systemd/systemd-journald >/dev/null 2>&1 &
JP=$!
i=0; until [ -S /run/systemd/journal/socket ]; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.05; done
journalctl --flush                              # -> /var/log/journal (tmpfs), split per uid, readable by the user
rc=0
setpriv --reuid="$TUSER" --regid="$TUSER" --init-groups env -i PATH=/usr/bin:/bin HOME="$UHOME" USER="$TUSER" \
  XDG_RUNTIME_DIR="$RUNDIR" sh -c '
    /lib/systemd/systemd --user --log-target=journal >/dev/null 2>&1 & SDP=$!
    i=0; until [ "$(systemctl --user is-system-running 2>/dev/null)" = running ]; do
      i=$((i+1)); [ $i -gt 250 ] && { echo "systemd --user did not start" >&2; kill $SDP; exit 1; }; sleep 0.02; done
    export DBUS_SESSION_BUS_ADDRESS=unix:path=$XDG_RUNTIME_DIR/bus
    rc=0; "$@" || rc=$?
    systemctl --user exit 2>/dev/null || kill $SDP; wait $SDP 2>/dev/null || true
    exit $rc' sh "$@" || rc=$?
kill $JP 2>/dev/null; wait $JP 2>/dev/null || true
exit $rc
