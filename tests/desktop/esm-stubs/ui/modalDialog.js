// SPDX-License-Identifier: LGPL-2.1-or-later
// Stands in for GNOME Shell's ui/modalDialog.js (test-desktop-esm.sh): a GObject class to subclass.
import GObject from 'gi://GObject';
import St from 'gi://St';

export const ModalDialog = GObject.registerClass(class ModalDialog extends St.Widget {});
