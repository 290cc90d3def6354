/* queue_json.c - spool rows to the API's JSON. */
#include "admin/queue_json.h"

#include "util/buf.h"
#include "util/timeutil.h"

#include <stdio.h>
#include <string.h>

static json_t *time_or_null(int64_t ms)
{
	char buf[32];
	if (ms < 0)
		return json_null();
	time_format_rfc3339(ms, buf, sizeof buf);
	return json_string(buf);
}

static json_t *text_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *recipient_json(const struct spool_recipient_row *r, bool detailed)
{
	json_t *o = json_pack("{s:s, s:s, s:i, s:o, s:s}", "address", r->address, "state",
	                      rcpt_state_name(r->state), "attempts", r->attempts, "next_attempt",
	                      time_or_null(r->next_attempt_ms), "last_error", r->last_error);
	if (o && detailed) {
		json_object_set_new(o, "last_attempt", time_or_null(r->last_attempt_ms));
		json_object_set_new(o, "in_flight", json_boolean(r->in_flight));
	}
	return o;
}

static json_t *message_json(const struct spool_message_row *m, const struct spool_recipient_row *r,
                            size_t nr, bool detailed)
{
	char id[17], queued[32];
	spool_id_format(m->id, id);
	time_format_rfc3339(m->queued_ms, queued, sizeof queued);
	json_t *rcpts = json_array();
	for (size_t i = 0; i < nr; i++)
		json_array_append_new(rcpts, recipient_json(&r[i], detailed));
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", id, "sender", m->sender, "size",
	                      (json_int_t)m->size, "queued", queued, "recipients", rcpts);
	if (o == NULL || !detailed)
		return o;
	json_object_set_new(o, "requiretls", json_boolean(m->flags & SPOOL_F_REQUIRETLS));
	json_object_set_new(o, "tls_required_no", json_boolean(m->flags & SPOOL_F_TLS_REQUIRED_NO));
	json_object_set_new(o, "eightbit", json_boolean(m->flags & SPOOL_F_8BIT));
	json_object_set_new(o, "smtputf8", json_boolean(m->flags & SPOOL_F_SMTPUTF8));
	json_object_set_new(o, "dsn", json_boolean(m->flags & SPOOL_F_DSN));
	json_object_set_new(o, "auth_user", text_or_null(m->auth_user));
	json_object_set_new(o, "client", text_or_null(m->client));
	json_object_set_new(o, "done", time_or_null(m->done_ms));
	return o;
}

struct collect {
	json_t *list;
	bool detailed;
};

static int buf_append(const char *data, size_t len, void *arg)
{
	buf_add(arg, data, len);
	return 0;
}

/* Appends v to out as one more element of a JSON array, and releases it. */
static void element_write(struct buf *out, json_t *v)
{
	if (out->len > 0)
		buf_add(out, ",", 1);
	if (v == NULL)
		out->failed = true;
	else
		json_dump_callback(v, buf_append, out, JSON_COMPACT);
	json_decref(v);
}

/* A page is written a message at a time: never a tree of a thousand. */
static int write_message(void *arg, const struct spool_message_row *m,
                         const struct spool_recipient_row *r, size_t nr)
{
	element_write(arg, message_json(m, r, nr, false));
	return 0;
}

static int collect_message(void *arg, const struct spool_message_row *m,
                           const struct spool_recipient_row *r, size_t nr)
{
	struct collect *c = arg;
	json_array_append_new(c->list, message_json(m, r, nr, c->detailed));
	return 0;
}

static int written(const struct buf *out, char *why, size_t whylen)
{
	if (!out->failed)
		return 0;
	snprintf(why, whylen, "cannot encode the answer");
	return -1;
}

int queue_json_page(struct spool *s, const struct spool_list_query *q, struct spool_page *p,
                    struct buf *out, char *why, size_t whylen)
{
	if (spool_list_page(s, q, p, write_message, out, why, whylen) < 0)
		return -1;
	return written(out, why, whylen);
}

static const char *const result_names[] = {
    [SPOOL_ATTEMPT_DELIVERED] = "delivered",
    [SPOOL_ATTEMPT_DEFERRED] = "deferred",
    [SPOOL_ATTEMPT_FAILED] = "failed",
};

static json_t *attempt_json(const struct spool_attempt_row *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "recipient", text_or_null(a->recipient));
	json_object_set_new(o, "time", time_or_null(a->started_ms));
	json_object_set_new(o, "duration_ms", json_integer(a->duration_ms));
	json_object_set_new(o, "mx", text_or_null(a->mx));
	json_object_set_new(o, "ip", text_or_null(a->ip));
	json_object_set_new(o, "tls", text_or_null(a->tls));
	/* "TLSv1.3 TLS_AES_256_GCM_SHA384": the version, then the cipher */
	const char *sp = a->tls ? strchr(a->tls, ' ') : NULL;
	json_object_set_new(o, "tls_version",
	                    sp ? json_stringn(a->tls, (size_t)(sp - a->tls)) : json_null());
	json_object_set_new(o, "tls_cipher", sp ? json_string(sp + 1) : json_null());
	json_object_set_new(o, "tls_policy", text_or_null(a->tls_policy));
	json_object_set_new(o, "tls_verified", text_or_null(a->tls_verified));
	json_object_set_new(o, "tls_detail", text_or_null(a->tls_detail));
	json_object_set_new(o, "result",
	                    json_string((unsigned)a->result <= SPOOL_ATTEMPT_FAILED
	                                    ? result_names[a->result]
	                                    : "unknown"));
	json_object_set_new(o, "reply", text_or_null(a->reply));
	return o;
}

static void collect_attempt(void *arg, const struct spool_attempt_row *a)
{
	json_array_append_new(arg, attempt_json(a));
}

/* An attempt of the history: the log line with its message's id, sender
 * and end. */
static void write_history(void *arg, const struct spool_history_row *h)
{
	char id[17];
	json_t *o = attempt_json(&h->a);
	spool_id_format(h->msg_id, id);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "sender", json_string(h->sender ? h->sender : ""));
	json_object_set_new(o, "done", time_or_null(h->done_ms));
	element_write(arg, o);
}

int queue_json_history(struct spool *s, const struct spool_history_query *q, struct spool_page *p,
                       struct buf *out, char *why, size_t whylen)
{
	if (spool_history_page(s, q, p, write_history, out, why, whylen) < 0)
		return -1;
	return written(out, why, whylen);
}

json_t *queue_json_show(struct spool *s, uint64_t id, bool *not_found, char *why, size_t whylen)
{
	struct collect c = {.list = json_array(), .detailed = true};
	int rc = spool_show(s, id, collect_message, &c, why, whylen);
	*not_found = rc == SPOOL_NOT_FOUND;
	json_t *m = rc == 0 ? json_incref(json_array_get(c.list, 0)) : NULL;
	json_decref(c.list);
	if (m == NULL)
		return NULL;
	json_t *attempts = json_array();
	if (spool_attempts(s, id, collect_attempt, attempts, why, whylen) < 0) {
		json_decref(attempts);
		json_decref(m);
		return NULL;
	}
	json_object_set_new(m, "attempts", attempts);
	return m;
}
