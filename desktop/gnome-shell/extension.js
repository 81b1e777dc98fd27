// SPDX-License-Identifier: LGPL-2.1-or-later
// Entry point for GNOME Shell 45 and later (ES modules). Nothing happens at import:
// enable() builds everything and disable() tears it down.
import {Extension} from 'resource:///org/gnome/shell/extensions/extension.js';

import {ClaudemeshController} from './indicator.js';

export default class ClaudemeshExtension extends Extension {
    enable() {
        this.controller = new ClaudemeshController();
        this.controller.enable();
    }

    disable() {
        this.controller.disable();
        this.controller = null;
    }
}
