/* conf.c - configuration keys, defaults and the INI loader. */
#include "conf/conf.h"

#include "util/timeutil.h"

#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_type { T_STRING, T_INT, T_SIZE, T_DURATION, T_BOOL, T_LIST, T_ENUM };

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def;
	const char *doc;
	int64_t min, max;          /* T_INT, T_SIZE, T_DURATION */
	const char *const *values; /* T_ENUM: allowed names, index = value */
	bool reload;               /* a change applies at reload (conf_reload) */
};

static const char *const trust_ad_values[] = {"auto", "yes", "no", NULL};
static const char *const log_level_values[] = {"debug", "info", "warn", "error", NULL};
static const char *const metrics_auth_values[] = {"loopback", "always", "never", NULL};
static const char *const dkim_canon_values[] = {"relaxed/relaxed", "relaxed/simple",
                                                "simple/relaxed", "simple/simple", NULL};

#define OFF(f)  offsetof(struct conf, f)
#define BIG     INT64_MAX
#define RELOADS .reload = true

/* The one table of every key. docs/configuration.md is its output by
 * `outpost config defaults`, outpost.conf(5) by `outpost config defaults
 * --man`. RELOADS marks the keys whose new value a reload (SIGHUP) applies
 * to the running daemon (docs/install.md, "Reload"): only scalars, and only
 * those the daemon reads where it uses them, on the loop thread (or hands
 * on as copies), so that changing them in place is safe. Every other
 * change takes a restart. */
static const struct key keys[] = {
    {"server", "hostname", T_STRING, OFF(hostname), "",
     "name used in EHLO, Received: and DSNs; empty: the system host name"},
    {"server", "data_dir", T_STRING, OFF(data_dir), "./data",
     "directory of the spool (spool.db) and other state"},
    {"server", "log_level", T_ENUM, OFF(log_level), "info", "debug, info, warn or error", 0, 0,
     log_level_values, RELOADS},
    {"submission", "listen", T_LIST, OFF(submission_listen), "127.0.0.1:2525",
     "host:port to accept submissions on (repeatable)"},
    {"submission", "tls_cert", T_STRING, OFF(tls_cert), "",
     "PEM certificate chain; enables STARTTLS"},
    {"submission", "tls_key", T_STRING, OFF(tls_key), "", "PEM private key of tls_cert"},
    {"submission", "users_file", T_STRING, OFF(users_file), "",
     "lines user:crypt(3)-hash; enables AUTH PLAIN and LOGIN (over TLS or from loopback)"},
    {"submission", "max_message_size", T_SIZE, OFF(max_message_size), "50M",
     "largest message accepted, advertised as SIZE", 1024, (int64_t)1 << 40, RELOADS},
    {"submission", "local_socket", T_STRING, OFF(local_socket), "submit.sock",
     "unix socket any local user submits through (outpost send); relative to data_dir; "
     "empty: none"},
    {"submission", "max_pending_bytes", T_SIZE, OFF(max_pending_bytes), "256M",
     "message octets all sessions together may hold before their commit; beyond, 452 4.3.1",
     1024 * 1024, (int64_t)1 << 40, RELOADS},
    {"submission", "max_recipients", T_INT, OFF(max_recipients), "1000",
     "recipients per message; more get 452 4.5.3", 1, 1000000, RELOADS},
    {"submission", "max_line_length", T_INT, OFF(max_line_length), "998",
     "longest command or message line, without CRLF (RFC 5322 §2.1.1)", 512, 1 << 20},
    {"submission", "max_errors", T_INT, OFF(max_errors), "10",
     "failed commands before the session is closed with 421", 1, 1000000, RELOADS},
    {"submission", "max_commands", T_INT, OFF(max_commands), "1000000",
     "commands per session before it is closed with 421", 10, BIG, RELOADS},
    {"submission", "max_auth_failures", T_INT, OFF(max_auth_failures), "3",
     "failed AUTH attempts before the session is closed", 1, 100, RELOADS},
    {"submission", "idle_timeout", T_DURATION, OFF(idle_timeout_ms), "5m",
     "close a session silent for this long (RFC 5321 §4.5.3.2.7)", 1000, BIG, RELOADS},
    {"submission", "max_connections", T_INT, OFF(max_connections), "1000",
     "sessions at once; more get 421 4.7.0", 1, 1000000, RELOADS},
    {"submission", "max_connections_per_ip", T_INT, OFF(max_connections_per_ip), "100",
     "sessions at once from one client address; more get 421 4.7.0", 1, 1000000, RELOADS},
    {"admin", "listen", T_LIST, OFF(admin_listen), "127.0.0.1:8025",
     "host:port or unix:PATH of the JSON API and /metrics (repeatable)"},
    {"admin", "token_file", T_STRING, OFF(admin_token_file), "admin.token",
     "bearer token of the API (made at first start, mode 0600; the CLI reads it); "
     "relative to data_dir"},
    {"admin", "users_file", T_STRING, OFF(admin_users_file), "",
     "lines user:crypt(3)-hash allowed in with HTTP Basic"},
    {"admin", "tls_cert", T_STRING, OFF(admin_tls_cert), "",
     "PEM certificate chain: the admin listeners on addresses other than loopback speak HTTPS"},
    {"admin", "tls_key", T_STRING, OFF(admin_tls_key), "", "PEM private key of tls_cert"},
    {"admin", "metrics_auth", T_ENUM, OFF(metrics_auth), "loopback",
     "who needs a credential for /metrics: loopback (all but loopback and unix-socket "
     "clients), always, never",
     0, 0, metrics_auth_values, RELOADS},
    {"dns", "nameserver", T_LIST, OFF(dns_nameserver), "",
     "ip:port of a recursive resolver (repeatable); empty: /etc/resolv.conf"},
    {"dns", "trust_ad", T_ENUM, OFF(trust_ad), "auto",
     "trust the AD bit: auto (only from loopback resolvers), yes, no", 0, 0, trust_ad_values},
    {"dns", "cache_max_ttl", T_DURATION, OFF(dns_cache_max_ttl_ms), "1h",
     "keep answers for their TTL, at most this long (0: ask the resolver every time)", 0,
     86400000},
    {"delivery", "port", T_INT, OFF(delivery_port), "25", "TCP port of MX hosts", 1, 65535},
    {"delivery", "max_attempts", T_INT, OFF(max_attempts), "8", "attempts before a recipient fails",
     1, 1000, RELOADS},
    {"delivery", "first_retry", T_DURATION, OFF(first_retry_ms), "7m30s",
     "wait after the first failed attempt; doubles after each further one", 1000, BIG, RELOADS},
    {"delivery", "delay_notice_after", T_INT, OFF(delay_notice_after), "5",
     "failed attempts before a delay DSN is sent (0: never)", 0, 1000, RELOADS},
    {"delivery", "paused", T_BOOL, OFF(paused), "no",
     "accept and queue but deliver nothing (also `outpost queue pause`)", RELOADS},
    {"delivery", "max_connections", T_INT, OFF(delivery_max_connections), "200",
     "delivery attempts (each holding at most one connection) at once", 1, 100000, RELOADS},
    {"delivery", "max_connections_per_destination", T_INT, OFF(delivery_max_per_destination), "20",
     "delivery attempts at once to one recipient domain", 1, 100000, RELOADS},
    {"delivery", "connection_max_messages", T_INT, OFF(connection_max_messages), "100",
     "messages one connection carries before it is closed", 1, 1000000, RELOADS},
    {"delivery", "connection_idle_timeout", T_DURATION, OFF(connection_idle_timeout_ms), "10s",
     "how long an idle connection is kept for reuse", 0, 3600000, RELOADS},
    {"delivery", "connect_timeout", T_DURATION, OFF(connect_timeout_ms), "30s",
     "TCP connection set-up to an MX host", 1000, 3600000, RELOADS},
    {"delivery", "command_timeout", T_DURATION, OFF(command_timeout_ms), "5m",
     "a whole reply to a command, or a stalled write (RFC 5321 §4.5.3.2)", 1000, 3600000, RELOADS},
    {"delivery", "data_timeout", T_DURATION, OFF(data_timeout_ms), "10m",
     "the reply after the end of the message data (RFC 5321 §4.5.3.2.6)", 1000, 3600000, RELOADS},
    {"delivery", "tls_timeout", T_DURATION, OFF(tls_timeout_ms), "1m", "a TLS handshake", 1000,
     3600000, RELOADS},
    {"delivery", "log_retention", T_DURATION, OFF(log_retention_ms), "7d",
     "how long a finished message and its delivery log stay visible", 0, BIG, RELOADS},
    {"tls", "ca_file", T_STRING, OFF(ca_file), "",
     "extra PEM trust anchors for PKIX (SMTP and MTA-STS HTTPS)"},
    {"dane", "enabled", T_BOOL, OFF(dane_enabled), "yes",
     "look up TLSA records of DNSSEC-signed MX hosts and require what they say (RFC 7672)",
     RELOADS},
    {"mtasts", "enabled", T_BOOL, OFF(mtasts_enabled), "yes",
     "fetch, cache and apply recipient domains' MTA-STS policies (RFC 8461)"},
    {"mtasts", "fetch_timeout", T_DURATION, OFF(mtasts_fetch_timeout_ms), "1m",
     "the TXT lookup and HTTPS fetch of a policy together (RFC 8461 §3.3)", 1000, 600000},
    {"mtasts", "refresh_interval", T_DURATION, OFF(mtasts_refresh_interval_ms), "12h",
     "cached policies older than this are fetched again in the background (RFC 8461 §5.1)", 60000,
     BIG},
    {"tlsrpt", "enabled", T_BOOL, OFF(tlsrpt_enabled), "no", "send daily TLS reports (RFC 8460)"},
    {"tlsrpt", "organization", T_STRING, OFF(tlsrpt_organization), "",
     "organization-name in TLS reports; empty: the submitter"},
    {"tlsrpt", "contact", T_STRING, OFF(tlsrpt_contact), "",
     "contact-info in TLS reports; empty: postmaster@ the submitter"},
    {"tlsrpt", "submitter", T_STRING, OFF(tlsrpt_submitter), "",
     "our domain in TLS reports (report-id, From, DKIM); empty: the hostname or its nearest "
     "parent domain with [dkim] keys"},
    {"tlsrpt", "all_success", T_BOOL, OFF(tlsrpt_all_success), "no",
     "also report days on which every TLS session succeeded", RELOADS},
    {"dkim", "key", T_LIST, OFF(dkim_keys), "",
     "DOMAIN SELECTOR PATH: sign mail from DOMAIN with the PEM private key at PATH (RSA of "
     "1024 bits or more, or Ed25519; relative to data_dir); repeatable, several selectors "
     "per domain"},
    {"dkim", "canonicalization", T_ENUM, OFF(dkim_canonicalization), "relaxed/relaxed",
     "c= of the signatures: header/body, each relaxed or simple (RFC 6376 §3.4)", 0, 0,
     dkim_canon_values},
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *type_names[] = {"string", "integer", "size", "duration", "bool", "list", "enum"};

void strlist_add(struct strlist *l, const char *s)
{
	l->items = realloc(l->items, (l->len + 1) * sizeof *l->items);
	if (l->items == NULL)
		abort();
	l->items[l->len++] = strdup(s);
}

void strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->len; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->len = 0;
}

static bool parse_bool(const char *v, bool *out)
{
	static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(v, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

static bool parse_int(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return false;
	*out = n;
	return true;
}

/* "50M", "512K", "1G" or plain octets. */
static bool parse_size(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || n < 0)
		return false;
	int64_t mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mult = 1024 * 1024 * 1024, end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || n > INT64_MAX / mult)
		return false;
	*out = n * mult;
	return true;
}

static int enum_index(const struct key *k, const char *v)
{
	for (int i = 0; k->values[i]; i++)
		if (strcasecmp(k->values[i], v) == 0)
			return i;
	return -1;
}

/* Sets one key from text; on error writes why and returns false. */
static bool key_set(struct conf *c, const struct key *k, const char *v, bool append, char *why,
                    size_t whylen)
{
	void *field = (char *)c + k->offset;
	int64_t n = 0;
	bool b;
	switch (k->type) {
	case T_STRING:
		free(*(char **)field);
		*(char **)field = strdup(v);
		return true;
	case T_LIST:
		if (!append)
			strlist_clear(field);
		if (*v)
			strlist_add(field, v);
		return true;
	case T_BOOL:
		if (!parse_bool(v, &b))
			return snprintf(why, whylen, "bad boolean \"%s\" (yes or no)", v), false;
		*(bool *)field = b;
		return true;
	case T_ENUM: {
		int i = enum_index(k, v);
		if (i < 0)
			return snprintf(why, whylen, "bad value \"%s\"", v), false;
		*(int64_t *)field = i;
		return true;
	}
	case T_INT:
		if (!parse_int(v, &n))
			return snprintf(why, whylen, "bad integer \"%s\"", v), false;
		break;
	case T_SIZE:
		if (!parse_size(v, &n))
			return snprintf(why, whylen, "bad size \"%s\" (e.g. 50M)", v), false;
		break;
	case T_DURATION:
		if (!duration_parse(v, &n))
			return snprintf(why, whylen, "bad duration \"%s\" (e.g. 30s, 7m30s, 4h)",
			                v),
			       false;
		break;
	}
	if (n < k->min || n > k->max)
		return snprintf(why, whylen, "value \"%s\" out of range", v), false;
	*(int64_t *)field = n;
	return true;
}

static const struct key *key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static char *system_hostname(void)
{
	char h[256] = "localhost";
	gethostname(h, sizeof h - 1);
	h[255] = '\0';
	return strdup(h);
}

void conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	char why[128];
	for (size_t i = 0; i < NKEYS; i++)
		if (!key_set(c, &keys[i], keys[i].def, false, why, sizeof why))
			abort(); /* a bad default is a bug in the table */
	free(c->hostname);
	c->hostname = system_hostname();
}

/* inih calls the reader once per line, then the handler for that line, so a
 * counting reader tells the handler its line number. */
struct load_state {
	struct conf *c;
	FILE *f;
	const char *path;
	int line;
	int errors;
	conf_error_fn err;
	void *arg;
	bool seen[NKEYS]; /* first occurrence of a list replaces its default */
};

static char *counting_reader(char *str, int num, void *stream)
{
	struct load_state *st = stream;
	char *r = fgets(str, num, st->f);
	if (r != NULL)
		st->line++;
	return r;
}

static void load_error(struct load_state *st, const char *fmt, const char *a, const char *b)
{
	char msg[512];
	snprintf(msg, sizeof msg, fmt, a, b);
	st->errors++;
	st->err(st->path, st->line, msg, st->arg);
}

static int load_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_state *st = user;
	if (name == NULL) /* a section header alone */
		return 1;
	const struct key *k = key_find(section, name);
	if (k == NULL) {
		load_error(st, "unknown key \"%s\" in section [%s]", name, section);
		return 1;
	}
	size_t idx = (size_t)(k - keys);
	char why[200];
	if (!key_set(st->c, k, value, st->seen[idx], why, sizeof why)) {
		char full[300];
		snprintf(full, sizeof full, "[%s] %s: %s", section, name, why);
		load_error(st, "%s%s", full, "");
	}
	st->seen[idx] = true;
	return 1;
}

int conf_load_file(struct conf *c, const char *path, conf_error_fn err, void *arg)
{
	struct load_state st = {.c = c, .path = path, .err = err, .arg = arg};
	st.f = fopen(path, "r");
	if (st.f == NULL)
		return -1;
	int rc = ini_parse_stream(counting_reader, &st, load_handler, &st);
	fclose(st.f);
	if (rc > 0) { /* inih: first line with a syntax error */
		st.line = rc;
		load_error(&st, "syntax error%s%s", "", "");
	}
	if (c->hostname == NULL || c->hostname[0] == '\0') {
		free(c->hostname);
		c->hostname = system_hostname();
	}
	return st.errors;
}

static void print_error(const char *file, int line, const char *msg, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

#ifndef OUTPOST_SYSTEM_CONFIG
#define OUTPOST_SYSTEM_CONFIG ""
#endif

const char *conf_system_path(void)
{
	return OUTPOST_SYSTEM_CONFIG;
}

const char *conf_default_path(void)
{
	if (access("outpost.conf", R_OK) == 0)
		return "outpost.conf";
	if (OUTPOST_SYSTEM_CONFIG[0] != '\0' && access(OUTPOST_SYSTEM_CONFIG, R_OK) == 0)
		return OUTPOST_SYSTEM_CONFIG;
	return NULL;
}

int conf_load_default(struct conf *c, const char *path)
{
	conf_defaults(c);
	if (path == NULL)
		path = conf_default_path();
	if (path == NULL)
		return 0;
	int n = conf_load_file(c, path, print_error, NULL);
	if (n < 0) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		return -1;
	}
	return n == 0 ? 0 : -1;
}

/* The default as the reference prints it. */
static const char *key_default_text(const struct key *k)
{
	if (k->offset == OFF(hostname))
		return "(system)";
	return k->def[0] ? k->def : "\"\"";
}

void conf_print_defaults(FILE *out)
{
	fprintf(out, "%-12s %-24s %-9s %-16s %s\n", "SECTION", "KEY", "TYPE", "DEFAULT", "DOC");
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		fprintf(out, "%-12s %-24s %-9s %-16s %s\n", k->section, k->name,
		        type_names[k->type], key_default_text(k), k->doc);
	}
}

size_t conf_key_count(void)
{
	return NKEYS;
}

void conf_key_get(size_t i, struct conf_key_info *out)
{
	const struct key *k = &keys[i];
	*out = (struct conf_key_info){
	    .section = k->section,
	    .name = k->name,
	    .type = type_names[k->type],
	    .def = key_default_text(k),
	    .doc = k->doc,
	    .values = k->type == T_ENUM ? k->values : NULL,
	    .reload = k->reload && k->type != T_STRING && k->type != T_LIST,
	};
}

static void print_value(const struct conf *c, const struct key *k, FILE *out)
{
	const void *field = (const char *)c + k->offset;
	char buf[64];
	switch (k->type) {
	case T_STRING:
		fprintf(out, "%s = %s\n", k->name, *(char *const *)field);
		break;
	case T_LIST: {
		const struct strlist *l = field;
		for (size_t i = 0; i < l->len; i++)
			fprintf(out, "%s = %s\n", k->name, l->items[i]);
		break;
	}
	case T_BOOL:
		fprintf(out, "%s = %s\n", k->name, *(const bool *)field ? "yes" : "no");
		break;
	case T_ENUM:
		fprintf(out, "%s = %s\n", k->name, k->values[*(const int64_t *)field]);
		break;
	case T_DURATION:
		duration_format(*(const int64_t *)field, buf, sizeof buf);
		fprintf(out, "%s = %s\n", k->name, buf);
		break;
	default:
		fprintf(out, "%s = %lld\n", k->name, (long long)*(const int64_t *)field);
	}
}

/* The value of k in c as a config file spells it (a list joined with ", "),
 * cut to n bytes. */
static void key_format(const struct conf *c, const struct key *k, char *buf, size_t n)
{
	const void *field = (const char *)c + k->offset;
	int64_t v = k->type == T_STRING || k->type == T_LIST || k->type == T_BOOL
	                ? 0
	                : *(const int64_t *)field;
	buf[0] = '\0';
	switch (k->type) {
	case T_STRING:
		snprintf(buf, n, "%s", *(char *const *)field ? *(char *const *)field : "");
		break;
	case T_LIST: {
		const struct strlist *l = field;
		size_t len = 0;
		for (size_t i = 0; i < l->len && len < n; i++)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", i ? ", " : "",
			                        l->items[i]);
		break;
	}
	case T_BOOL:
		snprintf(buf, n, "%s", *(const bool *)field ? "yes" : "no");
		break;
	case T_ENUM:
		snprintf(buf, n, "%s", k->values[v]);
		break;
	case T_DURATION:
		duration_format(v, buf, n);
		break;
	default:
		snprintf(buf, n, "%lld", (long long)v);
	}
}

static bool key_equal(const struct conf *a, const struct conf *b, const struct key *k)
{
	const void *fa = (const char *)a + k->offset, *fb = (const char *)b + k->offset;
	switch (k->type) {
	case T_STRING: {
		const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
		return strcmp(sa ? sa : "", sb ? sb : "") == 0;
	}
	case T_LIST: {
		const struct strlist *la = fa, *lb = fb;
		if (la->len != lb->len)
			return false;
		for (size_t i = 0; i < la->len; i++)
			if (strcmp(la->items[i], lb->items[i]) != 0)
				return false;
		return true;
	}
	case T_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	default:
		return *(const int64_t *)fa == *(const int64_t *)fb;
	}
}

int conf_reload(struct conf *live, const struct conf *fresh, conf_change_fn fn, void *arg)
{
	int restart = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key *k = &keys[i];
		if (key_equal(live, fresh, k))
			continue;
		char was[512], now[512];
		key_format(live, k, was, sizeof was);
		key_format(fresh, k, now, sizeof now);
		struct conf_key_info info;
		conf_key_get(i, &info);
		if (info.reload) {
			void *dst = (char *)live + k->offset;
			const void *src = (const char *)fresh + k->offset;
			memcpy(dst, src, k->type == T_BOOL ? sizeof(bool) : sizeof(int64_t));
		} else {
			restart++;
		}
		if (fn)
			fn(k->section, k->name, was, now, info.reload, arg);
	}
	return restart;
}

void conf_print(const struct conf *c, FILE *out)
{
	const char *section = "";
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(section, keys[i].section) != 0) {
			section = keys[i].section;
			fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
		}
		print_value(c, &keys[i], out);
	}
}

void conf_path(const struct conf *c, const char *value, char *buf, size_t n)
{
	if (value[0] == '/' || value[0] == '\0')
		snprintf(buf, n, "%s", value);
	else
		snprintf(buf, n, "%s/%s", c->data_dir, value);
}

void conf_free(struct conf *c)
{
	for (size_t i = 0; i < NKEYS; i++) {
		void *field = (char *)c + keys[i].offset;
		if (keys[i].type == T_STRING)
			free(*(char **)field);
		else if (keys[i].type == T_LIST)
			strlist_clear(field);
	}
	memset(c, 0, sizeof *c);
}
