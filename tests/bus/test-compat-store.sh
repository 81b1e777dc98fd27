#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET /v1/inbox, GET /v1/outbox and POST /v1/outbox/requeue on the /v1 socket, against the real
# outbox.db and inbox.db; upstream's inbox read state and pruning (seen_at, unread_only, mark_seen,
# POST /v1/inbox/seen, DELETE /v1/inbox[/<id>]) as apps/cli/src/daemon/ipc/server.ts:585-712 at
# 1.37.0 answers them. Also, against the real
# outbox.db and inbox.db: every field and type (checked against the rows in SQLite), filters,
# clamping, ordering, errors, a requeue over HTTP seen over D-Bus, and each route answering as
# ListInbox, ListOutbox and Requeue answer over the bus for the same rows.
. "$(dirname "$0")/lib.sh"

start_session_bus
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$T/no-system-bus"   # same-uid fallback: allowed
write_config "$T/config" "$("$MAKE_MESH_ENTRY" acme)" "$("$MAKE_MESH_ENTRY" beta)"
start_daemon
SOCK="$XDG_RUNTIME_DIR/claudemesh/daemon.sock"
STATE="$T/state/claudemesh"
NOW=$(date +%s)000000
ACME=$(mesh_prop acme Id)
BETA=$(mesh_prop beta Id)

# http METHOD PATH [BODY]: prints the status; the reply body is in $T/body ("@file" sends a file)
http() {
        if [ $# -gt 2 ]; then
                curl -sS --max-time 5 --unix-socket "$SOCK" -o "$T/body" -w '%{http_code}' -X "$1" \
                        -H 'Content-Type: application/json' --data-binary "$3" "http://localhost$2"
        else
                curl -sS --max-time 5 --unix-socket "$SOCK" -o "$T/body" -w '%{http_code}' -X "$1" "http://localhost$2"
        fi
}
# expect STATUS [BODY] -- METHOD PATH [BODY]: the reply has that status (and exactly that body)
expect() {
        want=$1 want_body=; shift
        [ "$1" = -- ] || { want_body=$1; shift; }
        shift
        got=$(http "$@")
        [ "$got" = "$want" ] || fail "$1 $2: expected $want, got $got $(head -c 400 "$T/body")"
        [ -z "$want_body" ] || [ "$(cat "$T/body")" = "$want_body" ] ||
                fail "$1 $2: expected $want_body, got $(head -c 400 "$T/body")"
}
# bus METHOD SIGNATURE ARG...: the reply of a Daemon1 call as busctl's JSON, in $T/bus
bus() {
        method=$1; shift
        busctl --user --json=short call $DAEMON "$method" "$@" > "$T/bus" || fail "$method $*: $(cat "$T/bus")"
}
# chk CHECK ARG...: one of the checks of check.py on the last reply body
chk() {
        /usr/bin/python3 "$T/check.py" "$T" "$STATE" "acme=$ACME" "beta=$BETA" "$@" ||
                fail "check $*: $(head -c 600 "$T/body")"
}

cat > "$T/check.py" <<'PY'
import json, re, sqlite3, sys, time

T, STATE = sys.argv[1], sys.argv[2]
SLUGS = dict(reversed(a.split("=", 1)) for a in sys.argv[3:5])
check, args = sys.argv[5], sys.argv[6:]
body = json.load(open(T + "/body"))
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

def iso(us):
    """µs since the epoch as upstream writes times (JavaScript's toISOString); None for 0."""
    if not us:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%03dZ" % (us // 1000 % 1000)

def rows(db, where, values):
    con = sqlite3.connect(STATE + "/" + db)
    con.row_factory = sqlite3.Row
    table = db.split(".")[0]
    found = {r[where]: r for r in con.execute("SELECT * FROM %s WHERE %s IN (%s)" % (
        table, where, ",".join("?" * len(values))), values)}
    assert len(found) == len(values), "missing rows: %s" % (set(values) - set(found))
    return [found[v] for v in values]

def outbox_item(r):
    return {"id": r["id"], "client_message_id": r["client_message_id"], "status": r["status"],
            "attempts": r["attempts"], "enqueued_at": iso(r["enqueued_at"]),
            "next_attempt_at": iso(r["next_attempt_at"]), "delivered_at": iso(r["delivered_at"]),
            "broker_message_id": r["broker_message_id"], "last_error": r["last_error"],
            "aborted_at": iso(r["aborted_at"]), "aborted_by": r["aborted_by"],
            "superseded_by": r["superseded_by"], "payload_bytes": len(r["body"])}

def inbox_item(r):
    # upstream's row (server.ts:636-661)
    return {"id": r["id"], "client_message_id": r["client_message_id"],
            "broker_message_id": r["broker_message_id"], "mesh": SLUGS[r["mesh_id"]], "topic": r["topic"],
            "sender_pubkey": r["sender_pubkey"], "sender_name": r["sender_name"], "body": r["body"],
            "received_at": iso(r["received_at"]), "reply_to_id": r["reply_to_id"], "seen_at": iso(r["seen_at"]),
            "recipient_pubkey": r["recipient_pubkey"] or None, "recipient_kind": r["recipient_kind"] or "member"}

def without_seen(items):
    return [{k: v for k, v in i.items() if k not in HTTP_ONLY} for i in items]

HTTP_ONLY = ("seen_at", "recipient_pubkey", "recipient_kind")

def bus_items(keys):
    """The bus reply's dictionaries in the HTTP shape: "" and 0 become null, µs become ISO times."""
    reply = json.load(open(T + "/bus"))["data"][0]
    out = []
    for d in reply:
        item = {}
        for k in keys:
            v = d[k]
            if v["type"] == "t" and k != "payload_bytes":
                item[k] = iso(v["data"])
            else:
                item[k] = None if v["data"] == "" else v["data"]
        out.append(item)
    return out

assert check == "requeued" or list(body) in (["items"], ["items", "marked_seen"]), body
# server.ts:663: marked_seen counts the rows this listing stamped, and only the inbox has it
assert check not in ("inbox", "seen", "same-inbox") or "marked_seen" in body, body
assert check not in ("outbox", "same-outbox") or "marked_seen" not in body, body
if check == "outbox":        # outbox CMID...: exactly these rows, in this order, as stored
    want = [outbox_item(r) for r in rows("outbox.db", "client_message_id", args)]
    assert body["items"] == want, "\n%s\n!=\n%s" % (body["items"], want)
    assert all(type(i["attempts"]) is int and type(i["payload_bytes"]) is int for i in body["items"])
elif check == "inbox":       # inbox ID...: exactly these messages, in this order, as stored (seen_at
    want = [inbox_item(r) for r in rows("inbox.db", "id", args)]  # as before the listing stamped it)
    assert without_seen(body["items"]) == without_seen(want), "\n%s\n!=\n%s" % (body["items"], want)
    assert all("meta" not in item and "seen_at" in item for item in body["items"])
elif check == "seen":        # seen MARKED ID...: these rows with seen_at exactly as stored now, MARKED stamped
    want = [inbox_item(r) for r in rows("inbox.db", "id", args[1:])]
    assert body["items"] == want and body["marked_seen"] == int(args[0]), "\n%s\n!=\n%s" % (body, want)
elif check == "count":       # count N: N items, newest first
    items = body["items"]
    assert len(items) == int(args[0]), len(items)
    key = "enqueued_at" if "enqueued_at" in items[0] else "received_at"
    assert [i[key] for i in items] == sorted((i[key] for i in items), reverse=True)
elif check == "same-outbox":  # the bus reply in $T/bus lists the same rows with the same values
    assert body["items"] == bus_items(list(body["items"][0])), "\n%s\n!=\n%s" % (
        body["items"], bus_items(list(body["items"][0])))
elif check == "same-inbox":  # (ListInbox has no seen_at, upstream's per-row state, nor the recipient)
    keys = [k for k in body["items"][0] if k not in HTTP_ONLY]
    assert without_seen(body["items"]) == bus_items(keys), "\n%s\n!=\n%s" % (body["items"], bus_items(keys))
elif check == "requeued":    # requeued OLD-CMID NEW-CMID|ulid ABORTED-BY: the reply and both rows
    old, = rows("outbox.db", "client_message_id", [args[0]])
    assert sorted(body) == ["aborted_row_id", "new_client_message_id", "new_row_id"], body
    assert body["aborted_row_id"] == old["id"] and ULID.match(body["new_row_id"]), body
    if args[1] == "ulid":
        assert ULID.match(body["new_client_message_id"]), body
    else:
        assert body["new_client_message_id"] == args[1], body
    new, = rows("outbox.db", "id", [body["new_row_id"]])
    assert old["status"] == "aborted" and old["aborted_by"] == args[2] and old["aborted_at"] > 0, dict(old)
    assert old["superseded_by"] == new["id"], dict(old)
    assert new["status"] == "pending" and new["client_message_id"] == body["new_client_message_id"], dict(new)
    assert (new["body"], new["request_fingerprint"]) == (old["body"], old["request_fingerprint"])
else:
    raise SystemExit("unknown check " + check)
PY

# the routes are announced
expect 200 -- GET /v1/version
/usr/bin/python3 -c 'import json, sys; f = json.load(open(sys.argv[1]))["ipc_features"]; assert "inbox" in f and "outbox" in f, f' \
        "$T/body" || fail "ipc_features: $(cat "$T/body")"

# empty stores
expect 200 '{"items":[]}' -- GET /v1/outbox
expect 200 '{"items":[],"marked_seen":0}' -- GET /v1/inbox

# outbox rows as Send stores them, moved to later states with SQL as the drain does; known
# enqueued_at values (whole milliseconds, one second apart: o7 is the newest)
for i in 1 2 3 4 5 6; do
        gcall Send acme '*' "hello $i" "{'client_message_id': <'o$i'>}" || fail "Send o$i: $(cat "$T/last-reply")"
done
gcall Send beta '@backend' "on beta" "{'client_message_id': <'o7'>}" || fail "Send o7: $(cat "$T/last-reply")"
for i in 1 2 3 4 5 6 7; do
        at=$((NOW - (10 - i) * 1000000 + 123000))
        sql outbox.db "UPDATE outbox SET enqueued_at = $at, next_attempt_at = $at WHERE client_message_id = 'o$i'"
done
sql outbox.db "UPDATE outbox SET status = 'done', attempts = 1, broker_message_id = 'bm-2',
               delivered_at = $((NOW + 5000)) WHERE client_message_id = 'o2'"
sql outbox.db "UPDATE outbox SET status = 'dead', attempts = 25, last_error = 'max_attempts: broker_not_open'
               WHERE client_message_id = 'o3'"
sql outbox.db "UPDATE outbox SET status = 'inflight', attempts = 2, next_attempt_at = $((NOW + 30000000))
               WHERE client_message_id = 'o4'"

# every field of every row, newest first, every mesh
expect 200 -- GET /v1/outbox
chk outbox o7 o6 o5 o4 o3 o2 o1
bus ListOutbox 'sa{sv}' '' 0
chk same-outbox
# status filter; an unknown status filters nothing (upstream ignores it)
expect 200 -- GET '/v1/outbox?status=dead'
chk outbox o3
expect 200 -- GET '/v1/outbox?status=inflight&limit=5'
chk outbox o4
bus ListOutbox 'sa{sv}' '' 1 status s inflight
chk same-outbox
for s in lost DEAD ''; do
        expect 200 -- GET "/v1/outbox?status=$s"
        chk outbox o7 o6 o5 o4 o3 o2 o1
done
# limit: default 50, clamped to 1..500, not a number → 400
expect 200 -- GET '/v1/outbox?limit=2'
chk outbox o7 o6
bus ListOutbox 'sa{sv}' '' 1 limit u 2
chk same-outbox
for l in 0 -5; do
        expect 200 -- GET "/v1/outbox?limit=$l"
        chk outbox o7
done
expect 200 -- GET '/v1/outbox?limit=99999999999999999999999'
chk outbox o7 o6 o5 o4 o3 o2 o1
for l in abc 1.5 2x; do
        expect 400 "{\"error\":\"'limit' must be a whole number\"}" -- GET "/v1/outbox?limit=$l"
done

# requeue: the request's checks
expect 400 '{"error":"invalid JSON"}' -- POST /v1/outbox/requeue ''
expect 400 '{"error":"invalid JSON"}' -- POST /v1/outbox/requeue '{"id":'
expect 400 '{"error":"expected JSON object"}' -- POST /v1/outbox/requeue '["o3"]'
expect 400 "{\"error\":\"missing 'id'\"}" -- POST /v1/outbox/requeue '{}'
expect 400 "{\"error\":\"missing 'id'\"}" -- POST /v1/outbox/requeue '{"id":""}'
expect 400 "{\"error\":\"missing 'id'\"}" -- POST /v1/outbox/requeue '{"id":42}'
O3=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id = 'o3'")
O6=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id = 'o6'")
expect 400 "{\"error\":\"'new_client_message_id' must be a string\"}" -- POST /v1/outbox/requeue \
        "{\"id\":\"$O6\",\"new_client_message_id\":7}"
expect 400 "{\"error\":\"'aborted_by' must be a string\"}" -- POST /v1/outbox/requeue \
        "{\"id\":\"$O6\",\"aborted_by\":true}"
long=$(head -c 129 /dev/zero | tr '\0' x)
for bad in '' "$long" 'tab\u0009in'; do
        expect 400 '{"error":"The new client_message_id must be 1 to 128 printable ASCII characters.","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
                -- POST /v1/outbox/requeue "{\"id\":\"$O6\",\"new_client_message_id\":\"$bad\"}"
done
expect 400 '{"error":"aborted_by must be \"operator\" or \"auto\", not \"robot\".","dbus_error":"org.claudemesh.Daemon1.Error.InvalidArgument"}' \
        -- POST /v1/outbox/requeue "{\"id\":\"$O6\",\"aborted_by\":\"robot\"}"
# the body limit is 4 KiB: 4096 bytes are read (and answered for the unknown row), 4097 are not
/usr/bin/python3 -c 'import sys; b = b"{\"id\":\"01ZZZZZZZZZZZZZZZZZZZZZZZZ\"}"; sys.stdout.buffer.write(b + b" " * (4096 - len(b)))' > "$T/4096"
expect 409 -- POST /v1/outbox/requeue "@$T/4096"
printf ' ' >> "$T/4096"
expect 413 -- POST /v1/outbox/requeue "@$T/4096"
[ "$(sql outbox.db "SELECT count(*) FROM outbox WHERE status = 'aborted'")" = 0 ] || fail "a refused requeue changed a row"

# requeue: rows that cannot be requeued are one 409 for upstream; the bus says which case
NOT='"error":"row not found, already aborted, or already done"'
expect 409 "{$NOT,\"detail\":\"No outbox row \\\"01ZZZZZZZZZZZZZZZZZZZZZZZZ\\\".\",\"dbus_error\":\"org.claudemesh.Daemon1.Error.NoSuchMessage\"}" \
        -- POST /v1/outbox/requeue '{"id":"01ZZZZZZZZZZZZZZZZZZZZZZZZ"}'
gexpect NoSuchMessage Requeue 01ZZZZZZZZZZZZZZZZZZZZZZZZ "@a{sv} {}"
for c in o2 o4; do
        id=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id = '$c'")
        expect 409 "{$NOT,\"detail\":\"Outbox row \\\"$id\\\" is neither pending nor dead; only those can be requeued.\",\"dbus_error\":\"org.claudemesh.Daemon1.Error.NotRequeueable\"}" \
                -- POST /v1/outbox/requeue "{\"id\":\"$id\"}"
        gexpect NotRequeueable Requeue "$id" "@a{sv} {}"
done
# a new id already in use: 400 with the store's sentence; the row stays as it was
expect 400 '{"error":"client_message_id \"o1\" is already used by another outbox row; ids are never reused.","dbus_error":"org.claudemesh.Daemon1.Error.ClientMessageIdInUse"}' \
        -- POST /v1/outbox/requeue "{\"id\":\"$O6\",\"new_client_message_id\":\"o1\"}"
gexpect ClientMessageIdInUse Requeue "$O6" "{'client_message_id': <'o1'>}"
[ "$(sql outbox.db "SELECT status FROM outbox WHERE id = '$O6'")" = pending ] || fail "a refused requeue changed o6"

# requeue a dead row: a minted ULID, aborted by "operator"; then it is aborted: 409
expect 200 -- POST /v1/outbox/requeue "{\"id\":\"$O3\"}"
chk requeued o3 ulid operator
R3=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["new_client_message_id"])' "$T/body")
expect 409 -- POST /v1/outbox/requeue "{\"id\":\"$O3\"}"
gexpect NotRequeueable Requeue "$O3" "@a{sv} {}"
# a pending row, with the caller's id and aborted_by
O5=$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id = 'o5'")
expect 200 -- POST /v1/outbox/requeue "{\"id\":\"$O5\",\"new_client_message_id\":\"o5-again\",\"aborted_by\":\"auto\"}"
chk requeued o5 o5-again auto
# null means absent
expect 200 -- POST /v1/outbox/requeue "{\"id\":\"$O6\",\"new_client_message_id\":null,\"aborted_by\":null}"
chk requeued o6 ulid operator
R6=$(/usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["new_client_message_id"])' "$T/body")

# the same store: D-Bus sees what HTTP did, and both list it alike (new rows are the newest)
gcall ListOutbox '' "{'status': <'aborted'>}" || fail "ListOutbox: $(cat "$T/last-reply")"
[ "$(grep -o "'status': <'aborted'>" "$T/last-reply" | wc -l)" = 3 ] || fail "the bus does not see 3 aborted rows: $(cat "$T/last-reply")"
expect 200 -- GET '/v1/outbox?status=aborted'
chk outbox o6 o5 o3
bus ListOutbox 'sa{sv}' '' 1 status s aborted
chk same-outbox
expect 200 -- GET /v1/outbox
chk outbox "$R6" o5-again "$R3" o7 o6 o5 o4 o3 o2 o1
bus ListOutbox 'sa{sv}' '' 0
chk same-outbox
# and a requeue over the bus shows over HTTP
gcall Requeue "$(sql outbox.db "SELECT id FROM outbox WHERE client_message_id = 'o1'")" "{'client_message_id': <'o1-bus'>}" ||
        fail "Requeue: $(cat "$T/last-reply")"
expect 200 -- GET '/v1/outbox?status=aborted'
chk outbox o6 o5 o3 o1

# inbox rows as the receive path stores them: a topic, a reply, a missing body, two meshes;
# received one second apart (i4 is the newest)
ins() { # ins ID MESH-ID TOPIC SENDER BODY REPLY-TO BROKER-ID SECONDS-AGO (SQL literals)
        sql inbox.db "INSERT INTO inbox (id, client_message_id, broker_message_id, mesh_id, topic, sender_pubkey,
                      sender_name, body, meta, received_at, reply_to_id)
                      VALUES ('$1', 'c-$1', $7, '$2', $3, '$4', 'name-$4', $5, '{\"created_at\":1}',
                      $((NOW - $8 * 1000000 + 456000)), $6)"
}
ins i1 "$ACME" NULL pk1 "'body 1'" NULL "'bm-i1'" 4
ins i2 "$ACME" "'t1'" pk2 "'body 2'" "'i1'" "'bm-i2'" 3
ins i3 "$ACME" NULL pk3 NULL NULL NULL 2
ins i4 "$BETA" "'t1'" pk1 "'on beta'" NULL "'bm-i4'" 1

# read state (server.ts:596-606): mark_seen=false only peeks; unread_only=true lists rows whose
# seen_at is null; a plain listing stamps what it returned and says how many (marked_seen)
expect 200 -- GET '/v1/inbox?mark_seen=false'
chk seen 0 i4 i3 i2 i1
expect 200 -- GET '/v1/inbox?unread_only=true&mark_seen=false&limit=2'
chk seen 0 i4 i3
expect 200 -- GET '/v1/inbox?unread_only=false&mark_seen=false'
chk seen 0 i4 i3 i2 i1
expect 200 -- GET '/v1/inbox?mesh=beta'
chk inbox i4
[ "$(sql inbox.db "SELECT count(*) FROM inbox WHERE seen_at IS NOT NULL")" = 1 ] || fail "mark_seen stamped other rows"
/usr/bin/python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))
assert b["marked_seen"] == 1 and b["items"][0]["seen_at"] is None, b' "$T/body" || fail "first listing: $(cat "$T/body")"
expect 200 -- GET /v1/inbox
chk inbox i4 i3 i2 i1
/usr/bin/python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))
assert b["marked_seen"] == 3 and [i["seen_at"] is None for i in b["items"]] == [False, True, True, True], b' \
        "$T/body" || fail "the stamping listing: $(cat "$T/body")"
expect 200 '{"items":[],"marked_seen":0}' -- GET '/v1/inbox?unread_only=true'
expect 200 -- GET '/v1/inbox?mark_seen=false'
chk seen 0 i4 i3 i2 i1
for q in unread_only mark_seen; do
        for bad in yes 1 TRUE; do
                expect 400 "{\"error\":\"'$q' must be true or false\"}" -- GET "/v1/inbox?$q=$bad"
        done
done
expect 200 -- GET /v1/inbox
chk seen 0 i4 i3 i2 i1
bus ListInbox 'sa{sv}' '' 0
chk same-inbox
# since: ISO 8601, received_at >= since, any offset
since=$(/usr/bin/python3 -c 'import sys, time; us = int(sys.argv[1]) - 3000000 + 456000
print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%03dZ" % (us // 1000 % 1000))' "$NOW")
expect 200 -- GET "/v1/inbox?since=$since"
chk inbox i4 i3 i2
# D-Bus takes the same time as µs since the epoch (a t), at the ms the ISO text has
since_us=$(/usr/bin/python3 -c 'import sys; print((int(sys.argv[1]) - 3000000 + 456000) // 1000 * 1000)' "$NOW")
bus ListInbox 'sa{sv}' '' 1 since t "$since_us"
chk same-inbox
offset=$(/usr/bin/python3 -c 'import sys, time; us = int(sys.argv[1]) - 3000000 + 456000 + 7200000000
print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%03d%%2B02:00" % (us // 1000 % 1000))' "$NOW")
expect 200 -- GET "/v1/inbox?since=$offset"
chk inbox i4 i3 i2
for bad in yesterday 2026-05-03 "$(date +%s)" '2026-13-01T00:00:00Z'; do
        expect 400 "{\"error\":\"'since' must be an ISO 8601 time, such as 2026-05-03T19:24:32.123Z\"}" \
                -- GET "/v1/inbox?since=$bad"
done
# topic, from, mesh (slug or id), and together
expect 200 -- GET '/v1/inbox?topic=t1'
chk inbox i4 i2
bus ListInbox 'sa{sv}' '' 1 topic s t1
chk same-inbox
expect 200 -- GET '/v1/inbox?from=pk1'
chk inbox i4 i1
expect 200 -- GET '/v1/inbox?mesh=acme'
chk inbox i3 i2 i1
bus ListInbox 'sa{sv}' acme 0
chk same-inbox
expect 200 -- GET "/v1/inbox?mesh=$BETA"
chk inbox i4
expect 200 -- GET '/v1/inbox?mesh=acme&topic=t1&from=pk2'
chk inbox i2
expect 200 '{"items":[],"marked_seen":0}' -- GET '/v1/inbox?mesh=beta&from=pk2'
expect 200 -- GET '/v1/inbox?mesh=&topic=&from=&since='
chk inbox i4 i3 i2 i1
expect 400 -- GET '/v1/inbox?mesh=nope'
/usr/bin/python3 -c 'import json, sys; b = json.load(open(sys.argv[1]))
assert b["dbus_error"] == "org.claudemesh.Daemon1.Error.NoSuchMesh" and "acme, beta" in b["error"], b' "$T/body" ||
        fail "unknown mesh: $(cat "$T/body")"
gexpect NoSuchMesh ListInbox nope "@a{sv} {}"
# limit: default 100, clamped to 1..1000
expect 200 -- GET '/v1/inbox?limit=2'
chk inbox i4 i3
expect 200 -- GET '/v1/inbox?limit=0'
chk inbox i4
expect 400 "{\"error\":\"'limit' must be a whole number\"}" -- GET '/v1/inbox?limit=ten'

# POST /v1/inbox/seen (server.ts:673-686): the strings of "ids", unknown ones count nothing
ins i5 "$ACME" NULL pk5 "'five'" NULL NULL 0
ins i6 "$BETA" NULL pk6 "'six'" NULL NULL 0
expect 200 -- GET '/v1/inbox?unread_only=true&mark_seen=false'
chk seen 0 i6 i5
expect 400 '{"error":"invalid JSON"}' -- POST /v1/inbox/seen ''
expect 400 '{"error":"expected JSON object"}' -- POST /v1/inbox/seen '["i5"]'
for bad in '{}' '{"ids":"i5"}' '{"ids":[]}' '{"ids":[1,null,{}]}' '{"ids":null}'; do
        expect 400 "{\"error\":\"missing 'ids' (string[])\"}" -- POST /v1/inbox/seen "$bad"
done
expect 400 "{\"error\":\"'ids' must not contain NUL (U+0000)\"}" -- POST /v1/inbox/seen '{"ids":["i5\u0000x"]}'
expect 200 '{"marked_seen":1}' -- POST /v1/inbox/seen '{"ids":["i5","nope",7,"i1"]}'
expect 200 '{"marked_seen":0}' -- POST /v1/inbox/seen '{"ids":["i5"]}'
expect 200 -- GET '/v1/inbox?unread_only=true&mark_seen=false'
chk seen 0 i6
# upstream reads at most 64 KiB of it
/usr/bin/python3 -c 'import sys; b = b"{\"ids\":[\"i6\"]}"; sys.stdout.buffer.write(b + b" " * (65536 - len(b)))' > "$T/64k"
expect 200 '{"marked_seen":1}' -- POST /v1/inbox/seen "@$T/64k"
printf ' ' >> "$T/64k"
expect 413 -- POST /v1/inbox/seen "@$T/64k"

# DELETE /v1/inbox/<id> (server.ts:704-712): 400 without an id, 404 with it when unknown
expect 400 '{"error":"missing id"}' -- DELETE /v1/inbox/
expect 404 '{"error":"not found","id":"nope"}' -- DELETE /v1/inbox/nope
expect 200 '{"removed":1,"id":"i5"}' -- DELETE /v1/inbox/i5
expect 404 '{"error":"not found","id":"i5"}' -- DELETE /v1/inbox/i5
[ "$(sql inbox.db "SELECT count(*) FROM inbox WHERE id = 'i5'")" = 0 ] || fail "i5 is still stored"
expect 404 '{"error":"not found"}' -- PUT /v1/inbox/i6
# DELETE /v1/inbox?mesh=&before= (server.ts:692-702): rows received before the time, of one mesh
expect 400 "{\"error\":\"'before' must be an ISO 8601 time, such as 2026-05-03T19:24:32.123Z\"}" \
        -- DELETE '/v1/inbox?before=yesterday'
expect 400 -- DELETE '/v1/inbox?mesh=nope'
grep -q '"dbus_error":"org.claudemesh.Daemon1.Error.NoSuchMesh"' "$T/body" || fail "flush of an unknown mesh: $(cat "$T/body")"
before=$(/usr/bin/python3 -c 'import sys, time; us = int(sys.argv[1]) - 500000
print(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1000000)) + ".%03dZ" % (us // 1000 % 1000))' "$NOW")
expect 200 '{"removed":1}' -- DELETE "/v1/inbox?mesh=beta&before=$before"
expect 200 -- GET '/v1/inbox?mesh=beta&mark_seen=false'
chk seen 0 i6
expect 200 '{"removed":0}' -- DELETE "/v1/inbox?mesh=beta&before=$before"

# clamping against more rows than the caps
sql inbox.db "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1100)
              INSERT INTO inbox (id, client_message_id, mesh_id, sender_pubkey, sender_name, received_at)
              SELECT 'bulk-' || i, 'bulk-' || i, '$ACME', 'pk9', 'bulk', $NOW - 60000000 - i FROM n"
expect 200 -- GET /v1/inbox
chk count 100
expect 200 -- GET '/v1/inbox?limit=5000'
chk count 1000
expect 200 -- GET '/v1/inbox?limit=1000&from=pk9'
chk count 1000
sql outbox.db "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 520)
               INSERT INTO outbox (id, client_message_id, mesh_id, kind, destination_ref, target_spec, priority,
                 body, request_fingerprint, enqueued_at, attempts, next_attempt_at, status)
               SELECT 'bulk-' || i, 'bulk-' || i, mesh_id, kind, destination_ref, target_spec, priority, body,
                 request_fingerprint, enqueued_at - 60000000 - i, 1, next_attempt_at, 'done'
               FROM n, outbox WHERE client_message_id = 'o2'"
expect 200 -- GET /v1/outbox
chk count 50
expect 200 -- GET '/v1/outbox?limit=100000'
chk count 500
expect 200 -- GET '/v1/outbox?limit=499&status=done'
chk count 499

# a flush of every mesh empties the inbox, and UnreadCount follows at once
[ "$(mesh_prop acme UnreadCount)" != "u 0" ] || fail "acme has no unread messages before the flush"
expect 200 -- DELETE /v1/inbox
/usr/bin/python3 -c 'import json, sys; assert json.load(open(sys.argv[1])) == {"removed": 1100 + 4}' "$T/body" ||
        fail "DELETE /v1/inbox: $(cat "$T/body")"
expect 200 '{"items":[],"marked_seen":0}' -- GET /v1/inbox
[ "$(mesh_prop acme UnreadCount)" = "u 0" ] || fail "UnreadCount after the flush: $(mesh_prop acme UnreadCount)"

# a damaged outbox.db: both surfaces say it is unavailable (503 over HTTP); the inbox still answers
stop_daemon
rm -f "$STATE/outbox.db-wal" "$STATE/outbox.db-shm"
head -c 8192 /dev/urandom > "$STATE/outbox.db"
start_daemon
OUT='"dbus_error":"org.claudemesh.Daemon1.Error.OutboxUnavailable"'
expect 503 -- GET /v1/outbox
grep -q "$OUT" "$T/body" || fail "GET /v1/outbox with a damaged outbox: $(cat "$T/body")"
expect 503 -- POST /v1/outbox/requeue "{\"id\":\"$O6\"}"
grep -q "$OUT" "$T/body" || fail "requeue with a damaged outbox: $(cat "$T/body")"
gexpect OutboxUnavailable ListOutbox '' "@a{sv} {}"
expect 200 '{"items":[],"marked_seen":0}' -- GET '/v1/inbox?limit=1'
stop_daemon
echo ok
