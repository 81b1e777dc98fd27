// SPDX-License-Identifier: LGPL-2.1-or-later
// Stands in for GNOME Shell's ui/popupMenu.js (test-desktop-esm.sh).
import GObject from 'gi://GObject';
import St from 'gi://St';

export const PopupMenuItem = GObject.registerClass(class PopupMenuItem extends St.Widget {});
export const PopupSeparatorMenuItem = GObject.registerClass(class PopupSeparatorMenuItem extends St.Widget {});
