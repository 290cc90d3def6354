/* tls_verify_test.c - DANE and PKIX verdicts (src/tls/verify.c) and session
 * resumption (src/tls/session_cache.c) over real handshakes.
 *
 * In the manner of Postfix's tls_dane.sh: a root CA, an intermediate CA and
 * leaf certificates (good, expired, wrong name, self-signed, wildcards,
 * another root) are generated at start with OpenSSL's C API, nothing is
 * committed. Each case runs a real handshake in memory: a server SSL with
 * the chain under test and an SSL from tls_client_ctx_new, joined by a BIO
 * pair and driven in a loop. The hashes computed here only build TLSA data;
 * the verdicts come from the code under test.
 *
 * The "system" trust store is made hermetic with SSL_CERT_FILE (a second
 * root) and SSL_CERT_DIR (nothing), set before any context is created.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tls/session_cache.h"
#include "tls/tls.h"
#include "tls/verify.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the test PKI ------------------------------------------------------- */

struct cred {
	EVP_PKEY *key;
	X509 *cert;
};

enum { DAY = 86400 };

static struct {
	struct cred root, inter, root2, other;
	struct cred leaf;          /* mx.example.net, by inter */
	struct cred expired;       /* mx.example.net, by inter, expired */
	struct cred wrong_name;    /* other.example.org, by inter */
	struct cred expired_wrong; /* other.example.org, by inter, expired */
	struct cred self_signed;   /* mx.example.net, its own CA (a depth 0 TA) */
	struct cred by_root;       /* mx.example.net, by root directly */
	struct cred by_root2;      /* mx.example.net, by root2 ("system" root) */
	struct cred mx3;           /* mx3.example.net, by inter */
	struct cred wildcard;      /* *.example.net, by inter */
	struct cred partial_wild;  /* mx*.example.net, by inter */
	char ca_file[64], system_file[64];
	SSL_CTX *client_ca;   /* tls_client_ctx_new(ca_file) */
	SSL_CTX *client_noca; /* tls_client_ctx_new(NULL) */
} pki;

static void add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

/* A certificate for cn (and san, "DNS:..." or NULL) valid from..to seconds
 * from now, signed by issuer (NULL: self-signed). */
static struct cred cred_new(const char *cn, const char *san, const struct cred *issuer, bool ca,
                            long from, long to)
{
	static long serial = 1;
	struct cred c = {EVP_EC_gen("P-256"), X509_new()};
	X509 *signer_cert = issuer ? issuer->cert : c.cert;
	X509V3_CTX v3;

	assert_non_null(c.key);
	X509_set_version(c.cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c.cert), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c.cert), from);
	X509_gmtime_adj(X509_getm_notAfter(c.cert), to);
	X509_set_pubkey(c.cert, c.key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(c.cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c.cert, X509_get_subject_name(signer_cert));
	X509V3_set_ctx(&v3, signer_cert, c.cert, NULL, NULL, 0);
	add_ext(c.cert, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	add_ext(c.cert, &v3, NID_subject_key_identifier, "hash");
	if (issuer != NULL)
		add_ext(c.cert, &v3, NID_authority_key_identifier, "keyid:always");
	if (ca)
		add_ext(c.cert, &v3, NID_key_usage,
		        "critical,keyCertSign,cRLSign,digitalSignature");
	if (san != NULL) {
		add_ext(c.cert, &v3, NID_ext_key_usage, "serverAuth");
		add_ext(c.cert, &v3, NID_subject_alt_name, san);
	}
	assert_true(X509_sign(c.cert, issuer ? issuer->key : c.key, EVP_sha256()) > 0);
	return c;
}

static void cred_free(struct cred *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
}

static void pem_file(char *path, size_t n, const char *name, X509 *x)
{
	FILE *f;

	snprintf(path, n, "/tmp/tls_verify_%s_%d.pem", name, (int)getpid());
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(PEM_write_X509(f, x));
	fclose(f);
}

static int pki_setup(void **state)
{
	char why[256];

	pki.root = cred_new("Test Root", NULL, NULL, true, -DAY, 30 * DAY);
	pki.inter = cred_new("Test Intermediate", NULL, &pki.root, true, -DAY, 30 * DAY);
	pki.root2 = cred_new("Test System Root", NULL, NULL, true, -DAY, 30 * DAY);
	pki.other = cred_new("Unrelated", "DNS:unrelated.example", NULL, true, -DAY, 30 * DAY);
	pki.leaf =
	    cred_new("mx.example.net", "DNS:mx.example.net", &pki.inter, false, -DAY, 30 * DAY);
	pki.expired =
	    cred_new("mx.example.net", "DNS:mx.example.net", &pki.inter, false, -30 * DAY, -DAY);
	pki.wrong_name = cred_new("other.example.org", "DNS:other.example.org", &pki.inter, false,
	                          -DAY, 30 * DAY);
	pki.expired_wrong = cred_new("other.example.org", "DNS:other.example.org", &pki.inter,
	                             false, -30 * DAY, -DAY);
	pki.self_signed =
	    cred_new("mx.example.net", "DNS:mx.example.net", NULL, true, -DAY, 30 * DAY);
	pki.by_root =
	    cred_new("mx.example.net", "DNS:mx.example.net", &pki.root, false, -DAY, 30 * DAY);
	pki.by_root2 =
	    cred_new("mx.example.net", "DNS:mx.example.net", &pki.root2, false, -DAY, 30 * DAY);
	pki.mx3 =
	    cred_new("mx3.example.net", "DNS:mx3.example.net", &pki.inter, false, -DAY, 30 * DAY);
	pki.wildcard =
	    cred_new("*.example.net", "DNS:*.example.net", &pki.inter, false, -DAY, 30 * DAY);
	pki.partial_wild =
	    cred_new("mx*.example.net", "DNS:mx*.example.net", &pki.inter, false, -DAY, 30 * DAY);

	pem_file(pki.ca_file, sizeof pki.ca_file, "ca", pki.root.cert);
	pem_file(pki.system_file, sizeof pki.system_file, "system", pki.root2.cert);
	setenv("SSL_CERT_FILE", pki.system_file, 1);
	setenv("SSL_CERT_DIR", "/nonexistent", 1);
	pki.client_ca = tls_client_ctx_new(pki.ca_file, why, sizeof why);
	pki.client_noca = tls_client_ctx_new(NULL, why, sizeof why);
	assert_non_null(pki.client_ca);
	assert_non_null(pki.client_noca);
	return 0;
}

static int pki_teardown(void **state)
{
	struct cred *all[] = {
	    &pki.root,     &pki.inter,      &pki.root2,         &pki.other,       &pki.leaf,
	    &pki.expired,  &pki.wrong_name, &pki.expired_wrong, &pki.self_signed, &pki.by_root,
	    &pki.by_root2, &pki.mx3,        &pki.wildcard,      &pki.partial_wild};

	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		cred_free(all[i]);
	SSL_CTX_free(pki.client_ca);
	SSL_CTX_free(pki.client_noca);
	unlink(pki.ca_file);
	unlink(pki.system_file);
	return 0;
}

/* ---- TLSA records ------------------------------------------------------- */

struct record {
	struct tls_tlsa t;
	unsigned char data[4096];
};

/* The record "usage selector mtype" for x, as a zone would publish it. */
static struct record *record_of(struct record *r, uint8_t usage, uint8_t selector, uint8_t mtype,
                                X509 *x)
{
	unsigned char *der = NULL;
	int len = selector == 0 ? i2d_X509(x, &der) : i2d_PUBKEY(X509_get0_pubkey(x), &der);
	unsigned int dlen = 0;

	assert_true(len > 0 && (size_t)len <= sizeof r->data);
	if (mtype == 0) {
		memcpy(r->data, der, (size_t)len);
		dlen = (unsigned int)len;
	} else {
		assert_true(EVP_Digest(der, (size_t)len, r->data, &dlen,
		                       mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL));
	}
	OPENSSL_free(der);
	r->t = (struct tls_tlsa){usage, selector, mtype, r->data, dlen};
	return r;
}

/* ---- handshakes --------------------------------------------------------- */

/* A server presenting leaf and then the chain certificates, in that order. */
static SSL_CTX *server_ctx(const struct cred *leaf, const struct cred *const *chain, size_t n,
                           int max_version)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_non_null(ctx);
	assert_true(SSL_CTX_use_certificate(ctx, leaf->cert));
	assert_true(SSL_CTX_use_PrivateKey(ctx, leaf->key));
	for (size_t i = 0; i < n; i++)
		assert_true(SSL_CTX_add1_chain_cert(ctx, chain[i]->cert));
	if (max_version != 0)
		SSL_CTX_set_max_proto_version(ctx, max_version);
	return ctx;
}

#define SERVER(leaf, ...)                                                                          \
	server_ctx((leaf), (const struct cred *const[]){__VA_ARGS__},                              \
	           sizeof((const struct cred *const[]){__VA_ARGS__}) / sizeof(struct cred *), 0)

static SSL_CTX *server_leaf_only(const struct cred *leaf)
{
	return server_ctx(leaf, NULL, 0, 0);
}

struct conn {
	SSL *client, *server;
	int prepared;
};

static bool wants_io(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static bool handshake(SSL *c, SSL *s)
{
	for (int i = 0; i < 64; i++) {
		int rc = SSL_do_handshake(c), rs = SSL_do_handshake(s);

		if (rc == 1 && rs == 1)
			return true;
		if ((rc != 1 && !wants_io(c, rc)) || (rs != 1 && !wants_io(s, rs)))
			return false;
	}
	return false;
}

/* TLS 1.3 tickets follow the handshake: the client meets them when it reads. */
static void client_reads(struct conn *k)
{
	unsigned char b;

	assert_true(SSL_read(k->client, &b, 1) <= 0);
	assert_true(wants_io(k->client, -1));
	ERR_clear_error();
}

static void conn_open(struct conn *k, SSL_CTX *client, SSL_CTX *server,
                      const struct tls_peer_policy *p, struct tls_session_cache *cache,
                      const char *key)
{
	char why[256] = "";
	BIO *bc, *bs;

	k->client = SSL_new(client);
	k->server = SSL_new(server);
	assert_non_null(k->client);
	assert_non_null(k->server);
	assert_true(BIO_new_bio_pair(&bc, 0, &bs, 0));
	SSL_set_bio(k->client, bc, bc);
	SSL_set_bio(k->server, bs, bs);
	SSL_set_connect_state(k->client);
	SSL_set_accept_state(k->server);
	k->prepared = tls_peer_prepare(k->client, p, why, sizeof why);
	if (k->prepared < 0)
		fail_msg("tls_peer_prepare: %s", why);
	if (cache != NULL)
		assert_int_equal(tls_session_attach(k->client, cache, key), 0);
	assert_true(handshake(k->client, k->server));
}

static void conn_close(struct conn *k)
{
	SSL_free(k->client);
	SSL_free(k->server);
}

/* One handshake with p against server, and its verdict. */
static void verdict(SSL_CTX *client, SSL_CTX *server, const struct tls_peer_policy *p,
                    struct tls_peer_result *r)
{
	struct conn k;

	conn_open(&k, client, server, p, NULL, NULL);
	tls_peer_verdict(k.client, p, r);
	conn_close(&k);
}

static const char *const MX[] = {"mx.example.net"};

static struct tls_peer_policy policy(enum tls_auth auth, const struct tls_tlsa *t, size_t n)
{
	return (struct tls_peer_policy){
	    .auth = auth, .sni = "mx.example.net", .names = MX, .nnames = 1, .tlsa = t, .ntlsa = n};
}

static void assert_failure(const struct tls_failure *f, const char *type, const char *reason)
{
	if (f->result_type == NULL || strcmp(f->result_type, type) != 0)
		fail_msg("result type %s, expected %s (reason %s)",
		         f->result_type ? f->result_type : "none", type, f->reason);
	if (reason != NULL && strcmp(f->reason, reason) != 0)
		fail_msg("reason %s, expected %s", f->reason, reason);
}

static void assert_no_failure(const struct tls_failure *f)
{
	if (f->result_type != NULL)
		fail_msg("unexpected failure %s/%s", f->result_type, f->reason);
	assert_int_equal(f->verify_error, X509_V_OK);
}

/* ---- the usability classifier ------------------------------------------- */

static void test_classifier_accepts_dane_usages_with_known_parameters(void **state)
{
	struct record r;

	for (uint8_t u = 2; u <= 3; u++)
		for (uint8_t s = 0; s <= 1; s++)
			for (uint8_t m = 0; m <= 2; m++)
				assert_true(
				    tls_tlsa_usable(&record_of(&r, u, s, m, pki.leaf.cert)->t));
}

static void test_classifier_refuses_unusable_records(void **state)
{
	static const uint8_t junk[64] = {0x30, 0x03, 0x02, 0x01};
	struct record cert, spki, tail;
	const struct tls_tlsa bad[] = {
	    /* RFC 7672 §3.1.3: PKIX usages are unusable for SMTP */
	    record_of(&cert, 0, 0, 1, pki.leaf.cert)->t,
	    {1, 1, 1, cert.data, 32},
	    {4, 1, 1, cert.data, 32},   /* unknown usage */
	    {255, 1, 1, cert.data, 32}, /* unknown usage */
	    {3, 2, 1, cert.data, 32},   /* unknown selector */
	    {3, 1, 3, cert.data, 32},   /* unknown matching type */
	    {3, 1, 255, cert.data, 32}, /* private matching type */
	    {3, 1, 1, cert.data, 31},   /* SHA2-256 of the wrong length */
	    {3, 1, 1, cert.data, 33},
	    {3, 1, 2, cert.data, 32}, /* SHA2-512 of the wrong length */
	    {3, 1, 1, NULL, 32},      /* no data */
	    {3, 1, 1, cert.data, 0},
	    {3, 0, 0, junk, sizeof junk}, /* Full(0) that is no certificate */
	    {3, 1, 0, junk, 0},
	};
	struct tls_tlsa mismatched, trailing;

	/* a certificate where a public key is expected, and the reverse */
	mismatched = record_of(&cert, 3, 0, 0, pki.leaf.cert)->t;
	mismatched.selector = 1;
	assert_false(tls_tlsa_usable(&mismatched));
	mismatched = record_of(&spki, 2, 1, 0, pki.leaf.cert)->t;
	mismatched.selector = 0;
	assert_false(tls_tlsa_usable(&mismatched));
	/* a certificate followed by a stray octet */
	trailing = record_of(&tail, 3, 0, 0, pki.leaf.cert)->t;
	tail.data[trailing.len++] = 0;
	assert_false(tls_tlsa_usable(&trailing));

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (tls_tlsa_usable(&bad[i]))
			fail_msg("record %zu (%u %u %u, %zu octets) called usable", i, bad[i].usage,
			         bad[i].selector, bad[i].mtype, bad[i].len);
	assert_int_equal(tls_tlsa_count_usable(bad, sizeof bad / sizeof bad[0]), 0);
}

/* Found by fuzz_tlsa: OpenSSL 3.0 answers empty Full(0) data with -1, its
 * "internal error" (malloc(0) fails). The classifier keeps such records
 * from OpenSSL, so a record in DNS cannot fail tls_peer_prepare. */
static void test_empty_full_data_never_reaches_openssl(void **state)
{
	static const uint8_t nothing[1];
	const struct tls_tlsa empty[] = {{3, 1, 0, nothing, 0}, {2, 0, 0, nothing, 0}};
	struct tls_peer_policy p = policy(TLS_AUTH_DANE, empty, 2);
	SSL *ssl = SSL_new(pki.client_ca);
	char why[128];

	assert_int_equal(SSL_dane_enable(ssl, "mx.example.net"), 1);
	assert_int_equal(SSL_dane_tlsa_add(ssl, 3, 1, 0, nothing, 0), -1);
	ERR_clear_error();
	SSL_free(ssl);

	ssl = SSL_new(pki.client_ca);
	assert_int_equal(tls_peer_prepare(ssl, &p, why, sizeof why), 0);
	SSL_free(ssl);
}

/* ---- DANE --------------------------------------------------------------- */

/* Usage 2 and 3 x selector 0 and 1 x matching type 0, 1 and 2, each with a
 * record of the right certificate and of an unrelated one: 24 handshakes.
 * The server sends leaf + intermediate; DANE-TA records name the
 * intermediate, DANE-EE records the leaf. */
static void test_dane_matrix_usage_selector_mtype(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);

	for (uint8_t u = 2; u <= 3; u++)
		for (uint8_t s = 0; s <= 1; s++)
			for (uint8_t m = 0; m <= 2; m++)
				for (int match = 0; match <= 1; match++) {
					X509 *subject = !match   ? pki.other.cert
					                : u == 2 ? pki.inter.cert
					                         : pki.leaf.cert;
					struct record rec;
					struct tls_peer_policy p =
					    policy(TLS_AUTH_DANE,
					           &record_of(&rec, u, s, m, subject)->t, 1);
					struct tls_peer_result r;
					char want[8];
					p.pkix_always = true;

					print_message("%u %u %u %s\n", u, s, m,
					              match ? "match" : "no match");
					verdict(pki.client_ca, server, &p, &r);
					/* PKIX is independent of DANE: leaf+intermediate chain to
					 * root */
					assert_true(r.pkix_ok);
					if (!match) {
						assert_false(r.authenticated);
						assert_int_equal(r.method, TLS_METHOD_NONE);
						assert_failure(&r.failure, "tlsa-invalid",
						               "dane-no-match");
						assert_int_equal(r.failure.verify_error,
						                 X509_V_ERR_DANE_NO_MATCH);
						continue;
					}
					assert_true(r.authenticated);
					assert_no_failure(&r.failure);
					assert_int_equal(r.method, u == 3 ? TLS_METHOD_DANE_EE
					                                  : TLS_METHOD_DANE_TA);
					assert_int_equal(r.dane_depth, u == 3 ? 0 : 1);
					snprintf(want, sizeof want, "%u %u %u ", u, s, m);
					assert_memory_equal(r.dane_record, want, strlen(want));
				}
	SSL_CTX_free(server);
}

static void test_dane_any_matching_record_wins_and_unusable_ones_are_skipped(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct record a, b, c;
	const struct tls_tlsa set[] = {
	    record_of(&a, 3, 1, 1, pki.other.cert)->t, /* usable, no match */
	    record_of(&b, 0, 0, 1, pki.leaf.cert)->t,  /* PKIX-TA: unusable */
	    record_of(&c, 2, 1, 1, pki.inter.cert)->t, /* usable, matches */
	};
	struct tls_peer_policy p = policy(TLS_AUTH_DANE, set, 3);
	struct tls_peer_result r;
	struct conn k;

	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_int_equal(k.prepared, 2);
	tls_peer_verdict(k.client, &p, &r);
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_DANE_TA);
	conn_close(&k);
	SSL_CTX_free(server);
}

static void test_dane_ta_refuses_a_leaf_for_another_name(void **state)
{
	SSL_CTX *server = SERVER(&pki.wrong_name, &pki.inter);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 1, 1, pki.inter.cert)->t, 1);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-host-mismatch", "hostname-mismatch");
	SSL_CTX_free(server);
}

static void test_dane_ta_accepts_the_second_or_third_reference_name(void **state)
{
	SSL_CTX *server = SERVER(&pki.mx3, &pki.inter);
	static const char *const second[] = {"example.net", "mx3.example.net"};
	static const char *const third[] = {"example.net", "mx.example.net", "mx3.example.net"};
	static const char *const none[] = {"example.net", "mx.example.net", "mx4.example.net"};
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 0, 2, pki.inter.cert)->t, 1);
	struct tls_peer_result r;

	p.names = second;
	p.nnames = 2;
	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	p.names = third;
	p.nnames = 3;
	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	p.names = none;
	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-host-mismatch", NULL);
	SSL_CTX_free(server);
}

/* RFC 7672 §3.1.2: the TA may be the root, sent in the chain or not. */
static void test_dane_ta_anchored_at_the_root_in_the_chain(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter, &pki.root);

	for (uint8_t s = 0; s <= 1; s++)
		for (uint8_t m = 0; m <= 2; m++) {
			struct record rec;
			struct tls_peer_policy p =
			    policy(TLS_AUTH_DANE, &record_of(&rec, 2, s, m, pki.root.cert)->t, 1);
			struct tls_peer_result r;

			verdict(pki.client_noca, server, &p, &r);
			assert_true(r.authenticated);
			assert_int_equal(r.method, TLS_METHOD_DANE_TA);
			assert_int_equal(r.dane_depth, 2);
		}
	SSL_CTX_free(server);
}

/* "2 0 0" carries the whole root: the server need not send it. "2 1 0"
 * carries only its key (SSL_get0_dane_authority reports the top of the
 * chain then). */
static void test_dane_ta_root_given_only_in_dns(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 0, 0, pki.root.cert)->t, 1);
	struct tls_peer_result r;

	verdict(pki.client_noca, server, &p, &r);
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_DANE_TA);
	assert_int_equal(r.dane_depth, 2);
	assert_false(r.pkix_ok); /* the root is not in this client's store */

	p = policy(TLS_AUTH_DANE, &record_of(&rec, 2, 1, 0, pki.root.cert)->t, 1);
	verdict(pki.client_noca, server, &p, &r);
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_DANE_TA);
	assert_true(r.dane_depth >= 1);
	SSL_CTX_free(server);
}

/* A digest of a root neither sent nor given in full: nothing to anchor on.
 * The root being in the PKIX trust store must not help (no PKIX fallback
 * under DANE, RFC 7672 §2.2). */
static void test_dane_ta_absent_from_chain_and_dns_fails(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);

	for (uint8_t s = 0; s <= 1; s++) {
		struct record rec;
		struct tls_peer_policy p =
		    policy(TLS_AUTH_DANE, &record_of(&rec, 2, s, 1, pki.root.cert)->t, 1);
		struct tls_peer_result r;

		verdict(pki.client_ca, server, &p, &r);
		assert_false(r.authenticated);
		assert_failure(&r.failure, "tlsa-invalid", "dane-no-match");
		assert_true(r.pkix_ok);
	}
	SSL_CTX_free(server);
}

/* A record for the leaf with usage DANE-TA is not an EE match: the chain
 * above it must still end at a TA (Postfix's "non-TA" case). */
static void test_dane_ta_record_of_the_leaf_issued_by_a_ca_fails(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter, &pki.root);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 0, 1, pki.leaf.cert)->t, 1);
	struct tls_peer_result r;

	verdict(pki.client_noca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "tlsa-invalid", "dane-no-match");
	SSL_CTX_free(server);
}

/* Pinned down: OpenSSL 3.0 takes a DANE-TA record for a self-signed leaf
 * only as its key in DNS ("2 1 0", the key that signed the leaf); a digest
 * or the certificate itself does not match at depth 0 (fails closed; such
 * servers publish DANE-EE). The name is checked either way. */
static void test_dane_ta_for_a_self_signed_leaf_needs_its_key_in_dns(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.self_signed);
	static const char *const other[] = {"whatever.example.net"};
	struct record rec;
	struct tls_peer_policy p;
	struct tls_peer_result r;

	for (uint8_t m = 1; m <= 2; m++) {
		p = policy(TLS_AUTH_DANE, &record_of(&rec, 2, 0, m, pki.self_signed.cert)->t, 1);
		verdict(pki.client_noca, server, &p, &r);
		assert_false(r.authenticated);
		assert_failure(&r.failure, "tlsa-invalid", "dane-no-match");
	}
	p = policy(TLS_AUTH_DANE, &record_of(&rec, 2, 1, 0, pki.self_signed.cert)->t, 1);
	verdict(pki.client_noca, server, &p, &r);
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_DANE_TA);
	assert_int_equal(r.dane_depth, 0);
	p.names = other;
	verdict(pki.client_noca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-host-mismatch", NULL);
	SSL_CTX_free(server);
}

static void test_dane_ta_refuses_an_expired_leaf(void **state)
{
	SSL_CTX *server = SERVER(&pki.expired, &pki.inter);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 1, 1, pki.inter.cert)->t, 1);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-expired", "certificate-has-expired");
	SSL_CTX_free(server);
}

/* RFC 7672 §3.1.1: DANE-EE ignores names and dates. */
static void test_dane_ee_accepts_an_expired_leaf_for_another_name(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.expired_wrong);

	for (uint8_t s = 0; s <= 1; s++) {
		struct record rec;
		struct tls_peer_policy p =
		    policy(TLS_AUTH_DANE, &record_of(&rec, 3, s, 1, pki.expired_wrong.cert)->t, 1);
		struct tls_peer_result r;

		/* delivery's policy: DANE authenticated the peer, PKIX is not checked */
		verdict(pki.client_ca, server, &p, &r);
		assert_true(r.authenticated);
		assert_int_equal(r.method, TLS_METHOD_DANE_EE);
		assert_false(r.pkix_checked);
		/* outpost check's: PKIX too */
		p.pkix_always = true;
		verdict(pki.client_ca, server, &p, &r);
		assert_true(r.authenticated);
		assert_int_equal(r.method, TLS_METHOD_DANE_EE);
		assert_int_equal(r.dane_depth, 0);
		assert_true(r.pkix_checked);
		assert_false(r.pkix_ok);
		assert_non_null(r.pkix.result_type);
	}
	SSL_CTX_free(server);
}

/* Records but none usable: prepare reports 0, the handshake goes on, and
 * the verdict is unauthenticated without a failure (mandatory TLS only,
 * RFC 7672 §2.2); PKIX is still reported. */
static void test_dane_with_only_unusable_records_is_unauthenticated(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct record a, b, c;
	const struct tls_tlsa set[] = {
	    record_of(&a, 0, 0, 1, pki.inter.cert)->t,
	    record_of(&b, 1, 1, 1, pki.leaf.cert)->t,
	    {3, 1, 1, record_of(&c, 3, 1, 1, pki.leaf.cert)->data, 31},
	    {3, 2, 1, c.data, 32},
	    {3, 1, 7, c.data, 32},
	};
	struct tls_peer_policy p = policy(TLS_AUTH_DANE, set, sizeof set / sizeof set[0]);
	struct tls_peer_result r;
	struct conn k;

	assert_int_equal(tls_tlsa_count_usable(set, p.ntlsa), 0);
	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_int_equal(k.prepared, 0);
	tls_peer_verdict(k.client, &p, &r);
	assert_false(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_NONE);
	assert_no_failure(&r.failure);
	assert_true(r.pkix_ok);
	conn_close(&k);
	SSL_CTX_free(server);
}

/* What OpenSSL does, pinned down: under SSL_VERIFY_NONE a DANE mismatch does
 * not stop the handshake; the result waits in SSL_get_verify_result. */
static void test_openssl_completes_the_handshake_and_keeps_the_dane_result(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 3, 1, 1, pki.other.cert)->t, 1);
	struct conn k;

	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_int_equal(SSL_get_verify_result(k.client), X509_V_ERR_DANE_NO_MATCH);
	assert_true(SSL_get0_dane_authority(k.client, NULL, NULL) < 0);
	conn_close(&k);
	SSL_CTX_free(server);
}

static void test_sni_is_the_policy_s_and_none_for_an_ip_literal(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 3, 1, 1, pki.leaf.cert)->t, 1);
	struct tls_peer_policy ip = {.auth = TLS_AUTH_NONE};
	struct tls_peer_result r;
	struct conn k;

	p.sni = "sni.example.net";
	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_string_equal(SSL_get_servername(k.server, TLSEXT_NAMETYPE_host_name), p.sni);
	conn_close(&k);

	/* DANE would make the base domain the SNI; the policy says none */
	p.sni = NULL;
	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_null(SSL_get_servername(k.server, TLSEXT_NAMETYPE_host_name));
	tls_peer_verdict(k.client, &p, &r);
	assert_true(r.authenticated);
	conn_close(&k);

	conn_open(&k, pki.client_ca, server, &ip, NULL, NULL);
	assert_null(SSL_get_servername(k.server, TLSEXT_NAMETYPE_host_name));
	tls_peer_verdict(k.client, &ip, &r);
	assert_false(r.pkix_ok); /* a chain without a name identifies no one */
	assert_failure(&r.pkix, "validation-failure", "no-reference-identifier");
	assert_no_failure(&r.failure);
	conn_close(&k);
	SSL_CTX_free(server);
}

static void test_prepare_refuses_policies_without_usable_names(void **state)
{
	static const char *const empty[] = {""};
	static const char *const second_empty[] = {"mx.example.net", ""};
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	char why[128];
	SSL *ssl = SSL_new(pki.client_ca);

	p.nnames = 0;
	assert_int_equal(tls_peer_prepare(ssl, &p, why, sizeof why), -1);
	p.auth = TLS_AUTH_DANE;
	assert_int_equal(tls_peer_prepare(ssl, &p, why, sizeof why), -1);
	p.auth = TLS_AUTH_NONE;
	p.names = empty;
	p.nnames = 1;
	assert_int_equal(tls_peer_prepare(ssl, &p, why, sizeof why), -1);
	p.names = second_empty;
	p.nnames = 2;
	assert_int_equal(tls_peer_prepare(ssl, &p, why, sizeof why), -1);
	assert_non_null(strstr(why, "reference identifier"));
	SSL_free(ssl);
}

/* ---- PKIX ---------------------------------------------------------------- */

static void test_pkix_accepts_a_chain_to_the_ca_file(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;
	struct tls_cert_summary chain[4];

	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_PKIX);
	assert_true(r.pkix_ok);
	assert_no_failure(&r.failure);
	assert_no_failure(&r.pkix);
	assert_int_equal(r.dane_depth, -1);
	assert_false(r.resumed);
	assert_string_equal(r.version, "TLSv1.3");
	assert_true(strlen(r.cipher) > 0);

	struct conn k;
	conn_open(&k, pki.client_ca, server, &p, NULL, NULL);
	assert_int_equal(tls_peer_chain(k.client, chain, 4), 2);
	assert_string_equal(chain[0].subject, "CN=mx.example.net");
	assert_string_equal(chain[0].issuer, "CN=Test Intermediate");
	assert_string_equal(chain[1].subject, "CN=Test Intermediate");
	assert_int_equal(strlen(chain[0].not_after), 20);
	assert_int_equal(chain[0].not_after[19], 'Z');
	assert_int_equal(tls_peer_chain(k.client, chain, 1), 1);
	conn_close(&k);
	SSL_CTX_free(server);
}

static void test_pkix_refuses_an_expired_leaf(void **state)
{
	SSL_CTX *server = SERVER(&pki.expired, &pki.inter);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_false(r.pkix_ok);
	assert_failure(&r.failure, "certificate-expired", "certificate-has-expired");
	assert_int_equal(r.failure.verify_error, X509_V_ERR_CERT_HAS_EXPIRED);
	SSL_CTX_free(server);
}

static void test_pkix_refuses_a_wrong_name(void **state)
{
	SSL_CTX *server = SERVER(&pki.wrong_name, &pki.inter);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-host-mismatch", "hostname-mismatch");
	SSL_CTX_free(server);
}

static void test_pkix_refuses_a_self_signed_leaf(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.self_signed);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-not-trusted", "self-signed-certificate");
	SSL_CTX_free(server);
}

static void test_pkix_needs_the_ca_file_for_a_private_root(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.by_root);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_noca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-not-trusted",
	               "unable-to-get-local-issuer-certificate");
	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	SSL_CTX_free(server);
}

static void test_pkix_refuses_a_chain_without_its_intermediate(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.leaf);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-not-trusted", NULL);
	SSL_CTX_free(server);
}

/* The ca_file adds to the system's roots, it does not replace them. */
static void test_pkix_trusts_system_roots_and_the_ca_file_together(void **state)
{
	SSL_CTX *server = server_leaf_only(&pki.by_root2);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;
	char why[256];

	verdict(pki.client_noca, server, &p, &r);
	assert_true(r.authenticated);
	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	SSL_CTX_free(server);

	assert_null(tls_client_ctx_new("/nonexistent/ca.pem", why, sizeof why));
	assert_non_null(strstr(why, "/nonexistent/ca.pem"));
}

static void test_pkix_accepts_the_second_reference_name(void **state)
{
	SSL_CTX *server = SERVER(&pki.mx3, &pki.inter);
	static const char *const names[] = {"mx.example.net", "mx3.example.net"};
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	p.names = names;
	p.nnames = 2;
	verdict(pki.client_ca, server, &p, &r);
	assert_true(r.authenticated);
	p.nnames = 1;
	verdict(pki.client_ca, server, &p, &r);
	assert_false(r.authenticated);
	SSL_CTX_free(server);
}

static void test_pkix_wildcards_only_as_a_whole_label(void **state)
{
	SSL_CTX *whole = SERVER(&pki.wildcard, &pki.inter);
	SSL_CTX *partial = SERVER(&pki.partial_wild, &pki.inter);
	static const char *const mx1[] = {"mx1.example.net"};
	static const char *const deep[] = {"a.mx.example.net"};
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, whole, &p, &r);
	assert_true(r.authenticated);
	p.names = deep;
	verdict(pki.client_ca, whole, &p, &r);
	assert_false(r.authenticated);
	p.names = mx1;
	verdict(pki.client_ca, partial, &p, &r);
	assert_false(r.authenticated);
	assert_failure(&r.failure, "certificate-host-mismatch", NULL);
	SSL_CTX_free(whole);
	SSL_CTX_free(partial);
}

/* ---- opportunistic ------------------------------------------------------- */

static void test_none_accepts_anything_but_reports_pkix(void **state)
{
	SSL_CTX *good = SERVER(&pki.leaf, &pki.inter);
	SSL_CTX *wrong = SERVER(&pki.wrong_name, &pki.inter);
	SSL_CTX *self = server_leaf_only(&pki.self_signed);
	struct tls_peer_policy p = policy(TLS_AUTH_NONE, NULL, 0);
	struct tls_peer_result r;

	verdict(pki.client_ca, good, &p, &r);
	assert_false(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_NONE);
	assert_no_failure(&r.failure);
	assert_true(r.pkix_ok); /* REQUIRETLS may rely on it (RFC 8689 §4.2.1) */

	verdict(pki.client_ca, wrong, &p, &r);
	assert_no_failure(&r.failure);
	assert_false(r.pkix_ok);
	assert_failure(&r.pkix, "certificate-host-mismatch", NULL);

	verdict(pki.client_noca, good, &p, &r);
	assert_false(r.pkix_ok);
	assert_failure(&r.pkix, "certificate-not-trusted", NULL);

	verdict(pki.client_ca, self, &p, &r);
	assert_false(r.pkix_ok);
	assert_failure(&r.pkix, "certificate-not-trusted", NULL);
	SSL_CTX_free(good);
	SSL_CTX_free(wrong);
	SSL_CTX_free(self);
}

/* ---- the policy digest --------------------------------------------------- */

static void digest_of(const struct tls_peer_policy *p, char out[65])
{
	assert_true(tls_policy_digest(p, out));
	assert_int_equal(strlen(out), 64);
}

static void test_policy_digest_changes_with_everything_that_decides(void **state)
{
	static const char *const ab_c[] = {"ab", "c"}, *const a_bc[] = {"a", "bc"};
	struct record r1, r2;
	struct tls_peer_policy base =
	    policy(TLS_AUTH_DANE, &record_of(&r1, 3, 1, 1, pki.leaf.cert)->t, 1);
	struct tls_peer_policy p;
	char d0[65], d[65];

	digest_of(&base, d0);
	digest_of(&base, d);
	assert_string_equal(d0, d);

	p = base;
	p.auth = TLS_AUTH_PKIX;
	digest_of(&p, d);
	assert_string_not_equal(d0, d);
	p = base;
	p.sni = NULL;
	digest_of(&p, d);
	assert_string_not_equal(d0, d);
	p.sni = "";
	digest_of(&p, d0);
	assert_string_not_equal(d0, d);

	p = base;
	p.tlsa = &record_of(&r2, 3, 1, 1, pki.other.cert)->t;
	digest_of(&base, d0);
	digest_of(&p, d);
	assert_string_not_equal(d0, d);
	r2 = r1;
	r2.t.data = r2.data;
	r2.t.mtype = 2;
	digest_of(&p, d);
	assert_string_not_equal(d0, d);

	p = base;
	p.names = ab_c;
	p.nnames = 2;
	digest_of(&p, d0);
	p.names = a_bc;
	digest_of(&p, d);
	assert_string_not_equal(d0, d);

	/* PKIX ignores TLSA records, and so does its digest */
	p = policy(TLS_AUTH_PKIX, NULL, 0);
	digest_of(&p, d0);
	p.tlsa = &r1.t;
	p.ntlsa = 1;
	digest_of(&p, d);
	assert_string_equal(d0, d);
}

/* ---- session resumption -------------------------------------------------- */

static void key_of(const struct tls_peer_policy *p, char *key, size_t n)
{
	char digest[65];

	digest_of(p, digest);
	snprintf(key, n, "192.0.2.1 25 %s %s", p->sni ? p->sni : "-", digest);
}

/* A connection through the cache; accepted when accept is set (tickets read
 * after the accept, as the SMTP client reads its EHLO reply). */
static bool session_connect(SSL_CTX *client, SSL_CTX *server, const struct tls_peer_policy *p,
                            struct tls_session_cache *cache, bool accept, struct tls_peer_result *r)
{
	char key[160];
	struct conn k;
	bool reused;

	key_of(p, key, sizeof key);
	conn_open(&k, client, server, p, cache, key);
	reused = SSL_session_reused(k.client) == 1;
	tls_peer_verdict(k.client, p, r);
	assert_int_equal(r->resumed, reused);
	if (accept)
		tls_session_accept(k.client);
	client_reads(&k);
	conn_close(&k);
	return reused;
}

static void resumes_with_the_same_key(int version)
{
	SSL_CTX *server =
	    server_ctx(&pki.leaf, (const struct cred *const[]){&pki.inter}, 1, version);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct record rec;
	struct tls_peer_policy dane =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 2, 1, 1, pki.inter.cert)->t, 1);
	struct tls_peer_policy pkix = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;
	dane.pkix_always = true;

	assert_false(session_connect(pki.client_ca, server, &dane, cache, true, &r));
	assert_true(r.authenticated);
	assert_int_equal(tls_session_cache_count(cache), 1);
	assert_true(session_connect(pki.client_ca, server, &dane, cache, true, &r));
	/* verified again from the session's chain: as complete as a full handshake */
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_DANE_TA);
	assert_int_equal(r.dane_depth, 1);
	assert_true(r.pkix_ok);
	assert_true(session_connect(pki.client_ca, server, &dane, cache, true, &r));

	/* another policy, another key: no resumption */
	assert_false(session_connect(pki.client_ca, server, &pkix, cache, true, &r));
	assert_true(r.authenticated);
	assert_int_equal(r.method, TLS_METHOD_PKIX);
	assert_int_equal(tls_session_cache_count(cache), 2);
	assert_true(session_connect(pki.client_ca, server, &pkix, cache, true, &r));
	assert_int_equal(r.method, TLS_METHOD_PKIX);
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
}

static void test_session_resumes_with_the_same_key_tls13(void **state)
{
	resumes_with_the_same_key(0);
}

static void test_session_resumes_with_the_same_key_tls12(void **state)
{
	resumes_with_the_same_key(TLS1_2_VERSION);
}

/* Pinned down: after a resumption OpenSSL reports the stored verify result
 * and no DANE authority; only a new verification (the verdict's) tells more. */
static void test_openssl_does_not_verify_a_resumed_session(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 3, 1, 1, pki.leaf.cert)->t, 1);
	struct tls_peer_result r;
	char key[160];
	struct conn k;

	assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	key_of(&p, key, sizeof key);
	conn_open(&k, pki.client_ca, server, &p, cache, key);
	assert_true(SSL_session_reused(k.client));
	assert_int_equal(SSL_get_verify_result(k.client), X509_V_OK);
	assert_true(SSL_get0_dane_authority(k.client, NULL, NULL) < 0);
	assert_int_equal(sk_X509_num(SSL_get_peer_cert_chain(k.client)), 2);
	tls_peer_verdict(k.client, &p, &r);
	assert_int_equal(r.method, TLS_METHOD_DANE_EE);
	assert_int_equal(SSL_get0_dane_authority(k.client, NULL, NULL), 0);
	conn_close(&k);
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
}

static void test_session_of_a_rejected_peer_is_never_stored(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	SSL_CTX *server12 =
	    server_ctx(&pki.leaf, (const struct cred *const[]){&pki.inter}, 1, TLS1_2_VERSION);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct record rec;
	struct tls_peer_policy p =
	    policy(TLS_AUTH_DANE, &record_of(&rec, 3, 1, 1, pki.other.cert)->t, 1);
	struct tls_peer_result r;

	assert_false(session_connect(pki.client_ca, server, &p, cache, false, &r));
	assert_false(r.authenticated);
	assert_int_equal(tls_session_cache_count(cache), 0);
	assert_false(session_connect(pki.client_ca, server, &p, cache, false, &r));
	assert_false(session_connect(pki.client_ca, server12, &p, cache, false, &r));
	assert_int_equal(tls_session_cache_count(cache), 0);
	assert_false(session_connect(pki.client_ca, server12, &p, cache, false, &r));
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
	SSL_CTX_free(server12);
}

/* TLS 1.2 delivers the session during the handshake, before the verdict:
 * held until the accept. TLS 1.3 tickets may also be read before it. */
static void session_waits_for_the_accept(int version)
{
	SSL_CTX *server =
	    server_ctx(&pki.leaf, (const struct cred *const[]){&pki.inter}, 1, version);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;
	char key[160];
	struct conn k;

	key_of(&p, key, sizeof key);
	conn_open(&k, pki.client_ca, server, &p, cache, key);
	client_reads(&k);
	assert_int_equal(tls_session_cache_count(cache), 0);
	tls_peer_verdict(k.client, &p, &r);
	assert_true(r.authenticated);
	tls_session_accept(k.client);
	assert_int_equal(tls_session_cache_count(cache), 1);
	conn_close(&k);
	assert_true(session_connect(pki.client_ca, server, &p, cache, true, &r));
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
}

static void test_session_arriving_before_the_accept_waits_tls13(void **state)
{
	session_waits_for_the_accept(0);
}

static void test_session_arriving_before_the_accept_waits_tls12(void **state)
{
	session_waits_for_the_accept(TLS1_2_VERSION);
}

static void test_resumed_session_not_accepted_is_dropped(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	assert_true(session_connect(pki.client_ca, server, &p, cache, false, &r));
	assert_int_equal(tls_session_cache_count(cache), 0);
	assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
}

static void test_session_cache_evicts_the_least_recently_used(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	struct tls_session_cache *cache = tls_session_cache_new(3);
	const char *snis[] = {"a.example", "b.example", "c.example", "d.example", "e.example"};
	struct tls_peer_policy p = policy(TLS_AUTH_NONE, NULL, 0);
	struct tls_peer_result r;

	for (size_t i = 0; i < 3; i++) {
		p.sni = snis[i];
		assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	}
	p.sni = snis[0]; /* a is now the most recently used */
	assert_true(session_connect(pki.client_ca, server, &p, cache, true, &r));
	for (size_t i = 3; i < 5; i++) {
		p.sni = snis[i];
		assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
		assert_int_equal(tls_session_cache_count(cache), 3);
	}
	p.sni = snis[1]; /* b and c went */
	assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	p.sni = snis[4];
	assert_true(session_connect(pki.client_ca, server, &p, cache, true, &r));
	p.sni = snis[0];
	assert_false(session_connect(pki.client_ca, server, &p, cache, true, &r));
	assert_int_equal(tls_session_cache_count(cache), 3);
	tls_session_cache_free(cache);
	SSL_CTX_free(server);
}

static void test_expired_session_is_dropped(void **state)
{
	SSL_CTX *server = SERVER(&pki.leaf, &pki.inter);
	char why[256];
	SSL_CTX *client = tls_client_ctx_new(pki.ca_file, why, sizeof why);
	struct tls_session_cache *cache = tls_session_cache_new(10);
	struct tls_peer_policy p = policy(TLS_AUTH_PKIX, NULL, 0);
	struct tls_peer_result r;

	/* sessions live one second: the client's timeout, the server's ticket
	 * lifetime (TLS 1.3) */
	SSL_CTX_set_timeout(client, 1);
	SSL_CTX_set_timeout(server, 1);
	assert_false(session_connect(client, server, &p, cache, true, &r));
	assert_int_equal(tls_session_cache_count(cache), 1);
	sleep(2);
	assert_false(session_connect(client, server, &p, cache, true, &r));
	assert_int_equal(tls_session_cache_count(cache), 1); /* the new one */
	tls_session_cache_free(cache);
	SSL_CTX_free(client);
	SSL_CTX_free(server);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classifier_accepts_dane_usages_with_known_parameters),
	    cmocka_unit_test(test_classifier_refuses_unusable_records),
	    cmocka_unit_test(test_empty_full_data_never_reaches_openssl),
	    cmocka_unit_test(test_dane_matrix_usage_selector_mtype),
	    cmocka_unit_test(test_dane_any_matching_record_wins_and_unusable_ones_are_skipped),
	    cmocka_unit_test(test_dane_ta_refuses_a_leaf_for_another_name),
	    cmocka_unit_test(test_dane_ta_accepts_the_second_or_third_reference_name),
	    cmocka_unit_test(test_dane_ta_anchored_at_the_root_in_the_chain),
	    cmocka_unit_test(test_dane_ta_root_given_only_in_dns),
	    cmocka_unit_test(test_dane_ta_absent_from_chain_and_dns_fails),
	    cmocka_unit_test(test_dane_ta_record_of_the_leaf_issued_by_a_ca_fails),
	    cmocka_unit_test(test_dane_ta_for_a_self_signed_leaf_needs_its_key_in_dns),
	    cmocka_unit_test(test_dane_ta_refuses_an_expired_leaf),
	    cmocka_unit_test(test_dane_ee_accepts_an_expired_leaf_for_another_name),
	    cmocka_unit_test(test_dane_with_only_unusable_records_is_unauthenticated),
	    cmocka_unit_test(test_openssl_completes_the_handshake_and_keeps_the_dane_result),
	    cmocka_unit_test(test_sni_is_the_policy_s_and_none_for_an_ip_literal),
	    cmocka_unit_test(test_prepare_refuses_policies_without_usable_names),
	    cmocka_unit_test(test_pkix_accepts_a_chain_to_the_ca_file),
	    cmocka_unit_test(test_pkix_refuses_an_expired_leaf),
	    cmocka_unit_test(test_pkix_refuses_a_wrong_name),
	    cmocka_unit_test(test_pkix_refuses_a_self_signed_leaf),
	    cmocka_unit_test(test_pkix_needs_the_ca_file_for_a_private_root),
	    cmocka_unit_test(test_pkix_refuses_a_chain_without_its_intermediate),
	    cmocka_unit_test(test_pkix_trusts_system_roots_and_the_ca_file_together),
	    cmocka_unit_test(test_pkix_accepts_the_second_reference_name),
	    cmocka_unit_test(test_pkix_wildcards_only_as_a_whole_label),
	    cmocka_unit_test(test_none_accepts_anything_but_reports_pkix),
	    cmocka_unit_test(test_policy_digest_changes_with_everything_that_decides),
	    cmocka_unit_test(test_session_resumes_with_the_same_key_tls13),
	    cmocka_unit_test(test_session_resumes_with_the_same_key_tls12),
	    cmocka_unit_test(test_openssl_does_not_verify_a_resumed_session),
	    cmocka_unit_test(test_session_of_a_rejected_peer_is_never_stored),
	    cmocka_unit_test(test_session_arriving_before_the_accept_waits_tls13),
	    cmocka_unit_test(test_session_arriving_before_the_accept_waits_tls12),
	    cmocka_unit_test(test_resumed_session_not_accepted_is_dropped),
	    cmocka_unit_test(test_session_cache_evicts_the_least_recently_used),
	    cmocka_unit_test(test_expired_session_is_dropped),
	};

	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
