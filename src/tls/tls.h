/* tls.h - OpenSSL contexts.
 *
 * The listener's server context (STARTTLS on submission) and the delivery
 * side's client context. Every certificate decision uses OpenSSL's own DANE
 * and PKIX verification, never code of ours: per connection see verify.h
 * (policy, verdict) and session_cache.h (resumption).
 */
#ifndef OUTPOST_TLS_TLS_H
#define OUTPOST_TLS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* A server context with the PEM chain and key, TLS 1.2 at least. NULL with
 * why filled when the files cannot be used. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *why, size_t whylen);

/* The delivery side's context: TLS 1.2 at least, DANE enabled, trust store =
 * the system's default paths plus the PEM file ca_file when not NULL or "".
 * The handshake never fails on a certificate (SSL_VERIFY_NONE): OpenSSL
 * still verifies and keeps the result, and the caller decides after the
 * handshake (tls_peer_verdict), so that "TLS-Required: No" and opportunistic
 * TLS can record a failure without losing the connection. Sessions go to
 * session_cache.h. NULL with why filled when ca_file cannot be loaded. The
 * caller owns the context (SSL_CTX_free). */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char *why, size_t whylen);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for logs and Received: headers. */
void tls_describe(const SSL *ssl, char *buf, size_t n);

#endif
