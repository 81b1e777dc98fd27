// SPDX-License-Identifier: LGPL-2.1-or-later
// Stands in for GNOME Shell 45+'s extensions/extension.js (test-desktop-esm.sh): the base class an
// extension's default export extends.
export class Extension {
    constructor(metadata) {
        this.metadata = metadata;
    }
}
