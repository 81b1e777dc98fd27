// SPDX-License-Identifier: LGPL-2.1-or-later
// Runs the extension's model (desktop/gnome-shell/model.js, as shipped) under plain gjs on the
// session bus of DBUS_SESSION_BUS_ADDRESS: prints "NAME <its unique bus name>", then "VIEW <json>"
// after every change the model reports, "REPLYREQ <json>" for every ReplyRequested (the target the
// extension's dialog would send to), and takes one command a line on stdin:
//   markread | reply TEXT (to the newest message) | replyto TEXT (to the last ReplyRequested, as
//   the dialog sends) | start | stop | handlers
// answering "OK <command> <json>" or "ERR <command> <message>".
// gjs -m model-driver.js [START_ARGV_JSON]

import Gio from 'gi://Gio';
import GLib from 'gi://GLib';
import System from 'system';

import {ClaudemeshModel, cleanText, stateDot, formatTime} from '../../desktop/gnome-shell/model.js';

// no top-level await: the main loop below must not run inside a promise job, or no job would
const [startArgvJson] = ARGV;

const out = Gio.UnixOutputStream.new(1, false);
function print_(line) {
    out.write_all(new TextEncoder().encode(`${line}\n`), null);
}

const loop = new GLib.MainLoop(null, false);
let requested = null;
const model = new ClaudemeshModel({
    connection: Gio.DBus.session,
    onChanged: () => print_(`VIEW ${JSON.stringify(model.view())}`),
    onReplyRequested: target => {
        requested = target;
        print_(`REPLYREQ ${JSON.stringify(target)}`);
    },
    ...(startArgvJson ? {startArgv: JSON.parse(startArgvJson)} : {}),
});

// the pure helpers, on hostile text
const checks = [
    [cleanText('a\x1b[31mb\nc\u202etxt'), 'a\\u001b[31mb c\\u202etxt'],
    [cleanText('x'.repeat(100), 10), `${'x'.repeat(10)}…`],
    [cleanText(42), ''],
    [stateDot('backoff'), 'connecting'],
    [stateDot('detached'), 'failed'],
    [stateDot('connected'), 'connected'],
    [formatTime(0), ''],
];
for (const [got, want] of checks) {
    if (got !== want) {
        printerr(`helper check failed: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
        System.exit(2);
    }
}

const input = new Gio.DataInputStream({base_stream: Gio.UnixInputStream.new(0, false)});
async function command(line) {
    const [cmd, ...rest] = line.split(' ');
    const arg = rest.join(' ');
    try {
        let result = null;
        if (cmd === 'markread') {
            await model.markRead();
        } else if (cmd === 'reply') {
            const [newest] = model.view().messages;
            if (!newest)
                throw new Error('no message');
            result = await model.reply(newest.id, arg);
        } else if (cmd === 'replyto') {
            if (!requested)
                throw new Error('no ReplyRequested');
            result = await model.replyTo(requested, arg);
        } else if (cmd === 'start') {
            result = await model.startDaemon();
        } else if (cmd === 'stop') {
            model.stop();
        } else if (cmd === 'handlers') {
            result = model.liveHandlers;
        } else {
            throw new Error('unknown command');
        }
        print_(`OK ${cmd} ${JSON.stringify(result)}`);
    } catch (e) {
        print_(`ERR ${cmd} ${e.message}`);
    }
}
function readLine() {
    input.read_line_async(GLib.PRIORITY_DEFAULT, null, (s, res) => {
        const [line] = s.read_line_finish_utf8(res);
        if (line === null) {
            loop.quit();
            return;
        }
        command(line).then(readLine);
    });
}
print_(`NAME ${Gio.DBus.session.get_unique_name()}`);
model.start();
readLine();
loop.run();
