#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The bash completion: commands, options per command, option values, and mesh slugs and outbox
# rows asked of the running daemon. send's target is never globbed into file names; requeue
# offers only the rows it can requeue. (Peer and group names: test-ctl-completion-live.sh.)
. "$(dirname "$0")/lib-ctl.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
start_daemon
"$CLAUDEMESHCTL" send -m acme @all hi --id c1 > /dev/null || fail "send"
"$CLAUDEMESHCTL" send -m acme @all hi --id c2 > /dev/null || fail "send"
ROW=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id='c1'")
# a delivered row cannot be requeued, so completion does not offer it
sql outbox.db "UPDATE outbox SET status = 'done' WHERE client_message_id = 'c2'"
PATH="$(dirname "$CLAUDEMESHCTL"):$PATH"

# bash-completion's helper, when the package is not installed: the words as bash split them
if [ -f /usr/share/bash-completion/bash_completion ]; then
        . /usr/share/bash-completion/bash_completion
else
        _init_completion() {
                words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD
                cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD - 1]}
        }
fi
. "$SOURCE_ROOT/completion/bash/claudemeshctl"

# complete EXPECTED WORD...: completing the last WORD offers exactly EXPECTED
complete_is() {
        want=$1; shift
        COMP_WORDS=(claudemeshctl "$@"); COMP_CWORD=$#
        COMP_LINE="claudemeshctl $*"; COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        # compgen fails when nothing matches: not an error for completion, so no set -e inside
        _claudemeshctl || :
        got="${COMPREPLY[*]}"
        [ "$got" = "$want" ] || fail "completing '$*': got '$got', expected '$want'"
}

complete_is "status meshes send inbox outbox requeue peers profile accept-host reconnect mark-read watch mcp setup" ""
complete_is "send setup" se
complete_is "meshes mark-read mcp" m
complete_is "--json" --j
complete_is "-h --help --version --json -l --full --no-ask-password --mesh --priority --meta --reply-to --id" send -
complete_is "--mesh --meta" send --me
complete_is "--since" inbox --si
complete_is "--full --from --follow" inbox --f
complete_is "now next low" send --priority ""
complete_is "pending inflight done dead aborted" outbox --status ""
complete_is "idle working dnd" profile --status ""
complete_is "yes no" profile --visible ""
complete_is "acme beta" peers --mesh ""
complete_is "beta" --json watch -m b
complete_is "$ROW" requeue ""
complete_is "" status --mesh-that-does-not-exist
complete_is "$ROW" -m acme requeue ""
# file names in the current directory are not targets; * is offered quoted
cd "$T"; touch some-file other-file
complete_is '\*' send ""
complete_is '\*' send --mesh acme ""
complete_is '\*' send -p now ""
complete_is "-" send x ""
complete_is "" send x y ""
complete_is "claude-code" setup ""
complete_is "" setup claude-code ""
complete_is "--no-ask-password --no-tools" setup claude-code --no
complete_is "--print" setup --p
complete_is "--no-ask-password --no-tools --name" mcp --n
complete_is "--session-id" mcp --se
complete_is "" mcp --name ""
echo ok
