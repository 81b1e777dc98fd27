// SPDX-License-Identifier: LGPL-2.1-or-later
// Stands in for GNOME Shell's ui/panelMenu.js (test-desktop-esm.sh): a GObject class to subclass.
import GObject from 'gi://GObject';
import St from 'gi://St';

export const Button = GObject.registerClass(class Button extends St.Widget {});
