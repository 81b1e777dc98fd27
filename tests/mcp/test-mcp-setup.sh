#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# claudemeshctl setup claude-code: merges the MCP server entry into ~/.claude.json keeping every
# other key, the file's mode and a backup of the old bytes; --print writes nothing; a file that is
# not a JSON object is refused untouched; a second run changes nothing.
set -eu
T=$(mktemp -d /tmp/cm-mcp-setup.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
export HOME="$T/home"
mkdir -p "$HOME"
CFG="$HOME/.claude.json"
SELF=$(realpath "$CLAUDEMESHCTL")

run() {  # run CODE ARG...: output in $T/out, $T/err
        want=$1; shift
        rc=0
        "$CLAUDEMESHCTL" "$@" > "$T/out" 2> "$T/err" || rc=$?
        [ "$rc" = "$want" ] || fail "claudemeshctl $* exited $rc, expected $want: $(cat "$T/out" "$T/err")"
}
check() {  # check PYTHON: with c = ~/.claude.json parsed, entry = its claudemesh server
        /usr/bin/python3 -c "import json, os, sys
c = json.load(open(sys.argv[1])); entry = c['mcpServers']['claudemesh']; self = sys.argv[2]
$1" "$CFG" "$SELF" || fail "check failed: $1: $(cat "$CFG")"
}

# no file yet: created, 0600
run 0 setup claude-code
check 'assert c == {"mcpServers": {"claudemesh": {"command": self, "args": ["mcp"]}}}, c'
[ "$(stat -c %a "$CFG")" = 600 ] || fail "new file mode $(stat -c %a "$CFG")"
[ ! -e "$CFG.bak" ] || fail "a backup of nothing"
grep -q -- "--dangerously-load-development-channels server:claudemesh" "$T/out" || fail "no channel flag hint: $(cat "$T/out")"

# Claude Code's own keys, another server, an odd mode: all kept; the old bytes in the backup
cat > "$CFG" <<'JSON'
{"numStartups": 7, "theme": "dark", "projects": {"/src/x": {"allowedTools": ["Bash"], "history": [{"display": "héllo \u2028"}]}},
 "mcpServers": {"other": {"command": "/usr/bin/other", "args": ["--x"], "env": {"K": "V"}}}, "big": 12345678901234, "f": 1.5}
JSON
chmod 640 "$CFG"
cp "$CFG" "$T/orig"
run 0 setup claude-code --mesh demo --no-tools
check '
assert entry == {"command": self, "args": ["mcp", "--mesh", "demo", "--no-tools"]}, entry
assert c["mcpServers"]["other"] == {"command": "/usr/bin/other", "args": ["--x"], "env": {"K": "V"}}, c
assert c["numStartups"] == 7 and c["theme"] == "dark" and c["big"] == 12345678901234 and c["f"] == 1.5, c
assert c["projects"] == {"/src/x": {"allowedTools": ["Bash"], "history": [{"display": "héllo \u2028"}]}}, c
assert list(c) == ["numStartups", "theme", "projects", "mcpServers", "big", "f"], list(c)'
[ "$(stat -c %a "$CFG")" = 640 ] || fail "mode not kept: $(stat -c %a "$CFG")"
cmp -s "$CFG.bak" "$T/orig" || fail "the backup is not the old file"
[ "$(stat -c %a "$CFG.bak")" = 640 ] || fail "backup mode $(stat -c %a "$CFG.bak")"
ls "$HOME" -a | grep -q tmp && fail "a temporary file was left: $(ls -a "$HOME")"

# the same again: nothing written
cp "$CFG" "$T/after"
run 0 setup claude-code --mesh demo --no-tools
grep -q "nothing changed" "$T/out" || fail "second run: $(cat "$T/out")"
cmp -s "$CFG" "$T/after" || fail "an unchanged entry rewrote the file"

# --print: the entry on stdout, the file untouched
run 0 setup claude-code --print
/usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
assert d == {"mcpServers": {"claudemesh": {"command": sys.argv[2], "args": ["mcp"]}}}, d' "$T/out" "$SELF" ||
        fail "--print: $(cat "$T/out")"
cmp -s "$CFG" "$T/after" || fail "--print changed the file"

# not JSON, not an object, mcpServers not an object: refused, untouched, and said what to do
for bad in '{"numStartups": 7,' '[1, 2]' '{"mcpServers": []}'; do
        printf '%s\n' "$bad" > "$CFG"
        cp "$CFG" "$T/bad"
        run 1 setup claude-code
        grep -q "nothing was changed" "$T/err" || fail "no refusal for $bad: $(cat "$T/err")"
        grep -q "setup claude-code --print" "$T/err" || fail "no advice for $bad: $(cat "$T/err")"
        cmp -s "$CFG" "$T/bad" || fail "$bad was changed"
done

# a target we do not know
run 2 setup vim
grep -q "claude-code" "$T/err" || fail "unknown target: $(cat "$T/err")"
echo ok
