#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# What `meson install` leaves: man pages dated by SOURCE_DATE_EPOCH (as configured), the
# interface XML's path in org.claudemesh.Daemon1(5) as configured, and the install script that
# runs journalctl --update-catalog only outside a DESTDIR.
set -eu
W=$(mktemp -d /tmp/cm-install.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

want=$(date -u -d "@$MAN_SOURCE_DATE_EPOCH" +%F)
# every page man/meson.build builds (MAN_PAGES), all in man/
n=0
for page in "$BUILD_ROOT"/man/*.[1-8]; do
        [ -f "$page" ] || continue
        n=$((n + 1))
        date=$(sed -n 's/^\.TH "[^"]*" "[0-9]" "\([^"]*\)".*/\1/p' "$page")
        [ "$date" = "$want" ] || fail "$page is dated '$date', not $want (SOURCE_DATE_EPOCH $MAN_SOURCE_DATE_EPOCH)"
done
for page in $MAN_PAGES; do
        [ -f "$BUILD_ROOT/man/$page" ] || fail "$page was not built in man/"
done
[ $n = $(echo $MAN_PAGES | wc -w) ] || fail "found $n man pages in man/, expected: $MAN_PAGES"
[ $(echo $MAN_PAGES | wc -w) -ge 4 ] || fail "MAN_PAGES lists too few pages: $MAN_PAGES"
sed 's/\\&//g' "$BUILD_ROOT/man/org.claudemesh.Daemon1.5" | grep -qF "$DBUS_INTERFACES_DIR/org.claudemesh.Daemon1.xml" ||
        fail "org.claudemesh.Daemon1(5) does not name $DBUS_INTERFACES_DIR"
! grep -q "@DBUS_INTERFACES_DIR@" "$BUILD_ROOT/man/org.claudemesh.Daemon1.5" || fail "placeholder left in the page"

mkdir "$W/bin"
printf '#!/bin/sh\necho "journalctl $*" >> "%s/calls"\n' "$W" > "$W/bin/journalctl"
chmod +x "$W/bin/journalctl"
PATH="$W/bin:$PATH" DESTDIR="$W/dest" "$SOURCE_ROOT/units/update-catalog.sh" > /dev/null
[ ! -e "$W/calls" ] || fail "the install script updated the catalog inside a DESTDIR"
PATH="$W/bin:$PATH" DESTDIR= "$SOURCE_ROOT/units/update-catalog.sh" > /dev/null
[ "$(cat "$W/calls")" = "journalctl --update-catalog" ] || fail "no journalctl --update-catalog without DESTDIR"
grep -q "update-catalog.sh" "$BUILD_ROOT/meson-private/install.dat" || fail "the install script is not registered"
echo "ok: $n man pages dated $want, the XML path, the catalog update outside DESTDIR"
