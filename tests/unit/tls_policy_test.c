/* tls_policy_test.c - the host TLS decision table (src/deliver/tls_policy.c,
 * docs/tls.md), row by row, and the properties no row may break: never
 * plaintext under a policy that demands TLS, never PKIX in place of usable
 * DANE, REQUIRETLS only where RFC 8689 §4.2.1 allows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "deliver/tls_policy.h"

#include <string.h>

#define OPP SMTP_TLS_OPPORTUNISTIC
#define REQ SMTP_TLS_REQUIRED

struct row {
	enum sts_mode sts;
	bool listed;
	enum dane_state dane;
	enum tls_demand demand;
	bool mx_authentic;
	/* expected */
	bool dial;
	enum smtp_tls_mode mode;
	enum tls_auth auth;
	bool enforce, fallback;
	enum tls_governor governor;
	const char *enhanced; /* when !dial */
};

#define D TLS_DEMAND_DEFAULT
#define RT TLS_DEMAND_REQUIRETLS
#define NO TLS_DEMAND_OPTIONAL

static const struct row rows[] = {
    /* no policy: opportunistic, plaintext retry */
    {STS_NONE, false, DANE_NOT_ELIGIBLE, D, false, true, OPP, TLS_AUTH_NONE, false, true,
     GOVERNOR_NONE, NULL},
    {STS_NONE, false, DANE_NO_RECORDS, D, true, true, OPP, TLS_AUTH_NONE, false, true,
     GOVERNOR_NONE, NULL},
    /* testing changes nothing, listed or not */
    {STS_TESTING, true, DANE_NO_RECORDS, D, false, true, OPP, TLS_AUTH_NONE, false, true,
     GOVERNOR_STS_TESTING, NULL},
    {STS_TESTING, false, DANE_NO_RECORDS, D, false, true, OPP, TLS_AUTH_NONE, false, true,
     GOVERNOR_STS_TESTING, NULL},
    /* enforce: listed hosts with PKIX, no plaintext; unlisted not dialled */
    {STS_ENFORCE, true, DANE_NO_RECORDS, D, false, true, REQ, TLS_AUTH_PKIX, true, false,
     GOVERNOR_STS_ENFORCE, NULL},
    {STS_ENFORCE, false, DANE_NO_RECORDS, D, false, false, 0, 0, false, false, 0, "4.7.5"},
    /* usable DANE governs, also before an enforced policy (RFC 8461 §2) */
    {STS_NONE, false, DANE_USABLE, D, true, true, REQ, TLS_AUTH_DANE, true, false, GOVERNOR_DANE,
     NULL},
    {STS_TESTING, true, DANE_USABLE, D, true, true, REQ, TLS_AUTH_DANE, true, false,
     GOVERNOR_DANE, NULL},
    {STS_ENFORCE, true, DANE_USABLE, D, true, true, REQ, TLS_AUTH_DANE, true, false,
     GOVERNOR_DANE, NULL},
    /* ...but an unlisted host stays unlisted */
    {STS_ENFORCE, false, DANE_USABLE, D, true, false, 0, 0, false, false, 0, "4.7.5"},
    /* an MX list that is not signed does not switch DANE off */
    {STS_NONE, false, DANE_USABLE, D, false, true, REQ, TLS_AUTH_DANE, true, false,
     GOVERNOR_DANE, NULL},
    /* records, none usable: TLS required, not authenticated (RFC 7672 §2.2) */
    {STS_NONE, false, DANE_UNUSABLE, D, true, true, REQ, TLS_AUTH_NONE, false, false,
     GOVERNOR_DANE, NULL},
    {STS_ENFORCE, true, DANE_UNUSABLE, D, true, true, REQ, TLS_AUTH_PKIX, true, false,
     GOVERNOR_STS_ENFORCE, NULL},
    /* a failed TLSA lookup: not dialled, whatever else */
    {STS_NONE, false, DANE_LOOKUP_FAILED, D, true, false, 0, 0, false, false, 0, "4.7.5"},
    {STS_ENFORCE, true, DANE_LOOKUP_FAILED, D, true, false, 0, 0, false, false, 0, "4.7.5"},
    /* REQUIRETLS: authenticated MX list + verified certificate */
    {STS_NONE, false, DANE_USABLE, RT, true, true, REQ, TLS_AUTH_DANE, true, false,
     GOVERNOR_DANE, NULL},
    {STS_NONE, false, DANE_NO_RECORDS, RT, true, true, REQ, TLS_AUTH_PKIX, true, false,
     GOVERNOR_REQUIRETLS, NULL},
    {STS_NONE, false, DANE_UNUSABLE, RT, true, true, REQ, TLS_AUTH_PKIX, true, false,
     GOVERNOR_REQUIRETLS, NULL},
    {STS_ENFORCE, true, DANE_NO_RECORDS, RT, false, true, REQ, TLS_AUTH_PKIX, true, false,
     GOVERNOR_STS_ENFORCE, NULL},
    {STS_NONE, false, DANE_NO_RECORDS, RT, false, false, 0, 0, false, false, 0, "4.7.30"},
    {STS_NONE, false, DANE_USABLE, RT, false, false, 0, 0, false, false, 0, "4.7.30"},
    {STS_TESTING, true, DANE_NO_RECORDS, RT, false, false, 0, 0, false, false, 0, "4.7.30"},
    {STS_ENFORCE, false, DANE_NO_RECORDS, RT, true, false, 0, 0, false, false, 0, "4.7.30"},
    {STS_NONE, false, DANE_LOOKUP_FAILED, RT, true, false, 0, 0, false, false, 0, "4.7.5"},
    /* TLS-Required: No: as the policy says, but nothing aborts and TLS
     * failures retry in plaintext */
    {STS_ENFORCE, true, DANE_NO_RECORDS, NO, false, true, REQ, TLS_AUTH_PKIX, false, true,
     GOVERNOR_STS_ENFORCE, NULL},
    {STS_ENFORCE, false, DANE_NO_RECORDS, NO, false, true, REQ, TLS_AUTH_PKIX, false, true,
     GOVERNOR_STS_ENFORCE, NULL},
    {STS_NONE, false, DANE_USABLE, NO, true, true, REQ, TLS_AUTH_DANE, false, true,
     GOVERNOR_DANE, NULL},
    {STS_NONE, false, DANE_LOOKUP_FAILED, NO, true, true, OPP, TLS_AUTH_NONE, false, true,
     GOVERNOR_NONE, NULL},
    {STS_NONE, false, DANE_UNUSABLE, NO, true, true, REQ, TLS_AUTH_NONE, false, true,
     GOVERNOR_DANE, NULL},
};

static void test_every_row(void **state)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct tls_situation s = {r->sts, r->listed, r->dane, r->demand, r->mx_authentic,
		                          false};
		struct tls_plan p;
		tls_plan_decide(&s, "mx.example", &p);
		if (p.dial != r->dial)
			fail_msg("row %zu: dial %d", i, p.dial);
		if (!r->dial) {
			if (strcmp(p.enhanced, r->enhanced) != 0)
				fail_msg("row %zu: %s, want %s", i, p.enhanced, r->enhanced);
			assert_non_null(strstr(p.why, "mx.example"));
			continue;
		}
		if (p.mode != r->mode || p.auth != r->auth || p.enforce != r->enforce ||
		    p.fallback != r->fallback || p.governor != r->governor)
			fail_msg("row %zu: mode %d auth %d enforce %d fallback %d governor %s", i, p.mode,
			         p.auth, p.enforce, p.fallback, tls_governor_name(p.governor));
		assert_int_equal(p.requiretls, r->demand == RT);
	}
}

/* Over every combination: the properties that make downgrades impossible. */
static void test_no_combination_downgrades(void **state)
{
	for (int sts = STS_NONE; sts <= STS_ENFORCE; sts++)
		for (int listed = 0; listed < 2; listed++)
			for (int dane = DANE_NOT_ELIGIBLE; dane <= DANE_LOOKUP_FAILED; dane++)
				for (int demand = D; demand <= NO; demand++)
					for (int auth = 0; auth < 2; auth++)
						for (int lit = 0; lit < 2; lit++) {
							struct tls_situation s = {sts, listed, dane, demand, auth, lit};
							struct tls_plan p;
							tls_plan_decide(&s, "h", &p);
							if (!p.dial)
								continue;
							bool optional = demand == NO;
							/* a policy that demands TLS never lets plaintext through */
							if (!optional && (dane >= DANE_USABLE || sts == STS_ENFORCE ||
							                  demand == RT)) {
								assert_int_equal(p.mode, REQ);
								assert_false(p.fallback);
							}
							/* usable DANE is never replaced by PKIX or nothing */
							if (dane == DANE_USABLE)
								assert_int_equal(p.auth, TLS_AUTH_DANE);
							/* enforcement is off only for "TLS-Required: No" */
							if (!optional && p.auth != TLS_AUTH_NONE)
								assert_true(p.enforce);
							if (optional)
								assert_false(p.enforce);
							/* REQUIRETLS: authenticated list, verified certificate */
							if (demand == RT) {
								assert_true(auth || (sts == STS_ENFORCE && listed));
								assert_int_not_equal(p.auth, TLS_AUTH_NONE);
								assert_false(lit);
							}
							/* an enforced policy's unlisted host only under TLS-Required: No */
							if (sts == STS_ENFORCE && !listed)
								assert_true(optional);
							if (dane == DANE_LOOKUP_FAILED)
								assert_true(optional);
						}
}

static void test_requiretls_refusals_can_never_qualify(void **state)
{
	struct tls_situation s = {STS_NONE, false, DANE_NO_RECORDS, RT, false, false};
	struct tls_plan p;
	tls_plan_decide(&s, "h", &p);
	assert_true(p.cannot_qualify);
	s.mx_authentic = true;
	s.dane = DANE_LOOKUP_FAILED; /* may qualify once DNS works again */
	tls_plan_decide(&s, "h", &p);
	assert_false(p.dial);
	assert_false(p.cannot_qualify);
	s = (struct tls_situation){STS_NONE, false, DANE_NOT_ELIGIBLE, RT, false, true};
	tls_plan_decide(&s, "[192.0.2.1]", &p);
	assert_false(p.dial);
	assert_true(p.cannot_qualify);
	assert_string_equal(p.enhanced, "4.7.30");
}

static void test_overrides_are_reported(void **state)
{
	struct tls_situation s = {STS_ENFORCE, false, DANE_LOOKUP_FAILED, NO, true, false};
	struct tls_plan p;
	tls_plan_decide(&s, "h", &p);
	assert_true(p.dial);
	assert_int_equal(p.overrides, OVERRIDE_STS_MX | OVERRIDE_TLSA_ERROR);
	s.demand = D;
	tls_plan_decide(&s, "h", &p);
	assert_false(p.dial);
	assert_int_equal(p.overrides, 0);
}

/* A host that is not dialled still says which policy refused it. */
static void test_refusals_name_their_policy(void **state)
{
	struct tls_plan p;
	struct tls_situation s = {STS_ENFORCE, false, DANE_NO_RECORDS, D, false, false};
	tls_plan_decide(&s, "h", &p);
	assert_int_equal(p.governor, GOVERNOR_STS_ENFORCE);
	s = (struct tls_situation){STS_NONE, false, DANE_LOOKUP_FAILED, D, true, false};
	tls_plan_decide(&s, "h", &p);
	assert_int_equal(p.governor, GOVERNOR_DANE);
	s = (struct tls_situation){STS_NONE, false, DANE_NO_RECORDS, RT, false, false};
	tls_plan_decide(&s, "h", &p);
	assert_int_equal(p.governor, GOVERNOR_REQUIRETLS);
}

static void test_governor_names(void **state)
{
	assert_string_equal(tls_governor_name(GOVERNOR_DANE), "dane");
	assert_string_equal(tls_governor_name(GOVERNOR_STS_ENFORCE), "mta-sts enforce");
	assert_string_equal(tls_governor_name(GOVERNOR_STS_TESTING), "mta-sts testing");
	assert_string_equal(tls_governor_name(GOVERNOR_NONE), "none");
	assert_string_equal(tls_governor_name(GOVERNOR_REQUIRETLS), "requiretls");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_row),
	    cmocka_unit_test(test_no_combination_downgrades),
	    cmocka_unit_test(test_requiretls_refusals_can_never_qualify),
	    cmocka_unit_test(test_overrides_are_reported),
	    cmocka_unit_test(test_refusals_name_their_policy),
	    cmocka_unit_test(test_governor_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
