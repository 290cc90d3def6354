/* tls.h - OpenSSL contexts.
 *
 * The listener's server context (STARTTLS on submission). The delivery side's
 * client contexts (DANE, PKIX) will live here too, so that every TLS decision
 * uses OpenSSL's own verification, never code of ours.
 */
#ifndef OUTPOST_TLS_TLS_H
#define OUTPOST_TLS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A server context with the PEM chain and key, TLS 1.2 at least. NULL with
 * why filled when the files cannot be used. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *why, size_t whylen);

/* The delivery side's context: TLS 1.2 at least, for opportunistic STARTTLS.
 * Certificates are not verified here: without a policy (DANE, MTA-STS)
 * RFC 7435 opportunistic security accepts any; policies add verification
 * per connection with OpenSSL's own DANE and PKIX code. */
SSL_CTX *tls_client_ctx_new(char *why, size_t whylen);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received: headers. */
void tls_describe(const SSL *ssl, char *buf, size_t n);

#endif
