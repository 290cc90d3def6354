/* tls.c - OpenSSL contexts. */
#include "tls/tls.h"
#include "tls/session_cache.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
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

/* Both the system's roots and the operator's file: ca_file adds private
 * roots (a smarthost, a test network) without dropping the public ones. */
static bool load_trust_store(SSL_CTX *ctx, const char *ca_file, char *why, size_t whylen)
{
	if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		openssl_error("loading the system trust store", "", why, whylen);
		return false;
	}
	if (ca_file != NULL && ca_file[0] != '\0' &&
	    SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		openssl_error("loading CA file", ca_file, why, whylen);
		return false;
	}
	return true;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, char *why, size_t whylen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		openssl_error("creating TLS client context", "", why, whylen);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* The decision is taken after the handshake from the verify result
	 * (tls_peer_verdict), as Postfix does. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* A wildcard only as the whole left-most label: "*.example.net", never
	 * "mx*.example.net" (RFC 6125 §6.4.3 lets a client refuse those). */
	X509_VERIFY_PARAM_set_hostflags(SSL_CTX_get0_param(ctx),
	                                X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		openssl_error("enabling DANE", "", why, whylen);
		goto fail;
	}
	if (!load_trust_store(ctx, ca_file, why, whylen))
		goto fail;
	tls_session_cache_enable(ctx);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_describe(const SSL *ssl, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}
