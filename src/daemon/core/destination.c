/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "destination.h"
#include "error-message.h"
#include "hex-util.h"
#include "macro.h"

#define GROUP_NAME_MAX 64
#define TOPIC_ID_MAX 128
#define CANDIDATES_MAX 8

void destination_done(Destination *d) {
        d->ref = mfree(d->ref);
        d->target_spec = mfree(d->target_spec);
}

/* Group names and topic ids travel inside JSON and are compared exactly by the broker:
 * printable, no spaces. */
static bool is_token(const char *s, size_t max) {
        size_t n = 0;
        for (; s[n]; n++)
                if ((unsigned char) s[n] <= ' ' || s[n] == 0x7f)
                        return false;
        return n > 0 && n <= max;
}

/* A DM is sealed to the key's curve25519 form: a key without one (not on the curve, or of
 * small order) could be queued but never sent. */
static bool is_sealable_key(const char *hex) {
        uint8_t ed[crypto_sign_PUBLICKEYBYTES], curve[crypto_scalarmult_curve25519_BYTES];

        if (sodium_hex2bin(ed, sizeof ed, hex, 64, NULL, NULL, NULL) < 0)
                return false;
        return crypto_sign_ed25519_pk_to_curve25519(curve, ed) == 0;
}

static int set(Destination *d, const char *kind, const char *ref) {
        d->kind = kind;
        d->ref = strdup(ref);
        d->target_spec = strdup(ref);
        if (!d->ref || !d->target_spec) {
                destination_done(d);
                return -ENOMEM;
        }
        return 0;
}

typedef int (*NameCompare)(const char *a, const char *b);

static int name_cmp_exact(const char *a, const char *b) {
        return strcmp(a, b);
}

static bool is_control_plane(const PeerName *p) {
        return p->peer_role && streq(p->peer_role, "control-plane");
}

/* Upstream's send never resolves a name to a daemon's control-plane row
 * (apps/cli/src/commands/send.ts, the peerRole check): a session registered without a name takes
 * its member's displayName, and the name then means the session. We hide a daemon's row only
 * behind a session of its own member with that name: a daemon alone keeps its name (its member
 * inbox is a real destination here, not swallowed), and a daemon whose name another member's
 * session carries stays a candidate, so the send is refused as ambiguous, never sent elsewhere.
 * The names are compared ignoring case in both passes: were the exact pass to compare exactly,
 * "Alice" would find the daemon "Alice" beside its own session "alice" and leave in the daemon's
 * inbox what was meant for the session. */
static bool is_shadowed(const PeerName *p, const PeerName *peers, size_t n_peers) {
        if (!is_control_plane(p) || !p->member_pubkey)
                return false;
        for (size_t i = 0; i < n_peers; i++)
                if (&peers[i] != p && !is_control_plane(&peers[i]) && peers[i].member_pubkey &&
                    streq(peers[i].member_pubkey, p->member_pubkey) &&
                    strcasecmp(peers[i].display_name, p->display_name) == 0)
                        return true;
        return false;
}

/* "alice (1a2b3c4d…), bob (…)" for error messages: every peer, or (with only) the ones
 * count_named() counted for that name under cmp. */
static void list_candidates(char *buf, size_t size, const PeerName *peers, size_t n, const char *only,
                            NameCompare cmp) {
        size_t shown = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < n && shown < CANDIDATES_MAX; i++) {
                if (only && (cmp(peers[i].display_name, only) != 0 || is_shadowed(&peers[i], peers, n)))
                        continue;
                size_t len = strlen(buf);
                snprintf(buf + len, size - len, "%s%s (%.8s)", shown ? ", " : "", peers[i].display_name,
                         peers[i].pubkey);
                shown++;
        }
}

/* The peers called name under cmp, daemon rows hidden behind their sessions; the last in *match. */
static size_t count_named(const char *name, const PeerName *peers, size_t n_peers, NameCompare cmp,
                          const PeerName **match) {
        size_t n = 0;

        for (size_t i = 0; i < n_peers; i++)
                if (cmp(peers[i].display_name, name) == 0 && !is_shadowed(&peers[i], peers, n_peers)) {
                        n++;
                        *match = &peers[i];
                }
        return n;
}

static int resolve_name(const char *name, const char *mesh_slug, const PeerName *peers, size_t n_peers,
                        Destination *d, char **ret_error) {
        char candidates[1024];
        const PeerName *match = NULL;
        size_t exact, folded = 0;

        exact = count_named(name, peers, n_peers, name_cmp_exact, &match);
        if (exact == 0)
                folded = count_named(name, peers, n_peers, strcasecmp, &match);

        if (exact == 1 || (exact == 0 && folded == 1))
                return set(d, "dm", match->pubkey);
        if (exact > 1 || folded > 1) {
                list_candidates(candidates, sizeof candidates, peers, n_peers, name,
                                exact > 1 ? name_cmp_exact : strcasecmp);
                return error_setf(ret_error, -ENOTUNIQ,
                                  "Several peers of mesh \"%s\" are called \"%s\": %s; send to the 64-hex pubkey "
                                  "of the one you mean.", mesh_slug, name, candidates);
        }
        if (n_peers == 0)
                return error_setf(ret_error, -ENOENT,
                                  "No peer called \"%s\": mesh \"%s\" knows no peers yet (no other peer is online, "
                                  "or it has had no word from its broker). Use a 64-hex pubkey, \"*\", "
                                  "\"@group\" or \"#topic\".",
                                  name, mesh_slug);
        list_candidates(candidates, sizeof candidates, peers, n_peers, NULL, NULL);
        return error_setf(ret_error, -ENOENT,
                          "No peer of mesh \"%s\" is called \"%s\". Known peers: %s%s.", mesh_slug, name,
                          candidates, n_peers > CANDIDATES_MAX ? ", …" : "");
}

/* The wire wants "#<id>" (wire-protocol §3.5): an id stays, a name becomes its topic's id, and
 * anything else goes as given (the broker then refuses it with topic_not_found, visibly). */
static const char *topic_id(const char *x, const TopicName *topics, size_t n_topics) {
        for (size_t i = 0; i < n_topics; i++)
                if (streq(topics[i].id, x))
                        return x;
        for (size_t i = 0; i < n_topics; i++)
                if (streq(topics[i].name, x))
                        return topics[i].id;
        return x;
}

int destination_parse(const char *to, const char *mesh_slug, const PeerName *peers, size_t n_peers,
                      const TopicName *topics, size_t n_topics, Destination *ret, char **ret_error) {
        Destination d = { 0 };
        int r;

        if (!to[0])
                return error_setf(ret_error, -EINVAL, "The destination is empty; give a peer name, a 64-hex "
                                                      "pubkey, \"*\", \"@group\" or \"#topic\".");
        if (hex_string(to, 64, HEX_ANY_CASE)) {
                char lower[65];
                for (size_t i = 0; i < 64; i++)
                        lower[i] = (char) tolower((unsigned char) to[i]);
                lower[64] = '\0';
                if (!is_sealable_key(lower))
                        return error_setf(ret_error, -EINVAL, "\"%s\" is not a valid ed25519 public key, so no "
                                          "message can ever be sealed to it; check the key (see ListPeers).", lower);
                r = set(&d, "dm", lower);
        } else if (streq(to, "*") || streq(to, "@all"))
                r = set(&d, "topic", "*");
        else if (to[0] == '@') {
                if (!is_token(to + 1, GROUP_NAME_MAX))
                        return error_setf(ret_error, -EINVAL, "\"%s\" is not a group: after \"@\" come 1 to %d "
                                          "characters without spaces.", to, GROUP_NAME_MAX);
                r = set(&d, "topic", to);
        } else if (to[0] == '#') {
                _cleanup_free_ char *spec = NULL;
                const char *id = topic_id(to + 1, topics, n_topics);

                if (!is_token(id, TOPIC_ID_MAX))
                        return error_setf(ret_error, -EINVAL, "\"%s\" is not a topic: after \"#\" comes a topic's "
                                          "name or id, an id being 1 to %d characters without spaces.", to,
                                          TOPIC_ID_MAX);
                if (asprintf(&spec, "#%s", id) < 0)
                        return -ENOMEM;
                r = set(&d, "topic", spec);
        } else
                r = resolve_name(to, mesh_slug, peers, n_peers, &d, ret_error);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}
