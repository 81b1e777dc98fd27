#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The bash completion of send's target against daemons linked through our broker: the peers'
# display names and @groups as the daemon lists them, for the mesh on the line, then \*. Also
# profile without options, which needs a connected mesh too.
. "$SOURCE_ROOT/tests/e2e/lib.sh"

broker_start
mesh_create demo > /dev/null
mesh_create other > /dev/null
daemon_setup alice "$(member_entry demo alice)" "$(member_entry other alice)"
daemon_setup bob "$(member_entry demo bob)"
/usr/bin/python3 - "$T/bob/config/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["groups"] = [{"name": "backend", "role": "member"}]
json.dump(c, open(sys.argv[1], "w"))
PY
daemon_start alice
daemon_start bob
wait_connected alice demo
wait_connected alice other
wait_connected bob demo
wait_until 10 sh -c "DBUS_SESSION_BUS_ADDRESS=unix:path=$T/alice/bus '$CLAUDEMESHCTL' --json peers -m demo | grep -q '\"bob\"'" ||
        fail "alice does not see bob"

PATH="$(dirname "$CLAUDEMESHCTL"):$PATH"
export DBUS_SESSION_BUS_ADDRESS="unix:path=$T/alice/bus"
if [ -f /usr/share/bash-completion/bash_completion ]; then
        . /usr/share/bash-completion/bash_completion
else
        _init_completion() {
                words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
                cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD - 1]}
        }
fi
. "$SOURCE_ROOT/completion/bash/claudemeshctl"
complete_is() {
        want=$1; shift
        COMP_WORDS=(claudemeshctl "$@"); COMP_CWORD=$#
        COMP_LINE="claudemeshctl $*"; COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _claudemeshctl || :
        got="${COMPREPLY[*]}"
        [ "$got" = "$want" ] || fail "completing '$*': got '$got', expected '$want'"
}

cd "$T"
complete_is 'alice bob @backend \*' send --mesh demo ""
complete_is '@backend' send -m demo "@b"
complete_is 'bob' send -p now -m demo b
complete_is 'alice \*' send -m other ""
# two meshes and none named: the daemon cannot tell whose peers; * still
complete_is '\*' send ""
# profile without options shows this session's row (bob's, with its group)
DBUS_SESSION_BUS_ADDRESS="unix:path=$T/bob/bus" "$CLAUDEMESHCTL" profile > "$T/profile" || fail "profile: $(cat "$T/profile")"
grep -Eq '^ +Name: bob$' "$T/profile" && grep -Eq '^ +Groups: @backend$' "$T/profile" || fail "profile shows: $(cat "$T/profile")"
echo "ok: send completes peers and groups of the named mesh; profile shows the profile"
