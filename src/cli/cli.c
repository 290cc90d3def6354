/* cli.c - `outpost queue ...`: a blocking libcurl client of the admin API.
 *
 * Each command checks its arguments first (usage errors exit 2 without
 * touching the network), then makes its requests to the daemon found
 * through the first [admin] listen address and prints the answer: JSON
 * with --json, else a form meant for people. A listing follows the pages'
 * cursors to the end and prints as it goes: `list --json` is one JSON array
 * however many pages it took. When no daemon listens, the reads (list,
 * show, history) go to the spool itself, read-only, through the very
 * functions the daemon answers them with (admin/reads.h); the actions need
 * the daemon. Every failure is one line on stderr and exit 1.
 */
#include "cli/cli.h"

#include "admin/auth.h"
#include "admin/reads.h"
#include "spool/spool.h"
#include "util/listen.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef OUTPOST_VERSION
#define OUTPOST_VERSION "unknown"
#endif

#define CONNECT_MS 5000
#define TOTAL_MS   60000
#define PAGE_LIMIT "1000" /* the API's largest page: fewest round trips */

/* ---- HTTP ---- */

struct client {
	CURL *curl;
	const struct conf *conf;
	char base[300];  /* "http://127.0.0.1:8025", "http://localhost" on a socket */
	char where[300]; /* the daemon as messages name it */
	char auth[200];  /* "Authorization: Bearer <the daemon's token>" */
	char err[CURL_ERROR_SIZE];
	bool unreachable;     /* nothing listens: refused, or no such socket */
	bool may_read_spool;  /* the command reads only: it may read the spool itself */
	struct spool *direct; /* reading the spool itself, the daemon not running */
};

struct response {
	CURL *curl;
	long status;
	char *body;
	size_t len;
	bool stream; /* a 200 body goes to stdout as it arrives (queue cat) */
	int write_errno;
};

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	struct response *r = arg;
	size_t len = size * n;
	long code = 0;
	if (r->stream && curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK &&
	    code == 200) {
		if (fwrite(data, 1, len, stdout) == len)
			return len;
		r->write_errno = errno;
		return 0; /* aborts the transfer */
	}
	char *grown = realloc(r->body, r->len + len + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + r->len, data, len);
	r->len += len;
	grown[r->len] = '\0';
	r->body = grown;
	return len;
}

/* The wildcard address of a listener is reached through loopback. */
static const char *connect_host(const struct listen_addr *la)
{
	if (!listen_addr_is_wildcard(la))
		return la->host;
	return strchr(la->host, ':') ? "::1" : "127.0.0.1";
}

static int client_target(struct client *c, const struct conf *conf, char *why, size_t whylen)
{
	struct listen_addr la;
	char perr[256];
	if (conf->admin_listen.len == 0) {
		snprintf(why, whylen, "no [admin] listen address in the configuration");
		return -1;
	}
	if (listen_addr_parse(conf->admin_listen.items[0], &la, perr, sizeof perr) < 0) {
		snprintf(why, whylen, "bad [admin] listen %s", perr);
		return -1;
	}
	snprintf(c->where, sizeof c->where, "%s", conf->admin_listen.items[0]);
	if (la.is_unix) {
		snprintf(c->base, sizeof c->base, "http://localhost");
		curl_easy_setopt(c->curl, CURLOPT_UNIX_SOCKET_PATH, la.path);
		return 0;
	}
	const char *host = connect_host(&la);
	snprintf(c->base, sizeof c->base, strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u",
	         host, la.port);
	return 0;
}

static int client_open(struct client *c, const struct conf *conf, long connect_ms, long total_ms,
                       char *why, size_t whylen)
{
	memset(c, 0, sizeof *c);
	c->conf = conf;
	if ((c->curl = curl_easy_init()) == NULL) {
		snprintf(why, whylen, "cannot initialise libcurl");
		return -1;
	}
	char token[160], terr[600];
	if (admin_auth_read_token(conf, token, sizeof token, terr, sizeof terr) < 0) {
		/* only whoever may read the token administers the queue */
		snprintf(why, whylen, "%s (the queue commands need the daemon's admin token)",
		         terr);
		curl_easy_cleanup(c->curl);
		c->curl = NULL;
		return -1;
	}
	snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", token);
	if (client_target(c, conf, why, whylen) < 0) {
		curl_easy_cleanup(c->curl);
		c->curl = NULL;
		return -1;
	}
	/* The daemon is local: a proxy from the environment must not see it. */
	curl_easy_setopt(c->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "outpost/" OUTPOST_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->err);
	return 0;
}

static void client_close(struct client *c)
{
	curl_easy_cleanup(c->curl);
	spool_close(c->direct);
}

static void transport_error(struct client *c, CURLcode rc, const struct response *r, char *why,
                            size_t whylen)
{
	long oserr = 0;
	curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &oserr);
	const char *reason = c->err[0] ? c->err : curl_easy_strerror(rc);
	/* no daemon: nothing listens on the port, or no socket at the path */
	c->unreachable = rc == CURLE_COULDNT_CONNECT && (oserr == ECONNREFUSED || oserr == ENOENT);
	if (rc == CURLE_WRITE_ERROR && r->write_errno)
		snprintf(why, whylen, "cannot write the output: %s", strerror(r->write_errno));
	else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
		snprintf(why, whylen, "cannot reach the daemon at %s: %s", c->where,
		         oserr ? strerror((int)oserr) : reason);
	else
		snprintf(why, whylen, "no answer from the daemon at %s: %s", c->where, reason);
}

/* One request. body, when not NULL, is sent as JSON with a POST. Returns 0
 * once any HTTP answer arrived (r->status says which), -1 with why filled
 * when there was none. The caller frees r->body. */
static int client_request(struct client *c, const char *method, const char *path, const char *body,
                          struct response *r, char *why, size_t whylen)
{
	char *url;
	if (asprintf(&url, "%s%s", c->base, path) < 0)
		abort();
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	h = curl_slist_append(h, c->auth);
	r->curl = c->curl;
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	if (strcmp(method, "POST") == 0) {
		h = curl_slist_append(h, "Content-Type: application/json");
		h = curl_slist_append(h, "Expect:");
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
	} else {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	c->err[0] = '\0';
	CURLcode rc = curl_easy_perform(c->curl);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	else
		transport_error(c, rc, r, why, whylen);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	free(url);
	return rc == CURLE_OK ? 0 : -1;
}

/* Parses a 200 answer; prints the one-line reason and returns NULL otherwise. */
static json_t *response_json(const struct response *r)
{
	json_t *v = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(v, "error"));
	if (r->status == 200 && v && msg == NULL)
		return v;
	if (msg)
		fprintf(stderr, "outpost: %s\n", msg);
	else if (r->status == 200)
		fprintf(stderr, "outpost: the daemon's answer is not JSON\n");
	else
		fprintf(stderr, "outpost: the daemon answered HTTP %ld\n", r->status);
	json_decref(v);
	return NULL;
}

/* Runs one request and returns its JSON answer, or NULL after printing why. */
static json_t *call_json(struct client *c, const char *method, const char *path, json_t *body)
{
	char why[1024];
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct response r = {0};
	json_t *v = NULL;
	if (client_request(c, method, path, text, &r, why, sizeof why) < 0)
		fprintf(stderr, "outpost: %s\n", why);
	else
		v = response_json(&r);
	free(text);
	free(r.body);
	return v;
}

/* The daemon is not running: a read goes to the spool itself, read-only,
 * when the caller may read spool.db (its owner: it is mode 0600). Returns
 * false, with why extended, when it cannot. */
static bool client_go_direct(struct client *c, char *why, size_t whylen)
{
	char path[4200], err[512];
	size_t used = strlen(why);
	if (!c->unreachable || !c->may_read_spool)
		return false;
	snprintf(path, sizeof path, "%s/spool.db", c->conf->data_dir);
	if (access(path, R_OK) != 0)
		return false;
	if ((c->direct = spool_open_readonly(c->conf->data_dir, err, sizeof err)) == NULL) {
		snprintf(why + used, whylen - used, "; reading the spool directly: %s", err);
		return false;
	}
	fprintf(stderr, "outpost: daemon not running: reading the spool directly\n");
	return true;
}

static const char *const read_paths[] = {
    [API_READ_QUEUE] = "/api/v1/queue",
    [API_READ_MESSAGE] = "/api/v1/queue/",
    [API_READ_RAW] = "/api/v1/queue/",
    [API_READ_HISTORY] = "/api/v1/history",
    [API_READ_TLS_RESULTS] = "/api/v1/tlsrpt/results",
};

/* A read of the API (query: the query string, or NULL) from the daemon, or
 * from the spool when the daemon is not running; the JSON answer, or NULL
 * after printing why. */
static json_t *read_json(struct client *c, enum api_read what, uint64_t id, const char *query)
{
	char why[1024], hex[17] = "";
	struct response r = {0};
	json_t *v = NULL;
	if (c->direct == NULL) {
		char *path;
		if (what == API_READ_MESSAGE || what == API_READ_RAW)
			spool_id_format(id, hex);
		if (asprintf(&path, "%s%s%s%s%s", read_paths[what], hex,
		             what == API_READ_RAW ? "/raw" : "", query ? "?" : "",
		             query ? query : "") < 0)
			abort();
		int rc = client_request(c, "GET", path, NULL, &r, why, sizeof why);
		free(path);
		if (rc == 0)
			v = response_json(&r);
		else if (!client_go_direct(c, why, sizeof why))
			fprintf(stderr, "outpost: %s\n", why);
		free(r.body);
		if (rc == 0 || c->direct == NULL)
			return v;
	}
	struct api_answer ans;
	api_read(c->direct, what, id, query, time_now_ms(), &ans);
	r = (struct response){.status = ans.status, .body = ans.body, .len = ans.len};
	v = response_json(&r);
	free(ans.body);
	return v;
}

/* Appends "?key=value" or "&key=value", the value URL-encoded. */
static void query_add(FILE *q, CURL *curl, char *sep, const char *key, const char *value)
{
	if (value == NULL)
		return;
	char *esc = curl_easy_escape(curl, value, 0);
	if (esc == NULL)
		abort();
	fprintf(q, "%c%s=%s", *sep, key, esc);
	*sep = '&';
	curl_free(esc);
}

/* Follows next_cursor from the first page to the last, handing each page's
 * array `key` to fn. query starts "limit=..."; 0, or -1 after printing why
 * (what was printed so far stays printed). */
static int walk_pages(struct client *c, enum api_read what, const char *query, const char *key,
                      void (*fn)(void *arg, const json_t *items), void *arg)
{
	char *cursor = NULL;
	for (;;) {
		char *q = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&q, &len);
		if (f == NULL)
			abort();
		char sep = '&';
		fputs(query, f);
		query_add(f, c->curl, &sep, "cursor", cursor);
		fclose(f);
		json_t *page = read_json(c, what, 0, q);
		free(q);
		free(cursor);
		cursor = NULL;
		if (page == NULL)
			return -1;
		const json_t *items = json_object_get(page, key);
		const char *next = json_string_value(json_object_get(page, "next_cursor"));
		if (!json_is_array(items)) {
			fprintf(stderr, "outpost: the answer has no \"%s\" array (an older daemon?)\n",
			        key);
			json_decref(page);
			return -1;
		}
		fn(arg, items);
		if (next && (cursor = strdup(next)) == NULL)
			abort();
		json_decref(page);
		if (cursor == NULL)
			return 0;
	}
}

/* ---- printing ---- */

static const char *str_field(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static void print_scalar(const json_t *v)
{
	if (json_is_string(v))
		fputs(log_quote(json_string_value(v)), stdout);
	else if (json_is_integer(v))
		printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		printf("%g", json_real_value(v));
	else if (json_is_boolean(v))
		fputs(json_is_true(v) ? "yes" : "no", stdout);
	else
		fputs("-", stdout);
}

static bool key_in(const char *key, const char *const *keys)
{
	for (; *keys; keys++)
		if (strcmp(key, *keys) == 0)
			return true;
	return false;
}

static const char *const rcpt_keys[] = {"address",      "state",      "attempts",
                                        "next_attempt", "last_error", NULL};

/* "  address state attempts=N next=... error=..." and, in detail, the rest. */
static void print_recipient(const json_t *r, bool detailed)
{
	const char *next = json_string_value(json_object_get(r, "next_attempt"));
	const char *err = json_string_value(json_object_get(r, "last_error"));
	const char *key;
	json_t *v;
	printf("  %s %s attempts=%" JSON_INTEGER_FORMAT, str_field(r, "address"),
	       str_field(r, "state"), json_integer_value(json_object_get(r, "attempts")));
	if (next)
		printf(" next=%s", next);
	if (err && *err)
		printf(" error=%s", log_quote(err));
	json_object_foreach((json_t *)r, key, v)
	{
		if (!detailed || key_in(key, rcpt_keys) || json_is_null(v) || json_is_object(v) ||
		    json_is_array(v))
			continue;
		printf(" %s=", key);
		print_scalar(v);
	}
	putchar('\n');
}

static const char *sender_text(const json_t *m)
{
	const char *s = str_field(m, "sender");
	return s[0] ? s : "<>";
}

static void print_message_summary(const json_t *m)
{
	size_t i;
	json_t *r;
	printf("%s  %s  %" JSON_INTEGER_FORMAT "  %s\n", str_field(m, "id"), str_field(m, "queued"),
	       json_integer_value(json_object_get(m, "size")), sender_text(m));
	json_array_foreach(json_object_get(m, "recipients"), i, r) print_recipient(r, false);
}

/* "TIME  ID  recipient result mx=... ip=... tls=... reply=..." */
static void print_attempt_line(const json_t *a)
{
	static const char *const extra[] = {"mx", "ip", "tls", "tls_policy", "tls_verified", NULL};
	printf("%s  %s  %s %s", str_field(a, "time"), str_field(a, "id"), str_field(a, "recipient"),
	       str_field(a, "result"));
	for (const char *const *k = extra; *k; k++) {
		const char *v = json_string_value(json_object_get(a, *k));
		if (v)
			printf(" %s=%s", *k, log_quote(v));
	}
	const char *reply = json_string_value(json_object_get(a, "reply"));
	if (reply && *reply)
		printf(" reply=%s", log_quote(reply));
	putchar('\n');
}

/* One element of a JSON array being printed a page at a time: what
 * json_dumpf(array, JSON_INDENT(2)) would print, without holding the whole
 * array (JSON strings hold no raw newline, so each line is indented). */
static void print_json_element(const json_t *v, size_t index)
{
	char *text = json_dumps(v, JSON_INDENT(2));
	if (text == NULL)
		abort();
	fputs(index == 0 ? "[\n  " : ",\n  ", stdout);
	for (const char *p = text; *p; p++) {
		putchar(*p);
		if (*p == '\n')
			fputs("  ", stdout);
	}
	free(text);
}

static void print_json_end(size_t n)
{
	puts(n == 0 ? "[]" : "\n]");
}

/* A listing printed as its pages come. */
struct listing {
	bool json;
	size_t n;
	void (*print)(const json_t *item); /* the text form */
};

static void listing_page(void *arg, const json_t *items)
{
	struct listing *l = arg;
	size_t i;
	json_t *v;
	json_array_foreach(items, i, v)
	{
		if (l->json)
			print_json_element(v, l->n);
		else
			l->print(v);
		l->n++;
	}
}

static const char *const msg_keys[] = {"id", "sender", "queued", "size", "recipients", NULL};

/* Fields the daemon adds later (headers, attempt history) still show. */
static void print_extra_field(const char *key, const json_t *v)
{
	size_t i;
	json_t *e;
	if (!json_is_array(v) && !json_is_object(v)) {
		printf("%-16s", key);
		print_scalar(v);
		putchar('\n');
		return;
	}
	printf("%s:\n", key);
	if (json_is_object(v)) {
		char *text = json_dumps(v, JSON_COMPACT);
		printf("  %s\n", text ? text : "");
		free(text);
		return;
	}
	json_array_foreach(v, i, e)
	{
		char *text = json_is_string(e) ? NULL : json_dumps(e, JSON_COMPACT);
		printf("  %s\n", text ? text : log_quote(json_string_value(e)));
		free(text);
	}
}

static void print_message_detail(const json_t *m)
{
	const char *key;
	json_t *v, *r;
	size_t i;
	printf("%-16s%s\n", "id", str_field(m, "id"));
	printf("%-16s%s\n", "sender", sender_text(m));
	printf("%-16s%s\n", "queued", str_field(m, "queued"));
	printf("%-16s%" JSON_INTEGER_FORMAT " bytes\n", "size",
	       json_integer_value(json_object_get(m, "size")));
	json_object_foreach((json_t *)m, key, v)
	{
		if (!key_in(key, msg_keys))
			print_extra_field(key, v);
	}
	puts("recipients:");
	json_array_foreach(json_object_get(m, "recipients"), i, r) print_recipient(r, true);
}

static void print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2));
	putchar('\n');
}

/* stdout may be a full disk or a closed pipe: that is a failure too. */
static int finish_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "outpost: cannot write the output: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- command line ---- */

enum {
	OPT_JSON = 1 << 0,
	OPT_DOMAIN = 1 << 1,
	OPT_HELD = 1 << 2,
	OPT_STATE = 1 << 3,
	OPT_RECIPIENT = 1 << 4,
	OPT_ALL = 1 << 5,
	OPT_SENDER = 1 << 6,
	OPT_OLDER = 1 << 7,
	OPT_NEWER = 1 << 8,
	OPT_SORT = 1 << 9,
	OPT_RESULT = 1 << 10,
	OPT_SINCE = 1 << 11,
	OPT_UNTIL = 1 << 12,
};

struct cli_opts {
	unsigned given; /* OPT_* */
	const char *domain, *state, *recipient, *sender, *older_than, *newer_than, *sort;
	const char *result, *since, *until;
	char **args; /* positional arguments */
	int nargs;
	uint64_t *ids; /* the positional arguments as queue ids */
};

struct command;
typedef int (*command_fn)(struct client *c, const struct command *cmd, const struct cli_opts *o);

struct command {
	const char *name;
	unsigned options;       /* allowed OPT_* */
	int min_args, max_args; /* positional; max -1: any number */
	const char *usage;
	command_fn run;
	const char *done; /* actions: "held"; pause/resume: the API path */
};

static int usage_error(const struct command *cmd, const char *fmt, const char *arg)
{
	fputs("outpost: ", stderr);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: outpost queue %s\n", cmd->usage);
	return 2;
}

static const struct option long_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"domain", required_argument, NULL, OPT_DOMAIN},
    {"held", no_argument, NULL, OPT_HELD},
    {"state", required_argument, NULL, OPT_STATE},
    {"recipient", required_argument, NULL, OPT_RECIPIENT},
    {"all", no_argument, NULL, OPT_ALL},
    {"sender", required_argument, NULL, OPT_SENDER},
    {"older-than", required_argument, NULL, OPT_OLDER},
    {"newer-than", required_argument, NULL, OPT_NEWER},
    {"sort", required_argument, NULL, OPT_SORT},
    {"result", required_argument, NULL, OPT_RESULT},
    {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int opt)
{
	for (const struct option *lo = long_options; lo->name; lo++)
		if (lo->val == opt)
			return lo->name;
	return "?";
}

static int take_option(const struct command *cmd, struct cli_opts *o, int opt)
{
	if (!(cmd->options & (unsigned)opt))
		return usage_error(cmd, "--%s does not apply here", option_name(opt));
	if (o->given & (unsigned)opt)
		return usage_error(cmd, "--%s given twice", option_name(opt));
	o->given |= (unsigned)opt;
	const char **slot = opt == OPT_DOMAIN      ? &o->domain
	                    : opt == OPT_STATE     ? &o->state
	                    : opt == OPT_RECIPIENT ? &o->recipient
	                    : opt == OPT_SENDER    ? &o->sender
	                    : opt == OPT_OLDER     ? &o->older_than
	                    : opt == OPT_NEWER     ? &o->newer_than
	                    : opt == OPT_SORT      ? &o->sort
	                    : opt == OPT_RESULT    ? &o->result
	                    : opt == OPT_SINCE     ? &o->since
	                    : opt == OPT_UNTIL     ? &o->until
	                                           : NULL;
	if (slot)
		*slot = optarg;
	return 0;
}

/* Options may come before or after the ids (GNU getopt permutes). */
static int parse_options(const struct command *cmd, int argc, char **argv, struct cli_opts *o)
{
	int opt;
	optind = 0; /* a full re-initialisation, whatever ran getopt before */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
		if (opt == '?')
			return usage_error(cmd, "unknown option %s", argv[optind - 1]);
		if (opt == ':')
			return usage_error(cmd, "%s needs a value", argv[optind - 1]);
		if (take_option(cmd, o, opt) != 0)
			return 2;
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	return 0;
}

static int check_ids(const struct command *cmd, struct cli_opts *o)
{
	if (o->nargs < cmd->min_args || (cmd->max_args >= 0 && o->nargs > cmd->max_args))
		return usage_error(cmd, "%s",
		                   o->nargs < cmd->min_args ? "missing queue id"
		                                            : "too many arguments");
	if (o->nargs > 0 && (o->ids = calloc((size_t)o->nargs, sizeof *o->ids)) == NULL)
		abort();
	for (int i = 0; i < o->nargs; i++)
		if (!spool_id_parse(o->args[i], &o->ids[i]))
			return usage_error(cmd, "bad queue id %s (expected up to 16 hex digits)",
			                   o->args[i]);
	return 0;
}

static bool is_duration(const char *s)
{
	int64_t ms;
	return duration_parse(s, &ms);
}

static bool is_time(const char *s)
{
	int64_t ms;
	return time_parse_rfc3339(s, &ms) || is_duration(s);
}

/* The values the API would refuse, refused first (docs/api.md). */
static int check_values(const struct command *cmd, const struct cli_opts *o)
{
	static const char *const results[] = {"delivered", "deferred", "failed", NULL};
	static const char *const sorts[] = {"oldest", "newest", NULL};
	if (o->older_than && !is_duration(o->older_than))
		return usage_error(cmd, "--older-than %s is not a duration (30m, 2h, 7d)",
		                   o->older_than);
	if (o->newer_than && !is_duration(o->newer_than))
		return usage_error(cmd, "--newer-than %s is not a duration (30m, 2h, 7d)",
		                   o->newer_than);
	if (o->since && !is_time(o->since))
		return usage_error(cmd, "--since %s is neither a time (2026-11-29T10:00:00Z) nor a "
		                        "duration (2h)", o->since);
	if (o->until && !is_time(o->until))
		return usage_error(cmd, "--until %s is neither a time (2026-11-29T10:00:00Z) nor a "
		                        "duration (2h)", o->until);
	if (o->result && !key_in(o->result, results))
		return usage_error(cmd, "unknown result %s (delivered, deferred, failed)", o->result);
	if (o->sort && !key_in(o->sort, sorts))
		return usage_error(cmd, "--sort %s: oldest or newest", o->sort);
	return 0;
}

static int check_selectors(const struct command *cmd, const struct cli_opts *o)
{
	if (check_values(cmd, o) != 0)
		return 2;
	if (o->state && rcpt_state_parse(o->state) < 0)
		return usage_error(cmd, "unknown state %s", o->state);
	if ((o->given & OPT_HELD) && o->state)
		return usage_error(cmd, "%s", "--held and --state exclude each other");
	if (!(cmd->options & OPT_ALL))
		return 0; /* only the actions need a selector */
	bool some = o->nargs > 0 || o->domain || o->recipient;
	if (!some && !(o->given & OPT_ALL))
		return usage_error(cmd, "%s",
		                   "say which messages: ids, --domain, --recipient or --all");
	if (some && (o->given & OPT_ALL))
		return usage_error(cmd, "%s", "--all cannot be combined with other selectors");
	return 0;
}

/* ---- commands ---- */

/* "limit=1000&domain=...&state=..."; caller frees. */
static char *list_query(CURL *curl, const struct cli_opts *o)
{
	char *query = NULL;
	size_t len = 0;
	FILE *q = open_memstream(&query, &len);
	if (q == NULL)
		abort();
	char sep = '&';
	fputs("limit=" PAGE_LIMIT, q);
	for (int i = 0; i < o->nargs; i++) {
		char id[17];
		spool_id_format(o->ids[i], id);
		query_add(q, curl, &sep, "id", id);
	}
	query_add(q, curl, &sep, "domain", o->domain);
	query_add(q, curl, &sep, "recipient", o->recipient);
	query_add(q, curl, &sep, "state", (o->given & OPT_HELD) ? "held" : o->state);
	query_add(q, curl, &sep, "sender", o->sender);
	query_add(q, curl, &sep, "older_than", o->older_than);
	query_add(q, curl, &sep, "newer_than", o->newer_than);
	query_add(q, curl, &sep, "result", o->result);
	query_add(q, curl, &sep, "since", o->since);
	query_add(q, curl, &sep, "until", o->until);
	query_add(q, curl, &sep, "sort", o->sort);
	fclose(q);
	return query;
}

static bool filtered(const struct cli_opts *o)
{
	return o->nargs > 0 || (o->given & ~(unsigned)(OPT_JSON | OPT_SORT)) != 0;
}

/* Every page, as one JSON array or as text with a count at the end. */
static int cmd_list(struct client *c, const struct command *cmd, const struct cli_opts *o)
{
	bool history = strcmp(cmd->name, "history") == 0;
	struct listing l = {.json = o->given & OPT_JSON,
	                    .print = history ? print_attempt_line : print_message_summary};
	char *query = list_query(c->curl, o);
	int rc = walk_pages(c, history ? API_READ_HISTORY : API_READ_QUEUE, query,
	                    history ? "attempts" : "messages", listing_page, &l);
	free(query);
	if (rc < 0) {
		fflush(stdout);
		return 1;
	}
	if (l.json)
		print_json_end(l.n);
	else if (l.n > 0)
		printf("%zu %s%s\n", l.n, history ? "attempt" : "message", l.n == 1 ? "" : "s");
	else if (history)
		puts(filtered(o) ? "no attempt matches" : "no attempt recorded");
	else
		puts(filtered(o) ? "no message matches" : "queue is empty");
	return finish_output();
}

static int cmd_show(struct client *c, const struct command *cmd, const struct cli_opts *o)
{
	json_t *m = read_json(c, API_READ_MESSAGE, o->ids[0], NULL);
	if (m == NULL)
		return 1;
	if (o->given & OPT_JSON)
		print_json(m);
	else
		print_message_detail(m);
	json_decref(m);
	return finish_output();
}

static int cmd_cat(struct client *c, const struct command *cmd, const struct cli_opts *o)
{
	char path[64], id[17], why[1024];
	struct response r = {.stream = true};
	spool_id_format(o->ids[0], id);
	snprintf(path, sizeof path, "/api/v1/queue/%s/raw", id);
	int rc = client_request(c, "GET", path, NULL, &r, why, sizeof why);
	if (rc < 0) {
		fprintf(stderr, "outpost: %s\n", why);
	} else if (r.status != 200) {
		json_decref(response_json(&r));
		rc = -1;
	}
	free(r.body);
	return rc < 0 ? 1 : finish_output();
}

static json_t *action_body(const struct cli_opts *o)
{
	json_t *body = json_object();
	if (o->nargs > 0) {
		json_t *ids = json_array();
		for (int i = 0; i < o->nargs; i++) {
			char id[17];
			spool_id_format(o->ids[i], id);
			json_array_append_new(ids, json_string(id));
		}
		json_object_set_new(body, "ids", ids);
	}
	if (o->domain)
		json_object_set_new(body, "domain", json_string(o->domain));
	if (o->recipient)
		json_object_set_new(body, "recipient", json_string(o->recipient));
	if (o->given & OPT_ALL)
		json_object_set_new(body, "all", json_true());
	return body;
}

static int cmd_action(struct client *c, const struct command *cmd, const struct cli_opts *o)
{
	char path[64];
	snprintf(path, sizeof path, "/api/v1/queue/%s", cmd->name);
	json_t *body = action_body(o);
	json_t *v = call_json(c, "POST", path, body);
	json_decref(body);
	if (v == NULL)
		return 1;
	json_int_t n = json_integer_value(json_object_get(v, "changed"));
	printf("%" JSON_INTEGER_FORMAT " recipient%s %s\n", n, n == 1 ? "" : "s", cmd->done);
	json_decref(v);
	return finish_output();
}

static int cmd_pause(struct client *c, const struct command *cmd, const struct cli_opts *o)
{
	char path[64];
	snprintf(path, sizeof path, "/api/v1/delivery/%s", cmd->name);
	json_t *v = call_json(c, "POST", path, NULL);
	if (v == NULL)
		return 1;
	printf("delivery %s\n", json_is_true(json_object_get(v, "paused")) ? "paused" : "resumed");
	json_decref(v);
	return finish_output();
}

#define SELECTORS "(ID... | --domain D | --recipient ADDR | --all)"

static const struct command commands[] = {
    {"list",
     OPT_JSON | OPT_DOMAIN | OPT_HELD | OPT_STATE | OPT_RECIPIENT | OPT_SENDER | OPT_OLDER |
         OPT_NEWER | OPT_SORT,
     0, 0,
     "list [--json] [--domain D] [--held] [--state S] [--recipient R] [--sender S]\n"
     "                     [--older-than DURATION] [--newer-than DURATION] [--sort oldest|newest]",
     cmd_list, NULL},
    {"show", OPT_JSON, 1, 1, "show ID [--json]", cmd_show, NULL},
    {"history", OPT_JSON | OPT_DOMAIN | OPT_RECIPIENT | OPT_RESULT | OPT_SINCE | OPT_UNTIL | OPT_SORT,
     0, -1,
     "history [--json] [--recipient R] [--domain D] [--result delivered|deferred|failed]\n"
     "                     [--since TIME] [--until TIME] [--sort newest|oldest] [ID...]",
     cmd_list, NULL},
    {"cat", 0, 1, 1, "cat ID", cmd_cat, NULL},
    {"kick", OPT_DOMAIN | OPT_RECIPIENT | OPT_ALL, 0, -1, "kick " SELECTORS, cmd_action, "kicked"},
    {"hold", OPT_DOMAIN | OPT_RECIPIENT | OPT_ALL, 0, -1, "hold " SELECTORS, cmd_action, "held"},
    {"release", OPT_DOMAIN | OPT_RECIPIENT | OPT_ALL, 0, -1, "release " SELECTORS, cmd_action,
     "released"},
    {"drop", OPT_DOMAIN | OPT_RECIPIENT | OPT_ALL, 0, -1, "drop " SELECTORS, cmd_action, "dropped"},
    {"pause", 0, 0, 0, "pause", cmd_pause, NULL},
    {"resume", 0, 0, 0, "resume", cmd_pause, NULL},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static int usage_all(const char *fmt, const char *arg)
{
	if (fmt) {
		fputs("outpost: ", stderr);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(stderr, "%s outpost queue %s\n",
		        i ? "      " : "usage:", commands[i].usage);
	return 2;
}

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(name, commands[i].name) == 0)
			return &commands[i];
	return NULL;
}

static int run_command(const struct command *cmd, const struct cli_opts *o, const struct conf *conf)
{
	struct client c;
	char why[1024];
	if (client_open(&c, conf, CONNECT_MS, TOTAL_MS, why, sizeof why) < 0) {
		fprintf(stderr, "outpost: %s\n", why);
		return 1;
	}
	c.may_read_spool = cmd->run == cmd_list || cmd->run == cmd_show;
	int rc = cmd->run(&c, cmd, o);
	client_close(&c);
	return rc;
}

int cli_queue(int argc, char **argv, const struct conf *conf)
{
	if (argc < 1)
		return usage_all(NULL, NULL);
	const struct command *cmd = command_find(argv[0]);
	if (cmd == NULL)
		return usage_all("unknown queue command %s", argv[0]);
	struct cli_opts o = {0};
	int rc = parse_options(cmd, argc, argv, &o);
	if (rc == 0)
		rc = check_ids(cmd, &o);
	if (rc == 0)
		rc = check_selectors(cmd, &o);
	if (rc == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = run_command(cmd, &o, conf);
		curl_global_cleanup();
	}
	free(o.ids);
	return rc;
}

/* ---- outpost tlsrpt results ---- */

static void print_results(const json_t *list)
{
	size_t i, k;
	json_t *r, *f;
	if (json_array_size(list) == 0)
		printf("no TLS results recorded\n");
	json_array_foreach(list, i, r)
	{
		const json_t *p = json_object_get(r, "policy"), *sum = json_object_get(r, "summary");
		printf("%s %s: %" JSON_INTEGER_FORMAT " successful, %" JSON_INTEGER_FORMAT
		       " failed sessions\n",
		       json_string_value(json_object_get(p, "policy-type")),
		       json_string_value(json_object_get(p, "policy-domain")),
		       json_integer_value(json_object_get(sum, "total-successful-session-count")),
		       json_integer_value(json_object_get(sum, "total-failure-session-count")));
		json_t *lines = json_object_get(p, "policy-string");
		json_array_foreach(lines, k, f) printf("    policy: %s\n", json_string_value(f));
		json_array_foreach(json_object_get(r, "failure-details"), k, f)
		{
			printf("    %" JSON_INTEGER_FORMAT " x %s", 
			       json_integer_value(json_object_get(f, "failed-session-count")),
			       json_string_value(json_object_get(f, "result-type")));
			const char *reason = json_string_value(json_object_get(f, "failure-reason-code"));
			const char *mx = json_string_value(json_object_get(f, "receiving-mx-hostname"));
			const char *ip = json_string_value(json_object_get(f, "receiving-ip"));
			if (reason && reason[0])
				printf(" (%s)", reason);
			if (mx && mx[0])
				printf(" mx %s", mx);
			if (ip && ip[0])
				printf(" [%s]", ip);
			putchar('\n');
		}
	}
}

static int tlsrpt_usage(const char *fmt, const char *arg)
{
	if (fmt) {
		fputs("outpost: ", stderr);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: outpost tlsrpt results [--day YYYY-MM-DD] [--domain D] [--json]\n"
	                "       outpost tlsrpt report DOMAIN [--day YYYY-MM-DD]\n"
	                "       outpost tlsrpt send [--day YYYY-MM-DD] [--dry-run]\n");
	return 2;
}

struct tlsrpt_opts {
	const char *day, *domain;
	bool json, dry_run;
	const char *arg; /* report: the domain */
};

/* Policy domains are stored in lower case, without the root dot. */
static void domain_key(const char *in, char *out, size_t n)
{
	size_t k = 0;
	for (; in[k] && k + 1 < n; k++)
		out[k] = (char)tolower((unsigned char)in[k]);
	out[k] = '\0';
	if (k > 0 && out[k - 1] == '.')
		out[k - 1] = '\0';
}

static json_t *tlsrpt_call(struct client *c, const char *cmd, const struct tlsrpt_opts *o)
{
	char *path = NULL, sep = '?', lower[256] = "";
	size_t len = 0;
	json_t *v = NULL;
	FILE *q = open_memstream(&path, &len);
	if (q == NULL)
		abort();
	if (strcmp(cmd, "send") == 0) {
		fclose(q);
		json_t *body = json_pack("{s:b}", "dry_run", o->dry_run);
		if (o->day)
			json_object_set_new(body, "day", json_string(o->day));
		v = call_json(c, "POST", "/api/v1/tlsrpt/send", body);
		json_decref(body);
		free(path);
		return v;
	}
	fprintf(q, "/api/v1/tlsrpt/%s", cmd);
	query_add(q, c->curl, &sep, "day", o->day);
	const char *domain = strcmp(cmd, "report") == 0 ? o->arg : o->domain;
	if (domain)
		domain_key(domain, lower, sizeof lower);
	query_add(q, c->curl, &sep, "domain", domain ? lower : NULL);
	fclose(q);
	v = call_json(c, "GET", path, NULL);
	free(path);
	return v;
}

static void print_sent(const json_t *list)
{
	size_t i;
	json_t *e;
	if (json_array_size(list) == 0)
		printf("no report to make\n");
	json_array_foreach(list, i, e)
	    printf("%s %s: %s\n", json_string_value(json_object_get(e, "day")),
	           json_string_value(json_object_get(e, "domain")),
	           json_string_value(json_object_get(e, "outcome")));
}

int cli_tlsrpt(int argc, char **argv, const struct conf *conf)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},     {"day", required_argument, NULL, 'd'},
	    {"domain", required_argument, NULL, 'D'}, {"dry-run", no_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	if (argc < 1)
		return tlsrpt_usage(NULL, NULL);
	const char *cmd = argv[0];
	bool results = strcmp(cmd, "results") == 0, report = strcmp(cmd, "report") == 0,
	     send = strcmp(cmd, "send") == 0;
	if (!results && !report && !send)
		return tlsrpt_usage("unknown tlsrpt command %s", cmd);
	struct tlsrpt_opts o = {0};
	int opt;
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
		if (opt == '?' || opt == ':')
			return tlsrpt_usage(opt == '?' ? "unknown option %s" : "%s needs a value",
			                    argv[optind - 1]);
		if ((opt == 'j' && !results) || (opt == 'D' && !results) || (opt == 'n' && !send))
			return tlsrpt_usage("%s does not apply here", argv[optind - 1]);
		if (opt == 'j')
			o.json = true;
		else if (opt == 'd')
			o.day = optarg;
		else if (opt == 'D')
			o.domain = optarg;
		else
			o.dry_run = true;
	}
	if (report && optind + 1 != argc)
		return tlsrpt_usage("%s", "which domain?");
	if (!report && optind < argc)
		return tlsrpt_usage("unexpected argument %s", argv[optind]);
	o.arg = report ? argv[optind] : NULL;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct client c;
	char why[1024];
	int rc = 1;
	if (client_open(&c, conf, CONNECT_MS, TOTAL_MS, why, sizeof why) < 0) {
		fprintf(stderr, "outpost: %s\n", why);
	} else {
		json_t *v = tlsrpt_call(&c, cmd, &o);
		if (v) {
			if (report || o.json)
				print_json(v);
			else if (send)
				print_sent(v);
			else
				print_results(v);
			json_decref(v);
			rc = finish_output();
		}
		client_close(&c);
	}
	curl_global_cleanup();
	return rc;
}
