# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers for the D-Bus API tests: normalize introspection XML and list its members.

  dbus-api.py normalize FILE...   print the org.claudemesh.* interfaces of the given
                                  introspection XML files, one member per line, without
                                  doc annotations, so two sources can be diffed
  dbus-api.py members FILE        print "Interface.Member" for every member, one a line
"""
import sys
import xml.etree.ElementTree as ET

DOC = "org.gtk.GDBus.DocString"


def interfaces(paths):
    seen = {}
    for path in paths:
        for iface in ET.parse(path).getroot().iter("interface"):
            name = iface.get("name")
            if name.startswith("org.claudemesh.") and name not in seen:
                seen[name] = iface
    return seen


def annotations(el):
    return ",".join(f'{a.get("name")}={a.get("value")}' for a in el.findall("annotation") if a.get("name") != DOC)


def normalize(paths):
    for name, iface in sorted(interfaces(paths).items()):
        print(f"interface {name} [{annotations(iface)}]")
        for el in iface:
            if el.tag == "annotation":
                continue
            args = ",".join(f'{a.get("name")}:{a.get("type")}:{a.get("direction", "")}' for a in el.findall("arg"))
            print(f'  {el.tag} {el.get("name")} type={el.get("type", "")} access={el.get("access", "")} '
                  f"args=({args}) [{annotations(el)}]")


def members(path):
    for name, iface in sorted(interfaces([path]).items()):
        for el in iface:
            if el.tag in ("method", "property", "signal"):
                print(f'{name}.{el.get("name")}')


if __name__ == "__main__":
    if sys.argv[1] == "normalize":
        normalize(sys.argv[2:])
    elif sys.argv[1] == "members":
        members(sys.argv[2])
    else:
        sys.exit(__doc__)
