/* verify.c - DANE and PKIX verdicts for one TLS connection (see verify.h).
 *
 * OpenSSL decides every certificate question: SSL_dane_tlsa_add and
 * X509_verify_cert do the matching, chain building, name and date checks.
 * What is ours: which records to hand over, which names to check, and how to
 * read the result afterwards.
 */
#include "tls/verify.h"

#include <ctype.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* RFC 6698 §2.1 and RFC 7218 acronyms. */
enum {
	USAGE_DANE_TA = 2,
	USAGE_DANE_EE = 3,
	SELECTOR_CERT = 0,
	SELECTOR_SPKI = 1,
	MTYPE_FULL = 0,
	MTYPE_SHA256 = 1,
	MTYPE_SHA512 = 2,
};

/* ---- which records are usable ------------------------------------------ */

/* Full(0) data must be exactly one DER certificate (with a public key OpenSSL
 * knows) or one DER SubjectPublicKeyInfo: the test SSL_dane_tlsa_add applies,
 * so that the classifier and OpenSSL agree on every record. Empty data must
 * never reach OpenSSL: 3.0 answers it with -1, its internal-error code (its
 * malloc(0) fails), which would turn a record from DNS into a local error. */
static bool full_data_parses(uint8_t selector, const uint8_t *data, size_t len)
{
	const unsigned char *p = data;
	bool ok;

	if (len == 0 || len > INT_MAX)
		return false;
	if (selector == SELECTOR_CERT) {
		X509 *x = d2i_X509(NULL, &p, (long)len);

		ok = x != NULL && p == data + len && X509_get0_pubkey(x) != NULL;
		X509_free(x);
	} else {
		EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)len);

		ok = k != NULL && p == data + len;
		EVP_PKEY_free(k);
	}
	ERR_clear_error();
	return ok;
}

bool tls_tlsa_usable(const struct tls_tlsa *r)
{
	/* RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP. */
	if (r->usage != USAGE_DANE_TA && r->usage != USAGE_DANE_EE)
		return false;
	if (r->selector != SELECTOR_CERT && r->selector != SELECTOR_SPKI)
		return false;
	if (r->data == NULL)
		return false;
	switch (r->mtype) {
	case MTYPE_FULL:
		return full_data_parses(r->selector, r->data, r->len);
	case MTYPE_SHA256:
		return r->len == 32;
	case MTYPE_SHA512:
		return r->len == 64;
	default:
		return false;
	}
}

size_t tls_tlsa_count_usable(const struct tls_tlsa *r, size_t n)
{
	size_t usable = 0;

	for (size_t i = 0; i < n; i++)
		usable += tls_tlsa_usable(&r[i]);
	return usable;
}

/* ---- before the handshake ----------------------------------------------- */

static int prepare_fail(const char *what, char *why, size_t whylen)
{
	unsigned long e = ERR_get_error();
	char err[160];

	if (e != 0) {
		ERR_error_string_n(e, err, sizeof err);
		snprintf(why, whylen, "%s: %s", what, err);
	} else {
		snprintf(why, whylen, "%s", what);
	}
	ERR_clear_error();
	return -1;
}

/* An empty name would turn OpenSSL's name checks off (X509_VERIFY_PARAM_
 * set1_host), and PKIX or DANE-TA without a name would accept any name:
 * such a policy fails here rather than authenticate nothing. */
static bool names_checkable(const struct tls_peer_policy *p)
{
	for (size_t i = 0; i < p->nnames; i++)
		if (p->names[i] == NULL || p->names[i][0] == '\0')
			return false;
	return p->nnames > 0 || p->auth == TLS_AUTH_NONE;
}

static bool set_names(SSL *ssl, const struct tls_peer_policy *p)
{
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (p->nnames == 0)
		return true;
	if (SSL_set1_host(ssl, p->names[0]) != 1)
		return false;
	for (size_t i = 1; i < p->nnames; i++)
		if (SSL_add1_host(ssl, p->names[i]) != 1)
			return false;
	return true;
}

/* Only what the classifier calls usable reaches OpenSSL. OpenSSL answering
 * 0 (unusable) is not expected then; such a record simply does not count. */
static int add_usable_tlsa(SSL *ssl, const struct tls_peer_policy *p, char *why, size_t whylen)
{
	int added = 0;

	for (size_t i = 0; i < p->ntlsa; i++) {
		const struct tls_tlsa *r = &p->tlsa[i];
		int rc;

		if (!tls_tlsa_usable(r))
			continue;
		rc = SSL_dane_tlsa_add(ssl, r->usage, r->selector, r->mtype, r->data, r->len);
		if (rc < 0)
			return prepare_fail("adding a TLSA record", why, whylen);
		if (rc > 0)
			added++;
		ERR_clear_error();
	}
	return added;
}

int tls_peer_prepare(SSL *ssl, const struct tls_peer_policy *p, char *why, size_t whylen)
{
	if (!names_checkable(p)) {
		snprintf(why, whylen, "TLS policy without a reference identifier, or an empty one");
		return -1;
	}
	if (p->auth == TLS_AUTH_DANE) {
		/* The TLSA base domain is the primary reference identifier
		 * (RFC 7672 §3.2). */
		if (SSL_dane_enable(ssl, p->names[0]) <= 0)
			return prepare_fail("enabling DANE", why, whylen);
		/* RFC 7672 §3.1.1: DANE-EE(3) checks neither the names nor the
		 * validity period; the key is pinned by DNSSEC. */
		SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	}
	/* After SSL_dane_enable, which makes the base domain the SNI by
	 * default; sni NULL (an IP literal) clears it. */
	if (SSL_set_tlsext_host_name(ssl, p->sni) != 1)
		return prepare_fail("setting SNI", why, whylen);
	if (!set_names(ssl, p))
		return prepare_fail("setting reference identifiers", why, whylen);
	return p->auth == TLS_AUTH_DANE ? add_usable_tlsa(ssl, p, why, whylen) : 0;
}

/* ---- after the handshake ------------------------------------------------ */

/* OpenSSL's chain verification as the handshake runs it (ssl_verify_cert_chain
 * in ssl/ssl_cert.c): the context's trust store, the connection's parameters
 * (names, host flags, security level) and, when dane is set, its TLSA
 * records. Used where the handshake's own result is not the one wanted: PKIX
 * under a DANE policy, and resumed sessions (no verification took place). */
static long verify_chain(SSL *ssl, bool dane)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509_STORE_CTX *ctx;
	long err = X509_V_ERR_UNSPECIFIED;

	if (chain == NULL || sk_X509_num(chain) == 0)
		return X509_V_ERR_UNSPECIFIED;
	ctx = X509_STORE_CTX_new();
	if (ctx == NULL)
		return X509_V_ERR_OUT_OF_MEM;
	if (X509_STORE_CTX_init(ctx, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
	                        sk_X509_value(chain, 0), chain) == 1) {
		X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);

		X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl));
		if (dane)
			X509_STORE_CTX_set0_dane(ctx, SSL_get0_dane(ssl));
		X509_STORE_CTX_set_default(ctx, "ssl_server");
		X509_VERIFY_PARAM_set1(param, SSL_get0_param(ssl));
		if (X509_verify_cert(ctx) == 1)
			err = X509_V_OK;
		else if (X509_STORE_CTX_get_error(ctx) != X509_V_OK)
			err = X509_STORE_CTX_get_error(ctx);
	}
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return err;
}

/* RFC 8460 §4.3 result type of an OpenSSL verify error. */
static const char *result_type_of(long err)
{
	switch (err) {
	case X509_V_OK:
		return NULL;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate-expired";
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_DANE_NO_MATCH:
		/* "None of the records in the RRset were found to be valid." */
		return "tlsa-invalid";
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	/* Issuers that may not issue this certificate make the chain
	 * untrusted as well (RFC 8460 §4.3 certificate-not-trusted). */
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
	case X509_V_ERR_PERMITTED_VIOLATION:
	case X509_V_ERR_EXCLUDED_VIOLATION:
		return "certificate-not-trusted";
	default:
		return "validation-failure";
	}
}

/* "unable to get local issuer certificate" -> "unable-to-get-local-issuer-
 * certificate"; the number when OpenSSL has no text for it. */
static void reason_of(long err, char *out, size_t n)
{
	const char *s = X509_verify_cert_error_string(err);
	size_t j = 0;
	bool gap = false;

	if (err == X509_V_ERR_DANE_NO_MATCH) {
		snprintf(out, n, "dane-no-match");
		return;
	}
	for (; *s != '\0' && j + 2 < n; s++) {
		if (!isalnum((unsigned char)*s)) {
			gap = j > 0;
			continue;
		}
		if (gap)
			out[j++] = '-';
		out[j++] = (char)tolower((unsigned char)*s);
		gap = false;
	}
	out[j] = '\0';
	if (j == 0 || strcmp(out, "unknown-certificate-verification-error") == 0)
		snprintf(out, n, "x509-verify-error-%ld", err);
}

static void failure_set(struct tls_failure *f, long err)
{
	f->verify_error = err;
	f->result_type = result_type_of(err);
	f->reason[0] = '\0';
	if (f->result_type != NULL)
		reason_of(err, f->reason, sizeof f->reason);
}

static void failure_named(struct tls_failure *f, long err, const char *reason)
{
	f->verify_error = err;
	f->result_type = "validation-failure";
	snprintf(f->reason, sizeof f->reason, "%s", reason);
}

/* "3 1 1 5f2a1c0b...9e8dc3a4": digests and certificates shortened to their
 * first and last four octets, enough to tell records apart in a log. */
static void record_text(uint8_t usage, uint8_t selector, uint8_t mtype, const unsigned char *data,
                        size_t len, char *out, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char h[8 * 2 + 3 + 1], *p = h;

	for (size_t i = 0; i < len; i++) {
		if (len > 8 && i == 4) {
			memcpy(p, "...", 3);
			p += 3;
			i = len - 4;
		}
		*p++ = hex[data[i] >> 4];
		*p++ = hex[data[i] & 15];
	}
	*p = '\0';
	snprintf(out, n, "%u %u %u %s", usage, selector, mtype, h);
}

/* err: OpenSSL's DANE verification of the chain. Success needs both X509_V_OK
 * and a matching record: the record names the method. */
static void dane_verdict(SSL *ssl, long err, struct tls_peer_result *out)
{
	uint8_t usage = 0, selector = 0, mtype = 0;
	const unsigned char *data = NULL;
	size_t len = 0;
	int depth = -1;

	if (err == X509_V_OK)
		depth = SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &len);
	if (depth < 0) {
		failure_set(&out->failure, err == X509_V_OK ? X509_V_ERR_DANE_NO_MATCH : err);
		return;
	}
	out->authenticated = true;
	out->method = usage == USAGE_DANE_EE ? TLS_METHOD_DANE_EE : TLS_METHOD_DANE_TA;
	out->dane_depth = depth;
	record_text(usage, selector, mtype, data, len, out->dane_record, sizeof out->dane_record);
}

static void pkix_verdict(const struct tls_peer_policy *p, long err, struct tls_peer_result *out)
{
	if (p->nnames == 0) /* a chain alone identifies no one */
		failure_named(&out->pkix, err, "no-reference-identifier");
	else
		failure_set(&out->pkix, err);
	out->pkix_checked = true;
	out->pkix_ok = out->pkix.result_type == NULL;
	if (p->auth == TLS_AUTH_PKIX) {
		out->authenticated = out->pkix_ok;
		out->method = out->pkix_ok ? TLS_METHOD_PKIX : TLS_METHOD_NONE;
		out->failure = out->pkix;
	}
}

/* Without a certificate (an anonymous cipher suite) OpenSSL verifies nothing
 * and its verify result stays X509_V_OK: that must not read as success. */
static void no_certificate_verdict(const struct tls_peer_policy *p, struct tls_peer_result *out)
{
	failure_named(&out->pkix, X509_V_ERR_UNSPECIFIED, "no-peer-certificate");
	if (p->auth != TLS_AUTH_NONE)
		out->failure = out->pkix;
}

void tls_peer_verdict(SSL *ssl, const struct tls_peer_policy *p, struct tls_peer_result *out)
{
	bool dane = p->auth == TLS_AUTH_DANE && tls_tlsa_count_usable(p->tlsa, p->ntlsa) > 0;
	long err;

	memset(out, 0, sizeof *out);
	out->dane_depth = -1;
	out->resumed = SSL_session_reused(ssl) == 1;
	out->version = SSL_get_version(ssl);
	out->cipher = SSL_get_cipher_name(ssl);
	if (SSL_get0_peer_certificate(ssl) == NULL)
		return no_certificate_verdict(p, out);
	/* After a resumption SSL_get_verify_result is the stored result of the
	 * original handshake and SSL_get0_dane_authority knows nothing: verify
	 * again from the certificates the session keeps. */
	err = out->resumed ? verify_chain(ssl, dane) : SSL_get_verify_result(ssl);
	if (dane) {
		dane_verdict(ssl, err, out);
		/* a second chain verification per connection is a cost W7 sees */
		if (out->authenticated && !p->pkix_always)
			return;
		err = verify_chain(ssl, false);
	}
	/* Without usable records OpenSSL verified PKIX (SSL_dane_tlsa_add(3)),
	 * and the policy is unauthenticated but mandatory TLS: no failure. */
	pkix_verdict(p, err, out);
}

/* ---- the chain, for people ---------------------------------------------- */

static void name_text(const X509_NAME *name, char *buf, size_t n)
{
	BIO *b = BIO_new(BIO_s_mem());
	int len = 0;

	if (b != NULL && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0)
		len = BIO_read(b, buf, (int)n - 1);
	buf[len > 0 ? len : 0] = '\0';
	BIO_free(b);
}

static void time_text(const ASN1_TIME *t, char *buf, size_t n)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "?");
}

size_t tls_peer_chain(SSL *ssl, struct tls_cert_summary *out, size_t max)
{
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	size_t n = chain != NULL ? (size_t)sk_X509_num(chain) : 0;

	if (n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		X509 *x = sk_X509_value(chain, (int)i);

		name_text(X509_get_subject_name(x), out[i].subject, sizeof out[i].subject);
		name_text(X509_get_issuer_name(x), out[i].issuer, sizeof out[i].issuer);
		time_text(X509_get0_notAfter(x), out[i].not_after, sizeof out[i].not_after);
	}
	ERR_clear_error();
	return n;
}

/* ---- the policy digest -------------------------------------------------- */

/* A tag and a length before each field: no two policies hash the same
 * octets ("ab" + "c" versus "a" + "bc", no SNI versus an empty one). */
static void digest_field(EVP_MD_CTX *md, char tag, const void *data, size_t len)
{
	unsigned char head[9] = {(unsigned char)tag};

	for (int i = 0; i < 8; i++)
		head[1 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	EVP_DigestUpdate(md, head, sizeof head);
	if (len > 0)
		EVP_DigestUpdate(md, data, len);
}

static void digest_policy(EVP_MD_CTX *md, const struct tls_peer_policy *p)
{
	unsigned char auth = (unsigned char)p->auth;

	digest_field(md, 'a', &auth, 1);
	if (p->sni != NULL)
		digest_field(md, 's', p->sni, strlen(p->sni));
	for (size_t i = 0; i < p->nnames; i++)
		digest_field(md, 'n', p->names[i], p->names[i] ? strlen(p->names[i]) : 0);
	if (p->auth != TLS_AUTH_DANE)
		return; /* tls_peer_prepare ignores the records then */
	for (size_t i = 0; i < p->ntlsa; i++) {
		const struct tls_tlsa *r = &p->tlsa[i];
		unsigned char params[3] = {r->usage, r->selector, r->mtype};

		digest_field(md, 't', params, sizeof params);
		digest_field(md, 'd', r->data, r->data ? r->len : 0);
	}
}

bool tls_policy_digest(const struct tls_peer_policy *p, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;

	if (ok) {
		digest_policy(md, p);
		ok = EVP_DigestFinal_ex(md, h, &len) == 1 && len == 32;
	}
	EVP_MD_CTX_free(md);
	for (unsigned int i = 0; ok && i < len; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 15];
	}
	out[ok ? 64 : 0] = '\0';
	return ok;
}
