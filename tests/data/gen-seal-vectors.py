#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Generates seal-vectors.json: direct messages sealed the way the upstream CLI and daemon seal
# them (wire-protocol §4.1), made independently of the C code with PyNaCl (Debian python3-nacl):
#
#   /usr/bin/python3 tests/data/gen-seal-vectors.py >tests/data/seal-vectors.json
#
# ciphertext = base64(crypto_box(message, nonce, ed25519_pk_to_curve25519(recipient_pk),
#                                ed25519_sk_to_curve25519(sender_sk)))
# Keys come from fixed seeds and nonces are fixed, so the output is the same on every run.
# test-seal.c opens each ciphertext and checks that its own seal of the same inputs with the
# same nonce is byte-identical.

import base64
import hashlib
import json

from nacl import bindings as nb


def keypair(name):
    seed = hashlib.sha256(b'claudemesh seal vector ' + name.encode()).digest()
    pk, sk = nb.crypto_sign_seed_keypair(seed)
    return pk, sk


def b64(data):
    return base64.b64encode(data).decode('ascii')


MESSAGES = [
    ('ascii', 'hello'),
    ('empty', ''),
    ('utf8', 'grüße aus Köln – 日本語 🌍'),
    ('json-ish', '{"text":"line one\\nline two","n":42}'),
    ('longer', 'The quick brown fox jumps over the lazy dog. ' * 40),
]


def main():
    alice_pk, alice_sk = keypair('alice')
    bob_pk, bob_sk = keypair('bob')
    vectors = []
    for i, (name, message) in enumerate(MESSAGES):
        # Both directions, so that each side's conversion of its own secret key is exercised.
        for sender, (s_pk, s_sk), (r_pk, r_sk) in (
            ('alice', (alice_pk, alice_sk), (bob_pk, bob_sk)),
            ('bob', (bob_pk, bob_sk), (alice_pk, alice_sk)),
        ):
            nonce = hashlib.sha256(f'nonce {i} {sender}'.encode()).digest()[:nb.crypto_box_NONCEBYTES]
            box = nb.crypto_box(message.encode('utf-8'), nonce,
                                nb.crypto_sign_ed25519_pk_to_curve25519(r_pk),
                                nb.crypto_sign_ed25519_sk_to_curve25519(s_sk))
            vectors.append({
                'name': f'{name}-from-{sender}',
                'sender_pubkey': s_pk.hex(),
                'sender_secret_key': s_sk.hex(),
                'recipient_pubkey': r_pk.hex(),
                'recipient_secret_key': r_sk.hex(),
                'recipient_x25519_secret_key': nb.crypto_sign_ed25519_sk_to_curve25519(r_sk).hex(),
                'message': message,
                'nonce': b64(nonce),
                'ciphertext': b64(box),
            })
    print(json.dumps(vectors, indent=2, ensure_ascii=False))


if __name__ == '__main__':
    main()
