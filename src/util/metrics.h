/* metrics.h - a small Prometheus registry: counters, gauges, histograms.
 *
 * Metrics are created once (at start-up, by the module that owns them) and
 * live until exit. Updates are thread-safe (the spool writer thread observes
 * commit latencies). Labels: a metric has one label name, or several
 * separated by commas ("type,result"), and is updated with a value of the
 * same shape ("mx,ok"). Values are created on first use and come from the
 * caller's vocabulary, never from remote input (at most 64 per metric).
 * Rendering follows the text exposition format 0.0.4.
 */
#ifndef OUTPOST_UTIL_METRICS_H
#define OUTPOST_UTIL_METRICS_H

#include <stddef.h>

struct metric;

/* label may be NULL for a metric without labels. */
struct metric *metric_counter(const char *name, const char *help, const char *label);
struct metric *metric_gauge(const char *name, const char *help, const char *label);
struct metric *metric_histogram(const char *name, const char *help, const double *bounds,
                                size_t nbounds);

/* value is the label's value, NULL for unlabelled metrics. */
void metric_add(struct metric *m, const char *value, double v);
void metric_set(struct metric *m, const char *value, double v);
void metric_observe(struct metric *m, double v);

/* Called just before each rendering, to refresh gauges that are computed
 * rather than updated (recipients by state). */
void metrics_on_render(void (*fn)(void *arg), void *arg);

/* The whole registry in Prometheus text format; caller frees. */
char *metrics_render(size_t *len);

#endif
