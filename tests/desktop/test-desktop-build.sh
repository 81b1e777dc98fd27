#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The extension's two builds and its install: metadata per build (43–44 legacy, 45–48 ES
# modules), no import/export line left in the legacy build, its model.js loading through gjs's
# legacy imports, to-legacy.py refusing a form it does not know, and `meson install` placing the
# build for the gnome-shell found under datadir/gnome-shell/extensions/claudemesh@claudemesh.org.
set -eu
W=$(mktemp -d /tmp/cm-gse.XXXXXX)
trap 'rm -rf "$W"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
UUID=claudemesh@claudemesh.org

metadata() {  # metadata DIR: uuid and shell versions, one line
        /usr/bin/python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["uuid"], " ".join(m["shell-version"]))' "$1/metadata.json"
}
[ "$(metadata "$EXT_LEGACY_DIR")" = "$UUID 43 44" ] || fail "legacy metadata: $(metadata "$EXT_LEGACY_DIR")"
[ "$(metadata "$EXT_ESM_DIR")" = "$UUID 45 46 47 48" ] || fail "ESM metadata: $(metadata "$EXT_ESM_DIR")"
for f in extension.js indicator.js model.js stylesheet.css; do
        [ -s "$EXT_LEGACY_DIR/$f" ] || fail "legacy build: no $f"
        [ -s "$EXT_ESM_DIR/$f" ] || fail "ESM build: no $f"
done
if grep -n '^\s*\(import\|export\)\b' "$EXT_LEGACY_DIR"/*.js; then
        fail "the legacy build has ES module lines"
fi
grep -q '^function init()' "$EXT_LEGACY_DIR/extension.js" || fail "the legacy extension.js has no init()"
grep -q '^export default class' "$EXT_ESM_DIR/extension.js" || fail "the ESM extension.js has no default export"
cmp -s "$EXT_SOURCE_DIR/model.js" "$EXT_ESM_DIR/model.js" || fail "the ESM build's model.js is not the source"

# a form the converter does not know is an error, not passed through
printf "import Gio from 'gi://Gio';\nexport default class X {}\n" > "$W/in.js"
if /usr/bin/python3 "$EXT_SOURCE_DIR/to-legacy.py" "$W/in.js" "$W/out.js" 2> "$W/err"; then
        fail "to-legacy.py converted 'export default class'"
fi
grep -q 'in.js:2: no legacy form known for: export default class X {}' "$W/err" || fail "to-legacy.py: $(cat "$W/err")"

if command -v gjs > /dev/null 2>&1; then
        gjs -c "imports.searchPath.unshift('$EXT_LEGACY_DIR');
                const m = imports.model;
                if (typeof m.ClaudemeshModel !== 'function' || m.BUS_NAME !== 'org.claudemesh.Daemon1' ||
                    m.cleanText('a\\nb') !== 'a b')
                        throw new Error('the legacy model.js does not export what the ES module does');
                0; // the script's value is gjs's exit status" ||
                fail "the legacy model.js does not load through legacy imports"
fi

if [ "$GSE_INSTALL" = true ]; then
        meson install -C "$BUILD_ROOT" --no-rebuild --tags gnome-shell-extension --destdir "$W/dest" > "$W/install.log" 2>&1 ||
                fail "meson install: $(cat "$W/install.log")"
        D="$W/dest$GSE_INSTALL_DIR"
        for f in extension.js indicator.js model.js metadata.json stylesheet.css; do
                [ -s "$D/$f" ] || fail "not installed: $D/$f"
        done
        [ "$(find "$W/dest" -type f | wc -l)" = 5 ] || fail "installed more than the extension: $(find "$W/dest" -type f)"
        case $GSE_FLAVOUR in
        legacy) cmp -s "$D/metadata.json" "$EXT_LEGACY_DIR/metadata.json" || fail "not the legacy build installed" ;;
        esm) cmp -s "$D/metadata.json" "$EXT_ESM_DIR/metadata.json" || fail "not the ESM build installed" ;;
        *) fail "unknown flavour $GSE_FLAVOUR" ;;
        esac
        # chosen by the gnome-shell found unless -Dgnome_shell_extension_imports named a build
        if [ "$GSE_IMPORTS_OPTION" = auto ] && command -v gnome-shell > /dev/null 2>&1; then
                major=$(gnome-shell --version | sed -n 's/^GNOME Shell \([0-9]*\).*/\1/p')
                metadata "$D" | grep -qw "$major" || fail "the installed build is not for GNOME Shell $major: $(metadata "$D")"
        fi
fi
echo "ok: both builds; installed: $GSE_INSTALL ($GSE_FLAVOUR)"
