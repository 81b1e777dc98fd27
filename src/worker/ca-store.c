/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "ca-store.h"
#include "log.h"
#include "macro.h"

/* Bounds on the bundle: Debian's holds ~150 certificates in 220 KB. */
#define CA_BUNDLE_BYTES_MAX (16U << 20)
#define CA_CERTS_MAX 4096U

typedef struct CaEntry {
        unsigned long hash;           /* X509_NAME_hash_ex() of the subject */
        uint32_t offset, size;        /* its DER in CaIndex.der */
} CaEntry;

typedef struct CaIndex {
        uint8_t *der;
        size_t der_size, der_allocated;
        CaEntry *entries;
        size_t n, n_allocated;
} CaIndex;

static void ca_index_free(CaIndex *idx) {
        if (!idx)
                return;
        free(idx->der);
        free(idx->entries);
        free(idx);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CaIndex *, ca_index_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);

static int ca_index_add(CaIndex *idx, X509 *x) {
        unsigned char *p;
        int ok = 0, size;
        unsigned long hash;

        hash = X509_NAME_hash_ex(X509_get_subject_name(x), NULL, NULL, &ok);
        if (!ok)
                return -EINVAL;
        /* With the trust settings of a "TRUSTED CERTIFICATE", as the whole-file load keeps them. */
        size = i2d_X509_AUX(x, NULL);
        if (size <= 0)
                return -EINVAL;
        if (idx->n >= CA_CERTS_MAX || (size_t) size > CA_BUNDLE_BYTES_MAX - idx->der_size)
                return -E2BIG;
        if (idx->n == idx->n_allocated) {
                size_t n = idx->n_allocated ? idx->n_allocated * 2 : 256;
                CaEntry *e = reallocarray(idx->entries, n, sizeof *e);
                if (!e)
                        return -ENOMEM;
                idx->entries = e;
                idx->n_allocated = n;
        }
        if (idx->der_size + (size_t) size > idx->der_allocated)
                return -E2BIG;
        p = idx->der + idx->der_size;
        if (i2d_X509_AUX(x, &p) != size)
                return -EINVAL;
        idx->entries[idx->n++] = (CaEntry) { hash, (uint32_t) idx->der_size, (uint32_t) size };
        idx->der_size += (size_t) size;
        return 0;
}

static int ca_index_load(const char *path, CaIndex **ret) {
        _cleanup_(ca_index_freep) CaIndex *idx = NULL;
        /* f before bio: the BIO, freed first, only borrows it. */
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_(BIO_freep) BIO *bio = NULL;
        struct stat st;
        int r;

        f = fopen(path, "re");
        if (!f)
                return -errno;
        if (fstat(fileno(f), &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > CA_BUNDLE_BYTES_MAX)
                return -E2BIG;
        bio = BIO_new_fp(f, BIO_NOCLOSE);
        if (!bio)
                return -ENOMEM;
        idx = calloc(1, sizeof *idx);
        if (!idx)
                return -ENOMEM;
        /* DER is shorter than its base64 PEM: the file's size bounds it. The tail left
         * unwritten is never touched (no memory) and the realloc below gives it back. */
        idx->der_allocated = (size_t) st.st_size;
        idx->der = malloc(idx->der_allocated ?: 1);
        if (!idx->der)
                return -ENOMEM;
        for (;;) {
                _cleanup_(X509_freep) X509 *x = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
                if (!x) {
                        unsigned long e = ERR_peek_last_error();
                        /* The end of the file: no further PEM block. */
                        if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                                break;
                        return -EBADMSG;
                }
                r = ca_index_add(idx, x);
                if (r < 0)
                        return r;
        }
        ERR_clear_error();
        if (idx->n == 0)
                return -ENODATA;
        if (idx->der_size < idx->der_allocated) {
                uint8_t *der = realloc(idx->der, idx->der_size);
                if (der) {
                        idx->der = der;
                        idx->der_allocated = idx->der_size;
                }
        }
        *ret = TAKE_PTR(idx);
        return 0;
}

/* Called by the chain builder for an issuer's name not yet in the store. Like OpenSSL's
 * hash-directory lookup: every certificate of that name goes into the store (the builder
 * picks among them there, and later handshakes find them without us), and ret borrows the
 * store's reference. */
static int ca_lookup_by_subject(X509_LOOKUP *lookup, X509_LOOKUP_TYPE type, const X509_NAME *name,
                                X509_OBJECT *ret) {
        const CaIndex *idx = X509_LOOKUP_get_method_data(lookup);
        X509_STORE *store = X509_LOOKUP_get_store(lookup);
        X509_OBJECT *obj;
        X509 *cached;
        unsigned long hash;
        bool added = false;
        int ok = 0;

        if (type != X509_LU_X509 || !idx || !store)
                return 0;
        hash = X509_NAME_hash_ex(name, NULL, NULL, &ok);
        if (!ok)
                return 0;
        for (size_t i = 0; i < idx->n; i++) {
                const unsigned char *p = idx->der + idx->entries[i].offset;
                _cleanup_(X509_freep) X509 *x = NULL;

                if (idx->entries[i].hash != hash)
                        continue;
                x = d2i_X509_AUX(NULL, &p, idx->entries[i].size);
                if (!x || X509_NAME_cmp(X509_get_subject_name(x), name) != 0)
                        continue;
                if (X509_STORE_add_cert(store, x))
                        added = true;
        }
        ERR_clear_error();
        if (!added)
                return 0;

        if (!X509_STORE_lock(store))
                return 0;
        obj = X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), X509_LU_X509, name);
        cached = obj ? X509_OBJECT_get0_X509(obj) : NULL;
        ok = cached && X509_OBJECT_set1_X509(ret, cached);
        X509_STORE_unlock(store);
        if (!ok)
                return 0;
        /* The caller takes its own reference from ret: drop set1's, the store keeps one. */
        X509_free(cached);
        return 1;
}

static void ca_lookup_free(X509_LOOKUP *lookup) {
        ca_index_free(X509_LOOKUP_get_method_data(lookup));
        (void) X509_LOOKUP_set_method_data(lookup, NULL);
}

static X509_LOOKUP_METHOD *ca_lookup_method(void) {
        /* One for the process: a store's lookups point to it until the store is freed. */
        static X509_LOOKUP_METHOD *method;

        if (method)
                return method;
        method = X509_LOOKUP_meth_new("claudemesh CA bundle index");
        if (!method)
                return NULL;
        if (!X509_LOOKUP_meth_set_get_by_subject(method, ca_lookup_by_subject) ||
            !X509_LOOKUP_meth_set_free(method, ca_lookup_free)) {
                X509_LOOKUP_meth_free(method);
                method = NULL;
        }
        return method;
}

int ca_store_install(SSL_CTX *ctx) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = NULL;
        _cleanup_(ca_index_freep) CaIndex *idx = NULL;
        X509_LOOKUP_METHOD *method;
        X509_LOOKUP *lookup;
        const char *path;
        int r;

        assert(ctx);

        /* What SSL_CTX_set_default_verify_paths() reads, the hash directory aside: it could
         * not be read inside the sandbox. */
        path = secure_getenv(X509_get_default_cert_file_env()) ?: X509_get_default_cert_file();
        r = ca_index_load(path, &idx);
        if (r < 0)
                return log_error_errno(r, "Cannot load the CA bundle %s: %m", path);
        method = ca_lookup_method();
        store = X509_STORE_new();
        if (!method || !store)
                return log_error_errno(-ENOMEM, "Cannot set up the CA store: %m");
        lookup = X509_STORE_add_lookup(store, method);
        if (!lookup || !X509_LOOKUP_set_method_data(lookup, idx))
                return log_error_errno(-ENOMEM, "Cannot set up the CA store: %m");
        log_debug("CA bundle %s: %zu certificates, %zu bytes of DER.", path, idx->n, idx->der_size);
        TAKE_PTR(idx);
        /* Replaces (and frees) the store lws set up, with the unreadable ../share directory. */
        SSL_CTX_set_cert_store(ctx, TAKE_PTR(store));
        return 0;
}
