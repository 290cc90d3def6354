/* metrics.h - a small Prometheus registry: counters, gauges, histograms.
 *
 * Metrics are created once (at start-up, by the module that owns them) and
 * live until exit. Updates are thread-safe (the spool writer thread observes
 * commit latencies). Labels: at most one label name per metric, with values
 * created on first use, bounded by the caller's vocabulary (never remote
 * input). Rendering follows the text exposition format 0.0.4.
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
