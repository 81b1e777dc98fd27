// SPDX-License-Identifier: LGPL-2.1-or-later
// Stands in for GNOME Shell's ui/main.js when test-desktop-esm.sh loads the 45+ build under plain
// gjs: using any of it throws, so a module that does work at import fails the test.
function unusable(name) {
    return new Proxy({}, {
        get() {
            throw new Error(`Main.${name} used at import`);
        },
    });
}
export const panel = unusable('panel');
export function notifyError() {
    throw new Error('Main.notifyError used at import');
}
