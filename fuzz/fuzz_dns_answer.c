/* fuzz_dns_answer.c - libFuzzer target for the DNS answer parser
 * (dns_answer_parse): the wire comes from the network, whoever answers.
 * Every query type, AD trusted and not; the result must be consistent. */
#include "dns/dns.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const enum dns_type types[] = {DNS_MX, DNS_A, DNS_AAAA, DNS_TLSA, DNS_TXT, DNS_CNAME};

/* The question the seeds ask; a mismatch is itself a path worth fuzzing. */
static const char *const names[] = {"example.org", "_25._tcp.mx1.secure.test."};

static void check(const struct dns_answer *a, enum dns_type t)
{
	if (strnlen(a->error, sizeof(a->error)) >= sizeof(a->error) ||
	    strnlen(a->ede_text, sizeof(a->ede_text)) >= sizeof(a->ede_text) ||
	    strnlen(a->canonical, sizeof(a->canonical)) >= sizeof(a->canonical) ||
	    strnlen(a->cname, sizeof(a->cname)) >= sizeof(a->cname))
		abort();
	for (const char *p = a->ede_text; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			abort();
	if (a->status != DNS_OK && a->n != 0)
		abort();
	if (a->status == DNS_OK && a->n == 0)
		abort();
	if (a->nxdomain && a->status != DNS_NOTFOUND)
		abort();
	for (size_t i = 0; i < a->n; i++) {
		switch (t) {
		case DNS_MX:
			if (strnlen(a->mx[i].host, sizeof(a->mx[i].host)) >= sizeof(a->mx[i].host))
				abort();
			if (i > 0 && a->mx[i].preference < a->mx[i - 1].preference)
				abort();
			break;
		case DNS_A:
		case DNS_AAAA:
			if (a->addrs[i].family != (t == DNS_A ? AF_INET : AF_INET6))
				abort();
			break;
		case DNS_TLSA:
			if (a->tlsa[i].len > 0 && a->tlsa[i].data == NULL)
				abort();
			for (size_t k = 0; k < a->tlsa[i].len; k++)
				(void)*(volatile uint8_t *)&a->tlsa[i].data[k];
			break;
		case DNS_TXT:
			(void)strlen(a->txt[i]);
			break;
		case DNS_CNAME:
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			for (int trust = 0; trust < 2; trust++) {
				struct dns_answer a;

				dns_answer_parse(data, size, names[n], types[i], trust, &a);
				check(&a, types[i]);
				if (!trust && a.authentic)
					abort();
				dns_answer_free(&a);
			}
		}
	}
	return 0;
}
