# SPDX-License-Identifier: LGPL-2.1-or-later
# peers_have DAEMON MESH TEXT: ListPeers on that daemon mentions TEXT (for wait_until in a subshell)
peers_have() {
        DBUS_SESSION_BUS_ADDRESS="unix:path=$T/$1/bus" gdbus call --session --dest org.claudemesh.Daemon1 \
                --object-path /org/claudemesh/Daemon1 --method org.claudemesh.Daemon1.ListPeers "$2" | grep -q "$3"
}
