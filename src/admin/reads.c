/* reads.c - the admin API's reads (see reads.h). */
#include "admin/reads.h"

#include "admin/queue_json.h"
#include "spool/tls_rows.h"
#include "util/buf.h"
#include "util/timeutil.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_DEFAULT 100
#define PAGE_MAX     1000

/* ---- answers ---- */

/* Answers v as JSON (one line) and releases it; NULL is a 500. jansson
 * builds the text in one growing buffer (a stream would take a lock for
 * each of its many small pieces). */
static void answer_json(struct api_answer *out, int status, json_t *v)
{
	char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
	if (text == NULL) {
		status = 500;
		if ((text = strdup("{\"error\":\"cannot encode the answer\"}")) == NULL)
			abort();
	}
	size_t len = strlen(text);
	char *body = realloc(text, len + 2);
	if (body == NULL)
		abort();
	body[len] = '\n';
	body[len + 1] = '\0';
	*out = (struct api_answer){.status = status, .type = "application/json", .body = body,
	                           .len = len + 1};
	json_decref(v);
}

void api_answer_error(struct api_answer *out, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *s = json_string(msg);
	if (s == NULL) /* the message quoted input that is not UTF-8 */
		s = json_string("invalid request");
	answer_json(out, status, json_pack("{s:o}", "error", s));
}

/* ---- parameters ---- */

int api_ids_add(uint64_t **ids, size_t *n, const char *s, size_t len, char *why, size_t whylen)
{
	char buf[32];
	uint64_t id;
	if (len == 0 || len >= sizeof buf) {
		snprintf(why, whylen, "bad queue id (expected up to 16 hex digits)");
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (!spool_id_parse(buf, &id)) {
		snprintf(why, whylen, "bad queue id %s (expected up to 16 hex digits)", buf);
		return -1;
	}
	if (*n == API_MAX_IDS) {
		snprintf(why, whylen, "too many ids (at most %d per request)", API_MAX_IDS);
		return -1;
	}
	if (*ids == NULL && (*ids = calloc(API_MAX_IDS, sizeof **ids)) == NULL)
		abort();
	(*ids)[(*n)++] = id;
	return 0;
}

/* "id=A,B" and "id=A&id=B" are the same. */
static int ids_add_csv(uint64_t **ids, size_t *n, const char *csv, char *why, size_t whylen)
{
	for (const char *p = csv;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (api_ids_add(ids, n, p, len, why, whylen) < 0)
			return -1;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

static int param_once(const char **slot, const struct evkeyval *kv, char *why, size_t whylen)
{
	if (*slot != NULL || kv->value[0] == '\0') {
		snprintf(why, whylen, "parameter %s must be given once, not empty", kv->key);
		return -1;
	}
	*slot = kv->value;
	return 0;
}

/* The parameters a listing may take, as given; NULL when absent. */
struct list_params {
	uint64_t *ids;
	size_t nids;
	const char *domain, *recipient, *state, *sender, *older_than, *newer_than;
	const char *result, *since, *until;
	const char *limit, *cursor, *sort;
};

/* Each listing's parameters besides id (docs/api.md). */
static const char *const queue_names[] = {"domain", "recipient", "state", "sender", "older_than",
                                          "newer_than", "limit", "cursor", "sort", NULL};
static const char *const history_names[] = {"domain", "recipient", "result", "since", "until",
                                            "limit", "cursor", "sort", NULL};

static const char **param_slot(struct list_params *lp, const char *key)
{
	static const struct {
		const char *name;
		size_t offset;
	} slots[] = {
#define SLOT(f) {#f, offsetof(struct list_params, f)}
	    SLOT(domain), SLOT(recipient), SLOT(state),  SLOT(sender), SLOT(older_than),
	    SLOT(newer_than), SLOT(result), SLOT(since), SLOT(until),  SLOT(limit),
	    SLOT(cursor), SLOT(sort),
#undef SLOT
	};
	for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++)
		if (strcmp(key, slots[i].name) == 0)
			return (const char **)((char *)lp + slots[i].offset);
	return NULL;
}

static bool name_in(const char *key, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(key, *names) == 0)
			return true;
	return false;
}

/* An unknown parameter is refused: a misspelt filter must not silently
 * list everything. The strings point into kv. */
static int params_read(struct evkeyvalq *kv, const char *query, const char *const *names,
                       struct list_params *lp, char *why, size_t whylen)
{
	if (evhttp_parse_query_str(query ? query : "", kv) < 0) {
		snprintf(why, whylen, "malformed query string");
		return -1;
	}
	for (const struct evkeyval *p = kv->tqh_first; p; p = p->next.tqe_next) {
		if (strcmp(p->key, "id") == 0) {
			if (ids_add_csv(&lp->ids, &lp->nids, p->value, why, whylen) < 0)
				return -1;
			continue;
		}
		if (!name_in(p->key, names)) {
			snprintf(why, whylen, "unknown parameter %s (docs/api.md)", p->key);
			return -1;
		}
		if (param_once(param_slot(lp, p->key), p, why, whylen) < 0)
			return -1;
	}
	return 0;
}

/* "older_than=2h": a duration before now. */
static int age_bound(const char *name, const char *value, int64_t now_ms, int64_t *out, char *why,
                     size_t whylen)
{
	int64_t ms;
	*out = -1;
	if (value == NULL)
		return 0;
	if (!duration_parse(value, &ms) || ms > now_ms) {
		snprintf(why, whylen, "%s must be a duration such as 30m, 2h or 7d", name);
		return -1;
	}
	*out = now_ms - ms;
	return 0;
}

/* "since=2026-11-29T10:00:00Z", or a duration before now ("since=2h"). */
static int time_bound(const char *name, const char *value, int64_t now_ms, int64_t *out, char *why,
                      size_t whylen)
{
	int64_t ms;
	*out = -1;
	if (value == NULL || time_parse_rfc3339(value, out))
		return 0;
	if (duration_parse(value, &ms) && ms <= now_ms) {
		*out = now_ms - ms;
		return 0;
	}
	snprintf(why, whylen,
	         "%s must be a time such as 2026-11-29T10:00:00Z, or a duration before now "
	         "such as 2h",
	         name);
	return -1;
}

/* ---- cursors ---- */

/* A cursor is opaque to clients: the listing it belongs to ('q'ueue or
 * 'h'istory), its order ('o'ldest or 'n'ewest first) and the key of the
 * page's last row, in hex. */
static void cursor_write(struct buf *out, char listing, const struct spool_page *p)
{
	if (!p->more)
		buf_str(out, "null");
	else
		buf_fmt(out, "\"%c%c%" PRIx64 "-%016" PRIX64 "\"", listing, p->newest_first ? 'n' : 'o',
		        (uint64_t)p->next.time_ms, p->next.id);
}

/* {"KEY":[the page's elements],"next_cursor":...}: written as it is read,
 * never held as one tree. */
static void answer_page(struct api_answer *out, const char *key, struct buf *elements,
                        char listing, const struct spool_page *p)
{
	struct buf b = {0};
	buf_fmt(&b, "{\"%s\":[", key);
	buf_add(&b, elements->data ? elements->data : "", elements->len);
	buf_str(&b, "],\"next_cursor\":");
	cursor_write(&b, listing, p);
	buf_str(&b, "}\n");
	buf_free(elements);
	if (b.failed)
		abort(); /* out of memory */
	*out = (struct api_answer){
	    .status = 200, .type = "application/json", .body = b.data, .len = b.len};
}

static bool hex_field(const char *s, size_t len, uint64_t *v)
{
	char buf[17];
	if (len == 0 || len > 16)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return spool_id_parse(buf, v);
}

static bool cursor_parse(const char *c, char listing, bool *newest, struct spool_key *key)
{
	uint64_t t;
	const char *dash = strchr(c, '-');
	if (c[0] != listing || (c[1] != 'n' && c[1] != 'o') || dash == NULL ||
	    !hex_field(c + 2, (size_t)(dash - c - 2), &t) || t > INT64_MAX ||
	    !hex_field(dash + 1, strlen(dash + 1), &key->id))
		return false;
	*newest = c[1] == 'n';
	key->time_ms = (int64_t)t;
	return true;
}

/* limit, sort and cursor into p; after holds the cursor's key. */
static int page_setup(const struct list_params *lp, char listing, bool newest_default,
                      struct spool_page *p, struct spool_key *after, char *why, size_t whylen)
{
	*p = (struct spool_page){.limit = PAGE_DEFAULT, .newest_first = newest_default};
	if (lp->limit) {
		char *end;
		unsigned long n = strtoul(lp->limit, &end, 10);
		if (*end || lp->limit[0] < '1' || lp->limit[0] > '9' || n > PAGE_MAX) {
			snprintf(why, whylen, "limit must be 1 to %d", PAGE_MAX);
			return -1;
		}
		p->limit = n;
	}
	if (lp->sort) {
		if (strcmp(lp->sort, "oldest") != 0 && strcmp(lp->sort, "newest") != 0) {
			snprintf(why, whylen, "sort must be oldest or newest");
			return -1;
		}
		p->newest_first = strcmp(lp->sort, "newest") == 0;
	}
	if (lp->cursor) {
		bool newest;
		if (!cursor_parse(lp->cursor, listing, &newest, after)) {
			snprintf(why, whylen, "bad cursor (give next_cursor of the page before, as it came)");
			return -1;
		}
		if (lp->sort && newest != p->newest_first) {
			snprintf(why, whylen, "the cursor belongs to a walk in the other order");
			return -1;
		}
		p->newest_first = newest;
		p->after = after;
	}
	return 0;
}

/* ---- the reads ---- */

static int queue_query(const struct list_params *lp, int64_t now_ms, struct spool_list_query *q,
                       char *why, size_t whylen)
{
	int state = -1;
	if (lp->state && (state = rcpt_state_parse(lp->state)) < 0) {
		snprintf(why, whylen, "unknown state %s (queued, held, deferred, delivered, failed)",
		         lp->state);
		return -1;
	}
	*q = (struct spool_list_query){
	    .f = {.ids = lp->ids,
	          .nids = lp->nids,
	          .domain = lp->domain,
	          .recipient = lp->recipient,
	          .state = state},
	    /* "<>" names the null reverse-path, stored as "" */
	    .sender = lp->sender && strcmp(lp->sender, "<>") == 0 ? "" : lp->sender,
	};
	/* older than 2h: queued before now-2h; newer than 2h: at or after it */
	if (age_bound("older_than", lp->older_than, now_ms, &q->queued_before_ms, why, whylen) < 0 ||
	    age_bound("newer_than", lp->newer_than, now_ms, &q->queued_from_ms, why, whylen) < 0)
		return -1;
	return 0;
}

static void read_queue(struct spool *s, const struct list_params *lp, int64_t now_ms,
                       struct api_answer *out)
{
	char why[256];
	struct spool_list_query q;
	struct spool_page p;
	struct spool_key after;
	if (queue_query(lp, now_ms, &q, why, sizeof why) < 0 ||
	    page_setup(lp, 'q', false, &p, &after, why, sizeof why) < 0) {
		api_answer_error(out, 400, "%s", why);
		return;
	}
	struct buf elements = {0};
	if (queue_json_page(s, &q, &p, &elements, why, sizeof why) < 0) {
		buf_free(&elements);
		api_answer_error(out, 500, "%s", why);
		return;
	}
	answer_page(out, "messages", &elements, 'q', &p);
}

static const char *const result_names[] = {
    [SPOOL_ATTEMPT_DELIVERED] = "delivered",
    [SPOOL_ATTEMPT_DEFERRED] = "deferred",
    [SPOOL_ATTEMPT_FAILED] = "failed",
};

static int history_query(const struct list_params *lp, int64_t now_ms,
                         struct spool_history_query *q, char *why, size_t whylen)
{
	*q = (struct spool_history_query){
	    .f = {.ids = lp->ids,
	          .nids = lp->nids,
	          .domain = lp->domain,
	          .recipient = lp->recipient,
	          .state = -1},
	    .result = -1,
	};
	for (int r = 0; lp->result && r <= SPOOL_ATTEMPT_FAILED; r++)
		if (strcmp(lp->result, result_names[r]) == 0)
			q->result = r;
	if (lp->result && q->result < 0) {
		snprintf(why, whylen, "unknown result %s (delivered, deferred, failed)", lp->result);
		return -1;
	}
	if (time_bound("since", lp->since, now_ms, &q->started_from_ms, why, whylen) < 0 ||
	    time_bound("until", lp->until, now_ms, &q->started_before_ms, why, whylen) < 0)
		return -1;
	return 0;
}

static void read_history(struct spool *s, const struct list_params *lp, int64_t now_ms,
                         struct api_answer *out)
{
	char why[256];
	struct spool_history_query q;
	struct spool_page p;
	struct spool_key after;
	if (history_query(lp, now_ms, &q, why, sizeof why) < 0 ||
	    page_setup(lp, 'h', true, &p, &after, why, sizeof why) < 0) {
		api_answer_error(out, 400, "%s", why);
		return;
	}
	struct buf elements = {0};
	if (queue_json_history(s, &q, &p, &elements, why, sizeof why) < 0) {
		buf_free(&elements);
		api_answer_error(out, 500, "%s", why);
		return;
	}
	answer_page(out, "attempts", &elements, 'h', &p);
}

static void read_listing(struct spool *s, enum api_read what, const char *query, int64_t now_ms,
                         struct api_answer *out)
{
	char why[256];
	struct evkeyvalq kv = {0};
	struct list_params lp = {0};
	bool queue = what == API_READ_QUEUE;
	if (params_read(&kv, query, queue ? queue_names : history_names, &lp, why, sizeof why) < 0)
		api_answer_error(out, 400, "%s", why);
	else if (queue)
		read_queue(s, &lp, now_ms, out);
	else
		read_history(s, &lp, now_ms, out);
	evhttp_clear_headers(&kv);
	free(lp.ids);
}

static void read_message(struct spool *s, uint64_t id, struct api_answer *out)
{
	char why[256];
	bool not_found;
	json_t *m = queue_json_show(s, id, &not_found, why, sizeof why);
	if (m)
		answer_json(out, 200, m);
	else
		api_answer_error(out, not_found ? 404 : 500, "%s", why);
}

static void read_raw(struct spool *s, uint64_t id, struct api_answer *out)
{
	char why[256];
	int rc = spool_message_body(s, id, &out->body, &out->len, why, sizeof why);
	if (rc != 0) {
		api_answer_error(out, rc == SPOOL_NOT_FOUND ? 404 : 500, "%s", why);
		return;
	}
	out->status = 200;
	out->type = "message/rfc822";
}

/* "YYYY-MM-DD" and nothing else: it selects rows, it is not a date parser. */
bool api_day_valid(const char *d)
{
	static const char shape[] = "dddd-dd-dd";
	if (strlen(d) != sizeof shape - 1)
		return false;
	for (size_t i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (d[i] < '0' || d[i] > '9') : d[i] != shape[i])
			return false;
	return true;
}

static void collect_result(void *arg, const struct tlsrpt_result *r)
{
	tlsrpt_set_merge(arg, r);
}

/* tlsrpt/results?day=YYYY-MM-DD&domain=D: the RFC 8460 §4.4 "policies"
 * recorded for a UTC day. */
static void read_tls_results(struct spool *s, const char *query, int64_t now_ms,
                             struct api_answer *out)
{
	char why[256], today[32];
	struct evkeyvalq kv = {0};
	if (evhttp_parse_query_str(query ? query : "", &kv) < 0) {
		api_answer_error(out, 400, "malformed query string");
		return;
	}
	time_format_rfc3339(now_ms, today, sizeof today);
	today[10] = '\0';
	const char *day = evhttp_find_header(&kv, "day");
	const char *domain = evhttp_find_header(&kv, "domain");
	if (day == NULL)
		day = today;
	if (!api_day_valid(day)) {
		api_answer_error(out, 400, "day must be YYYY-MM-DD");
	} else {
		/* every result, those of delivering reports merged in */
		struct tlsrpt_set set = {0};
		if (spool_tls_results_read(s, day, domain && domain[0] ? domain : NULL, false,
		                           collect_result, &set, why, sizeof why) < 0) {
			api_answer_error(out, 500, "%s", why);
		} else {
			json_t *list = json_array();
			for (size_t i = 0; i < set.n; i++)
				json_array_append_new(list, tlsrpt_result_json(&set.r[i]));
			answer_json(out, 200, list);
		}
		tlsrpt_set_clear(&set);
	}
	evhttp_clear_headers(&kv);
}

void api_read(struct spool *s, enum api_read what, uint64_t id, const char *query, int64_t now_ms,
              struct api_answer *out)
{
	*out = (struct api_answer){0};
	switch (what) {
	case API_READ_QUEUE:
	case API_READ_HISTORY:
		return read_listing(s, what, query, now_ms, out);
	case API_READ_MESSAGE:
		return read_message(s, id, out);
	case API_READ_RAW:
		return read_raw(s, id, out);
	case API_READ_TLS_RESULTS:
		return read_tls_results(s, query, now_ms, out);
	}
	api_answer_error(out, 404, "unknown path");
}
