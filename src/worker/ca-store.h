/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <openssl/ssl.h>

/* Gives the TLS client context the system CA bundle (SSL_CERT_FILE, else OpenSSL's default
 * file), read now, before the sandbox closes the filesystem. The certificates are kept as DER
 * indexed by subject and parsed only when a chain asks for an issuer of that name: the bundle
 * parsed whole into an X509_STORE costs ~880 KiB of heap, its DER ~160 KiB. */
int ca_store_install(SSL_CTX *ctx);
