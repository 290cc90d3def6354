/* tls.c - OpenSSL contexts. */
#include "tls/tls.h"

#include <openssl/err.h>
#include <stdio.h>

static void openssl_error(const char *what, const char *file, char *why, size_t whylen)
{
	char err[256];
	ERR_error_string_n(ERR_get_error(), err, sizeof err);
	snprintf(why, whylen, "%s %s: %s", what, file, err);
}

SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		openssl_error("creating TLS context", "", why, whylen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Renegotiation is an attack surface a submission server never needs. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		openssl_error("loading certificate", cert_file, why, whylen);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		openssl_error("loading key", key_file, why, whylen);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		openssl_error("key does not match certificate", cert_file, why, whylen);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_new(char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		openssl_error("creating TLS client context", "", why, whylen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* Many connections to the same MX: resume sessions to save handshakes. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
}

void tls_describe(const SSL *ssl, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
