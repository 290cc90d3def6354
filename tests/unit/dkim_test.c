/* dkim_test.c - DKIM canonicalization, header selection, folding, and
 * signatures checked with OpenSSL's verifier (src/dkim/dkim.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dkim/dkim.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------------ */

static void to_buf(const char *p, size_t n, void *arg)
{
	buf_add(arg, p, n);
}

static char *body_canon(enum dkim_canon c, const char *body)
{
	struct buf b = {0};
	dkim_canon_body(c, body, strlen(body), to_buf, &b);
	buf_add(&b, "", 0);
	char *s = strdup(b.data ? b.data : "");
	buf_free(&b);
	return s;
}

static char *header_canon(enum dkim_canon c, const char *field)
{
	struct buf b = {0};
	dkim_canon_header(c, field, strlen(field), &b);
	char *s = strdup(b.data ? b.data : "");
	buf_free(&b);
	return s;
}

static void expect_body(enum dkim_canon c, const char *body, const char *want)
{
	char *got = body_canon(c, body);
	assert_string_equal(got, want);
	free(got);
}

static void expect_header(enum dkim_canon c, const char *field, const char *want)
{
	char *got = header_canon(c, field);
	assert_string_equal(got, want);
	free(got);
}

/* Writes a fresh key of the given type to a temporary PEM file. */
static char *write_key(const char *type, int bits)
{
	EVP_PKEY *pk = bits ? EVP_PKEY_Q_keygen(NULL, NULL, type, (size_t)bits)
	                    : EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(pk);
	char *path = strdup("/tmp/outpost-dkim-key-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	return path;
}

static struct dkim_key *load_key(const char *type, int bits)
{
	char *path = write_key(type, bits), why[512];
	struct dkim_key *k = dkim_key_load("Example.ORG", "sel1", path, why, sizeof why);
	if (k == NULL)
		fail_msg("%s", why);
	unlink(path);
	free(path);
	return k;
}

/* ---- a verifier, written here from RFC 6376 §3.7 and §6.1.3 with the
 * exported canonicalizers and OpenSSL's EVP verification ------------------- */

struct tag_value {
	char v[4096];
};

/* The value of tag name in a DKIM-Signature value, FWS removed. */
static bool sig_tag(const char *sig, const char *name, struct tag_value *out)
{
	size_t nl = strlen(name);
	const char *p = sig;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n' || *p == ';')
			p++;
		const char *eq = strchr(p, '='), *semi = strchr(p, ';');
		if (eq == NULL)
			return false;
		const char *end = semi ? semi : p + strlen(p);
		if ((size_t)(eq - p) == nl && strncmp(p, name, nl) == 0) {
			size_t o = 0;
			for (const char *q = eq + 1; q < end && o + 1 < sizeof out->v; q++)
				if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
					out->v[o++] = *q;
			out->v[o] = '\0';
			return true;
		}
		p = end;
	}
	return false;
}

/* The raw header fields of msg: starts and lengths (without CRLF). */
struct raw_fields {
	const char *p[64];
	size_t len[64];
	bool used[64];
	size_t n;
};

static size_t split_fields(const char *msg, struct raw_fields *f)
{
	const char *p = msg;
	f->n = 0;
	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *start = p;
		for (;;) {
			const char *crlf = strstr(p, "\r\n");
			assert_non_null(crlf);
			p = crlf + 2;
			if (*p != ' ' && *p != '\t')
				break;
		}
		f->p[f->n] = start;
		f->len[f->n] = (size_t)(p - 2 - start);
		f->used[f->n] = false;
		f->n++;
	}
	return (size_t)(p + 2 - msg);
}

static int b64_decode(const char *in, unsigned char *out)
{
	size_t n = strlen(in);
	int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0)
		return -1;
	while (n > 0 && in[n - 1] == '=')
		n--, len--;
	return len;
}

/* Verifies the first DKIM-Signature field of signed_msg with pub. */
static bool verify(EVP_PKEY *pub, const char *signed_msg)
{
	struct raw_fields f;
	size_t body_off = split_fields(signed_msg, &f);
	assert_true(strncasecmp(f.p[0], "DKIM-Signature:", 15) == 0);
	char *sigfield = strndup(f.p[0], f.len[0]);
	f.used[0] = true;
	const char *value = sigfield + 15;
	struct tag_value a, c, h, bh, b;
	assert_true(sig_tag(value, "a", &a) && sig_tag(value, "c", &c) && sig_tag(value, "h", &h) &&
	            sig_tag(value, "bh", &bh) && sig_tag(value, "b", &b));
	enum dkim_canon hc =
	    strncmp(c.v, "simple", 6) == 0 ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
	enum dkim_canon bc = strstr(c.v, "/simple") ? DKIM_CANON_SIMPLE : DKIM_CANON_RELAXED;
	/* the body hash */
	struct buf body = {0};
	const char *bp = signed_msg + body_off;
	dkim_canon_body(bc, bp, strlen(bp), to_buf, &body);
	unsigned char digest[32], want[64];
	EVP_Digest(body.data ? body.data : "", body.len, digest, NULL, EVP_sha256(), NULL);
	buf_free(&body);
	if (b64_decode(bh.v, want) != 32 || memcmp(want, digest, 32) != 0)
		return free(sigfield), false;
	/* the signed fields, bottom up */
	struct buf data = {0};
	char *names = strdup(h.v), *save = NULL;
	for (char *nm = strtok_r(names, ":", &save); nm; nm = strtok_r(NULL, ":", &save))
		for (size_t i = f.n; i > 0; i--) {
			size_t nl = strlen(nm);
			const char *fp = f.p[i - 1];
			if (!f.used[i - 1] && strncasecmp(fp, nm, nl) == 0 &&
			    (fp[nl] == ':' || fp[nl] == ' ')) {
				f.used[i - 1] = true;
				dkim_canon_header(hc, fp, f.len[i - 1], &data);
				break;
			}
		}
	free(names);
	/* the signature field, b= emptied (everything after "b=" to ';' or end) */
	char *bpos = strstr(sigfield, " b=");
	if (bpos == NULL)
		bpos = strstr(sigfield, "\tb=");
	assert_non_null(bpos);
	bpos[3] = '\0';
	dkim_canon_header(hc, sigfield, strlen(sigfield), &data);
	data.len -= 2;
	unsigned char sig[1024], hash[32];
	int siglen = b64_decode(b.v, sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;
	if (strcmp(a.v, "ed25519-sha256") == 0) {
		EVP_Digest(data.data, data.len, hash, NULL, EVP_sha256(), NULL);
		ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
		     EVP_DigestVerify(ctx, sig, (size_t)siglen, hash, 32) == 1;
	} else {
		ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
		     EVP_DigestVerify(ctx, sig, (size_t)siglen, (unsigned char *)data.data,
		                      data.len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	buf_free(&data);
	free(sigfield);
	return ok;
}

/* The public half of k, from its DNS p= value. */
static EVP_PKEY *public_of(const struct dkim_key *k)
{
	struct buf p = {0};
	dkim_key_public(k, &p);
	unsigned char der[1024];
	int n = b64_decode(p.data, der);
	buf_free(&p);
	const unsigned char *q = der;
	if (dkim_key_algorithm(k) == DKIM_ED25519_SHA256)
		return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, (size_t)n);
	return d2i_PUBKEY(NULL, &q, n);
}

static char *sign_and_prepend(const struct dkim_key *k, struct dkim_canons c, const char *msg)
{
	struct buf out = {0};
	char why[256];
	if (dkim_sign(k, c, msg, strlen(msg), 1700000000, &out, why, sizeof why) < 0)
		fail_msg("%s", why);
	buf_str(&out, msg);
	char *s = strdup(out.data);
	buf_free(&out);
	return s;
}

static const char *const sample = "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                  "From: Joe <joe@example.org>\r\n"
                                  "To: Suzie <suzie@example.net>,\r\n"
                                  "\tOther <other@example.net>\r\n"
                                  "Subject:   Is dinner   ready?  \r\n"
                                  "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                                  "Message-ID: <1@example.org>\r\n"
                                  "X-Unsigned: whatever\r\n"
                                  "\r\n"
                                  "Hi.\r\n"
                                  "\r\n"
                                  "We lost the game.  Are you hungry yet?\t \r\n"
                                  "caf\xc3\xa9 8-bit \xff octets\r\n"
                                  "\r\n"
                                  "\r\n";

/* ---- canonicalization ------------------------------------------------------------ */

/* RFC 6376 §3.4.5, the example for both algorithms. */
static void test_rfc6376_example_relaxed(void **state)
{
	expect_header(DKIM_CANON_RELAXED, "A: X", "a:X\r\n");
	expect_header(DKIM_CANON_RELAXED, "B : Y\t\r\n\tZ  ", "b:Y Z\r\n");
	expect_body(DKIM_CANON_RELAXED, " C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n");
}

static void test_rfc6376_example_simple(void **state)
{
	expect_header(DKIM_CANON_SIMPLE, "A: X", "A: X\r\n");
	expect_header(DKIM_CANON_SIMPLE, "B : Y\t\r\n\tZ  ", "B : Y\t\r\n\tZ  \r\n");
	expect_body(DKIM_CANON_SIMPLE, " C \r\nD \t E\r\n\r\n\r\n", " C \r\nD \t E\r\n");
}

/* §3.4.3: an empty body is one CRLF (simple); §3.4.4: empty (relaxed). */
static void test_empty_bodies(void **state)
{
	expect_body(DKIM_CANON_SIMPLE, "", "\r\n");
	expect_body(DKIM_CANON_SIMPLE, "\r\n\r\n\r\n", "\r\n");
	expect_body(DKIM_CANON_RELAXED, "", "");
	expect_body(DKIM_CANON_RELAXED, "\r\n \t\r\n\r\n", "");
}

/* A last line without CRLF gets one; trailing whitespace alone is not a
 * line under relaxed. */
static void test_trailing_whitespace_and_missing_crlf(void **state)
{
	expect_body(DKIM_CANON_SIMPLE, "abc", "abc\r\n");
	expect_body(DKIM_CANON_RELAXED, "abc  ", "abc\r\n");
	expect_body(DKIM_CANON_RELAXED, "abc\r\n \t ", "abc\r\n");
	expect_body(DKIM_CANON_SIMPLE, "abc\r\n  ", "abc\r\n  \r\n");
	expect_body(DKIM_CANON_RELAXED, "a\r\n \r\nb\r\n", "a\r\n\r\nb\r\n");
	expect_body(DKIM_CANON_RELAXED, "\t lead\r\n", " lead\r\n");
}

/* 8-bit octets and bare CR or LF pass through as octets of the line. */
static void test_eight_bit_and_bare_cr(void **state)
{
	expect_body(DKIM_CANON_RELAXED, "caf\xc3\xa9  \xff\r\n", "caf\xc3\xa9 \xff\r\n");
	expect_body(DKIM_CANON_RELAXED, "a\rb \n c\r\n", "a\rb \n c\r\n");
	expect_header(DKIM_CANON_RELAXED, "Subject: caf\xc3\xa9", "subject:caf\xc3\xa9\r\n");
}

static void test_relaxed_header_long_folded(void **state)
{
	expect_header(DKIM_CANON_RELAXED,
	              "References: <a@example.org>\r\n <b@example.org>\r\n\t<c@example.org>",
	              "references:<a@example.org> <b@example.org> <c@example.org>\r\n");
	expect_header(DKIM_CANON_RELAXED, "Empty:", "empty:\r\n");
	expect_header(DKIM_CANON_RELAXED, "Empty:  \r\n  ", "empty:\r\n");
}

/* The bh= of RFC 6376 Appendix A (same body, both canonicalizations). */
static void test_rfc6376_appendix_body_hash(void **state)
{
	const char *body = "Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n";
	for (int c = 0; c < 2; c++) {
		char *canon = body_canon(c ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE, body);
		unsigned char d[32], want[64];
		EVP_Digest(canon, strlen(canon), d, NULL, EVP_sha256(), NULL);
		assert_int_equal(b64_decode("2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=", want),
		                 32);
		assert_memory_equal(d, want, 32);
		free(canon);
	}
}

/* RFC 8463 Appendix A.3: the published ed25519-sha256 example verifies
 * with this file's verifier, built on dkim_canon_header and dkim_canon_body. */
static void test_rfc8463_example_verifies(void **state)
{
	const char *msg = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	                  " d=football.example.com; i=@football.example.com;\r\n"
	                  " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
	                  " subject : date : message-id : from : subject : date;\r\n"
	                  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	                  " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
	                  " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
	                  "From: Joe SixPack <joe@football.example.com>\r\n"
	                  "To: Suzie Q <suzie@shopping.example.net>\r\n"
	                  "Subject: Is dinner ready?\r\n"
	                  "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
	                  "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
	                  "\r\n"
	                  "Hi.\r\n"
	                  "\r\n"
	                  "We lost the game.  Are you hungry yet?\r\n"
	                  "\r\n"
	                  "Joe.\r\n";
	unsigned char raw[64];
	assert_int_equal(b64_decode("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=", raw), 32);
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
	assert_non_null(pub);
	/* the example's h= has spaces around its colons, folded */
	assert_true(verify(pub, msg));
	EVP_PKEY_free(pub);
}

/* ---- header selection and the field ------------------------------------------- */

static void test_header_list_oversigns_from(void **state)
{
	struct buf b = {0};
	dkim_header_list(sample, strlen(sample), &b);
	assert_string_equal(b.data, "from:from:to:subject:date:message-id");
	buf_free(&b);
	const char *two_to = "To: a@x\r\nFrom: f@x\r\nTo: b@x\r\nCC: c@x\r\n"
	                     "Content-Type: text/plain\r\nList-Id: <l.x>\r\n\r\nbody\r\n";
	dkim_header_list(two_to, strlen(two_to), &b);
	assert_string_equal(b.data, "from:from:to:to:cc:content-type:list-id");
	buf_free(&b);
	const char *no_from = "Subject: s\r\n\r\n";
	dkim_header_list(no_from, strlen(no_from), &b);
	assert_string_equal(b.data, "from:subject");
	buf_free(&b);
}

/* Lines of the field at most 78 octets; the field ends in CRLF and its
 * continuation lines start with a tab. */
static void test_signature_field_folded(void **state)
{
	struct dkim_key *k = load_key("RSA", 2048);
	struct buf out = {0};
	char why[256];
	assert_int_equal(dkim_sign(k, (struct dkim_canons){DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	                           sample, strlen(sample), 1700000000, &out, why, sizeof why),
	                 0);
	assert_true(strncmp(out.data,
	                    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;"
	                    " d=example.org; s=sel1;",
	                    75) == 0);
	assert_non_null(strstr(out.data, "t=1700000000;"));
	assert_true(out.len > 2 && memcmp(out.data + out.len - 2, "\r\n", 2) == 0);
	int lines = 0;
	for (const char *p = out.data; p < out.data + out.len; lines++) {
		const char *crlf = strstr(p, "\r\n");
		assert_non_null(crlf);
		assert_true(crlf - p <= 78);
		if (p != out.data)
			assert_int_equal(*p, '\t');
		p = crlf + 2;
	}
	assert_true(lines >= 5); /* 256 octets of RSA signature alone need 5 */
	assert_null(strstr(out.data, "l="));
	buf_free(&out);
	dkim_key_free(k);
}

/* ---- signatures verified ---------------------------------------------------------- */

static void sign_verify(const char *type, int bits, struct dkim_canons c, const char *msg)
{
	struct dkim_key *k = load_key(type, bits);
	EVP_PKEY *pub = public_of(k);
	assert_non_null(pub);
	char *signed_msg = sign_and_prepend(k, c, msg);
	assert_true(verify(pub, signed_msg));
	/* a signed field altered: the signature no longer verifies */
	char *subject = strstr(signed_msg, "Subject:");
	if (subject) {
		subject[8] = 'X'; /* over a space: relaxed would not notice a space more */
		assert_false(verify(pub, signed_msg));
		subject[8] = ' ';
	}
	/* an added From (oversigned): fails too */
	struct buf more = {0};
	const char *end = strstr(signed_msg, "\r\n\r\n");
	buf_add(&more, signed_msg, (size_t)(end - signed_msg) + 2);
	buf_str(&more, "From: mallory@example.com\r\n");
	buf_str(&more, end + 2);
	assert_false(verify(pub, more.data));
	buf_free(&more);
	free(signed_msg);
	EVP_PKEY_free(pub);
	dkim_key_free(k);
}

static void test_ed25519_relaxed_verifies(void **state)
{
	sign_verify("ED25519", 0, (struct dkim_canons){DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	            sample);
}

static void test_rsa_relaxed_verifies(void **state)
{
	sign_verify("RSA", 2048, (struct dkim_canons){DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	            sample);
}

static void test_simple_simple_verifies(void **state)
{
	sign_verify("ED25519", 0, (struct dkim_canons){DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
	            sample);
	sign_verify("RSA", 1024, (struct dkim_canons){DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED},
	            sample);
}

static void test_empty_body_and_long_header_verify(void **state)
{
	struct buf m = {0};
	buf_str(&m, "From: a@example.org\r\nSubject: ");
	for (int i = 0; i < 60; i++)
		buf_str(&m, "word ");
	buf_str(&m, "\r\n\tfolded on\r\n  and on\r\n\r\n");
	sign_verify("ED25519", 0, (struct dkim_canons){DKIM_CANON_RELAXED, DKIM_CANON_RELAXED},
	            m.data);
	sign_verify("ED25519", 0, (struct dkim_canons){DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE},
	            m.data);
	buf_free(&m);
}

/* ---- keys and the configured signer --------------------------------------------- */

static void test_key_errors_are_clear(void **state)
{
	char why[512];
	assert_null(dkim_key_load("example.org", "s", "/nonexistent/key.pem", why, sizeof why));
	assert_non_null(strstr(why, "No such file"));
	char *small = write_key("RSA", 512);
	assert_null(dkim_key_load("example.org", "s", small, why, sizeof why));
	assert_non_null(strstr(why, "512 bits"));
	unlink(small);
	free(small);
	EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	char path[] = "/tmp/outpost-dkim-ec-XXXXXX";
	FILE *f = fdopen(mkstemp(path), "w");
	PEM_write_PrivateKey(f, p, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	EVP_PKEY_free(p);
	assert_null(dkim_key_load("example.org", "s", path, why, sizeof why));
	assert_non_null(strstr(why, "unsupported key type"));
	unlink(path);
	char *ok = write_key("ED25519", 0);
	assert_null(dkim_key_load("example.org", "bad_sel!", ok, why, sizeof why));
	assert_null(dkim_key_load("not a domain", "s", ok, why, sizeof why));
	unlink(ok);
	free(ok);
}

static void test_key_spec(void **state)
{
	char d[256], s[256], p[4096], why[256];
	assert_true(dkim_key_spec_parse("example.org  sel1\tdkim/k.pem", d, sizeof d, s, sizeof s,
	                                p, sizeof p, why, sizeof why));
	assert_string_equal(d, "example.org");
	assert_string_equal(s, "sel1");
	assert_string_equal(p, "dkim/k.pem");
	assert_false(dkim_key_spec_parse("example.org sel1", d, sizeof d, s, sizeof s, p, sizeof p,
	                                 why, sizeof why));
	assert_false(
	    dkim_key_spec_parse("a b c d", d, sizeof d, s, sizeof s, p, sizeof p, why, sizeof why));
}

static int count_signatures(const char *s)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, "DKIM-Signature:")) != NULL; p++)
		n++;
	return n;
}

/* Every selector of the From domain signs; a domain without keys is left
 * alone; without From, the envelope sender's domain decides. */
static void test_signer_picks_author_domain(void **state)
{
	char *k1 = write_key("ED25519", 0), *k2 = write_key("RSA", 1024), spec[4200];
	struct conf c;
	conf_defaults(&c);
	snprintf(spec, sizeof spec, "EXAMPLE.org ed %s", k1);
	strlist_add(&c.dkim_keys, spec);
	snprintf(spec, sizeof spec, "example.org rsa %s", k2);
	strlist_add(&c.dkim_keys, spec);
	char why[512];
	struct dkim_signer *s = dkim_signer_load(&c, why, sizeof why);
	if (s == NULL)
		fail_msg("%s", why);
	struct buf out = {0};
	assert_int_equal(
	    dkim_sign_message(s, sample, strlen(sample), "x@other.test", 1, &out, why, sizeof why),
	    2);
	assert_int_equal(count_signatures(out.data), 2);
	assert_non_null(strstr(out.data, "s=ed;"));
	assert_non_null(strstr(out.data, "s=rsa;"));
	buf_reset(&out);
	const char *other = "From: Someone <a@Other.TEST>\r\n\r\nhi\r\n";
	assert_int_equal(
	    dkim_sign_message(s, other, strlen(other), "b@example.org", 1, &out, why, sizeof why),
	    0);
	const char *nofrom = "Subject: hi\r\n\r\nhi\r\n";
	assert_int_equal(
	    dkim_sign_message(s, nofrom, strlen(nofrom), "b@Example.Org", 1, &out, why, sizeof why),
	    2);
	buf_free(&out);
	dkim_signer_free(s);
	/* one unusable key stops the whole load */
	snprintf(spec, sizeof spec, "example.net s /nonexistent.pem");
	strlist_add(&c.dkim_keys, spec);
	assert_null(dkim_signer_load(&c, why, sizeof why));
	assert_non_null(strstr(why, "/nonexistent.pem"));
	conf_free(&c);
	unlink(k1);
	unlink(k2);
	free(k1);
	free(k2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example_relaxed),
	    cmocka_unit_test(test_rfc6376_example_simple),
	    cmocka_unit_test(test_empty_bodies),
	    cmocka_unit_test(test_trailing_whitespace_and_missing_crlf),
	    cmocka_unit_test(test_eight_bit_and_bare_cr),
	    cmocka_unit_test(test_relaxed_header_long_folded),
	    cmocka_unit_test(test_rfc6376_appendix_body_hash),
	    cmocka_unit_test(test_rfc8463_example_verifies),
	    cmocka_unit_test(test_header_list_oversigns_from),
	    cmocka_unit_test(test_signature_field_folded),
	    cmocka_unit_test(test_ed25519_relaxed_verifies),
	    cmocka_unit_test(test_rsa_relaxed_verifies),
	    cmocka_unit_test(test_simple_simple_verifies),
	    cmocka_unit_test(test_empty_body_and_long_header_verify),
	    cmocka_unit_test(test_key_errors_are_clear),
	    cmocka_unit_test(test_key_spec),
	    cmocka_unit_test(test_signer_picks_author_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
