#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Rewrites one of the extension's ES modules for GNOME Shell 43 and 44, which load extensions
with the legacy imports object: import lines become imports.* lookups and exports become the
var and function declarations legacy modules export. Only the forms the sources use are known;
anything else is an error, so a new form cannot slip into the legacy build unconverted.

to-legacy.py INPUT OUTPUT"""
import re
import sys

GI = re.compile(r"^import (\w+) from 'gi://(\w+)';$")
SHELL = re.compile(r"^import \* as (\w+) from 'resource:///org/gnome/shell/(ui|misc)/(\w+)\.js';$")
LOCAL = re.compile(r"^import \{([\w, ]+)\} from '\./(\w+)\.js';$")
EXPORT_CLASS = re.compile(r"^export class (\w+)")
EXPORT_FUNCTION = re.compile(r"^export (async )?function ")
EXPORT_CONST = re.compile(r"^export const (\w+) =")


def convert(lines):
    out = []
    for n, line in enumerate(lines, 1):
        text = line.rstrip("\n")
        if m := GI.match(text):
            out.append(f"const {m[1]} = imports.gi.{m[2]};")
        elif m := SHELL.match(text):
            out.append(f"const {m[1]} = imports.{m[2]}.{m[3]};")
        elif m := LOCAL.match(text):
            out.append(f"const {{{m[1]}}} = imports.misc.extensionUtils.getCurrentExtension().imports.{m[2]};")
        elif m := EXPORT_CLASS.match(text):
            # a class declaration is not a property of a legacy module; a var is
            out.append(f"var {m[1]} = class {m[1]}" + text[m.end():])
        elif EXPORT_FUNCTION.match(text):
            out.append(text[len("export "):])
        elif m := EXPORT_CONST.match(text):
            out.append("var" + text[len("export const"):])
        elif re.match(r"^\s*(import|export)\b", text):
            raise SystemExit(f"{sys.argv[1]}:{n}: no legacy form known for: {text}")
        else:
            out.append(text)
    return out


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        lines = f.readlines()
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write("// Generated from the ES module by to-legacy.py for GNOME Shell 43 and 44: edit the source.\n")
        f.write("\n".join(convert(lines)) + "\n")


main()
