// SPDX-License-Identifier: LGPL-2.1-or-later
// Loads every ES module of the GNOME Shell 45+ build (from the directory given, its
// resource:///org/gnome/shell/ imports pointed at esm-stubs/ by test-desktop-esm.sh) and checks
// what each exports: a syntax error, a missing file or a named import nothing exports fails here.
// gjs -m esm-load.js DIR
import GLib from 'gi://GLib';
import System from 'system';

const [dir] = ARGV;

async function main() {
    const uri = name => GLib.filename_to_uri(`${dir}/${name}`, null);
    const {Extension} = await import(uri('stubs/extensions/extension.js'));
    const model = await import(uri('model.js'));
    if (typeof model.ClaudemeshModel !== 'function' || model.EXTENSION_NAME !== 'org.claudemesh.ShellExtension')
        throw new Error('model.js: no ClaudemeshModel or EXTENSION_NAME');
    const indicator = await import(uri('indicator.js'));
    const controller = indicator.ClaudemeshController?.prototype;
    if (typeof controller?.enable !== 'function' || typeof controller?.disable !== 'function')
        throw new Error('indicator.js: no ClaudemeshController with enable() and disable()');
    const extension = await import(uri('extension.js'));
    const ext = new extension.default({uuid: 'claudemesh@claudemesh.org'});
    if (!(ext instanceof Extension) || typeof ext.enable !== 'function' || typeof ext.disable !== 'function')
        throw new Error('extension.js: the default export is not an Extension with enable() and disable()');
    // constructing it did nothing either: no controller until enable()
    if (ext.controller !== undefined)
        throw new Error('extension.js: the constructor did work');
}

let status = 0;
const loop = new GLib.MainLoop(null, false);
main().then(() => print('ok: model.js, indicator.js, extension.js'), e => {
    printerr(`${e}\n${e.stack ?? ''}`);
    status = 1;
}).finally(() => loop.quit());
loop.run();
System.exit(status);
