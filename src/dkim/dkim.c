/* dkim.c - DKIM signing (RFC 6376, RFC 8463) with OpenSSL's EVP API.
 *
 * A signature is made in four steps: the body hash (bh=) over the
 * canonical body, the list of signed fields (h=), the DKIM-Signature field
 * written up to an empty "b=", and the signature over the canonical signed
 * fields followed by that canonical field without its CRLF (RFC 6376 §3.7).
 * The field's bytes up to "b=" are hashed exactly as they are written, so
 * the folding (78 columns) is part of what is signed under simple header
 * canonicalization too.
 *
 * Lines end in CRLF (every way in makes sure of it); a bare CR or LF inside
 * a line is an octet like any other here.
 */
#include "dkim/dkim.h"

#include "smtp/address.h"
#include "smtp/headers.h"
#include "util/metrics.h"

#include <errno.h>
#include <idn2.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FOLD_WIDTH   78   /* RFC 5322 §2.1.1: lines SHOULD be at most 78 characters */
#define MIN_RSA_BITS 1024 /* RFC 8301 §3.2: verifiers must not accept fewer */
#define HASH_CHUNK   4096 /* canonical body octets gathered per digest update */

struct dkim_key {
	char domain[256];
	char selector[256];
	EVP_PKEY *pkey;
	enum dkim_algorithm alg;
};

struct dkim_signer {
	struct dkim_key **keys;
	size_t n;
	struct dkim_canons canons;
};

/* The fields signed by default, when present: those that carry the
 * message's meaning to its reader (RFC 6376 §5.4.1), plus the MIME fields
 * that decide how the body is read, and the TLSRPT fields (RFC 8460 §5.3). */
static const char *const signed_fields[] = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "reply-to",
    "sender",
    "list-id",
    "tls-report-domain",
    "tls-report-submitter",
};
#define NSIGNED (sizeof signed_fields / sizeof signed_fields[0])

static struct metric *m_signatures;

void dkim_metrics_init(void)
{
	if (m_signatures == NULL)
		m_signatures =
		    metric_counter("outpost_dkim_signatures_total",
		                   "DKIM signatures made, by result (ok, failed)", "result");
}

/* ---- small helpers ----------------------------------------------------------- */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static void lower_ascii(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static void put_base64(struct buf *out, const unsigned char *p, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1;
	unsigned char *tmp = malloc(cap);
	if (tmp == NULL) {
		out->failed = true;
		return;
	}
	int len = EVP_EncodeBlock(tmp, p, (int)n);
	buf_add(out, tmp, (size_t)len);
	free(tmp);
}

static void openssl_reason(char *why, size_t whylen, const char *what)
{
	char err[200] = "";
	unsigned long e = ERR_get_error();
	if (e != 0)
		ERR_error_string_n(e, err, sizeof err);
	ERR_clear_error();
	snprintf(why, whylen, "%s%s%s", what, err[0] ? ": " : "", err);
}

/* ---- canonicalization (RFC 6376 §3.4) ------------------------------------------ */

/* The CR of the next CRLF at or after p, or end. */
static const char *find_crlf(const char *p, const char *end)
{
	while (p < end) {
		const char *cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL || cr + 1 >= end)
			return end;
		if (cr[1] == '\n')
			return cr;
		p = cr + 1;
	}
	return end;
}

/* §3.4.4 (a): every run of WSP inside a line becomes one SP. */
static void body_line_relaxed(const char *p, const char *end, dkim_sink fn, void *arg)
{
	while (p < end) {
		const char *word = p;
		while (p < end && !is_wsp(*p))
			p++;
		if (p > word)
			fn(word, (size_t)(p - word), arg);
		if (p < end) {
			fn(" ", 1, arg);
			while (p < end && is_wsp(*p))
				p++;
		}
	}
}

/* §3.4.3 simple: empty lines at the end are dropped, and an empty body is
 * one CRLF. §3.4.4 relaxed: WSP at line ends is dropped and runs of WSP
 * are one SP, then empty lines at the end are dropped; an empty body stays
 * empty. Either way a last line without CRLF gets one. Empty lines are
 * counted and written only when a non-empty line follows them. */
void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, dkim_sink fn, void *arg)
{
	const char *p = body, *end = body + len;
	size_t empty_lines = 0;
	bool any = false;
	while (p < end) {
		const char *eol = find_crlf(p, end), *line_end = eol;
		if (c == DKIM_CANON_RELAXED)
			while (line_end > p && is_wsp(line_end[-1]))
				line_end--;
		if (line_end == p) {
			if (eol < end)
				empty_lines++;
		} else {
			for (; empty_lines > 0; empty_lines--)
				fn("\r\n", 2, arg);
			if (c == DKIM_CANON_RELAXED)
				body_line_relaxed(p, line_end, fn, arg);
			else
				fn(p, (size_t)(line_end - p), arg);
			fn("\r\n", 2, arg);
			any = true;
		}
		p = eol < end ? eol + 2 : end;
	}
	if (!any && c == DKIM_CANON_SIMPLE)
		fn("\r\n", 2, arg);
}

/* §3.4.2 relaxed: the name lower-cased, WSP around the colon deleted, the
 * value unfolded (CR and LF dropped), runs of WSP made one SP, and WSP at
 * the ends of the value deleted. §3.4.1 simple: the field as it is. */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out)
{
	if (c == DKIM_CANON_SIMPLE) {
		buf_add(out, field, len);
		buf_add(out, "\r\n", 2);
		return;
	}
	const char *end = field + len, *colon = memchr(field, ':', len);
	const char *name_end = colon ? colon : end;
	while (name_end > field &&
	       (is_wsp(name_end[-1]) || name_end[-1] == '\r' || name_end[-1] == '\n'))
		name_end--;
	for (const char *p = field; p < name_end; p++) {
		char ch = *p >= 'A' && *p <= 'Z' ? (char)(*p - 'A' + 'a') : *p;
		buf_add(out, &ch, 1);
	}
	buf_add(out, ":", 1);
	bool space = false, started = false;
	for (const char *p = colon ? colon + 1 : end; p < end; p++) {
		if (*p == '\r' || *p == '\n')
			continue;
		if (is_wsp(*p)) {
			space = started;
			continue;
		}
		if (space)
			buf_add(out, " ", 1);
		space = false;
		started = true;
		const char *run = p;
		while (p + 1 < end && !is_wsp(p[1]) && p[1] != '\r' && p[1] != '\n')
			p++;
		buf_add(out, run, (size_t)(p - run + 1));
	}
	buf_add(out, "\r\n", 2);
}

/* ---- the header fields ------------------------------------------------------ */

struct field {
	const char *p; /* name ... value, without the final CRLF */
	size_t len;
	const char *name;
	size_t name_len;
	bool used; /* already taken by an earlier h= entry */
};

struct fields {
	struct field *f;
	size_t n;
};

static bool fields_collect(const char *msg, size_t len, struct fields *fs)
{
	struct msg_header_iter it;
	const char *name, *value;
	size_t name_len, value_len, cap = 0;
	fs->f = NULL;
	fs->n = 0;
	msg_header_iter_init(&it, msg, len);
	while (msg_header_next(&it, &name, &name_len, &value, &value_len)) {
		if (fs->n == cap) {
			cap = cap ? 2 * cap : 32;
			struct field *f = realloc(fs->f, cap * sizeof *f);
			if (f == NULL)
				return false;
			fs->f = f;
		}
		fs->f[fs->n++] = (struct field){.p = name,
		                                .len = (size_t)(value + value_len - name),
		                                .name = name,
		                                .name_len = name_len};
	}
	return true;
}

static bool name_is(const struct field *f, const char *want, size_t want_len)
{
	return f->name_len == want_len && strncasecmp(f->name, want, want_len) == 0;
}

static size_t fields_count(const struct fields *fs, const char *name)
{
	size_t n = 0, len = strlen(name);
	for (size_t i = 0; i < fs->n; i++)
		n += name_is(&fs->f[i], name, len);
	return n;
}

/* The h= value. From is listed once more than present: a From field added
 * on the way (a second author) then breaks the signature (RFC 6376 §8.15). */
static void header_list(const struct fields *fs, struct buf *out)
{
	for (size_t i = 0; i < NSIGNED; i++) {
		size_t n = fields_count(fs, signed_fields[i]) + (i == 0);
		for (; n > 0; n--) {
			if (out->len > 0)
				buf_add(out, ":", 1);
			buf_str(out, signed_fields[i]);
		}
	}
}

void dkim_header_list(const char *msg, size_t len, struct buf *out)
{
	struct fields fs;
	if (!fields_collect(msg, len, &fs)) {
		out->failed = true;
		free(fs.f);
		return;
	}
	header_list(&fs, out);
	free(fs.f);
}

/* RFC 6376 §5.4.2: fields named more than once in h= are taken from the
 * bottom of the header section up; a name with no instance left (the
 * oversigned From) contributes nothing. */
static void hash_input_fields(struct fields *fs, const char *hlist, enum dkim_canon c,
                              struct buf *out)
{
	const char *p = hlist;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		for (size_t i = fs->n; i > 0; i--) {
			struct field *f = &fs->f[i - 1];
			if (!f->used && name_is(f, p, n)) {
				f->used = true;
				dkim_canon_header(c, f->p, f->len, out);
				break;
			}
		}
		p += n + (colon != NULL);
	}
}

/* ---- the DKIM-Signature field, folded at 78 columns ------------------------- */

struct fold {
	struct buf *b;
	size_t col;
};

/* Adds a word, after a space (sp) or a fold when it would pass the width. */
static void fold_word(struct fold *f, const char *s, size_t n, bool sp)
{
	if (f->col + sp + n > FOLD_WIDTH && f->col > 1) {
		buf_add(f->b, "\r\n\t", 3);
		f->col = 1;
	} else if (sp) {
		buf_add(f->b, " ", 1);
		f->col++;
	}
	buf_add(f->b, s, n);
	f->col += n;
}

/* base64 may be folded anywhere (RFC 6376 §3.5: FWS in b= and bh= is
 * ignored). */
static void fold_base64(struct fold *f, const char *s, size_t n)
{
	while (n > 0) {
		if (f->col >= FOLD_WIDTH) {
			buf_add(f->b, "\r\n\t", 3);
			f->col = 1;
		}
		size_t take = FOLD_WIDTH - f->col < n ? FOLD_WIDTH - f->col : n;
		buf_add(f->b, s, take);
		f->col += take;
		s += take;
		n -= take;
	}
}

static void fold_tag(struct fold *f, const char *fmt, const char *v)
{
	char tag[600];
	int n = snprintf(tag, sizeof tag, fmt, v);
	fold_word(f, tag, (size_t)n, true);
}

/* h= may fold after each colon (RFC 6376 §3.5: sig-h-tag allows FWS). */
static void fold_header_list(struct fold *f, const char *hlist)
{
	const char *p = hlist;
	bool first = true;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) + 1 : strlen(p);
		char word[64];
		int len = snprintf(word, sizeof word, "%s%.*s%s", first ? "h=" : "", (int)n, p,
		                   colon ? "" : ";");
		fold_word(f, word, (size_t)len, first);
		first = false;
		p += n;
	}
}

static const char *canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_SIMPLE ? "simple" : "relaxed";
}

static const char *algorithm_name(enum dkim_algorithm a)
{
	return a == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

/* The field up to and with the empty "b=", as it will be written; returns
 * the column it ends at. */
static size_t signature_prefix(const struct dkim_key *k, struct dkim_canons c, const char *hlist,
                               const char *bh, int64_t now_s, struct buf *out)
{
	struct fold f = {.b = out, .col = 15};
	char canons[32], t[32];
	buf_str(out, "DKIM-Signature:");
	snprintf(canons, sizeof canons, "%s/%s", canon_name(c.header), canon_name(c.body));
	snprintf(t, sizeof t, "%lld", (long long)now_s);
	fold_tag(&f, "v=%s;", "1");
	fold_tag(&f, "a=%s;", algorithm_name(k->alg));
	fold_tag(&f, "c=%s;", canons);
	fold_tag(&f, "d=%s;", k->domain);
	fold_tag(&f, "s=%s;", k->selector);
	fold_tag(&f, "t=%s;", t);
	fold_header_list(&f, hlist);
	fold_tag(&f, "bh=%s;", bh);
	fold_word(&f, "b=", 2, true);
	return f.col;
}

/* ---- hashing and signing ------------------------------------------------------ */

/* Gathers canonical octets and hands them to the digest in chunks. */
struct hash_sink {
	EVP_MD_CTX *md;
	char chunk[HASH_CHUNK];
	size_t n;
	bool failed;
};

static void hash_flush(struct hash_sink *h)
{
	if (h->n > 0 && EVP_DigestUpdate(h->md, h->chunk, h->n) != 1)
		h->failed = true;
	h->n = 0;
}

static void hash_put(const char *p, size_t n, void *arg)
{
	struct hash_sink *h = arg;
	if (h->n + n > sizeof h->chunk)
		hash_flush(h);
	if (n > sizeof h->chunk) {
		if (EVP_DigestUpdate(h->md, p, n) != 1)
			h->failed = true;
		return;
	}
	memcpy(h->chunk + h->n, p, n);
	h->n += n;
}

/* bh= (RFC 6376 §3.7, step 1): SHA-256 of the whole canonical body. */
static int body_hash(enum dkim_canon c, const char *body, size_t len, struct buf *b64, char *why,
                     size_t whylen)
{
	struct hash_sink *h = malloc(sizeof *h);
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	if (h == NULL)
		return snprintf(why, whylen, "out of memory"), -1;
	h->n = 0;
	h->failed = false;
	h->md = EVP_MD_CTX_new();
	if (h->md == NULL || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1)
		h->failed = true;
	else
		dkim_canon_body(c, body, len, hash_put, h);
	hash_flush(h);
	if (!h->failed && EVP_DigestFinal_ex(h->md, digest, &dlen) != 1)
		h->failed = true;
	bool failed = h->failed;
	EVP_MD_CTX_free(h->md);
	free(h);
	if (failed)
		return openssl_reason(why, whylen, "body hash"), -1;
	put_base64(b64, digest, dlen);
	return 0;
}

/* rsa-sha256 signs the data with SHA-256 and PKCS#1 v1.5 (RFC 6376 §3.3.1);
 * ed25519-sha256 signs the SHA-256 hash of the data with PureEdDSA
 * (RFC 8463 §3). The signature's base64 is appended to out. */
static int sign_data(const struct dkim_key *k, const char *data, size_t n, struct buf *out,
                     char *why, size_t whylen)
{
	unsigned char hash[EVP_MAX_MD_SIZE], *sig = NULL;
	const unsigned char *tbs = (const unsigned char *)data;
	size_t tbs_len = n, sig_len = 0;
	const EVP_MD *md = EVP_sha256();
	int rc = -1;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (k->alg == DKIM_ED25519_SHA256) {
		unsigned int hlen = 0;
		if (EVP_Digest(data, n, hash, &hlen, EVP_sha256(), NULL) != 1)
			goto fail;
		tbs = hash;
		tbs_len = hlen;
		md = NULL; /* Ed25519 takes no digest of its own */
	}
	if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, md, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, &sig_len, tbs, tbs_len) != 1 ||
	    (sig = malloc(sig_len)) == NULL ||
	    EVP_DigestSign(ctx, sig, &sig_len, tbs, tbs_len) != 1)
		goto fail;
	put_base64(out, sig, sig_len);
	rc = 0;
fail:
	if (rc != 0)
		openssl_reason(why, whylen, "signing");
	free(sig);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* One signature, given the body hash already computed for c.body. */
static int sign_one(const struct dkim_key *k, struct dkim_canons c, struct fields *fs,
                    const char *bh, int64_t now_s, struct buf *out, char *why, size_t whylen)
{
	struct buf hlist = {0}, field = {0}, data = {0}, b = {0};
	int rc = -1;
	for (size_t i = 0; i < fs->n; i++)
		fs->f[i].used = false;
	header_list(fs, &hlist);
	struct fold f = {.b = &field};
	f.col = signature_prefix(k, c, hlist.data ? hlist.data : "", bh, now_s, &field);
	hash_input_fields(fs, hlist.data ? hlist.data : "", c.header, &data);
	/* RFC 6376 §3.7: the signature's own field last, b= empty, no CRLF */
	dkim_canon_header(c.header, field.data, field.len, &data);
	if (hlist.failed || field.failed || data.failed) {
		snprintf(why, whylen, "out of memory");
		goto done;
	}
	data.len -= 2;
	if (sign_data(k, data.data, data.len, &b, why, whylen) < 0)
		goto done;
	fold_base64(&f, b.data, b.len);
	buf_add(&field, "\r\n", 2);
	buf_add(out, field.data, field.len);
	rc = field.failed || out->failed ? -1 : 0;
	if (rc < 0)
		snprintf(why, whylen, "out of memory");
done:
	buf_free(&hlist);
	buf_free(&field);
	buf_free(&data);
	buf_free(&b);
	return rc;
}

int dkim_sign(const struct dkim_key *k, struct dkim_canons c, const char *msg, size_t len,
              int64_t now_s, struct buf *out, char *why, size_t whylen)
{
	size_t body = msg_header_end(msg, len);
	struct buf bh = {0};
	struct fields fs;
	int rc = -1;
	if (!fields_collect(msg, body, &fs))
		snprintf(why, whylen, "out of memory");
	else if (body_hash(c.body, msg + body, len - body, &bh, why, whylen) == 0)
		rc = sign_one(k, c, &fs, bh.data, now_s, out, why, whylen);
	free(fs.f);
	buf_free(&bh);
	return rc;
}

/* ---- keys --------------------------------------------------------------------- */

/* A key file with a passphrase is an error, never a prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/* RFC 6376 §3.1: selector = sub-domain *( "." sub-domain ). */
static bool selector_valid(const char *s)
{
	size_t label = 0;
	if (*s == '\0' || strlen(s) > 253)
		return false;
	for (; *s; s++) {
		bool ldh = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		           (*s >= '0' && *s <= '9') || *s == '-';
		if (*s == '.') {
			if (label == 0 || s[-1] == '-')
				return false;
			label = 0;
		} else if (!ldh || label >= 63 || (label == 0 && *s == '-')) {
			return false;
		} else {
			label++;
		}
	}
	return label > 0;
}

static int key_check_type(struct dkim_key *k, const char *path, char *why, size_t whylen)
{
	int id = EVP_PKEY_get_base_id(k->pkey);
	if (id == EVP_PKEY_ED25519) {
		k->alg = DKIM_ED25519_SHA256;
		return 0;
	}
	if (id == EVP_PKEY_RSA) {
		int bits = EVP_PKEY_get_bits(k->pkey);
		if (bits < MIN_RSA_BITS)
			return snprintf(why, whylen, "%s: RSA key of %d bits (at least %d)", path,
			                bits, MIN_RSA_BITS),
			       -1;
		k->alg = DKIM_RSA_SHA256;
		return 0;
	}
	const char *name = EVP_PKEY_get0_type_name(k->pkey);
	return snprintf(why, whylen, "%s: unsupported key type %s (RSA or Ed25519)", path,
	                name ? name : "unknown"),
	       -1;
}

struct dkim_key *dkim_key_load(const char *domain, const char *selector, const char *path,
                               char *why, size_t whylen)
{
	if (!smtp_domain_valid(domain, strlen(domain), false) || strlen(domain) > 253)
		return snprintf(why, whylen, "bad domain \"%s\" (an A-label domain)", domain), NULL;
	if (!selector_valid(selector))
		return snprintf(why, whylen, "bad selector \"%s\"", selector), NULL;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return snprintf(why, whylen, "%s: %s", path, strerror(errno)), NULL;
	struct dkim_key *k = calloc(1, sizeof *k);
	if (k == NULL)
		abort();
	k->pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (k->pkey == NULL) {
		char what[300];
		snprintf(what, sizeof what, "%s: not a PEM private key", path);
		openssl_reason(why, whylen, what);
		free(k);
		return NULL;
	}
	if (key_check_type(k, path, why, whylen) < 0) {
		dkim_key_free(k);
		return NULL;
	}
	snprintf(k->domain, sizeof k->domain, "%s", domain);
	snprintf(k->selector, sizeof k->selector, "%s", selector);
	lower_ascii(k->domain);
	return k;
}

void dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

enum dkim_algorithm dkim_key_algorithm(const struct dkim_key *k)
{
	return k->alg;
}

const char *dkim_key_domain(const struct dkim_key *k)
{
	return k->domain;
}

const char *dkim_key_selector(const struct dkim_key *k)
{
	return k->selector;
}

const char *dkim_key_type_name(const struct dkim_key *k)
{
	return k->alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa";
}

void dkim_key_public(const struct dkim_key *k, struct buf *out)
{
	if (k->alg == DKIM_ED25519_SHA256) {
		unsigned char raw[32];
		size_t n = sizeof raw;
		if (EVP_PKEY_get_raw_public_key(k->pkey, raw, &n) != 1) {
			out->failed = true;
			return;
		}
		put_base64(out, raw, n);
		return;
	}
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(k->pkey, &der);
	if (n <= 0) {
		out->failed = true;
		return;
	}
	put_base64(out, der, (size_t)n);
	OPENSSL_free(der);
}

bool dkim_key_spec_parse(const char *value, char *domain, size_t dn, char *selector, size_t sn,
                         char *path, size_t pn, char *why, size_t whylen)
{
	char extra[2];
	char fmt[64];
	/* widths one less than the buffers: sscanf's %Ns stops there */
	snprintf(fmt, sizeof fmt, "%%%zus %%%zus %%%zus %%1s", dn - 1, sn - 1, pn - 1);
	if (sscanf(value, fmt, domain, selector, path, extra) != 3)
		return snprintf(why, whylen, "expected DOMAIN SELECTOR PATH, got \"%s\"", value),
		       false;
	return true;
}

/* ---- the configured keys ------------------------------------------------------ */

static void signer_add(struct dkim_signer *s, struct dkim_key *k)
{
	s->keys = realloc(s->keys, (s->n + 1) * sizeof *s->keys);
	if (s->keys == NULL)
		abort();
	s->keys[s->n++] = k;
}

struct dkim_signer *dkim_signer_load(const struct conf *conf, char *why, size_t whylen)
{
	dkim_metrics_init();
	struct dkim_signer *s = calloc(1, sizeof *s);
	if (s == NULL)
		abort();
	/* conf's enum: relaxed/relaxed, relaxed/simple, simple/relaxed, simple/simple */
	int64_t c = conf->dkim_canonicalization;
	s->canons.header = c < 2 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	s->canons.body = c % 2 == 0 ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE;
	for (size_t i = 0; i < conf->dkim_keys.len; i++) {
		const char *spec = conf->dkim_keys.items[i];
		char domain[256], selector[256], path[4096], full[4096], err[512];
		struct dkim_key *k = NULL;
		if (dkim_key_spec_parse(spec, domain, sizeof domain, selector, sizeof selector,
		                        path, sizeof path, err, sizeof err)) {
			conf_path(conf, path, full, sizeof full);
			k = dkim_key_load(domain, selector, full, err, sizeof err);
		}
		if (k == NULL) {
			snprintf(why, whylen, "[dkim] key \"%s\": %s", spec, err);
			dkim_signer_free(s);
			return NULL;
		}
		signer_add(s, k);
	}
	return s;
}

void dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		dkim_key_free(s->keys[i]);
	free(s->keys);
	free(s);
}

size_t dkim_signer_keys(const struct dkim_signer *s, const char *domain,
                        void (*fn)(const struct dkim_key *k, void *arg), void *arg)
{
	size_t n = 0;
	for (size_t i = 0; s && i < s->n; i++) {
		if (domain && strcasecmp(s->keys[i]->domain, domain) != 0)
			continue;
		if (fn)
			fn(s->keys[i], arg);
		n++;
	}
	return n;
}

/* The author's domain (RFC5322.From; DMARC aligns with it), else the
 * envelope sender's; an internationalized domain as its A-label, the form
 * d= takes (RFC 8616 §4). False when neither has one. */
static bool author_domain(const char *msg, size_t len, const char *envelope_sender, char *out,
                          size_t n)
{
	char dom[256] = "";
	if (!msg_from_domain(msg, msg_header_end(msg, len), dom, sizeof dom) && envelope_sender) {
		const char *at = strrchr(envelope_sender, '@');
		if (at)
			snprintf(dom, sizeof dom, "%s", at + 1);
		lower_ascii(dom);
	}
	if (dom[0] == '\0')
		return false;
	char *ascii = NULL;
	if (idn2_to_ascii_8z(dom, &ascii, IDN2_NONTRANSITIONAL) == IDN2_OK) {
		snprintf(out, n, "%s", ascii);
		lower_ascii(out);
	} else {
		snprintf(out, n, "%s", dom);
	}
	idn2_free(ascii);
	return true;
}

int dkim_sign_message(const struct dkim_signer *s, const char *msg, size_t len,
                      const char *envelope_sender, int64_t now_s, struct buf *out, char *why,
                      size_t whylen)
{
	char domain[256];
	if (s == NULL || s->n == 0 ||
	    !author_domain(msg, len, envelope_sender, domain, sizeof domain))
		return 0;
	if (dkim_signer_keys(s, domain, NULL, NULL) == 0)
		return 0;
	size_t body = msg_header_end(msg, len);
	struct buf bh = {0};
	struct fields fs;
	int signed_n = 0;
	if (!fields_collect(msg, body, &fs)) {
		snprintf(why, whylen, "out of memory");
		signed_n = -1;
	} else if (body_hash(s->canons.body, msg + body, len - body, &bh, why, whylen) < 0) {
		signed_n = -1;
	}
	for (size_t i = 0; signed_n >= 0 && i < s->n; i++) {
		if (strcmp(s->keys[i]->domain, domain) != 0)
			continue;
		if (sign_one(s->keys[i], s->canons, &fs, bh.data, now_s, out, why, whylen) < 0)
			signed_n = -1;
		else
			signed_n++;
	}
	if (m_signatures)
		metric_add(m_signatures, signed_n < 0 ? "failed" : "ok",
		           signed_n < 0 ? 1 : (double)signed_n);
	free(fs.f);
	buf_free(&bh);
	return signed_n;
}
