/* dkim_cli.c - `outpost dkim genkey|check`. */
#include "cli/dkim_cli.h"

#include "dkim/dkim.h"
#include "dns/dns.h"
#include "util/buf.h"
#include "util/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TXT_STRING_MAX 255 /* RFC 1035 §3.3: one character-string */

static int dkim_usage(void)
{
	fputs("usage: outpost dkim genkey DOMAIN SELECTOR [--algorithm ed25519|rsa] [--bits N] "
	      "[--out PATH]\n"
	      "       outpost dkim check DOMAIN\n",
	      stderr);
	return 2;
}

/* ---- genkey --------------------------------------------------------------------- */

struct genkey_opts {
	const char *domain, *selector, *out;
	bool rsa;
	int bits;
};

static int genkey_parse(int argc, char **argv, struct genkey_opts *o)
{
	static const struct option longopts[] = {{"algorithm", required_argument, NULL, 'a'},
	                                         {"bits", required_argument, NULL, 'b'},
	                                         {"out", required_argument, NULL, 'o'},
	                                         {NULL, 0, NULL, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "a:b:o:", longopts, NULL)) != -1) {
		if (c == 'a' && (strcmp(optarg, "rsa") == 0 || strcmp(optarg, "ed25519") == 0))
			o->rsa = strcmp(optarg, "rsa") == 0;
		else if (c == 'b')
			o->bits = atoi(optarg);
		else if (c == 'o')
			o->out = optarg;
		else
			return -1;
	}
	if (argc - optind != 2)
		return -1;
	o->domain = argv[optind];
	o->selector = argv[optind + 1];
	if (o->bits != 0 && !o->rsa)
		return fprintf(stderr, "outpost: --bits is for RSA keys\n"), -1;
	if (o->rsa && o->bits == 0)
		o->bits = 2048;
	if (o->rsa && (o->bits < 1024 || o->bits > 16384))
		return fprintf(stderr, "outpost: --bits between 1024 and 16384\n"), -1;
	return 0;
}

/* Writes pk as PEM at path, mode 0600, refusing an existing file. */
static int write_key(EVP_PKEY *pk, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fprintf(stderr, "outpost: %s: %s\n", path, strerror(errno)), -1;
	FILE *f = fdopen(fd, "w");
	bool ok = f && PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1;
	if (f == NULL)
		close(fd);
	if ((f && fclose(f) != 0) || !ok) {
		fprintf(stderr, "outpost: %s: cannot write the key\n", path);
		unlink(path);
		return -1;
	}
	return 0;
}

/* NAME IN TXT "v=DKIM1; k=...; p=..." in strings of at most 255 octets. */
static void print_record(const struct dkim_key *k)
{
	struct buf v = {0};
	buf_fmt(&v, "v=DKIM1; k=%s; p=", dkim_key_type_name(k));
	dkim_key_public(k, &v);
	printf("%s._domainkey.%s. IN TXT", dkim_key_selector(k), dkim_key_domain(k));
	for (size_t i = 0; i < v.len; i += TXT_STRING_MAX)
		printf(" \"%.*s\"", (int)(v.len - i < TXT_STRING_MAX ? v.len - i : TXT_STRING_MAX),
		       v.data + i);
	putchar('\n');
	buf_free(&v);
}

static int genkey(int argc, char **argv, const struct conf *conf)
{
	struct genkey_opts o = {0};
	if (genkey_parse(argc, argv, &o) < 0)
		return dkim_usage();
	char rel[1024], path[4096], why[512];
	if (o.out) {
		snprintf(rel, sizeof rel, "%s", o.out);
	} else {
		snprintf(rel, sizeof rel, "dkim/%s._domainkey.%s.pem", o.selector, o.domain);
		char dir[4096];
		mkdir(conf->data_dir, 0711);
		conf_path(conf, "dkim", dir, sizeof dir);
		mkdir(dir, 0700);
	}
	conf_path(conf, rel, path, sizeof path);
	EVP_PKEY *pk = o.rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)o.bits)
	                     : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pk == NULL)
		return fprintf(stderr, "outpost: cannot make the key\n"), 1;
	int rc = write_key(pk, path);
	EVP_PKEY_free(pk);
	if (rc < 0)
		return 1;
	/* read back as the daemon will: checks the names and the file */
	struct dkim_key *k = dkim_key_load(o.domain, o.selector, path, why, sizeof why);
	if (k == NULL) {
		unlink(path);
		return fprintf(stderr, "outpost: %s\n", why), 1;
	}
	fprintf(stderr, "wrote %s (%s); publish this TXT record:\n", path, dkim_key_type_name(k));
	print_record(k);
	fprintf(stderr, "and add to [dkim] in the configuration:\n");
	printf("key = %s %s %s\n", dkim_key_domain(k), dkim_key_selector(k), rel);
	dkim_key_free(k);
	return 0;
}

/* ---- check ---------------------------------------------------------------------- */

struct selector_check {
	const struct dkim_key *k;
	struct dkim_check *c;
	bool matches;
};

struct dkim_check {
	struct event_base *base;
	struct dns_resolver *dns;
	struct selector_check *sel;
	size_t n, pending;
};

/* The value of tag name in a key record (RFC 6376 §3.6.1), whitespace
 * removed, into out; false when absent. */
static bool record_tag(const char *rec, const char *name, struct buf *out)
{
	size_t nl = strlen(name);
	for (const char *p = rec; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		const char *eq = strchr(p, '='), *semi = strchr(p, ';');
		const char *end = semi ? semi : p + strlen(p), *ne = eq;
		if (eq == NULL || (semi && semi < eq))
			return false;
		while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		if ((size_t)(ne - p) == nl && strncmp(p, name, nl) == 0) {
			for (const char *q = eq + 1; q < end; q++)
				if (*q != ' ' && *q != '\t' && *q != '\r' && *q != '\n')
					buf_add(out, q, 1);
			return true;
		}
		p = end;
	}
	return false;
}

/* One published record against the key: "" when it matches, else why not. */
static const char *record_verdict(const struct dkim_key *k, const char *rec)
{
	struct buf p = {0}, kt = {0}, want = {0};
	const char *verdict = "";
	dkim_key_public(k, &want);
	if (!record_tag(rec, "p", &p))
		verdict = "no p= tag";
	else if (p.len == 0)
		verdict = "the key is revoked (empty p=)";
	else if (strcasecmp(record_tag(rec, "k", &kt) ? kt.data : "rsa", dkim_key_type_name(k)))
		verdict = "k= names another key type";
	else if (want.len != p.len || memcmp(want.data, p.data, p.len) != 0)
		verdict = "p= is another key";
	buf_free(&p);
	buf_free(&kt);
	buf_free(&want);
	return verdict;
}

static void on_key_record(void *arg, const struct dns_answer *a)
{
	struct selector_check *s = arg;
	const char *sel = dkim_key_selector(s->k);
	if (a->status != DNS_OK) {
		printf("%s: %s._domainkey.%s: %s\n", sel, sel, dkim_key_domain(s->k),
		       a->status == DNS_NOTFOUND ? "no TXT record" : a->error);
	} else {
		const char *verdict = "no DKIM key record";
		for (size_t i = 0; i < a->n && verdict[0] != '\0'; i++)
			verdict = record_verdict(s->k, a->txt[i]);
		s->matches = verdict[0] == '\0';
		printf("%s: %s (%s)%s%s\n", sel, s->matches ? "matches" : "DOES NOT MATCH",
		       dkim_key_type_name(s->k), s->matches ? "" : ": ", verdict);
	}
	if (--s->c->pending == 0)
		event_base_loopbreak(s->c->base);
}

static void collect_key(const struct dkim_key *k, void *arg)
{
	struct dkim_check *c = arg;
	c->sel[c->n++] = (struct selector_check){.k = k, .c = c};
}

static int check_run(struct dkim_check *c, const struct dkim_signer *signer, const char *domain)
{
	size_t n = dkim_signer_keys(signer, domain, NULL, NULL);
	if (n == 0)
		return fprintf(stderr, "outpost: no [dkim] key for %s\n", domain), 1;
	c->sel = calloc(n, sizeof *c->sel);
	if (c->sel == NULL)
		abort();
	dkim_signer_keys(signer, domain, collect_key, c);
	c->pending = c->n;
	for (size_t i = 0; i < c->n; i++) {
		char name[600];
		snprintf(name, sizeof name, "%s._domainkey.%s", dkim_key_selector(c->sel[i].k),
		         dkim_key_domain(c->sel[i].k));
		dns_query(c->dns, name, DNS_TXT, on_key_record, &c->sel[i]);
	}
	event_base_dispatch(c->base);
	int rc = 0;
	for (size_t i = 0; i < c->n; i++)
		rc |= !c->sel[i].matches;
	return rc;
}

static int check(int argc, char **argv, const struct conf *conf)
{
	if (argc != 2)
		return dkim_usage();
	char why[512];
	log_set_level(LOG_ERROR);
	struct dkim_signer *signer = dkim_signer_load(conf, why, sizeof why);
	if (signer == NULL)
		return fprintf(stderr, "outpost: %s\n", why), 1;
	struct dkim_check c = {.base = event_base_new()};
	int rc = 1;
	if (c.base == NULL || (c.dns = dns_resolver_new(c.base, conf, why, sizeof why)) == NULL)
		fprintf(stderr, "outpost: %s\n", why);
	else
		rc = check_run(&c, signer, argv[1]);
	free(c.sel);
	if (c.dns)
		dns_resolver_free(c.dns);
	if (c.base)
		event_base_free(c.base);
	dkim_signer_free(signer);
	return rc;
}

int cli_dkim(int argc, char **argv, const struct conf *conf)
{
	if (argc < 2)
		return dkim_usage();
	if (strcmp(argv[1], "genkey") == 0)
		return genkey(argc - 1, argv + 1, conf);
	if (strcmp(argv[1], "check") == 0)
		return check(argc - 1, argv + 1, conf);
	return dkim_usage();
}
