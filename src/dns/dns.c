/* dns.c - the resolver (c-ares on the libevent loop) and the answer parser
 * (ldns). The contract is in dns.h.
 *
 * Transport: c-ares 1.18 says which sockets it wants watched through
 * ARES_OPT_SOCK_STATE_CB; each gets one persistent libevent event, and one
 * timer follows ares_timeout() after every call into c-ares. Queries are
 * built by ldns (RD, AD, EDNS0 with DO and a 1232-octet buffer) and sent raw
 * with ares_send, so the whole answer - AD bit, rcode, EDNS options - comes
 * back to us. ARES_FLAG_NOCHECKRESP keeps c-ares from turning SERVFAIL into
 * a bare error code: the extended DNS error (RFC 8914) that explains a
 * DNSSEC failure rides on exactly those answers (docs/testing.md,
 * "Pitfalls"). The price: a SERVFAIL from the first server is final, the
 * next server is not asked.
 *
 * Parser: a pure function of the wire octets, fuzzed (fuzz_dns_answer). It
 * trusts nothing: the question must be ours, every record is checked for
 * the rdata shape its type needs, and names are rendered with escapes so no
 * remote octet reaches a log or a host name unescaped.
 */
#include "dns/dns.h"

#include "dns/cache.h"
#include "dns/dns_internal.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/timeutil.h"

#include <ares.h>
#include <arpa/inet.h>
#include <event2/event.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS_TIMEOUT_MS  3000 /* first try; c-ares doubles it per round */
#define DNS_TRIES       2
#define DNS_EDNS_UDP    1232 /* the DNS flag day 2020 buffer size */
#define DNS_CHAIN_MAX   16   /* CNAMEs followed inside one answer */
#define DNS_EDE_OPTION  15   /* RFC 8914 §2 */
#define DNS_SERVERS_MAX 512  /* the nameserver list as one csv string */

static void *dns_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

const char *dns_type_name(enum dns_type t)
{
	switch (t) {
	case DNS_A:
		return "a";
	case DNS_CNAME:
		return "cname";
	case DNS_MX:
		return "mx";
	case DNS_TXT:
		return "txt";
	case DNS_AAAA:
		return "aaaa";
	case DNS_TLSA:
		return "tlsa";
	}
	return "?";
}

/* ---------------------------------------------------------------------------
 * The answer parser.
 */

static void answer_init(struct dns_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->rcode = -1;
	a->ede = -1;
}

static enum dns_status answer_fail(struct dns_answer *a, enum dns_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum dns_status answer_fail(struct dns_answer *a, enum dns_status st, const char *fmt, ...)
{
	va_list ap;

	a->status = st;
	va_start(ap, fmt);
	vsnprintf(a->error, sizeof(a->error), fmt, ap);
	va_end(ap);
	return st;
}

/* Letters, digits, '-', '_' and '*' appear as they are in a rendered name;
 * every other octet becomes \DDD (RFC 1035 §5.1), so a name from the wire
 * can carry no space, control character or '.' inside a label. */
static bool name_octet_plain(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '*';
}

/* Renders the wire name in rdf: lower case, no trailing dot, "" for the
 * root. Returns false when rdf is not a well-formed name or the text does
 * not fit in n octets. */
static bool name_render(const ldns_rdf *rdf, char *buf, size_t n)
{
	const uint8_t *d;
	size_t len, i = 0, o = 0;

	if (rdf == NULL || n == 0 || ldns_rdf_get_type(rdf) != LDNS_RDF_TYPE_DNAME)
		return false;
	d = ldns_rdf_data(rdf);
	len = ldns_rdf_size(rdf);
	while (i < len) {
		size_t l = d[i++];

		if (l == 0) {
			buf[o] = '\0';
			return true;
		}
		if (l > 63 || l > len - i)
			return false;
		if (o > 0) {
			if (o + 1 >= n)
				return false;
			buf[o++] = '.';
		}
		for (; l > 0; l--, i++) {
			uint8_t c = d[i];

			if (name_octet_plain(c)) {
				if (o + 1 >= n)
					return false;
				buf[o++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
			} else {
				if (o + 4 >= n)
					return false;
				snprintf(buf + o, 5, "\\%03u", c);
				o += 4;
			}
		}
	}
	return false; /* no root label */
}

/* The query name as an absolute ldns name, NULL when it is not a name. */
static ldns_rdf *name_from_text(const char *name)
{
	char abs[DNS_NAME_MAX + 2];
	size_t n = strlen(name);
	ldns_rdf *rdf = NULL;

	if (n == 0 || n > DNS_NAME_MAX)
		return NULL;
	snprintf(abs, sizeof(abs), "%s%s", name, name[n - 1] == '.' ? "" : ".");
	if (ldns_str2rdf_dname(&rdf, abs) != LDNS_STATUS_OK)
		return NULL;
	return rdf;
}

static uint32_t min_ttl(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* Copies the first RFC 8914 option of the OPT record: INFO-CODE, and
 * EXTRA-TEXT reduced to printable ASCII (it is remote text bound for logs
 * and TLS reports). The options are walked by hand, bounded by the rdata. */
static void answer_parse_ede(const ldns_pkt *p, struct dns_answer *a)
{
	const ldns_rdf *opt = ldns_pkt_edns_data(p);
	const uint8_t *d;
	size_t n, i = 0;

	if (opt == NULL)
		return;
	d = ldns_rdf_data(opt);
	n = ldns_rdf_size(opt);
	while (d != NULL && n - i >= 4) {
		unsigned code = (unsigned)d[i] << 8 | d[i + 1];
		size_t olen = (size_t)d[i + 2] << 8 | d[i + 3];

		i += 4;
		if (olen > n - i)
			return;
		if (code == DNS_EDE_OPTION && olen >= 2 && a->ede < 0) {
			size_t o = 0;

			a->ede = d[i] << 8 | d[i + 1];
			for (size_t k = 2; k < olen && o + 1 < sizeof(a->ede_text); k++) {
				uint8_t c = d[i + k];

				if (c == '\0')
					continue; /* some servers NUL-terminate */
				a->ede_text[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
			}
			a->ede_text[o] = '\0';
		}
		i += olen;
	}
}

/* The single question must be ours: name (case-insensitively), type, IN. */
static bool answer_question_matches(const ldns_pkt *p, const ldns_rdf *want, enum dns_type qtype)
{
	const ldns_rr_list *ql = ldns_pkt_question(p);
	const ldns_rr *q;

	if (ql == NULL || ldns_rr_list_rr_count(ql) != 1)
		return false;
	q = ldns_rr_list_rr(ql, 0);
	return ldns_rr_owner(q) != NULL && ldns_dname_compare(ldns_rr_owner(q), want) == 0 &&
	       ldns_rr_get_type(q) == (ldns_rr_type)qtype &&
	       ldns_rr_get_class(q) == LDNS_RR_CLASS_IN;
}

/* The target of the CNAME owned by name in the answer section, or NULL. */
static const ldns_rdf *answer_cname_of(const ldns_rr_list *an, const ldns_rdf *name, uint32_t *ttl)
{
	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(an, i);
		const ldns_rdf *target = ldns_rr_rdf(rr, 0);

		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_CNAME || ldns_rr_rd_count(rr) != 1 ||
		    target == NULL || ldns_rdf_get_type(target) != LDNS_RDF_TYPE_DNAME ||
		    ldns_rr_owner(rr) == NULL || ldns_dname_compare(ldns_rr_owner(rr), name) != 0)
			continue;
		*ttl = min_ttl(*ttl, ldns_rr_ttl(rr));
		return target;
	}
	return NULL;
}

/* RFC 2308 §5: the negative TTL is the SOA's own TTL capped by its MINIMUM. */
static uint32_t answer_negative_ttl(const ldns_pkt *p)
{
	const ldns_rr_list *au = ldns_pkt_authority(p);

	for (size_t i = 0; i < ldns_rr_list_rr_count(au); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(au, i);
		const ldns_rdf *min = ldns_rr_rdf(rr, 6);

		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && ldns_rr_rd_count(rr) == 7 &&
		    min != NULL && ldns_rdf_size(min) == 4)
			return min_ttl(ldns_rr_ttl(rr), ldns_rdf2native_int32(min));
	}
	return 0;
}

static const ldns_rdf *rr_field(const ldns_rr *rr, size_t i, size_t size)
{
	const ldns_rdf *f = ldns_rr_rdf(rr, i);

	if (f == NULL || (size && ldns_rdf_size(f) != size))
		return NULL;
	return f;
}

/* One record of the asked type into slot k of a; false when its rdata does
 * not have the shape the type needs (the record is then skipped). */
static bool answer_take_mx(const ldns_rr *rr, struct dns_answer *a)
{
	const ldns_rdf *pref = rr_field(rr, 0, 2);
	struct dns_mx *mx = &a->mx[a->n];

	if (ldns_rr_rd_count(rr) != 2 || pref == NULL)
		return false;
	if (!name_render(ldns_rr_rdf(rr, 1), mx->host, sizeof(mx->host)))
		return false;
	mx->preference = ldns_rdf2native_int16(pref);
	return true;
}

static bool answer_take_addr(const ldns_rr *rr, enum dns_type qtype, struct dns_answer *a)
{
	size_t size = qtype == DNS_A ? 4 : 16;
	const ldns_rdf *f = rr_field(rr, 0, size);
	struct dns_addr *addr = &a->addrs[a->n];

	if (ldns_rr_rd_count(rr) != 1 || f == NULL)
		return false;
	addr->family = qtype == DNS_A ? AF_INET : AF_INET6;
	if (qtype == DNS_A)
		memcpy(&addr->v4, ldns_rdf_data(f), 4);
	else
		memcpy(&addr->v6, ldns_rdf_data(f), 16);
	return true;
}

static bool answer_take_tlsa(const ldns_rr *rr, struct dns_answer *a)
{
	const ldns_rdf *usage = rr_field(rr, 0, 1), *sel = rr_field(rr, 1, 1);
	const ldns_rdf *mtype = rr_field(rr, 2, 1), *data = ldns_rr_rdf(rr, 3);
	struct dns_tlsa *t = &a->tlsa[a->n];
	size_t rd = ldns_rr_rd_count(rr);

	if ((rd != 3 && rd != 4) || usage == NULL || sel == NULL || mtype == NULL)
		return false;
	t->usage = ldns_rdf2native_int8(usage);
	t->selector = ldns_rdf2native_int8(sel);
	t->mtype = ldns_rdf2native_int8(mtype);
	t->len = (rd == 4 && data != NULL) ? ldns_rdf_size(data) : 0;
	if (t->len > 0) {
		t->data = dns_alloc(t->len);
		memcpy(t->data, ldns_rdf_data(data), t->len);
	}
	return true;
}

/* A TXT record's character-strings joined (RFC 7208 §3.3 style). A NUL
 * octet would cut the C string short and is replaced by '?'. */
static bool answer_take_txt(const ldns_rr *rr, struct dns_answer *a)
{
	size_t total = 0, o = 0, rd = ldns_rr_rd_count(rr);
	char *s;

	for (size_t i = 0; i < rd; i++) {
		const ldns_rdf *f = ldns_rr_rdf(rr, i);

		if (f == NULL || ldns_rdf_get_type(f) != LDNS_RDF_TYPE_STR ||
		    ldns_rdf_size(f) < 1 || (size_t)ldns_rdf_data(f)[0] + 1 != ldns_rdf_size(f))
			return false;
		total += ldns_rdf_size(f) - 1;
	}
	s = dns_alloc(total + 1);
	for (size_t i = 0; i < rd; i++) {
		const ldns_rdf *f = ldns_rr_rdf(rr, i);
		const uint8_t *d = ldns_rdf_data(f);

		for (size_t k = 1; k < ldns_rdf_size(f); k++)
			s[o++] = d[k] ? (char)d[k] : '?';
	}
	s[o] = '\0';
	a->txt[a->n] = s;
	return true;
}

static bool answer_take(const ldns_rr *rr, enum dns_type qtype, struct dns_answer *a)
{
	switch (qtype) {
	case DNS_MX:
		return answer_take_mx(rr, a);
	case DNS_A:
	case DNS_AAAA:
		return answer_take_addr(rr, qtype, a);
	case DNS_TLSA:
		return answer_take_tlsa(rr, a);
	case DNS_TXT:
		return answer_take_txt(rr, a);
	case DNS_CNAME:
		break;
	}
	return false;
}

struct mx_ranked {
	struct dns_mx mx;
	size_t idx;
};

static int mx_ranked_cmp(const void *x, const void *y)
{
	const struct mx_ranked *a = x, *b = y;

	if (a->mx.preference != b->mx.preference)
		return a->mx.preference < b->mx.preference ? -1 : 1;
	return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Sorts by preference keeping the answer order among equals: qsort is not
 * stable, so each record carries its index into the comparison. */
static void answer_sort_mx(struct dns_answer *a)
{
	struct mx_ranked *tmp;

	if (a->n < 2)
		return;
	tmp = dns_alloc(a->n * sizeof(*tmp));
	for (size_t i = 0; i < a->n; i++) {
		tmp[i].mx = a->mx[i];
		tmp[i].idx = i;
	}
	qsort(tmp, a->n, sizeof(*tmp), mx_ranked_cmp);
	for (size_t i = 0; i < a->n; i++)
		a->mx[i] = tmp[i].mx;
	free(tmp);
}

static void answer_alloc(struct dns_answer *a, enum dns_type qtype, size_t n)
{
	switch (qtype) {
	case DNS_MX:
		a->mx = dns_alloc(n * sizeof(*a->mx));
		break;
	case DNS_A:
	case DNS_AAAA:
		a->addrs = dns_alloc(n * sizeof(*a->addrs));
		break;
	case DNS_TLSA:
		a->tlsa = dns_alloc(n * sizeof(*a->tlsa));
		break;
	case DNS_TXT:
		a->txt = dns_alloc(n * sizeof(*a->txt));
		break;
	case DNS_CNAME:
		break;
	}
}

/* The records of the asked type owned by the canonical name. Records whose
 * rdata is unusable are skipped; when that leaves nothing, the answer is
 * malformed rather than empty. */
static enum dns_status answer_collect(const ldns_pkt *p, const ldns_rdf *owner, enum dns_type qtype,
                                      uint32_t *ttl, struct dns_answer *a, const char *qname)
{
	const ldns_rr_list *an = ldns_pkt_answer(p);
	size_t count = 0, bad = 0;

	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(an, i);

		if (ldns_rr_get_type(rr) == (ldns_rr_type)qtype && ldns_rr_owner(rr) != NULL &&
		    ldns_dname_compare(ldns_rr_owner(rr), owner) == 0)
			count++;
	}
	if (count == 0) {
		*ttl = min_ttl(*ttl, answer_negative_ttl(p));
		a->status = DNS_NOTFOUND;
		snprintf(a->error, sizeof(a->error), "%s %s: no such record (NODATA)", qname,
		         dns_type_name(qtype));
		return DNS_NOTFOUND;
	}
	answer_alloc(a, qtype, count);
	for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(an, i);

		if (ldns_rr_get_type(rr) != (ldns_rr_type)qtype || ldns_rr_owner(rr) == NULL ||
		    ldns_dname_compare(ldns_rr_owner(rr), owner) != 0)
			continue;
		if (!answer_take(rr, qtype, a)) {
			bad++;
			continue;
		}
		a->n++;
		*ttl = min_ttl(*ttl, ldns_rr_ttl(rr));
	}
	if (a->n == 0)
		return answer_fail(a, DNS_MALFORMED, "%s %s: %zu malformed record(s)", qname,
		                   dns_type_name(qtype), bad);
	if (qtype == DNS_MX)
		answer_sort_mx(a);
	a->status = DNS_OK;
	return DNS_OK;
}

/* A CNAME query: the target of qname's own CNAME, not followed further. */
static enum dns_status answer_cname(const ldns_pkt *p, const ldns_rdf *want, uint32_t *ttl,
                                    struct dns_answer *a, const char *qname)
{
	const ldns_rdf *target = answer_cname_of(ldns_pkt_answer(p), want, ttl);

	if (target == NULL) {
		*ttl = min_ttl(*ttl, answer_negative_ttl(p));
		return answer_fail(a, DNS_NOTFOUND, "%s cname: no such record (NODATA)", qname);
	}
	if (!name_render(target, a->cname, sizeof(a->cname)))
		return answer_fail(a, DNS_MALFORMED, "%s cname: target too long", qname);
	a->n = 1;
	a->status = DNS_OK;
	return DNS_OK;
}

static const char *rcode_name(int rcode)
{
	static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
	                                    "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
	                                    "NXRRSET", "NOTAUTH", "NOTZONE"};

	if (rcode >= 0 && (size_t)rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	return "rcode";
}

/* Everything after the packet was decoded and its question checked. */
static enum dns_status answer_interpret(const ldns_pkt *p, const ldns_rdf *want,
                                        enum dns_type qtype, bool trust_ad, struct dns_answer *a,
                                        const char *qname)
{
	const ldns_rdf *owner = want;
	uint32_t ttl = UINT32_MAX;
	enum dns_status st;

	a->rcode = (int)ldns_pkt_get_rcode(p) | (int)ldns_pkt_edns_extended_rcode(p) << 4;
	answer_parse_ede(p, a);
	if (a->rcode != LDNS_RCODE_NOERROR && a->rcode != LDNS_RCODE_NXDOMAIN) {
		if (a->ede >= 0)
			return answer_fail(a, DNS_TEMPFAIL, "%s %s: %s (%d) ede %d%s%s", qname,
			                   dns_type_name(qtype), rcode_name(a->rcode), a->rcode,
			                   a->ede, a->ede_text[0] ? " " : "", a->ede_text);
		return answer_fail(a, DNS_TEMPFAIL, "%s %s: %s (%d)", qname, dns_type_name(qtype),
		                   rcode_name(a->rcode), a->rcode);
	}
	a->authentic = trust_ad && ldns_pkt_ad(p);
	/* RFC 1034 §3.6.2: the answer may lead through CNAMEs to the name that
	 * owns the records; a CNAME query asks about the first link only. */
	if (qtype != DNS_CNAME) {
		for (int hops = 0;; hops++) {
			const ldns_rdf *next = answer_cname_of(ldns_pkt_answer(p), owner, &ttl);

			if (next == NULL)
				break;
			if (hops == DNS_CHAIN_MAX)
				return answer_fail(a, DNS_MALFORMED,
				                   "%s %s: cname chain longer than %d in answer",
				                   qname, dns_type_name(qtype), DNS_CHAIN_MAX);
			owner = next;
		}
	}
	if (!name_render(owner, a->canonical, sizeof(a->canonical)))
		return answer_fail(a, DNS_MALFORMED, "%s %s: canonical name too long", qname,
		                   dns_type_name(qtype));
	if (a->rcode == LDNS_RCODE_NXDOMAIN) {
		a->nxdomain = true;
		a->ttl = min_ttl(ttl, answer_negative_ttl(p));
		return answer_fail(a, DNS_NOTFOUND, "%s %s: no such domain (NXDOMAIN)", qname,
		                   dns_type_name(qtype));
	}
	if (qtype == DNS_CNAME)
		st = answer_cname(p, want, &ttl, a, qname);
	else
		st = answer_collect(p, owner, qtype, &ttl, a, qname);
	a->ttl = ttl == UINT32_MAX ? 0 : ttl;
	return st;
}

enum dns_status dns_answer_parse(const uint8_t *wire, size_t len, const char *qname,
                                 enum dns_type qtype, bool trust_ad, struct dns_answer *a)
{
	ldns_pkt *p = NULL;
	ldns_rdf *want;
	ldns_status s;

	answer_init(a);
	if (qname == NULL || (want = name_from_text(qname)) == NULL)
		return answer_fail(a, DNS_MALFORMED, "invalid query name");
	if (wire == NULL || len < LDNS_HEADER_SIZE) {
		answer_fail(a, DNS_MALFORMED, "%s %s: malformed answer (%zu octets)", qname,
		            dns_type_name(qtype), len);
		goto out;
	}
	s = ldns_wire2pkt(&p, wire, len);
	if (s != LDNS_STATUS_OK) {
		answer_fail(a, DNS_MALFORMED, "%s %s: malformed answer: %s", qname,
		            dns_type_name(qtype), ldns_get_errorstr_by_id(s));
		goto out;
	}
	if (!ldns_pkt_qr(p) || ldns_pkt_get_opcode(p) != LDNS_PACKET_QUERY ||
	    !answer_question_matches(p, want, qtype)) {
		answer_fail(a, DNS_MALFORMED, "%s %s: answer is not for our question", qname,
		            dns_type_name(qtype));
		goto out;
	}
	answer_interpret(p, want, qtype, trust_ad, a, qname);
out:
	if (a->status != DNS_OK)
		dns_answer_free(a);
	ldns_pkt_free(p);
	ldns_rdf_deep_free(want);
	return a->status;
}

/* Frees the records and leaves status, rcode, ede and error readable. */
void dns_answer_free(struct dns_answer *a)
{
	if (a == NULL)
		return;
	for (size_t i = 0; a->tlsa != NULL && i < a->n; i++)
		free(a->tlsa[i].data);
	for (size_t i = 0; a->txt != NULL && i < a->n; i++)
		free(a->txt[i]);
	free(a->mx);
	free(a->addrs);
	free(a->tlsa);
	free(a->txt);
	a->mx = NULL;
	a->addrs = NULL;
	a->tlsa = NULL;
	a->txt = NULL;
	a->n = 0;
}

static void *copy_of(const void *from, size_t n)
{
	void *to = malloc(n ? n : 1);
	if (to == NULL)
		abort();
	memcpy(to, from, n);
	return to;
}

void dns_answer_copy(struct dns_answer *to, const struct dns_answer *from)
{
	*to = *from;
	size_t n = from->n;
	if (from->mx)
		to->mx = copy_of(from->mx, n * sizeof *from->mx);
	if (from->addrs)
		to->addrs = copy_of(from->addrs, n * sizeof *from->addrs);
	if (from->tlsa) {
		to->tlsa = copy_of(from->tlsa, n * sizeof *from->tlsa);
		for (size_t i = 0; i < n; i++)
			to->tlsa[i].data = copy_of(from->tlsa[i].data, from->tlsa[i].len);
	}
	if (from->txt) {
		to->txt = copy_of(from->txt, n * sizeof *from->txt);
		for (size_t i = 0; i < n; i++)
			to->txt[i] = copy_of(from->txt[i], strlen(from->txt[i]) + 1);
	}
}

/* ---------------------------------------------------------------------------
 * The resolver: c-ares on the libevent loop.
 */

struct dns_sock {
	struct dns_sock *next;
	ares_socket_t fd;
	struct event *ev;
};

struct dns_resolver {
	struct event_base *base;
	ares_channel ch;
	bool ch_live;
	struct event *timer; /* follows ares_timeout() */
	struct dns_sock *socks;
	struct dns_wire *wires;     /* questions on the wire, or answered and waiting */
	struct dns_query *deferred; /* answered at once: cached, or an invalid name */
	struct dns_cache *cache;
	bool trust_ad;
};

/* One question on the wire, shared by every query that asks it while it is
 * out: a burst of attempts to one domain (a thousand at once under load)
 * sends one MX query, not a thousand that overflow the socket's receive
 * buffer and time out. Its answer then goes to the cache (cache.h). */
struct dns_wire {
	struct dns_resolver *r;
	struct dns_wire *prev, *next; /* on r->wires */
	char key[DNS_NAME_MAX + 1];   /* lower case, no trailing dot */
	char name[DNS_NAME_MAX + 1];  /* as the first query asked it */
	enum dns_type type;
	struct dns_query *waiters, *last; /* in the order they asked */
	bool sending;        /* inside ares_send: an answer now must wait */
	bool answered;       /* no new waiters: the answer is being delivered */
	struct event *defer; /* set: the answer waits for the loop */
	struct dns_answer answer;
};

struct dns_query {
	struct dns_resolver *r;
	struct dns_wire *wire;         /* NULL for an invalid name (r->deferred) */
	struct dns_query *prev, *next; /* on wire->waiters, or on r->deferred */
	char name[DNS_NAME_MAX + 1];
	enum dns_type type;
	dns_callback cb;
	void *arg;
	bool in_callback;    /* the caller's callback is running */
	struct event *defer; /* invalid name: the failure waits for the loop */
	struct dns_answer answer;
	int64_t started_us;
};

static void metrics_init(void);

struct event_base *dns_resolver_base(const struct dns_resolver *r)
{
	return r->base;
}

bool dns_resolver_trusts_ad(const struct dns_resolver *r)
{
	return r->trust_ad;
}

/* Called after every call into c-ares: its next deadline may have moved. */
static void resolver_rearm(struct dns_resolver *r)
{
	struct timeval tv, *tvp;

	if (!r->ch_live)
		return;
	tvp = ares_timeout(r->ch, NULL, &tv);
	if (tvp != NULL)
		evtimer_add(r->timer, tvp);
	else
		evtimer_del(r->timer);
}

static void resolver_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	resolver_rearm(r);
}

static void resolver_on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	ares_process_fd(r->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
	                (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	resolver_rearm(r);
}

/* ARES_OPT_SOCK_STATE_CB: c-ares opens, re-aims or closes a socket. The
 * event may be freed from within its own callback (libevent allows it). */
static void resolver_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns_resolver *r = data;
	struct dns_sock **pp = &r->socks, *s;
	short what = (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));

	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	s = *pp;
	if (what == 0) {
		if (s != NULL) {
			*pp = s->next;
			event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = dns_alloc(sizeof(*s));
		s->fd = fd;
		s->next = r->socks;
		r->socks = s;
	} else {
		event_free(s->ev);
	}
	s->ev = event_new(r->base, fd, what | EV_PERSIST, resolver_on_socket, r);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		abort();
}

static bool addr_is_loopback(const struct ares_addr_port_node *n)
{
	if (n->family == AF_INET)
		return (ntohl(n->addr.addr4.s_addr) >> 24) == 127;
	if (n->family == AF_INET6) {
		struct in6_addr a;

		memcpy(&a, &n->addr.addr6, sizeof(a));
		return IN6_IS_ADDR_LOOPBACK(&a) ||
		       (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127);
	}
	return false;
}

/* Reads back the servers c-ares uses (configured or from resolv.conf), for
 * trust_ad = auto and the log line. */
static bool resolver_servers(struct dns_resolver *r, char *list, size_t n)
{
	struct ares_addr_port_node *servers = NULL;
	bool all_loopback = true;
	size_t o = 0;

	list[0] = '\0';
	if (ares_get_servers_ports(r->ch, &servers) != ARES_SUCCESS)
		return false;
	if (servers == NULL)
		all_loopback = false;
	for (struct ares_addr_port_node *s = servers; s != NULL; s = s->next) {
		char ip[INET6_ADDRSTRLEN] = "?";
		int w;

		all_loopback = all_loopback && addr_is_loopback(s);
		inet_ntop(s->family, &s->addr, ip, sizeof(ip));
		w = snprintf(list + o, n - o, "%s%s%s%s:%d", o ? "," : "",
		             s->family == AF_INET6 ? "[" : "", ip, s->family == AF_INET6 ? "]" : "",
		             s->udp_port ? s->udp_port : 53);
		if (w > 0 && (size_t)w < n - o)
			o += (size_t)w;
	}
	ares_free_data(servers);
	return all_loopback;
}

/* One dns.nameserver entry: "ip", "ip:port", "[v6]:port" or "[v6]", put
 * into the form ares_set_servers_ports_csv takes ("[v6]" alone it refuses).
 * Checked here because c-ares 1.18 lets a port above 65535 wrap around. */
static bool nameserver_normalize(const char *s, char *out, size_t n)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port = NULL, *end;
	struct in6_addr a6;
	struct in_addr a4;
	bool v6;
	size_t hl;

	if (s[0] == '[') {
		if ((end = strchr(s, ']')) == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		hl = (size_t)(end - s - 1);
		port = end[1] == ':' ? end + 2 : NULL;
		s++;
	} else {
		end = strchr(s, ':');
		if (end != NULL && strchr(end + 1, ':') == NULL) { /* one colon: v4 with port */
			hl = (size_t)(end - s);
			port = end + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (hl == 0 || hl >= sizeof(host))
		return false;
	memcpy(host, s, hl);
	host[hl] = '\0';
	v6 = inet_pton(AF_INET6, host, &a6) == 1;
	if (!v6 && inet_pton(AF_INET, host, &a4) != 1)
		return false;
	if (port != NULL) {
		char *stop;
		long p = strtol(port, &stop, 10);

		if (port[0] < '0' || port[0] > '9' || *stop != '\0' || p < 1 || p > 65535)
			return false;
		return (size_t)snprintf(out, n, v6 ? "[%s]:%ld" : "%s:%ld", host, p) < n;
	}
	return (size_t)snprintf(out, n, "%s", host) < n;
}

/* conf->dns_nameserver as one csv; on error why names the bad entry. */
static bool resolver_join_servers(const struct conf *conf, char *csv, size_t n, char *why,
                                  size_t whylen)
{
	size_t o = 0;

	csv[0] = '\0';
	for (size_t i = 0; i < conf->dns_nameserver.len; i++) {
		const char *s = conf->dns_nameserver.items[i];
		char one[INET6_ADDRSTRLEN + 16];
		int w;

		if (!nameserver_normalize(s, one, sizeof(one))) {
			snprintf(why, whylen,
			         "dns.nameserver \"%.64s\": not \"ip\", \"ip:port\" or "
			         "\"[ipv6]:port\"",
			         s);
			return false;
		}
		w = snprintf(csv + o, n - o, "%s%s", o ? "," : "", one);
		if (w < 0 || (size_t)w >= n - o) {
			snprintf(why, whylen, "dns.nameserver: too many entries");
			return false;
		}
		o += (size_t)w;
	}
	return true;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const struct conf *conf, char *why,
                                      size_t whylen)
{
	metrics_init();
	struct dns_resolver *r = dns_alloc(sizeof(*r));
	struct ares_options o;
	char csv[DNS_SERVERS_MAX], used[DNS_SERVERS_MAX];
	bool loopback;
	int rc;

	r->base = base;
	r->timer = evtimer_new(base, resolver_on_timer, r);
	if (r->timer == NULL)
		abort();
	if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		snprintf(why, whylen, "c-ares: %s", ares_strerror(rc));
		event_free(r->timer);
		free(r);
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.flags = ARES_FLAG_NOCHECKRESP; /* SERVFAIL answers carry the EDE */
	o.timeout = DNS_TIMEOUT_MS;
	o.tries = DNS_TRIES;
	o.sock_state_cb = resolver_sock_state;
	o.sock_state_cb_data = r;
	rc = ares_init_options(&r->ch, &o,
	                       ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	                           ARES_OPT_SOCK_STATE_CB);
	if (rc != ARES_SUCCESS) {
		snprintf(why, whylen, "c-ares: %s", ares_strerror(rc));
		goto fail_lib;
	}
	r->ch_live = true;
	if (conf->dns_nameserver.len > 0) {
		if (!resolver_join_servers(conf, csv, sizeof(csv), why, whylen))
			goto fail;
		if ((rc = ares_set_servers_ports_csv(r->ch, csv)) != ARES_SUCCESS) {
			snprintf(why, whylen, "dns.nameserver \"%s\": %s", csv, ares_strerror(rc));
			goto fail;
		}
	}
	loopback = resolver_servers(r, used, sizeof(used));
	r->trust_ad =
	    conf->trust_ad == TRUST_AD_YES || (conf->trust_ad == TRUST_AD_AUTO && loopback);
	log_event(LOG_INFO, "dns_resolver", "servers=%s source=%s trust_ad=%s", log_quote(used),
	          conf->dns_nameserver.len ? "config" : "resolv.conf", r->trust_ad ? "yes" : "no");
	r->cache = dns_cache_new((uint32_t)(conf->dns_cache_max_ttl_ms / 1000));
	return r;
fail:
	ares_destroy(r->ch);
fail_lib:
	ares_library_cleanup();
	event_free(r->timer);
	free(r);
	return NULL;
}

/* q off whichever list holds it: r->deferred or its wire's waiters. */
static void query_unlink(struct dns_query *q)
{
	struct dns_query **head = q->wire ? &q->wire->waiters : &q->r->deferred;
	if (q->wire && q->wire->last == q)
		q->wire->last = q->prev;
	if (q->prev)
		q->prev->next = q->next;
	else
		*head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

/* q waits for w's answer, after those that asked before it. */
static void wire_add(struct dns_wire *w, struct dns_query *q)
{
	q->wire = w;
	q->next = NULL;
	q->prev = w->last;
	if (w->last)
		w->last->next = q;
	else
		w->waiters = q;
	w->last = q;
}

static void query_free(struct dns_query *q)
{
	query_unlink(q);
	if (q->defer != NULL)
		event_free(q->defer);
	dns_answer_free(&q->answer);
	free(q);
}

/* The wire goes with the waiters it still has, without their callbacks. */
static void wire_free(struct dns_wire *w)
{
	struct dns_resolver *r = w->r;
	while (w->waiters != NULL)
		query_free(w->waiters);
	if (w->prev)
		w->prev->next = w->next;
	else
		r->wires = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->defer != NULL)
		event_free(w->defer);
	dns_answer_free(&w->answer);
	free(w);
}

/* Pending queries are dropped without their callbacks: callers cancel (or
 * finish) theirs first. Not to be called from a dns callback. */
void dns_resolver_free(struct dns_resolver *r)
{
	if (r == NULL)
		return;
	/* ares_destroy runs every outstanding callback with ARES_EDESTRUCTION
	 * (they free their wires) and closes the sockets (their events go). */
	ares_destroy(r->ch);
	r->ch_live = false;
	while (r->wires != NULL) /* answered, waiting for the loop */
		wire_free(r->wires);
	while (r->deferred != NULL)
		query_free(r->deferred);
	while (r->socks != NULL) {
		struct dns_sock *s = r->socks;
		r->socks = s->next;
		event_free(s->ev);
		free(s);
	}
	event_free(r->timer);
	dns_cache_free(r->cache);
	ares_library_cleanup();
	free(r);
}

static struct metric *m_lookups, *m_lookup_seconds, *m_cached;

static void metrics_init(void)
{
	static const double secs[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30};
	if (m_lookups)
		return;
	m_lookups = metric_counter("outpost_dns_lookups_total", "DNS lookups by type and result",
	                           "type,result");
	m_lookup_seconds = metric_histogram("outpost_dns_lookup_seconds", "DNS lookup time", secs,
	                                    sizeof secs / sizeof secs[0]);
	m_cached = metric_counter("outpost_dns_cached_answers_total",
	                          "DNS lookups answered from outpost's cache (in lookups_total too)",
	                          NULL);
	metric_add(m_cached, NULL, 0);
}

static void count_lookup(const struct dns_query *q, const struct dns_answer *a)
{
	static const char *const results[] = {[DNS_OK] = "ok",
	                                      [DNS_NOTFOUND] = "notfound",
	                                      [DNS_TEMPFAIL] = "temporary",
	                                      [DNS_MALFORMED] = "malformed"};
	char value[32];
	const char *result = a->nxdomain ? "nxdomain" : results[a->status];
	snprintf(value, sizeof value, "%s,%s", dns_type_name(q->type), result);
	metric_add(m_lookups, value, 1);
	metric_observe(m_lookup_seconds, (double)(time_mono_us() - q->started_us) / 1e6);
}

/* Runs q's callback, then frees q: the caller has taken q off its list. */
static void query_deliver(struct dns_query *q, const struct dns_answer *a)
{
	count_lookup(q, a);
	q->in_callback = true;
	q->cb(q->arg, a);
	dns_answer_free(&q->answer);
	if (q->defer != NULL)
		event_free(q->defer);
	free(q);
}

/* Every waiter gets the answer. A callback may cancel other waiters (they
 * leave the list) or ask the same question again (a new wire: this one is
 * answered), so each waiter is taken off the list before its callback. */
static void wire_deliver(struct dns_wire *w, const struct dns_answer *a)
{
	struct dns_query *q;
	while ((q = w->waiters) != NULL) {
		query_unlink(q);
		q->wire = NULL;
		query_deliver(q, a);
	}
}

static void wire_on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct dns_wire *w = arg;
	wire_deliver(w, &w->answer);
	wire_free(w);
}

static void query_on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	query_unlink(q);
	query_deliver(q, &q->answer);
}

static void query_on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_wire *w = arg;
	struct dns_answer a;
	if (status == ARES_EDESTRUCTION) {
		wire_free(w);
		return;
	}
	if (status == ARES_SUCCESS && abuf != NULL && alen > 0) {
		dns_answer_parse(abuf, (size_t)alen, w->name, w->type, w->r->trust_ad, &a);
		if (a.status == DNS_OK || a.status == DNS_NOTFOUND)
			dns_cache_put(w->r->cache, w->key, w->type, &a, a.ttl, time_mono_us() / 1000);
	} else {
		answer_init(&a);
		answer_fail(&a, DNS_TEMPFAIL, "%s %s: %s", w->name, dns_type_name(w->type),
		            status == ARES_ETIMEOUT ? "timeout" : ares_strerror(status));
	}
	w->answered = true;
	if (w->sending) { /* the contract: never from within dns_query */
		w->answer = a;
		if ((w->defer = event_new(w->r->base, -1, 0, wire_on_deferred, w)) == NULL)
			abort();
		event_active(w->defer, EV_TIMEOUT, 1);
		return;
	}
	wire_deliver(w, &a);
	dns_answer_free(&a);
	wire_free(w);
}

/* The wire query: RD and AD (RFC 6840 §5.7: ask for the AD bit), EDNS0
 * with DO (RFC 3225) so a validating resolver sets AD. */
static bool query_build(const char *name, enum dns_type type, uint8_t **wire, size_t *len)
{
	ldns_pkt *p = NULL;
	ldns_rdf *owner = name_from_text(name);
	ldns_rr *question;
	bool ok;

	if (owner == NULL)
		return false;
	p = ldns_pkt_new();
	question = ldns_rr_new();
	if (p == NULL || question == NULL)
		abort();
	ldns_rr_set_owner(question, owner);
	ldns_rr_set_type(question, (ldns_rr_type)type);
	ldns_rr_set_class(question, LDNS_RR_CLASS_IN);
	ldns_rr_set_question(question, true);
	ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, question);
	ldns_pkt_set_opcode(p, LDNS_PACKET_QUERY);
	ldns_pkt_set_rd(p, true);
	ldns_pkt_set_ad(p, true);
	ldns_pkt_set_random_id(p); /* c-ares puts its own unique id over it */
	ldns_pkt_set_edns_udp_size(p, DNS_EDNS_UDP);
	ldns_pkt_set_edns_do(p, true);
	ok = ldns_pkt2wire(wire, p, len) == LDNS_STATUS_OK;
	ldns_pkt_free(p);
	return ok;
}

/* The key a question is shared under: the name in lower case without a
 * trailing dot (names compare without case, RFC 4343). */
static void wire_key(const char *name, char *key, size_t n)
{
	size_t len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len >= n)
		len = n - 1;
	for (size_t i = 0; i < len; i++)
		key[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
	key[len] = '\0';
}

static struct dns_wire *wire_find(struct dns_resolver *r, const char *key, enum dns_type type)
{
	for (struct dns_wire *w = r->wires; w; w = w->next)
		if (!w->answered && w->type == type && strcmp(w->key, key) == 0)
			return w;
	return NULL;
}

/* A new wire for q's question, sent; false when the name cannot be asked. */
static bool wire_send(struct dns_resolver *r, struct dns_query *q, const char *key)
{
	uint8_t *wire = NULL;
	size_t len = 0;
	if (!query_build(q->name, q->type, &wire, &len) || len > 65535) {
		free(wire);
		return false;
	}
	struct dns_wire *w = dns_alloc(sizeof(*w));
	w->r = r;
	w->type = q->type;
	snprintf(w->key, sizeof w->key, "%s", key);
	snprintf(w->name, sizeof w->name, "%s", q->name);
	w->next = r->wires;
	if (r->wires)
		r->wires->prev = w;
	r->wires = w;
	wire_add(w, q);
	w->sending = true;
	ares_send(r->ch, wire, (int)len, query_on_answer, w);
	w->sending = false;
	free(wire);
	resolver_rearm(r);
	return true;
}

/* q's answer is known now (q->answer) and is delivered from the loop. */
static void query_defer(struct dns_resolver *r, struct dns_query *q)
{
	q->next = r->deferred;
	if (r->deferred)
		r->deferred->prev = q;
	r->deferred = q;
	if ((q->defer = event_new(r->base, -1, 0, query_on_deferred, q)) == NULL)
		abort();
	event_active(q->defer, EV_TIMEOUT, 1);
}

/* The cached answer to q's question, copied into q->answer; false when none. */
static bool query_from_cache(struct dns_resolver *r, struct dns_query *q, const char *key)
{
	uint32_t ttl_left;
	const struct dns_answer *kept =
	    dns_cache_get(r->cache, key, q->type, q->started_us / 1000, &ttl_left);
	if (kept == NULL)
		return false;
	dns_answer_copy(&q->answer, kept);
	q->answer.ttl = ttl_left;
	metric_add(m_cached, NULL, 1);
	return true;
}

struct dns_query *dns_query(struct dns_resolver *r, const char *name, enum dns_type type,
                            dns_callback cb, void *arg)
{
	struct dns_query *q = dns_alloc(sizeof(*q));
	char key[DNS_NAME_MAX + 1];
	q->r = r;
	q->type = type;
	q->cb = cb;
	q->arg = arg;
	q->started_us = time_mono_us();
	snprintf(q->name, sizeof(q->name), "%s", name ? name : "");
	wire_key(q->name, key, sizeof key);
	if (name != NULL && query_from_cache(r, q, key)) {
		query_defer(r, q);
		return q;
	}
	struct dns_wire *w = name ? wire_find(r, key, type) : NULL;
	if (w != NULL) {
		wire_add(w, q);
		return q;
	}
	if (name != NULL && wire_send(r, q, key))
		return q;
	answer_init(&q->answer);
	answer_fail(&q->answer, DNS_MALFORMED, "%s %s: invalid query name", q->name,
	            dns_type_name(type));
	query_defer(r, q);
	return q;
}

/* The wire stays out when its last waiter goes: c-ares cannot take back one
 * question, and a query asked meanwhile may still share its answer. */
void dns_cancel(struct dns_query *q)
{
	if (q == NULL || q->in_callback)
		return;
	query_free(q);
}
