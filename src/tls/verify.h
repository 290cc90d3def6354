/* verify.h - authenticate the SMTP server of one TLS connection: DANE
 * (RFC 7672) or PKIX (MTA-STS, RFC 8461 §4.2), always with OpenSSL's own code.
 *
 * Per connection, before the handshake, tls_peer_prepare loads the policy
 * into the SSL: SNI, reference identifiers, DANE TLSA records. The client
 * context verifies with SSL_VERIFY_NONE, so the handshake completes whatever
 * the certificate (OpenSSL still runs its DANE or PKIX verification and keeps
 * the result). After the handshake tls_peer_verdict reads that result and
 * maps it to what the caller needs: authenticated or not and how, whether
 * the certificate is also PKIX-valid for the names (REQUIRETLS, TLS-RPT), and
 * RFC 8460 §4.3 result types. The decision (accept, fail the host, record
 * and go on under "TLS-Required: No") is the caller's.
 *
 * Nothing here allocates memory the caller must free; a policy and its
 * records are only read, and only during the call.
 */
#ifndef OUTPOST_TLS_VERIFY_H
#define OUTPOST_TLS_VERIFY_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One TLSA record as found in DNS (RFC 6698 §2.1): data is the certificate
 * association data in binary (wire) form, len octets. */
struct tls_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
};

enum tls_auth {
	/* Opportunistic (RFC 7435): any certificate is accepted; the PKIX
	 * result for the names is still computed and reported. */
	TLS_AUTH_NONE,
	/* MTA-STS enforce, smarthost: chain to the trust store, one of names. */
	TLS_AUTH_PKIX,
	/* RFC 7672 with the usable records of tlsa. */
	TLS_AUTH_DANE,
};

struct tls_peer_policy {
	enum tls_auth auth;
	const char *sni; /* server name indication; NULL: none (IP literal) */
	/* Reference identifiers for PKIX and DANE-TA(2), A-labels without a
	 * trailing dot, none empty; the first is the primary one (for DANE the
	 * TLSA base domain, RFC 7672 §3.2). PKIX and DANE need at least one. */
	const char *const *names;
	size_t nnames;
	const struct tls_tlsa *tlsa; /* DANE only; may hold unusable records */
	size_t ntlsa;
	/* Under DANE, PKIX is checked only when DANE failed (delivery needs no
	 * more: REQUIRETLS takes DANE, RFC 8689 §4.2.1), unless this is set
	 * (outpost check reports both). */
	bool pkix_always;
};

/* True when the record can authenticate an SMTP server (RFC 7672 §3.1):
 * usage DANE-TA(2) or DANE-EE(3), selector Cert(0) or SPKI(1), matching
 * type Full(0) with data that parses as a certificate or public key
 * accordingly, SHA2-256(1) with 32 octets, or SHA2-512(2) with 64. PKIX-TA(0)
 * and PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3). Pure: no SSL. */
bool tls_tlsa_usable(const struct tls_tlsa *r);

/* How many of the n records are usable. 0 with n > 0 means "TLSA records,
 * none usable": TLS is mandatory but unauthenticated (RFC 7672 §2.2). */
size_t tls_tlsa_count_usable(const struct tls_tlsa *r, size_t n);

/* Loads policy p into ssl (SSL_new from tls_client_ctx_new, before the
 * handshake). For DANE, only records tls_tlsa_usable accepts are given to
 * OpenSSL. Returns the number of TLSA records added (0 for NONE and PKIX,
 * and for DANE without usable records), or -1 with why filled on an internal
 * error or a policy that cannot be checked (no or an empty name). */
int tls_peer_prepare(SSL *ssl, const struct tls_peer_policy *p, char *why, size_t whylen);

enum tls_auth_method {
	TLS_METHOD_NONE,
	TLS_METHOD_PKIX,
	TLS_METHOD_DANE_TA,
	TLS_METHOD_DANE_EE,
};

/* Why a verification failed, for logs and TLS-RPT failure details. */
struct tls_failure {
	const char *result_type; /* RFC 8460 §4.3, static; NULL: no failure */
	char reason[64];         /* failure-reason-code: "certificate-has-expired" */
	long verify_error;       /* X509_V_ERR_*, X509_V_OK when result_type is NULL */
};

struct tls_peer_result {
	/* The policy's authentication (DANE or PKIX) succeeded. Always false
	 * for TLS_AUTH_NONE, and for DANE without usable records. */
	bool authenticated;
	enum tls_auth_method method;
	int dane_depth;             /* chain depth of the matching record, -1 */
	char dane_record[64];       /* matching record: "3 1 1 5f2a1c0b...9e8dc3a4" */
	struct tls_failure failure; /* why the DANE or PKIX policy failed */

	/* PKIX for the names: needed for REQUIRETLS without DANE (RFC 8689
	 * §4.2.1) and reported to TLS-RPT. False without names, and when not
	 * checked (pkix_checked false: DANE authenticated the peer). */
	bool pkix_ok, pkix_checked;
	struct tls_failure pkix;

	bool resumed;        /* an abbreviated handshake (session resumption) */
	const char *version; /* "TLSv1.3", static */
	const char *cipher;  /* "TLS_AES_256_GCM_SHA384", static */
};

/* After a completed handshake on ssl prepared with p (the same p): fills out.
 * A resumed session is verified again from the certificates kept with it,
 * by the same OpenSSL code, so out is as complete as after a full handshake. */
void tls_peer_verdict(SSL *ssl, const struct tls_peer_policy *p, struct tls_peer_result *out);

/* One certificate of the chain the server sent, for `outpost check`. */
struct tls_cert_summary {
	char subject[256]; /* RFC 2253, non-ASCII and controls escaped */
	char issuer[256];
	char not_after[32]; /* "2026-11-29T10:00:00Z" */
};

/* Summarises up to max certificates of the peer's chain, leaf first;
 * returns how many. Not needed for a delivery, hence not in the verdict. */
size_t tls_peer_chain(SSL *ssl, struct tls_cert_summary *out, size_t max);

/* SHA-256 (hex, 64 characters and NUL) over everything in p that decides a
 * verdict: auth mode, SNI, names and, for DANE, the TLSA records. Part of the
 * session cache key (session_cache.h), so that a session verified under one
 * policy is never resumed under another (Postfix's tls_serverid_digest).
 * False (out "") when OpenSSL cannot hash: then do not resume. */
bool tls_policy_digest(const struct tls_peer_policy *p, char out[65]);

#endif
