/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* make-mesh-entry SLUG [BROKER_URL]: prints one config.json mesh entry in the upstream CLI's
 * format with a fresh ed25519 keypair, for tests that need a valid config. */
#include <json-c/json.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char *argv[]) {
        unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        char pk_hex[2 * sizeof pk + 1], sk_hex[2 * sizeof sk + 1], id[64];
        json_object *o;

        if (argc < 2 || argc > 3) {
                fprintf(stderr, "usage: %s SLUG [BROKER_URL]\n", argv[0]);
                return 2;
        }
        if (sodium_init() < 0)
                return 1;
        crypto_sign_keypair(pk, sk);
        sodium_bin2hex(pk_hex, sizeof pk_hex, pk, sizeof pk);
        sodium_bin2hex(sk_hex, sizeof sk_hex, sk, sizeof sk);
        sodium_memzero(sk, sizeof sk);

        o = json_object_new_object();
        snprintf(id, sizeof id, "mesh-%s-0123456789abcdef", argv[1]);
        json_object_object_add(o, "meshId", json_object_new_string(id));
        snprintf(id, sizeof id, "member-%s-0123456789", argv[1]);
        json_object_object_add(o, "memberId", json_object_new_string(id));
        json_object_object_add(o, "slug", json_object_new_string(argv[1]));
        json_object_object_add(o, "name", json_object_new_string(argv[1]));
        json_object_object_add(o, "pubkey", json_object_new_string(pk_hex));
        json_object_object_add(o, "secretKey", json_object_new_string(sk_hex));
        json_object_object_add(o, "brokerUrl", json_object_new_string(argc > 2 ? argv[2] : "ws://127.0.0.1:7900/ws"));
        json_object_object_add(o, "joinedAt", json_object_new_string("2026-05-03T19:24:32.123Z"));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        sodium_memzero(sk_hex, sizeof sk_hex);
        json_object_put(o);
        return 0;
}
