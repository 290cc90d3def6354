/* fuzz_tlsa.c - libFuzzer target for TLSA handling (src/tls/verify.c): the
 * usability classifier, tls_peer_prepare and tls_policy_digest on records
 * from DNS, which an attacker with a signed zone fully controls.
 *
 * Input: one octet of policy (auth mode), one octet of name length and the
 * name, then records: usage, selector, matching type, a 16-bit length and
 * the data (cut short at the end of the input). No network: each input gets
 * a fresh SSL from one client context.
 *
 * Invariants (abort on violation):
 *  - the usable count is at most the number of records;
 *  - tls_peer_prepare never gives SSL_dane_tlsa_add a record the classifier
 *    calls unusable (SSL_dane_tlsa_add is interposed below to check);
 *  - for DANE it adds exactly the usable records, for PKIX and NONE none;
 *  - the classifier agrees with OpenSSL on every DANE-usage record: OpenSSL
 *    accepts it (alone, on a separate SSL) if and only if it is usable, and
 *    fails internally (-1) only on empty Full(0) data.
 */
#include "tls/tls.h"
#include "tls/verify.h"

#include <dlfcn.h>
#include <openssl/err.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_RECORDS = 16 };

static SSL_CTX *client_ctx(void)
{
	static SSL_CTX *ctx;
	char why[256];

	if (ctx == NULL)
		ctx = tls_client_ctx_new(NULL, why, sizeof why);
	if (ctx == NULL)
		abort();
	return ctx;
}

/* ---- SSL_dane_tlsa_add, watched while tls_peer_prepare runs ------------- */

typedef int (*tlsa_add_fn)(SSL *, uint8_t, uint8_t, uint8_t, const unsigned char *, size_t);

static bool in_prepare;
static size_t added_by_prepare;

/* This executable's definition wins over libssl's for the calls in
 * verify.c; the real one is the next in the lookup order. */
int SSL_dane_tlsa_add(SSL *s, uint8_t usage, uint8_t selector, uint8_t mtype,
                      const unsigned char *data, size_t dlen)
{
	static tlsa_add_fn real;
	int rc;

	if (real == NULL)
		real = (tlsa_add_fn)dlsym(RTLD_NEXT, "SSL_dane_tlsa_add");
	if (real == NULL)
		abort();
	if (in_prepare) {
		struct tls_tlsa r = {usage, selector, mtype, data, dlen};

		if (!tls_tlsa_usable(&r))
			abort(); /* an unusable record reached OpenSSL */
	}
	rc = real(s, usage, selector, mtype, data, dlen);
	if (in_prepare && rc > 0)
		added_by_prepare++;
	return rc;
}

/* ---- input -------------------------------------------------------------- */

struct input {
	struct tls_peer_policy policy;
	struct tls_tlsa records[MAX_RECORDS];
	char name[64];
	const char *names[1];
};

static void parse_records(struct input *in, const uint8_t *p, size_t n)
{
	size_t count = 0;

	while (n >= 5 && count < MAX_RECORDS) {
		size_t len = (size_t)p[3] << 8 | p[4];
		struct tls_tlsa *r = &in->records[count++];

		if (len > n - 5)
			len = n - 5;
		*r = (struct tls_tlsa){p[0], p[1], p[2], p + 5, len};
		p += 5 + len;
		n -= 5 + len;
	}
	in->policy.tlsa = in->records;
	in->policy.ntlsa = count;
}

/* False when too short for the policy octets. */
static bool parse(struct input *in, const uint8_t *p, size_t n)
{
	size_t name_len;

	memset(in, 0, sizeof *in);
	if (n < 2)
		return false;
	in->policy.auth = (enum tls_auth)(p[0] % 3);
	name_len = p[1] % sizeof in->name;
	if (name_len > n - 2)
		name_len = n - 2;
	memcpy(in->name, p + 2, name_len); /* a NUL inside shortens it */
	in->names[0] = in->name;
	in->policy.names = in->names;
	in->policy.nnames = (p[0] & 4) ? 0 : 1;
	in->policy.sni = (p[0] & 8) ? NULL : in->name;
	parse_records(in, p + 2 + name_len, n - 2 - name_len);
	return true;
}

/* ---- checks ------------------------------------------------------------- */

static void check_prepare(const struct input *in, size_t usable)
{
	SSL *ssl = SSL_new(client_ctx());
	char why[256];
	int rc;

	if (ssl == NULL)
		abort();
	in_prepare = true;
	added_by_prepare = 0;
	rc = tls_peer_prepare(ssl, &in->policy, why, sizeof why);
	in_prepare = false;
	if (rc >= 0 && (size_t)rc != added_by_prepare)
		abort();
	if (rc >= 0 && in->policy.auth == TLS_AUTH_DANE && (size_t)rc != usable)
		abort();
	if (rc > 0 && in->policy.auth != TLS_AUTH_DANE)
		abort();
	SSL_free(ssl);
	ERR_clear_error();
}

/* The classifier and OpenSSL agree on records of the DANE usages. */
static void check_agreement(const struct tls_tlsa *r)
{
	SSL *ssl;
	int rc;

	if (r->usage != 2 && r->usage != 3)
		return;
	ssl = SSL_new(client_ctx());
	if (ssl == NULL || SSL_dane_enable(ssl, "mx.example") <= 0)
		abort();
	rc = SSL_dane_tlsa_add(ssl, r->usage, r->selector, r->mtype, r->data, r->len);
	/* OpenSSL 3.0 calls empty Full(0) data an internal error (-1, its
	 * malloc(0) fails); anything else below 0 would be news. */
	if (rc < 0 && !(r->mtype == 0 && r->len == 0))
		abort();
	if ((rc > 0) != tls_tlsa_usable(r))
		abort();
	SSL_free(ssl);
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in;
	size_t usable;
	char digest[65];

	if (!parse(&in, data, size))
		return 0;
	usable = tls_tlsa_count_usable(in.policy.tlsa, in.policy.ntlsa);
	if (usable > in.policy.ntlsa)
		abort();
	for (size_t i = 0; i < in.policy.ntlsa; i++)
		check_agreement(&in.policy.tlsa[i]);
	check_prepare(&in, usable);
	if (!tls_policy_digest(&in.policy, digest) || strlen(digest) != 64)
		abort();
	return 0;
}
