#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The folders of src/daemon keep to their roles, read from the #include lines:
#   - the core (core/, link/, store/) includes no front-end header (dbus/, compat/, notify/);
#   - a front-end includes no other front-end's header;
#   - a private header (*-internal.h) is included only from its own folder;
#   - src/shared includes nothing of the daemon.
# main.c wires everything and may include anything. Run on another tree with one argument (the
# test runs itself on a copy with a violation, so it is known to fail when it should).
set -eu
root=${1:-$CLAUDEMESH_SOURCE_ROOT}
daemon="$root/src/daemon"
core="core link store"
frontends="dbus compat notify"

# folder_of HEADER: the daemon folder that has it, or nothing (a shared or system header)
folder_of() {
        for d in $core $frontends; do
                [ -e "$daemon/$d/$1" ] && { echo "$d"; return 0; }
        done
        return 0
}
is_in() {
        for x in $2; do [ "$x" = "$1" ] && return 0; done
        return 1
}

bad=0
checked=0
for dir in $core $frontends; do
        [ -d "$daemon/$dir" ] || { echo "missing folder src/daemon/$dir" >&2; exit 1; }
        for f in "$daemon/$dir"/*.c "$daemon/$dir"/*.h; do
                [ -e "$f" ] || continue
                for h in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$f"); do
                        checked=$((checked + 1))
                        to=$(folder_of "$h")
                        [ -n "$to" ] || continue
                        name=${f#"$root"/}
                        if is_in "$dir" "$core" && is_in "$to" "$frontends"; then
                                echo "$name: the core includes the front-end header $to/$h" >&2; bad=1
                        fi
                        if is_in "$dir" "$frontends" && is_in "$to" "$frontends" && [ "$to" != "$dir" ]; then
                                echo "$name: front-end $dir includes front-end $to's $h" >&2; bad=1
                        fi
                        case $h in *-internal.h)
                                if [ "$to" != "$dir" ]; then
                                        echo "$name: includes $to/$h, private to $to/" >&2; bad=1
                                fi
                        esac
                done
        done
done
for f in "$root"/src/shared/*.c "$root"/src/shared/*.h; do
        for h in $(sed -n 's/^#include "\(.*\)"$/\1/p' "$f"); do
                checked=$((checked + 1))
                to=$(folder_of "$h")
                if [ -n "$to" ]; then
                        echo "${f#"$root"/}: src/shared includes the daemon's $to/$h" >&2; bad=1
                fi
        done
done
# a tree with no includes found would pass vacuously
[ "$checked" -gt 100 ] || { echo "only $checked #include lines found under $root" >&2; exit 1; }

if [ $# -eq 0 ]; then
        # the rules catch what they are for: the same tree with the core reaching into the bus
        t=$(mktemp -d)
        trap 'rm -rf "$t"' EXIT
        mkdir -p "$t/src"
        cp -r "$daemon" "$root/src/shared" "$t/src/"
        printf '#include "bus-errors.h"\n' >> "$t/src/daemon/core/event.c"
        if "$0" "$t" 2>/dev/null; then
                echo "a core file including a D-Bus header passed" >&2; exit 1
        fi
        cp "$daemon/core/event.c" "$t/src/daemon/core/event.c"
        printf '#include "mesh-link-internal.h"\n' >> "$t/src/daemon/dbus/mesh-dbus.c"
        if "$0" "$t" 2>/dev/null; then
                echo "a front-end including a private header of the link passed" >&2; exit 1
        fi
fi
[ $bad = 0 ]
echo "ok: $checked includes follow the layering"
