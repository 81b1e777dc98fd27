// SPDX-License-Identifier: LGPL-2.1-or-later
//
// The panel indicator: renders ClaudemeshModel.view() and forwards the menu's actions to the
// model. No D-Bus here. Created in enable() by ClaudemeshController, destroyed in disable().

import Clutter from 'gi://Clutter';
import Gio from 'gi://Gio';
import GObject from 'gi://GObject';
import St from 'gi://St';

import * as Main from 'resource:///org/gnome/shell/ui/main.js';
import * as ModalDialog from 'resource:///org/gnome/shell/ui/modalDialog.js';
import * as PanelMenu from 'resource:///org/gnome/shell/ui/panelMenu.js';
import * as PopupMenu from 'resource:///org/gnome/shell/ui/popupMenu.js';

import {ClaudemeshModel, inboxAppInfo, cleanText} from './model.js';

const ReplyDialog = GObject.registerClass(
class ClaudemeshReplyDialog extends ModalDialog.ModalDialog {
    _init(message, send) {
        super._init({styleClass: 'claudemesh-reply-dialog'});
        this._send = send;
        this.contentLayout.add_child(new St.Label({
            text: `Reply to ${message.sender}`, style_class: 'claudemesh-reply-title',
        }));
        this.contentLayout.add_child(new St.Label({text: message.text, style_class: 'claudemesh-reply-quote'}));
        this.entry = new St.Entry({style_class: 'claudemesh-reply-entry', can_focus: true, hint_text: 'Your reply'});
        // the entry is the dialog's child: its handler goes with it
        this.entry.clutter_text.connect('activate', () => this.sendReply());
        this.contentLayout.add_child(this.entry);
        this._error = new St.Label({text: '', style_class: 'claudemesh-reply-error'});
        this.contentLayout.add_child(this._error);
        this.setButtons([
            {label: 'Cancel', action: () => this.close(), key: Clutter.KEY_Escape},
            {label: 'Send', action: () => this.sendReply(), default: true},
        ]);
        this.setInitialKeyFocus(this.entry);
    }

    async sendReply() {
        try {
            await this._send(this.entry.get_text());
            this.close();
        } catch (e) {
            this._error.text = cleanText(e.message, 200);
        }
    }
});

const Indicator = GObject.registerClass(
class ClaudemeshIndicator extends PanelMenu.Button {
    _init(controller) {
        super._init(0.0, 'claudemesh');
        this._controller = controller;
        const box = new St.BoxLayout({style_class: 'panel-status-menu-box'});
        box.add_child(new St.Icon({icon_name: 'user-available-symbolic', style_class: 'system-status-icon'}));
        this.badge = new St.Label({
            text: '', visible: false, style_class: 'claudemesh-badge', y_align: Clutter.ActorAlign.CENTER,
        });
        box.add_child(this.badge);
        this.add_child(box);
    }

    _header(text) {
        this.menu.addMenuItem(new PopupMenu.PopupSeparatorMenuItem(text));
    }

    _info(text, styleClass = null) {
        const item = new PopupMenu.PopupMenuItem(text, {reactive: false, can_focus: false});
        if (styleClass)
            item.label.add_style_class_name(styleClass);
        this.menu.addMenuItem(item);
        return item;
    }

    _action(text, callback) {
        const item = new PopupMenu.PopupMenuItem(text);
        // the item is destroyed with the menu (removeAll, destroy): its handler goes with it
        item.connect('activate', callback);
        this.menu.addMenuItem(item);
        return item;
    }

    render(view) {
        this.badge.text = view.badge;
        this.badge.visible = view.badge !== '';
        this.menu.removeAll();
        this.items = {meshes: [], peers: [], sessions: [], messages: []};
        if (!view.running) {
            this._info(view.status, 'claudemesh-not-running');
            this.items.start = this._action('Start claudemesh', () => this._controller.startDaemon());
            if (view.error)
                this._info(view.error, 'claudemesh-error');
            return;
        }
        this._header('Meshes');
        if (view.meshes.length === 0)
            this._info('No mesh configured (claudemeshctl join)');
        for (const mesh of view.meshes) {
            const item = this._info(mesh.label);
            item.insert_child_at_index(new St.Widget({
                style_class: `claudemesh-dot claudemesh-dot-${mesh.dot}`, y_align: Clutter.ActorAlign.CENTER,
            }), 1);
            this.items.meshes.push(item);
            if (mesh.lastError)
                this._info(mesh.lastError, 'claudemesh-error');
        }
        this._header('Peers');
        if (view.peers.length === 0)
            this._info('Nobody else online');
        for (const peer of view.peers)
            this.items.peers.push(this._info(peer.label));
        if (view.morePeers > 0)
            this._info(`and ${view.morePeers} more`);
        this._header('Sessions');
        if (view.sessions.length === 0)
            this._info('No session on this computer');
        for (const session of view.sessions)
            this.items.sessions.push(this._info(session.label));
        if (view.moreSessions > 0)
            this._info(`and ${view.moreSessions} more`);
        this._header('Messages');
        if (view.messages.length === 0)
            this._info('No messages');
        for (const message of view.messages) {
            const item = this._action(`${message.label}: ${message.text}`, () => this._controller.openReply(message));
            item.add_child(new St.Label({text: 'Reply…', style_class: 'claudemesh-reply-hint',
                x_expand: true, x_align: Clutter.ActorAlign.END}));
            this.items.messages.push(item);
        }
        this.menu.addMenuItem(new PopupMenu.PopupSeparatorMenuItem());
        this.items.markRead = this._action('Mark read', () => this._controller.markRead());
        this.items.markRead.setSensitive(view.unread > 0);
        this.items.openInbox = this._action('Open inbox', () => this._controller.openInbox());
        if (view.error)
            this._info(view.error, 'claudemesh-error');
    }

    // What the panel shows, read back from the actors (tests/desktop/ checks it through Eval).
    describe() {
        const text = item => item.label.text;
        return {
            badge: this.badge.visible ? this.badge.text : null,
            rows: this.menu._getMenuItems().map(i => i.label ? i.label.text : i instanceof PopupMenu.PopupSeparatorMenuItem ? '---' : ''),
            meshes: this.items.meshes.map(text),
            dots: this.items.meshes.map(i => i.get_child_at_index(1).style_class),
            peers: this.items.peers.map(text),
            sessions: this.items.sessions.map(text),
            messages: this.items.messages.map(text),
            markReadSensitive: this.items.markRead?.sensitive ?? null,
            start: this.items.start ? true : false,
        };
    }
});

// Owns the model, the indicator and an open reply dialog; the extension entry points call
// enable() and disable() and nothing else.
export class ClaudemeshController {
    enable() {
        this.indicator = new Indicator(this);
        this.model = new ClaudemeshModel({
            connection: Gio.DBus.session,
            onChanged: () => this.indicator.render(this.model.view()),
            // Reply chosen on one of the daemon's notifications
            onReplyRequested: target => this._openDialog({sender: target.name, text: target.text},
                text => this.model.replyTo(target, text)),
        });
        Main.panel.addToStatusArea('claudemesh', this.indicator);
        this.indicator.render(this.model.view());
        this.model.start();
    }

    disable() {
        this.model.stop();
        this.model = null;
        this.dialog?.close();
        this.dialog = null;
        this.indicator.destroy();
        this.indicator = null;
    }

    _notifyError(title, e) {
        Main.notifyError(title, cleanText(e.message, 200));
    }

    startDaemon() {
        this.model.startDaemon().catch(e => this._notifyError('Cannot start claudemesh', e));
    }

    markRead() {
        this.model.markRead().catch(e => this._notifyError('claudemesh: Mark read failed', e));
    }

    openInbox() {
        try {
            inboxAppInfo().launch([], global.create_app_launch_context(0, -1));
        } catch (e) {
            this._notifyError('Cannot open the claudemesh inbox', e);
        }
    }

    openReply(message) {
        this._openDialog(message, text => this.model.reply(message.id, text));
    }

    // message: {sender, text} as the dialog shows them; send(text) sends the reply.
    _openDialog(message, send) {
        this.dialog?.close();
        const dialog = new ReplyDialog(message, send);
        dialog.connect('closed', () => {
            if (this.dialog === dialog)
                this.dialog = null;
        });
        this.dialog = dialog;
        dialog.open();
    }
}
