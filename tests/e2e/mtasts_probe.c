/* mtasts_probe.c - drives src/mtasts/fetch.c and src/util/https.c against
 * live peers for tests/e2e/test_mtasts_fetch.sh. Prints one JSON object.
 *
 *   mtasts_probe fetch NAMESERVER DOMAIN PORT TIMEOUT_MS CA_FILE|-
 *       mtasts_fetch on a libevent loop, the resolver at NAMESERVER
 *   mtasts_probe cancel NAMESERVER DOMAIN PORT AFTER_MS CA_FILE|-
 *       starts the fetch, cancels it after AFTER_MS, runs the loop on for a
 *       second: "called" must stay false
 *   mtasts_probe get|post URL ADDR TIMEOUT_MS MAX_BODY CA_FILE|- [TYPE FILE]
 *       one https_request to ADDR; post sends FILE as TYPE
 * Exit status 0 when the probe ran (whatever the outcome), 1 when no
 * result came, 2 on usage.
 */
#include "conf/conf.h"
#include "dns/dns.h"
#include "mtasts/fetch.h"
#include "util/https.h"
#include "util/timeutil.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event_base *base;
static json_t *result;
static int64_t started_us;

static json_t *text_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* The body as a string when it is UTF-8 without NULs, else null. */
static json_t *body_json(const char *body, size_t len)
{
	json_t *j = json_stringn(body, len);

	return j ? j : json_null();
}

static json_int_t elapsed_ms(void)
{
	return (json_int_t)((time_mono_us() - started_us) / 1000);
}

static void on_fetch(void *arg, const struct mtasts_fetch_result *r)
{
	result = json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:o, s:I, s:o, s:I}", "status",
	                   mtasts_fetch_status_name(r->status), "result_type",
	                   text_or_null(r->result_type), "reason", r->reason, "detail", r->detail,
	                   "http_status", (json_int_t)r->http_status, "verify_result",
	                   (json_int_t)r->verify_result, "body", body_json(r->body, r->body_len),
	                   "body_len", (json_int_t)r->body_len, "content_type",
	                   text_or_null(r->content_type), "elapsed_ms", elapsed_ms());
	event_base_loopbreak(base);
}

static void on_https(void *arg, const struct https_result *r)
{
	result = json_pack(
	    "{s:s, s:I, s:I, s:o, s:I, s:o, s:o, s:s, s:I}", "outcome",
	    https_outcome_name(r->outcome), "status", (json_int_t)r->status, "verify_result",
	    (json_int_t)r->verify_result, "body", body_json(r->body, r->body_len), "body_len",
	    (json_int_t)r->body_len, "content_type", text_or_null(r->content_type), "location",
	    text_or_null(r->location), "reason", r->reason, "elapsed_ms", elapsed_ms());
	event_base_loopbreak(base);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 0)
		exit(2);
	rewind(fp);
	buf = malloc((size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, fp) != (size_t)n)
		exit(2);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static const char *ca_arg(const char *s)
{
	return strcmp(s, "-") == 0 ? NULL : s;
}

static struct https_client *client_new(const char *ca_file)
{
	char why[256];
	struct https_client *c = https_client_new(base, ca_arg(ca_file), why, sizeof why);

	if (c == NULL) {
		fprintf(stderr, "mtasts_probe: %s\n", why);
		exit(1);
	}
	return c;
}

static void on_cancel_timer(evutil_socket_t fd, short what, void *arg)
{
	if (result == NULL) /* else the fetch is over and its handle gone */
		mtasts_fetch_cancel(arg);
}

/* fetch|cancel NAMESERVER DOMAIN PORT MS CA_FILE */
static int run_fetch(char **argv, bool cancel)
{
	struct conf c;
	struct dns_resolver *r;
	struct https_client *http = client_new(argv[6]);
	struct mtasts_fetch *f;
	struct event *cancel_ev = NULL;
	struct timeval limit = {40, 0};
	char why[256] = "";
	int64_t ms = strtoll(argv[5], NULL, 10);

	conf_defaults(&c);
	strlist_add(&c.dns_nameserver, argv[2]);
	r = dns_resolver_new(base, &c, why, sizeof why);
	if (r == NULL) {
		fprintf(stderr, "mtasts_probe: %s\n", why);
		return 1;
	}
	f = mtasts_fetch(r, http, argv[3], cancel ? 10000 : ms, (uint16_t)atoi(argv[4]), on_fetch,
	                 NULL);
	if (cancel) {
		struct timeval after = {ms / 1000, (ms % 1000) * 1000};

		cancel_ev = evtimer_new(base, on_cancel_timer, f);
		evtimer_add(cancel_ev, &after);
		limit = (struct timeval){ms / 1000 + 1, (ms % 1000) * 1000};
	}
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	if (cancel) {
		result = result ? result : json_pack("{s:b}", "called", 0);
		event_free(cancel_ev);
	}
	https_client_free(http);
	dns_resolver_free(r);
	conf_free(&c);
	return 0;
}

/* get|post URL ADDR TIMEOUT_MS MAX_BODY CA_FILE [TYPE FILE] */
static int run_https(int argc, char **argv)
{
	struct https_client *http = client_new(argv[6]);
	const char *addrs[] = {argv[3]};
	struct https_request_opts o = {
	    .method = strcmp(argv[1], "post") == 0 ? HTTPS_POST : HTTPS_GET,
	    .url = argv[2],
	    .addrs = addrs,
	    .naddrs = 1,
	    .timeout_ms = strtoll(argv[4], NULL, 10),
	    .max_body = (size_t)strtoull(argv[5], NULL, 10),
	};
	char *body = NULL;
	struct timeval limit = {40, 0};

	if (o.method == HTTPS_POST) {
		if (argc < 9)
			return 2;
		o.content_type = argv[7];
		body = read_file(argv[8], &o.body_len);
		o.body = body;
	}
	https_request(http, &o, on_https, NULL);
	free(body); /* the request holds its own copy */
	event_base_loopexit(base, &limit);
	event_base_dispatch(base);
	https_client_free(http);
	return 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc < 7) {
		fprintf(stderr,
		        "usage: mtasts_probe fetch|cancel NAMESERVER DOMAIN PORT MS CA_FILE\n"
		        "       mtasts_probe get|post URL ADDR TIMEOUT_MS MAX_BODY CA_FILE "
		        "[TYPE FILE]\n");
		return 2;
	}
	base = event_base_new();
	started_us = time_mono_us();
	if (strcmp(argv[1], "fetch") == 0 || strcmp(argv[1], "cancel") == 0)
		rc = run_fetch(argv, strcmp(argv[1], "cancel") == 0);
	else if (strcmp(argv[1], "get") == 0 || strcmp(argv[1], "post") == 0)
		rc = run_https(argc, argv);
	else
		rc = 2;
	if (rc == 0 && result != NULL) {
		char *s = json_dumps(result, JSON_COMPACT);

		printf("%s\n", s);
		free(s);
		json_decref(result);
	} else if (rc == 0) {
		printf("{\"status\": \"no result\"}\n");
		rc = 1;
	}
	event_base_free(base);
	return rc;
}
