// SPDX-License-Identifier: LGPL-2.1-or-later
//
// What the claudemesh indicator shows, and what its actions do, built only from claudemeshd's
// D-Bus API (org.claudemesh.Daemon1(5)). No St, Clutter or gnome-shell import: this module runs
// under plain gjs (tests/desktop/) as well as in the shell, and the panel UI only renders view().
//
// Everything is event-driven: a name watch follows the daemon's name owner, the ObjectManager
// signals and PropertiesChanged its Mesh1 and Session1 objects, the Daemon1 signals
// MessageReceived and PeerChanged carry their rows, PeerJoined and PeerLeft trigger the only calls
// made after start, and ReplyRequested (Reply chosen on a notification) asks for the dialog. While
// started the model owns EXTENSION_NAME, which tells the daemon a dialog can take replies.
// No timer, no polling.
//
// Written as an ES module for GNOME Shell 45+; desktop/gnome-shell/to-legacy.py rewrites the
// import and export lines for GNOME Shell 43 and 44 (legacy imports), nothing else.

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';

export const BUS_NAME = 'org.claudemesh.Daemon1';
export const DAEMON_PATH = '/org/claudemesh/Daemon1';
export const DAEMON_IFACE = 'org.claudemesh.Daemon1';
export const MESH_IFACE = 'org.claudemesh.Mesh1';
export const SESSION_IFACE = 'org.claudemesh.Session1';
export const EXTENSION_NAME = 'org.claudemesh.ShellExtension';
export const SYSTEMD_UNIT = 'claudemesh.service';
// How many messages the menu lists (ListInbox limit).
export const LAST_MESSAGES = 5;
// Peers, and sessions, shown across all meshes: the menu has to fit on a screen.
export const MAX_PEERS = 30;
export const MAX_SESSIONS = 20;
// Characters of a name, summary or body shown in one menu row.
export const TEXT_MAX = 80;
// The daemon rejects what does not fit a frame; this only stops a paste of a whole file early.
export const REPLY_MAX = 16384;

// Peer text is hostile: control characters (terminal escapes, newlines), bidi overrides and
// isolates that would reorder the rest of the row are shown as \uXXXX; long text is cut.
export function cleanText(text, max = TEXT_MAX) {
    if (typeof text !== 'string')
        return '';
    let out = '';
    let n = 0;
    for (const ch of text) {
        const c = ch.codePointAt(0);
        let shown = ch;
        if (c === 0x0a || c === 0x0d || c === 0x09)
            shown = ' ';
        else if (c < 0x20 || (c >= 0x7f && c < 0xa0) || (c >= 0x202a && c <= 0x202e) ||
                 (c >= 0x2066 && c <= 0x2069) || c === 0x200e || c === 0x200f || c === 0x061c)
            shown = `\\u${c.toString(16).padStart(4, '0')}`;
        if (n + 1 > max) {
            out += '…';
            break;
        }
        out += shown;
        n++;
    }
    return out;
}

// Mesh1.State → the dot's colour class.
export function stateDot(state) {
    switch (state) {
    case 'connected':
        return 'connected';
    case 'connecting':
    case 'backoff':
    case 'offline':
        return 'connecting';
    default: // failed, invalid, detached, and anything newer we do not know
        return 'failed';
    }
}

// received_at (µs since the epoch) → "14:05" today, "Mar 3 14:05" before.
export function formatTime(us, nowUs = GLib.get_real_time()) {
    if (typeof us !== 'number' || us <= 0)
        return '';
    const t = GLib.DateTime.new_from_unix_local(Math.floor(us / 1000000));
    const now = GLib.DateTime.new_from_unix_local(Math.floor(nowUs / 1000000));
    if (!t || !now)
        return '';
    const sameDay = t.get_year() === now.get_year() && t.get_day_of_year() === now.get_day_of_year();
    return t.format(sameDay ? '%H:%M' : '%b %-d %H:%M') ?? '';
}

// The command "Open inbox" runs: the terminal Debian's alternatives name, else the one GLib finds.
export function inboxAppInfo() {
    const cmd = 'claudemeshctl inbox --follow';
    if (GLib.find_program_in_path('x-terminal-emulator'))
        return Gio.AppInfo.create_from_commandline(`x-terminal-emulator -e ${cmd}`, 'claudemesh inbox',
            Gio.AppInfoCreateFlags.NONE);
    return Gio.AppInfo.create_from_commandline(cmd, 'claudemesh inbox', Gio.AppInfoCreateFlags.NEEDS_TERMINAL);
}

// a{sv} → a plain object (t as a number: µs since the epoch stay below 2^53 until year 2255)
function unpackRow(v) {
    const row = v.recursiveUnpack();
    return row !== null && typeof row === 'object' && !Array.isArray(row) ? row : {};
}

// (aa{sv}) → plain objects
function unpackRows(reply) {
    const rows = reply.get_child_value(0);
    const out = [];
    for (let i = 0; i < rows.n_children(); i++)
        out.push(unpackRow(rows.get_child_value(i)));
    return out;
}

// The LAST_MESSAGES newest inbox rows, newest first.
function newest(rows) {
    return rows.sort((a, b) => (b.received_at ?? 0) - (a.received_at ?? 0)).slice(0, LAST_MESSAGES);
}

function str(v) {
    return typeof v === 'string' ? v : '';
}

export class ClaudemeshModel {
    // connection: the session bus (Gio.DBusConnection); onChanged(): called after every change
    // of view(); onReplyRequested(target): Reply was chosen on a notification, target as
    // replyTarget() returns; startArgv: run when D-Bus activation cannot start the daemon.
    constructor({connection, onChanged, onReplyRequested = null,
        startArgv = ['systemctl', '--user', 'start', SYSTEMD_UNIT]}) {
        this._connection = connection;
        this._onChanged = onChanged;
        this._onReplyRequested = onReplyRequested;
        this._startArgv = startArgv;
        this._watchId = 0;
        this._ownId = 0;
        this._sessions = new Map(); // object path → session record
        this._signalIds = [];
        this._cancellable = null;
        this._meshes = new Map(); // object path → mesh record
        this._peers = new Map(); // slug → rows
        this._peerGen = new Map(); // slug → generation of the last ListPeers asked
        this._messages = [];
        this._ownerGen = 0;
        this._owner = null;
        this._error = '';
    }

    // Subscriptions are made here and dropped in stop(), explicitly: a Gio.DBusObjectManagerClient
    // would keep its match rules and proxies until the garbage collector finalizes it.
    start() {
        if (this._cancellable)
            return;
        this._cancellable = new Gio.Cancellable();
        const subscribe = (iface, member, path, arg0, handler) => {
            this._signalIds.push(this._connection.signal_subscribe(BUS_NAME, iface, member, path, arg0,
                Gio.DBusSignalFlags.NONE, (_c, _sender, objectPath, _iface, name, params) =>
                    handler(objectPath, name, params)));
        };
        for (const member of ['MessageReceived', 'PeerJoined', 'PeerLeft', 'PeerChanged', 'ReplyRequested'])
            subscribe(DAEMON_IFACE, member, DAEMON_PATH, null, (_p, name, params) => this._onDaemonSignal(name, params));
        subscribe('org.freedesktop.DBus.ObjectManager', 'InterfacesAdded', DAEMON_PATH, null,
            (_p, _n, params) => this._interfacesAdded(params));
        subscribe('org.freedesktop.DBus.ObjectManager', 'InterfacesRemoved', DAEMON_PATH, null,
            (_p, _n, params) => this._interfacesRemoved(params));
        subscribe('org.freedesktop.DBus.Properties', 'PropertiesChanged', null, MESH_IFACE,
            (path, _n, params) => this._propertiesChanged(path, params));
        subscribe('org.freedesktop.DBus.Properties', 'PropertiesChanged', null, SESSION_IFACE,
            (path, _n, params) => this._sessionChanged(path, params));
        // Only when someone will be told: the daemon offers Reply on notifications while this
        // name has an owner.
        if (this._onReplyRequested) {
            this._ownId = Gio.bus_own_name_on_connection(this._connection, EXTENSION_NAME,
                Gio.BusNameOwnerFlags.NONE, null, null);
        }
        // Flags NONE: looking at the name never D-Bus-activates the daemon, only "Start" does.
        // The watcher reports the current owner (or its absence) first, then every change.
        this._watchId = Gio.bus_watch_name_on_connection(this._connection, BUS_NAME, Gio.BusNameWatcherFlags.NONE,
            (_c, _name, owner) => this._ownerChanged(owner), () => this._ownerChanged(null));
    }

    stop() {
        if (!this._cancellable)
            return;
        this._cancellable.cancel();
        this._cancellable = null;
        for (const id of this._signalIds)
            this._connection.signal_unsubscribe(id);
        this._signalIds = [];
        if (this._watchId)
            Gio.bus_unwatch_name(this._watchId);
        this._watchId = 0;
        if (this._ownId)
            Gio.bus_unown_name(this._ownId);
        this._ownId = 0;
        this._ownerGen++;
        this._meshes.clear();
        this._sessions.clear();
        this._peers.clear();
        this._peerGen.clear();
        this._messages = [];
        this._owner = null;
    }

    // How many subscriptions and name watches are live: 0 after stop() (disable() is held to it).
    get liveHandlers() {
        return this._signalIds.length + (this._watchId ? 1 : 0) + (this._ownId ? 1 : 0);
    }

    get running() {
        return this._owner !== null;
    }

    _changed() {
        if (this._cancellable)
            this._onChanged?.();
    }

    _call(method, params, replyType, iface = DAEMON_IFACE) {
        return new Promise((resolve, reject) => {
            this._connection.call(BUS_NAME, DAEMON_PATH, iface, method, params,
                replyType ? new GLib.VariantType(replyType) : null,
                Gio.DBusCallFlags.NO_AUTO_START, -1, this._cancellable, (c, res) => {
                    try {
                        resolve(c.call_finish(res));
                    } catch (e) {
                        reject(e);
                    }
                });
        });
    }

    async _ownerChanged(owner) {
        const gen = ++this._ownerGen;
        this._owner = owner;
        this._meshes.clear();
        this._sessions.clear();
        this._peers.clear();
        this._messages = [];
        this._error = '';
        this._changed();
        if (!owner)
            return;
        let objects;
        try {
            const reply = await this._call('GetManagedObjects', null, '(a{oa{sa{sv}}})',
                'org.freedesktop.DBus.ObjectManager');
            objects = reply.get_child_value(0);
        } catch (e) {
            if (gen === this._ownerGen && this._cancellable) {
                this._error = `GetManagedObjects: ${e.message}`;
                this._changed();
            }
            return;
        }
        if (gen !== this._ownerGen || !this._cancellable)
            return;
        for (let i = 0; i < objects.n_children(); i++) {
            const entry = objects.get_child_value(i);
            const path = entry.get_child_value(0).unpack();
            this._meshAdded(path, entry.get_child_value(1));
            this._sessionAdded(path, entry.get_child_value(1));
        }
        this._refreshMessages();
        this._changed();
    }

    // path, a{sa{sv}} → a mesh record when the object has org.claudemesh.Mesh1
    _meshAdded(path, interfaces) {
        const props = interfaces.lookup_value(MESH_IFACE, new GLib.VariantType('a{sv}'));
        if (!props)
            return false;
        const p = unpackRow(props);
        const mesh = {
            path,
            slug: str(p.Slug),
            name: str(p.Name),
            state: str(p.State),
            lastError: str(p.LastError),
            unread: typeof p.UnreadCount === 'number' ? p.UnreadCount : 0,
        };
        this._meshes.set(path, mesh);
        if (mesh.state === 'connected')
            this._refreshPeers(mesh.slug);
        return true;
    }

    // path, a{sa{sv}} → a session record when the object has org.claudemesh.Session1
    _sessionAdded(path, interfaces) {
        const props = interfaces.lookup_value(SESSION_IFACE, new GLib.VariantType('a{sv}'));
        if (!props)
            return false;
        const p = unpackRow(props);
        this._sessions.set(path, {
            path,
            id: str(p.Id),
            mesh: str(p.Mesh),
            name: str(p.DisplayName),
            pubkey: str(p.PublicKey),
            cwd: str(p.Cwd),
            status: str(p.Status),
            summary: str(p.Summary),
        });
        return true;
    }

    _sessionChanged(path, params) {
        const old = this._sessions.get(path);
        if (!old)
            return;
        const changed = unpackRow(params.get_child_value(1));
        const session = {...old};
        if (typeof changed.Status === 'string')
            session.status = changed.Status;
        if (typeof changed.Summary === 'string')
            session.summary = changed.Summary;
        this._sessions.set(path, session);
        this._changed();
    }

    _interfacesAdded(params) {
        if (!this._owner)
            return;
        const path = params.get_child_value(0).unpack();
        const mesh = this._meshAdded(path, params.get_child_value(1));
        if (this._sessionAdded(path, params.get_child_value(1)) || mesh)
            this._changed();
    }

    _interfacesRemoved(params) {
        const [path, interfaces] = params.deepUnpack();
        if (interfaces.includes(SESSION_IFACE) && this._sessions.delete(path))
            this._changed();
        const mesh = this._meshes.get(path);
        if (!mesh || !interfaces.includes(MESH_IFACE))
            return;
        this._meshes.delete(path);
        this._peers.delete(mesh.slug);
        this._peerGen.delete(mesh.slug);
        this._changed();
    }

    _propertiesChanged(path, params) {
        const old = this._meshes.get(path);
        if (!old) // not known yet: GetManagedObjects will have the current values
            return;
        const changed = unpackRow(params.get_child_value(1));
        const mesh = {...old};
        if (typeof changed.Name === 'string')
            mesh.name = changed.Name;
        if (typeof changed.State === 'string')
            mesh.state = changed.State;
        if (typeof changed.LastError === 'string')
            mesh.lastError = changed.LastError;
        if (typeof changed.UnreadCount === 'number')
            mesh.unread = changed.UnreadCount;
        this._meshes.set(path, mesh);
        if (mesh.state === 'connected' && old.state !== 'connected') {
            this._refreshPeers(mesh.slug);
        } else if (mesh.state !== 'connected') {
            // The list of a mesh that is not connected would be stale: show none.
            this._peers.delete(mesh.slug);
            this._peerGen.set(mesh.slug, (this._peerGen.get(mesh.slug) ?? 0) + 1);
        }
        this._changed();
    }

    _onDaemonSignal(name, params) {
        if (!this._owner)
            return;
        if (name === 'MessageReceived') {
            const row = unpackRow(params.get_child_value(1));
            if (typeof row.id !== 'string' || this._messages.some(m => m.id === row.id))
                return;
            this._messages = newest([row, ...this._messages]);
            this._changed();
        } else if (name === 'PeerChanged') {
            this._peerChanged(params.get_child_value(0).unpack(), unpackRow(params.get_child_value(1)));
        } else if (name === 'ReplyRequested') {
            const [mesh, messageId, sender] = params.deepUnpack();
            this._onReplyRequested?.(this.replyTarget(mesh, messageId, sender));
        } else {
            const [mesh] = params.deepUnpack();
            const known = [...this._meshes.values()].find(m => m.slug === mesh);
            if (known?.state === 'connected')
                this._refreshPeers(mesh);
        }
    }

    // The peer's rows (one per presence) take its new status and summary; no call is made.
    _peerChanged(slug, peer) {
        const rows = this._peers.get(slug);
        if (!rows || typeof peer.pubkey !== 'string')
            return;
        let changed = false;
        const updated = rows.map(row => {
            if (row.pubkey !== peer.pubkey)
                return row;
            changed = true;
            return {...row, status: peer.status, summary: peer.summary};
        });
        if (!changed)
            return;
        this._peers.set(slug, updated);
        this._changed();
    }

    async _refreshPeers(slug) {
        const gen = (this._peerGen.get(slug) ?? 0) + 1;
        this._peerGen.set(slug, gen);
        let rows;
        try {
            const reply = await this._call('ListPeers', new GLib.Variant('(s)', [slug]), '(aa{sv})');
            rows = unpackRows(reply);
        } catch (e) {
            // NotConnected between the state change and the call: the next change asks again.
            rows = [];
        }
        if (!this._cancellable || this._peerGen.get(slug) !== gen)
            return;
        this._peers.set(slug, rows);
        this._changed();
    }

    async _refreshMessages() {
        const gen = this._ownerGen;
        let rows;
        try {
            const filter = {limit: new GLib.Variant('u', LAST_MESSAGES)};
            const reply = await this._call('ListInbox', new GLib.Variant('(sa{sv})', ['', filter]), '(aa{sv})');
            rows = unpackRows(reply);
        } catch (e) {
            if (!this._cancellable || gen !== this._ownerGen)
                return;
            this._error = `ListInbox: ${e.message}`;
            this._changed();
            return;
        }
        if (!this._cancellable || gen !== this._ownerGen)
            return;
        // MessageReceived may have come while the list was on its way: keep both
        const ids = new Set(this._messages.map(m => m.id));
        this._messages = newest([...this._messages, ...rows.filter(r => !ids.has(r.id))]);
        this._changed();
    }

    // Everything the indicator shows, as plain data.
    view(nowUs = GLib.get_real_time()) {
        const meshes = [...this._meshes.values()].sort((a, b) => a.slug.localeCompare(b.slug));
        const unread = meshes.reduce((n, m) => n + m.unread, 0);
        const peers = [];
        // our own sessions are on the broker too; they are listed under sessions, not twice
        const ownKeys = new Set([...this._sessions.values()].map(x => x.pubkey));
        for (const mesh of meshes) {
            for (const p of this._peers.get(mesh.slug) ?? []) {
                if (p.self || ownKeys.has(str(p.pubkey)))
                    continue;
                const status = cleanText(str(p.status), 20);
                const summary = cleanText(str(p.summary));
                peers.push({
                    mesh: mesh.slug,
                    pubkey: str(p.pubkey),
                    name: cleanText(str(p.display_name)),
                    status,
                    summary,
                    label: `${cleanText(str(p.display_name))}${status ? ` (${status})` : ''}` +
                        `${summary ? ` — ${summary}` : ''}${meshes.length > 1 ? ` · ${cleanText(mesh.slug)}` : ''}`,
                });
            }
        }
        const sessions = [...this._sessions.values()]
            .sort((a, b) => a.mesh.localeCompare(b.mesh) || a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
            .map(x => {
                const name = cleanText(x.name) || cleanText(x.id, 12);
                const status = cleanText(x.status, 20);
                const summary = cleanText(x.summary);
                return {
                    id: x.id,
                    mesh: x.mesh,
                    name,
                    status,
                    summary,
                    label: `${name}${status ? ` (${status})` : ''}${summary ? ` — ${summary}` : ''}` +
                        `${meshes.length > 1 ? ` · ${cleanText(x.mesh)}` : ''}`,
                };
            });
        const messages = this._messages.map(m => {
            const sender = cleanText(str(m.sender_name)) || str(m.sender_pubkey).slice(0, 8);
            const time = formatTime(m.received_at, nowUs);
            return {
                id: str(m.id),
                mesh: str(m.mesh),
                sender,
                senderPubkey: str(m.sender_pubkey),
                // What a reply names: the id both ends know (the broker's), else the sender's own.
                replyToId: str(m.broker_message_id) || str(m.client_message_id),
                topic: str(m.topic),
                time,
                text: cleanText(str(m.body)),
                label: `${sender}${m.topic ? ` in ${cleanText(str(m.topic), 30)}` : ''} · ${time}`,
            };
        });
        return {
            running: this.running,
            status: this.running ? '' : 'claudemesh is not running',
            error: this._error,
            unread,
            badge: unread > 0 ? (unread > 99 ? '99+' : String(unread)) : '',
            meshes: meshes.map(m => ({
                slug: m.slug,
                name: cleanText(m.name) || cleanText(m.slug),
                state: m.state,
                dot: stateDot(m.state),
                lastError: cleanText(m.lastError, 200),
                unread: m.unread,
                label: `${cleanText(m.name) || cleanText(m.slug)} — ${cleanText(m.state, 20)}` +
                    `${m.unread ? ` (${m.unread} unread)` : ''}`,
            })),
            peers: peers.slice(0, MAX_PEERS),
            morePeers: Math.max(0, peers.length - MAX_PEERS),
            sessions: sessions.slice(0, MAX_SESSIONS),
            moreSessions: Math.max(0, sessions.length - MAX_SESSIONS),
            messages,
        };
    }

    // Mark read: every mesh with unread messages, or the one named.
    async markRead(slug = null) {
        const slugs = slug !== null ? [slug]
            : [...this._meshes.values()].filter(m => m.unread > 0).map(m => m.slug);
        for (const s of slugs)
            await this._call('MarkRead', new GLib.Variant('(s)', [s]), '()');
    }

    // What the dialog of a ReplyRequested shows and sends to: {mesh, sender, replyToId, name, text}.
    // The signal names the message by the id a reply names (the broker's, else the inbox id); the
    // sender's name and the text come from the listed messages when the message is among them.
    replyTarget(mesh, messageId, sender) {
        const m = this._messages.find(x => x.mesh === mesh &&
            (x.broker_message_id === messageId || x.id === messageId));
        return {
            mesh,
            sender,
            replyToId: messageId,
            name: cleanText(str(m?.sender_name)) || cleanText(sender, 8),
            text: cleanText(str(m?.body)),
        };
    }

    // Reply to a message of the menu (by its inbox id): a DM to its sender naming it in reply_to_id.
    reply(messageId, text) {
        const m = this._messages.find(x => x.id === messageId);
        if (!m)
            return Promise.reject(new Error('that message is no longer listed'));
        return this.replyTo({mesh: str(m.mesh), sender: str(m.sender_pubkey),
            replyToId: str(m.broker_message_id) || str(m.client_message_id)}, text);
    }

    // A DM to target.sender on target.mesh naming target.replyToId in reply_to_id.
    async replyTo(target, text) {
        if (typeof text !== 'string' || text.trim() === '')
            throw new Error('the reply is empty');
        if (text.length > REPLY_MAX)
            throw new Error(`the reply is longer than ${REPLY_MAX} characters`);
        const options = target.replyToId ? {reply_to_id: new GLib.Variant('s', target.replyToId)} : {};
        const reply = await this._call('Send', new GLib.Variant('(sssa{sv})', [target.mesh, target.sender,
            text, options]), '(sss)');
        const [clientMessageId, status] = reply.deepUnpack();
        return {clientMessageId, status};
    }

    // Start: D-Bus activation (the session bus starts claudemesh.service through systemd when the
    // package's activation file is installed), else systemctl --user.
    async startDaemon() {
        try {
            await new Promise((resolve, reject) => {
                this._connection.call('org.freedesktop.DBus', '/org/freedesktop/DBus', 'org.freedesktop.DBus',
                    'StartServiceByName', new GLib.Variant('(su)', [BUS_NAME, 0]), new GLib.VariantType('(u)'),
                    Gio.DBusCallFlags.NONE, -1, null, (c, res) => {
                        try {
                            resolve(c.call_finish(res));
                        } catch (e) {
                            reject(e);
                        }
                    });
            });
            return 'activated';
        } catch (e) {
            if (!this._startArgv?.length)
                throw e;
        }
        const proc = Gio.Subprocess.new(this._startArgv, Gio.SubprocessFlags.STDERR_PIPE);
        const [, , stderr] = await new Promise((resolve, reject) => {
            proc.communicate_utf8_async(null, null, (p, res) => {
                try {
                    resolve(p.communicate_utf8_finish(res));
                } catch (e) {
                    reject(e);
                }
            });
        });
        if (!proc.get_successful())
            throw new Error(`${this._startArgv.join(' ')}: ${(stderr ?? '').trim() || 'failed'}`);
        return 'started';
    }
}
