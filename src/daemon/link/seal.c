/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <sodium.h>
#include <stdbool.h>
#include <string.h>

#include "jcs.h"
#include "macro.h"
#include "seal-internal.h"
#include "seal.h"

#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL

static int base64_encode(const void *data, size_t size, char **ret) {
        size_t len;
        char *s;

        /* Keeps sodium_base64_ENCODED_LEN() from overflowing. */
        if (size > SIZE_MAX / 2)
                return -EFBIG;
        len = sodium_base64_ENCODED_LEN(size, B64_VARIANT);
        s = malloc(len);
        if (!s)
                return -ENOMEM;
        sodium_bin2base64(s, len, data, size, B64_VARIANT);
        *ret = s;
        return 0;
}

/* Decodes all of b64 (padding required, nothing ignored) into a malloc'd buffer with one spare
 * byte after the data. -EBADMSG if it is not base64. */
static int base64_decode(const char *b64, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = strlen(b64), n;
        const char *end;

        buf = malloc(len / 4 * 3 + 1);
        if (!buf)
                return -ENOMEM;
        if (sodium_base642bin(buf, len / 4 * 3, b64, len, NULL, &n, &end, B64_VARIANT) < 0 || end != b64 + len)
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

/* A wire nonce: base64 of exactly 24 bytes. */
static bool nonce_from_base64(const char *b64, uint8_t ret[static crypto_box_NONCEBYTES]) {
        size_t len = strlen(b64), n;
        const char *end;

        return sodium_base642bin(ret, crypto_box_NONCEBYTES, b64, len, NULL, &n, &end, B64_VARIANT) == 0 &&
               end == b64 + len && n == crypto_box_NONCEBYTES;
}

/* Exactly 64 hex digits, either case: an ed25519 public key. */
static bool pubkey_from_hex(const char *hex, uint8_t ret[static crypto_sign_PUBLICKEYBYTES]) {
        size_t n;

        return strlen(hex) == 2 * crypto_sign_PUBLICKEYBYTES &&
               sodium_hex2bin(ret, crypto_sign_PUBLICKEYBYTES, hex, 2 * crypto_sign_PUBLICKEYBYTES, NULL, &n, NULL) == 0 &&
               n == crypto_sign_PUBLICKEYBYTES;
}

/* Both outputs are set, or neither. */
static int encode_pair(const uint8_t nonce[static crypto_box_NONCEBYTES], const void *data, size_t size,
                       char **ret_nonce_b64, char **ret_data_b64) {
        _cleanup_free_ char *nonce_b64 = NULL;
        int r;

        r = base64_encode(nonce, crypto_box_NONCEBYTES, &nonce_b64);
        if (r < 0)
                return r;
        r = base64_encode(data, size, ret_data_b64);
        if (r < 0)
                return r;
        *ret_nonce_b64 = TAKE_PTR(nonce_b64);
        return 0;
}

int seal_direct_with_nonce(const void *body, size_t size, const char *recipient_pubkey_hex,
                           const uint8_t sender_ed25519_sk[64], const uint8_t nonce[static 24],
                           char **ret_nonce_b64, char **ret_ciphertext_b64) {
        uint8_t recipient_ed[crypto_sign_PUBLICKEYBYTES], recipient_x[crypto_box_PUBLICKEYBYTES],
                sender_x[crypto_box_SECRETKEYBYTES];
        _cleanup_free_ uint8_t *box = NULL;
        int r;

        if (!recipient_pubkey_hex || !pubkey_from_hex(recipient_pubkey_hex, recipient_ed) ||
            crypto_sign_ed25519_pk_to_curve25519(recipient_x, recipient_ed) < 0)
                return -EINVAL;
        if (size > SIZE_MAX / 2)
                return -EFBIG;
        box = malloc(size + crypto_box_MACBYTES);
        if (!box)
                return -ENOMEM;

        crypto_sign_ed25519_sk_to_curve25519(sender_x, sender_ed25519_sk);
        /* Fails only for a recipient key of small order (an all-zero shared secret). */
        r = crypto_box_easy(box, body, size, nonce, recipient_x, sender_x);
        sodium_memzero(sender_x, sizeof sender_x);
        if (r < 0)
                return -EINVAL;

        return encode_pair(nonce, box, size + crypto_box_MACBYTES, ret_nonce_b64, ret_ciphertext_b64);
}

int seal_direct(const void *body, size_t size, const char *recipient_pubkey_hex, const uint8_t sender_ed25519_sk[64],
                char **ret_nonce_b64, char **ret_ciphertext_b64) {
        uint8_t nonce[crypto_box_NONCEBYTES];

        if (sodium_init() < 0)
                return -EIO;
        randombytes_buf(nonce, sizeof nonce);
        return seal_direct_with_nonce(body, size, recipient_pubkey_hex, sender_ed25519_sk, nonce, ret_nonce_b64,
                                      ret_ciphertext_b64);
}

int seal_plain(const void *body, size_t size, char **ret_nonce_b64, char **ret_ciphertext_b64) {
        uint8_t nonce[crypto_box_NONCEBYTES];

        if (sodium_init() < 0)
                return -EIO;
        /* Upstream sends random bytes here too, for a "future layout"; receivers ignore them. */
        randombytes_buf(nonce, sizeof nonce);
        return encode_pair(nonce, body, size, ret_nonce_b64, ret_ciphertext_b64);
}

static bool box_open_x25519(uint8_t *plain, const uint8_t *box, size_t box_size,
                            const uint8_t nonce[static crypto_box_NONCEBYTES],
                            const uint8_t sender_x[static crypto_box_PUBLICKEYBYTES],
                            const uint8_t my_x_sk[static crypto_box_SECRETKEYBYTES]) {
        return crypto_box_open_easy(plain, box, box_size, nonce, sender_x, my_x_sk) == 0;
}

static bool box_open_ed25519(uint8_t *plain, const uint8_t *box, size_t box_size,
                             const uint8_t nonce[static crypto_box_NONCEBYTES],
                             const uint8_t sender_x[static crypto_box_PUBLICKEYBYTES], const uint8_t *my_ed_sk) {
        uint8_t my_x_sk[crypto_box_SECRETKEYBYTES];
        bool ok;

        if (!my_ed_sk)
                return false;
        crypto_sign_ed25519_sk_to_curve25519(my_x_sk, my_ed_sk);
        ok = box_open_x25519(plain, box, box_size, nonce, sender_x, my_x_sk);
        sodium_memzero(my_x_sk, sizeof my_x_sk);
        return ok;
}

static bool box_open_archived(uint8_t *plain, const uint8_t *box, size_t box_size,
                              const uint8_t nonce[static crypto_box_NONCEBYTES],
                              const uint8_t sender_x[static crypto_box_PUBLICKEYBYTES], const KeypairArchive *archive) {
        for (size_t i = 0; archive && i < archive->n_keys; i++)
                if (box_open_x25519(plain, box, box_size, nonce, sender_x, archive->keys[i].x25519_privkey))
                        return true;
        return false;
}

/* The keys of wire-protocol §4.1 in the order the upstream CLI and daemon use, then ours from
 * before a rotation. 1 and *ret_plain (box_size - MAC bytes, one spare) when one opens the box,
 * 0 when none does. */
static int box_open_any(const uint8_t *box, size_t box_size, const uint8_t nonce[static crypto_box_NONCEBYTES],
                        const uint8_t sender_x[static crypto_box_PUBLICKEYBYTES], const uint8_t *session_sk,
                        const uint8_t *member_sk, const KeypairArchive *archive, uint8_t **ret_plain,
                        OpenedWith *ret_how) {
        _cleanup_free_ uint8_t *plain = NULL;
        OpenedWith how;

        plain = malloc(box_size - crypto_box_MACBYTES + 1);
        if (!plain)
                return -ENOMEM;
        if (box_open_ed25519(plain, box, box_size, nonce, sender_x, session_sk))
                how = OPENED_SESSION_KEY;
        else if (box_open_ed25519(plain, box, box_size, nonce, sender_x, member_sk))
                how = OPENED_MEMBER_KEY;
        else if (box_open_archived(plain, box, box_size, nonce, sender_x, archive))
                how = OPENED_ARCHIVED_KEY;
        else
                return 0;
        *ret_plain = TAKE_PTR(plain);
        *ret_how = how;
        return 1;
}

int open_push(const char *sender_pubkey_hex, const char *nonce_b64, const char *ciphertext_b64,
              const uint8_t session_sk[64], const uint8_t member_sk[64], const KeypairArchive *archive,
              char **ret_body, size_t *ret_size, OpenedWith *ret_how) {
        _cleanup_free_ uint8_t *data = NULL, *plain = NULL;
        uint8_t sender_ed[crypto_sign_PUBLICKEYBYTES], sender_x[crypto_box_PUBLICKEYBYTES],
                nonce[crypto_box_NONCEBYTES];
        OpenedWith how = OPENED_PLAINTEXT;
        size_t data_size, size;
        uint8_t *body;
        int r;

        if (!sender_pubkey_hex || !nonce_b64 || !ciphertext_b64)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;

        r = base64_decode(ciphertext_b64, &data, &data_size);
        if (r < 0)
                return r;

        /* Only a peer key, a 24-byte nonce and room for the MAC can make a box; everything else
         * (system and scheduled pushes, odd nonces) can only be plaintext. */
        if (pubkey_from_hex(sender_pubkey_hex, sender_ed) &&
            crypto_sign_ed25519_pk_to_curve25519(sender_x, sender_ed) == 0 &&
            nonce_from_base64(nonce_b64, nonce) && data_size >= crypto_box_MACBYTES) {
                r = box_open_any(data, data_size, nonce, sender_x, session_sk, member_sk, archive, &plain, &how);
                if (r < 0)
                        return r;
        }

        if (plain) {
                body = plain;
                size = data_size - crypto_box_MACBYTES;
        } else {
                body = data;
                size = data_size;
        }
        if (!jcs_utf8_is_valid((const char *) body, size, NULL))
                return -EBADMSG;
        body[size] = 0;

        *ret_body = (char *) (plain ? TAKE_PTR(plain) : TAKE_PTR(data));
        if (ret_size)
                *ret_size = size;
        if (ret_how)
                *ret_how = how;
        return 0;
}
