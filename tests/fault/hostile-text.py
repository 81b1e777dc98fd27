# SPDX-License-Identifier: LGPL-2.1-or-later
"""hostile-text.py write DIR | check FILE [ESCAPED...] | json FILE PYTHON

write: puts the hostile texts of test-fault-escape.sh in DIR (body, name, summary), each carrying
a title change, a clear screen, an OSC 52 clipboard write, a C1 CSI, bidi overrides and DEL.
check: FILE (human output) holds no control character other than newlines, no C1, bidi mark or
invalid UTF-8, and holds each ESCAPED text.
json: the same for FILE (JSON, or one JSON value a line), then runs PYTHON with d = the parsed
document (a list for several lines) and BODY, NAME, SUMMARY defined: its asserts must hold.
"""
import json
import sys

BODY = ("hi \x1b]0;PWNED-BODY\x07 \x1b[2J\x1b[H \x1b]52;c;cHduZWQ=\x07 \u009b31mC1 "
        "\u202eevil\u202c \u2066iso\u2069 \u200f del\x7f tab\tend\nsecond line \x1b[2J")
NAME = "alice\x1b]0;PWNED-NAME\x07\u202e"
SUMMARY = "busy\tnow\x1b]2;PWNED-SUMMARY\x1b\\\u009b2J\u2067\nline two"
UNSAFE = {0x7F} | set(range(0x80, 0xA0)) | {0x061C, 0x200E, 0x200F} | set(range(0x2028, 0x202F)) | set(range(0x2066, 0x206A))


def check(path, escaped):
    data = open(path, "rb").read()
    text = data.decode("utf-8")     # raises on invalid UTF-8
    bad = [(i, hex(ord(c))) for i, c in enumerate(text) if (ord(c) < 0x20 and c != "\n") or ord(c) in UNSAFE]
    assert not bad, "raw control characters in %s: %s" % (path, bad[:10])
    for e in escaped:
        assert e in text, "%s lacks %r" % (path, e)


if sys.argv[1] == "write":
    for name, text in (("body", BODY), ("name", NAME), ("summary", SUMMARY)):
        with open("%s/%s" % (sys.argv[2], name), "w", encoding="utf-8", newline="") as f:
            f.write(text)
elif sys.argv[1] == "check":
    check(sys.argv[2], sys.argv[3:])
elif sys.argv[1] == "json":
    check(sys.argv[2], [])
    lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
    d = json.loads(lines[0]) if len(lines) == 1 else [json.loads(line) for line in lines]
    exec(sys.argv[3])
else:
    sys.exit("unknown command " + sys.argv[1])
