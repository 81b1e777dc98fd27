// SPDX-License-Identifier: LGPL-2.1-or-later
// Entry point for GNOME Shell 43 and 44 (legacy imports); installed as extension.js there.
// Nothing happens at import or in init(): enable() builds everything and disable() tears it down.
const {ClaudemeshController} = imports.misc.extensionUtils.getCurrentExtension().imports.indicator;

class ClaudemeshExtension {
    enable() {
        this.controller = new ClaudemeshController();
        this.controller.enable();
    }

    disable() {
        this.controller.disable();
        this.controller = null;
    }
}

function init() {
    return new ClaudemeshExtension();
}
