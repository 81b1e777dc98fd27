#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A profile outlives its connection: set on alice, it is saved (0600) and sent again after every
# hello, so bob sees it after the broker restarts (which forgets it) and after alice's daemon
# restarts. Later changes merge into it. A malformed saved profile is set aside, not trusted.
. "$(dirname "$0")/lib.sh"

alice_and_bob --presence-grace 0

# bob_sees STATUS SUMMARY: bob's ListPeers has alice with them
bob_sees() {
        gcall_on bob ListPeers demo &&
                grep -q "'display_name': <'alice'>, 'status': <'$1'>, 'summary': <'$2'>" "$T/reply"
}
profile_file() { ls "$T/alice/state/claudemesh/sessions/"*.profile.json; }

gcall_on alice SetProfile demo "{'summary': <'reviewing PR 7'>, 'status': <'working'>, 'title': <'Reviewer'>}" ||
        fail "SetProfile: $(cat "$T/reply")"
wait_until 10 bob_sees working "reviewing PR 7" || fail "bob does not see alice's profile: $(cat "$T/reply")"
F=$(profile_file) || fail "no saved profile"
[ "$(stat -c %a "$F")" = 600 ] || fail "$F has mode $(stat -c %a "$F")"
/usr/bin/python3 - "$F" <<'PY' || fail "saved profile: $(cat "$F")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d == {"schema_version": 1, "summary": "reviewing PR 7", "status": "working",
             "profile": {"title": "Reviewer"}}, d
PY
# a later change merges: the summary and title stay
gcall_on alice SetProfile demo "{'status': <'dnd'>, 'bio': <'on call'>}" || fail "SetProfile: $(cat "$T/reply")"
wait_until 10 bob_sees dnd "reviewing PR 7" || fail "bob does not see alice's new status: $(cat "$T/reply")"
/usr/bin/python3 - "$F" <<'PY' || fail "merged profile: $(cat "$F")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d == {"schema_version": 1, "summary": "reviewing PR 7", "status": "dnd",
             "profile": {"title": "Reviewer", "bio": "on call"}}, d
PY

# the broker restarts and knows nothing of it: alice sends it again on her new hello
broker_stop
broker_start --presence-grace 0
wait_connected alice demo
wait_connected bob demo
wait_until 10 bob_sees dnd "reviewing PR 7" || fail "after a broker restart bob sees: $(cat "$T/reply")"

# alice's daemon restarts: it reads the profile back
daemon_stop alice
daemon_start alice
wait_connected alice demo
wait_until 10 bob_sees dnd "reviewing PR 7" || fail "after alice's restart bob sees: $(cat "$T/reply")"

# a damaged file is set aside and the default profile used
daemon_stop alice
printf '{"schema_version":1,"status":"sleeping"}\n' > "$F"
daemon_start alice
wait_connected alice demo
wait_until 10 bob_sees idle "" || fail "bob sees a profile from a malformed file: $(cat "$T/reply")"
grep -q "has a status other than idle, working or dnd; moved it to $F.malformed-" "$T/alice.log" ||
        fail "the malformed profile was not reported: $(grep -i profile "$T/alice.log")"
[ ! -e "$F" ] && ls "$F".malformed-* >/dev/null || fail "the malformed profile was not set aside"
echo "profile: kept across 1 broker restart and 2 daemon restarts"
