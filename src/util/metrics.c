/* metrics.c - Prometheus registry. */
#include "util/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

#define MAX_VALUES 64 /* label values per metric */
#define MAX_BOUNDS 24

struct metric {
	enum metric_kind kind;
	const char *name, *help, *label;
	size_t nvalues;
	char *values[MAX_VALUES];
	double v[MAX_VALUES];
	/* histogram */
	double bounds[MAX_BOUNDS];
	size_t nbounds;
	unsigned long long buckets[MAX_BOUNDS + 1];
	double sum;
	unsigned long long count;
	struct metric *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *registry, **registry_tail = &registry;
static void (*render_hook)(void *);
static void *render_arg;

static struct metric *metric_new(enum metric_kind kind, const char *name, const char *help,
                                 const char *label)
{
	struct metric *m = calloc(1, sizeof *m);
	if (m == NULL)
		abort();
	m->kind = kind;
	m->name = name;
	m->help = help;
	m->label = label;
	if (label == NULL)
		m->nvalues = 1; /* slot 0 is the unlabelled value */
	pthread_mutex_lock(&lock);
	*registry_tail = m;
	registry_tail = &m->next;
	pthread_mutex_unlock(&lock);
	return m;
}

struct metric *metric_counter(const char *name, const char *help, const char *label)
{
	return metric_new(KIND_COUNTER, name, help, label);
}

struct metric *metric_gauge(const char *name, const char *help, const char *label)
{
	return metric_new(KIND_GAUGE, name, help, label);
}

struct metric *metric_histogram(const char *name, const char *help, const double *bounds,
                                size_t nbounds)
{
	struct metric *m = metric_new(KIND_HISTOGRAM, name, help, NULL);
	m->nbounds = nbounds < MAX_BOUNDS ? nbounds : MAX_BOUNDS;
	memcpy(m->bounds, bounds, m->nbounds * sizeof *bounds);
	return m;
}

/* Index of a label value, created on first use; the lock is held. */
static size_t value_slot(struct metric *m, const char *value)
{
	if (m->label == NULL)
		return 0;
	for (size_t i = 0; i < m->nvalues; i++)
		if (strcmp(m->values[i], value) == 0)
			return i;
	if (m->nvalues == MAX_VALUES)
		return MAX_VALUES - 1; /* a bug in the caller's vocabulary; never unbounded */
	m->values[m->nvalues] = strdup(value);
	return m->nvalues++;
}

void metric_add(struct metric *m, const char *value, double v)
{
	pthread_mutex_lock(&lock);
	m->v[value_slot(m, value)] += v;
	pthread_mutex_unlock(&lock);
}

void metric_set(struct metric *m, const char *value, double v)
{
	pthread_mutex_lock(&lock);
	m->v[value_slot(m, value)] = v;
	pthread_mutex_unlock(&lock);
}

void metric_observe(struct metric *m, double v)
{
	pthread_mutex_lock(&lock);
	size_t i = 0;
	while (i < m->nbounds && v > m->bounds[i])
		i++;
	m->buckets[i]++;
	m->sum += v;
	m->count++;
	pthread_mutex_unlock(&lock);
}

void metrics_on_render(void (*fn)(void *arg), void *arg)
{
	render_hook = fn;
	render_arg = arg;
}

static void render_histogram(FILE *f, const struct metric *m)
{
	unsigned long long cum = 0;
	for (size_t i = 0; i < m->nbounds; i++) {
		cum += m->buckets[i];
		fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", m->name, m->bounds[i], cum);
	}
	fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", m->name, m->count);
	fprintf(f, "%s_sum %.6f\n%s_count %llu\n", m->name, m->sum, m->name, m->count);
}

/* Writes {a="x",b="y"} for label names "a,b" and value "x,y". */
static void render_labels(FILE *f, const char *names, const char *values)
{
	fputc('{', f);
	while (*names) {
		size_t nl = strcspn(names, ","), vl = strcspn(values, ",");
		fprintf(f, "%.*s=\"%.*s\"", (int)nl, names, (int)vl, values);
		names += nl + (names[nl] == ',');
		values += vl + (values[vl] == ',');
		if (*names)
			fputc(',', f);
	}
	fputc('}', f);
}

static void render_metric(FILE *f, const struct metric *m)
{
	static const char *kinds[] = {"counter", "gauge", "histogram"};
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, kinds[m->kind]);
	if (m->kind == KIND_HISTOGRAM) {
		render_histogram(f, m);
		return;
	}
	for (size_t i = 0; i < m->nvalues; i++) {
		if (m->label) {
			fputs(m->name, f);
			render_labels(f, m->label, m->values[i]);
			fprintf(f, " %.17g\n", m->v[i]);
		} else
			fprintf(f, "%s %.17g\n", m->name, m->v[i]);
	}
}

char *metrics_render(size_t *len)
{
	if (render_hook)
		render_hook(render_arg);
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	if (f == NULL)
		abort();
	pthread_mutex_lock(&lock);
	for (const struct metric *m = registry; m; m = m->next)
		render_metric(f, m);
	pthread_mutex_unlock(&lock);
	fclose(f);
	return buf;
}
