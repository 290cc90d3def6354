/* main.c - command dispatch. */
#include "admin/admin.h"
#include "cli/check.h"
#include "cli/cli.h"
#include "cli/dkim_cli.h"
#include "conf/conf.h"
#include "conf/confdoc.h"
#include "deliver/scheduler.h"
#include "dkim/dkim.h"
#include "tlsrpt/sender.h"
#include "spool/spool.h"
#include "spool/writer.h"
#include "submit/send.h"
#include "submit/smtpd.h"
#include "util/log.h"
#include "util/notify.h"
#include "util/timeutil.h"
#include "util/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int usage(void)
{
	fputs("usage: outpost [-c FILE] COMMAND ...\n"
	      "  serve                          run the daemon (SIGHUP: reload the config)\n"
	      "  send [-f SENDER] [-t] [-i] [--requiretls] [RCPT...]   queue a message from stdin\n"
	      "  queue list [--json] [--domain D] [--held] [--state S] [--recipient R] [--sender S]\n"
	      "             [--older-than DURATION] [--newer-than DURATION] [--sort oldest|newest]\n"
	      "  queue show ID [--json] | queue cat ID\n"
	      "  queue history [--json] [--recipient R] [--domain D] [--result R] [--since T]\n"
	      "                [--until T] [ID...]   delivery attempts, newest first\n"
	      "  queue kick|hold|release|drop (ID... | --domain D | --recipient ADDR | --all)\n"
	      "  queue pause|resume\n"
	      "  check DOMAIN [--json]          what delivery to DOMAIN would do (MX, DNSSEC, TLSA,\n"
	      "                                 MTA-STS, TLS per host); needs no daemon\n"
	      "  tlsrpt results [--day YYYY-MM-DD] [--domain D] [--json]\n"
	      "  tlsrpt report DOMAIN [--day D]  the RFC 8460 report that would be sent\n"
	      "  tlsrpt send [--day D] [--dry-run]  make and queue the day's TLS reports now\n"
	      "  dkim genkey DOMAIN SELECTOR [--algorithm ed25519|rsa] [--bits N] [--out PATH]\n"
	      "                                 write a signing key, print its DNS TXT record\n"
	      "  dkim check DOMAIN              do the published records match the [dkim] keys\n"
	      "  spool check                    check the spool's integrity\n"
	      "  config check [FILE]            validate a config file\n"
	      "  config defaults [--man|--reloadable]\n"
	      "                                 print every key (as outpost.conf(5) in roff; the\n"
	      "                                 keys a reload applies)\n"
	      "  version\n",
	      stderr);
	return 2;
}

/* Removes "-c FILE" (anywhere among the options) from argv. */
static const char *take_config_option(int *argc, char **argv)
{
	const char *path = NULL;
	int o = 0;
	for (int i = 0; i < *argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < *argc) {
			path = argv[++i];
			continue;
		}
		if (strncmp(argv[i], "-c", 2) == 0 && argv[i][2] != '\0' && o > 0 &&
		    strcmp(argv[0], "sendmail") != 0) {
			path = argv[i] + 2;
			continue;
		}
		argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
	return path;
}

#define DRAIN_CHECK_MS 50
#define DRAIN_MAX_MS   10000 /* a stop waits this long at most for commits */

struct daemon {
	struct event_base *base;
	struct conf *conf;
	const char *conf_path; /* -c FILE, or NULL: conf_default_path() */
	struct spool_writer *writer;
	struct spool *reader;
	struct scheduler *sched;
	struct smtpd *smtpd;
	struct admin *admin;
	struct worker *worker; /* password checks and DKIM signatures, off the loop */
	struct dkim_signer *dkim;
	struct tlsrpt_sender *tlsrpt;
	int lock_fd;
	struct event *drain_timer;
	int64_t drain_until_us;
};

/* The loop runs on while the stop drains: commits still pending finish
 * and every session waiting for one gets its 250 before it is closed. */
static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	bool idle = smtpd_sessions(d->smtpd) == 0 && spool_writer_outstanding(d->writer) == 0;
	if (idle || time_mono_us() > d->drain_until_us) {
		if (!idle)
			log_event(LOG_WARN, "shutdown_forced", "sessions=%zu commits=%zu",
			          smtpd_sessions(d->smtpd), spool_writer_outstanding(d->writer));
		event_base_loopexit(d->base, NULL);
		return;
	}
	struct timeval tv = {0, DRAIN_CHECK_MS * 1000};
	evtimer_add(d->drain_timer, &tv);
}

/* A clean stop: no new sessions or attempts; attempts on the network are
 * dropped (they were counted, the restart retries them); commits pending
 * finish and their replies are flushed; then the loop ends. A second
 * signal ends it at once. */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	log_event(LOG_INFO, "shutdown", "signal=%d", (int)sig);
	if (d->drain_timer) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	notify_send("STOPPING=1");
	smtpd_drain(d->smtpd);
	admin_drain(d->admin);
	scheduler_stop(d->sched);
	d->drain_until_us = time_mono_us() + DRAIN_MAX_MS * 1000LL;
	d->drain_timer = evtimer_new(d->base, on_drain_check, d);
	on_drain_check(-1, 0, d);
}

/* ---- reload (SIGHUP): docs/install.md, "Reload" ------------------------------ */

static void log_config_error(const char *file, int line, const char *msg, void *arg)
{
	log_event(LOG_ERROR, "config_error", "file=%s line=%d reason=%s", log_quote(file), line,
	          log_quote(msg));
}

static void log_config_change(const char *section, const char *name, const char *was,
                              const char *now, bool applied, void *arg)
{
	log_event(applied ? LOG_INFO : LOG_WARN,
	          applied ? "config_applied" : "config_needs_restart", "key=%s.%s old=%s new=%s",
	          section, name, log_quote(was), log_quote(now));
}

/* Hands the reloadable settings that modules copied at start to them; the
 * others are read where they are used. */
static void daemon_apply(struct daemon *d, bool was_paused)
{
	log_set_level((enum log_level)d->conf->log_level);
	scheduler_reconfigure(d->sched);
	/* the file's paused applies when it changed in the file; a `queue
	 * pause` or `resume` given at run time stands otherwise */
	if (d->conf->paused != was_paused)
		scheduler_set_paused(d->sched, d->conf->paused);
}

/* Reads the configuration file again (the same one as at start). A file
 * with any error, or none that can be read, changes nothing. */
static void daemon_reload(struct daemon *d)
{
	const char *path = d->conf_path ? d->conf_path : conf_default_path();
	notify_send("RELOADING=1");
	struct conf fresh;
	conf_defaults(&fresh);
	int errors = path ? conf_load_file(&fresh, path, log_config_error, NULL) : 0;
	if (errors != 0) {
		log_event(LOG_ERROR, "config_reload_refused", "file=%s reason=%s", log_quote(path),
		          errors < 0 ? log_quote(strerror(errno)) : "\"errors in the file\"");
	} else {
		bool was_paused = d->conf->paused;
		int restart = conf_reload(d->conf, &fresh, log_config_change, NULL);
		daemon_apply(d, was_paused);
		log_event(LOG_INFO, "config_reloaded", "file=%s needs_restart=%d",
		          log_quote(path ? path : "(defaults)"), restart);
	}
	conf_free(&fresh);
	notify_send("READY=1");
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	if (d->drain_timer == NULL) /* stopping: nothing to reload for */
		daemon_reload(d);
}

static void on_queued(void *arg)
{
	scheduler_wake(((struct daemon *)arg)->sched);
}

/* One daemon per spool: a second one would schedule the same recipients. */
static int lock_data_dir(struct daemon *d)
{
	mkdir(d->conf->data_dir, 0711); /* local users reach the submission socket */
	/* a send writing the spool itself holds it for a moment: wait for that */
	d->lock_fd = spool_lock(d->conf->data_dir, true, 5000);
	if (d->lock_fd < 0) {
		fprintf(stderr, "outpost: %s/outpost.lock: %s\n", d->conf->data_dir,
		        errno == EWOULDBLOCK ? "another outpost serves this spool"
		                             : strerror(errno));
		return -1;
	}
	return 0;
}

static void log_recovery(struct spool_writer *w, int64_t cut)
{
	if (cut > 0)
		log_event(LOG_INFO, "spool_recovered", "interrupted_attempts=%lld", (long long)cut);
	int64_t n[RCPT_NSTATES];
	spool_writer_counts(w, n);
	log_event(LOG_INFO, "spool_opened",
	          "queued=%lld held=%lld deferred=%lld delivered=%lld failed=%lld",
	          (long long)n[RCPT_QUEUED], (long long)n[RCPT_HELD], (long long)n[RCPT_DEFERRED],
	          (long long)n[RCPT_DELIVERED], (long long)n[RCPT_FAILED]);
}

static int daemon_start(struct daemon *d)
{
	char why[512];
	int64_t recovered;
	/* a configured key that cannot be used stops the start: never a
	 * domain's mail going out unsigned because of a typo */
	d->dkim = dkim_signer_load(d->conf, why, sizeof why);
	if (d->dkim == NULL)
		goto fail;
	d->writer = spool_writer_start(d->base, d->conf->data_dir, &recovered, why, sizeof why);
	if (d->writer == NULL)
		goto fail;
	log_recovery(d->writer, recovered);
	d->reader = spool_open(d->conf->data_dir, why, sizeof why);
	if (d->reader == NULL)
		goto fail;
	d->sched = scheduler_start(d->base, d->conf, d->reader, d->writer, d->dkim, why,
	                          sizeof why);
	if (d->sched == NULL)
		goto fail;
	d->worker = worker_start(d->base, 2);
	d->smtpd = smtpd_start(d->base, d->conf, d->writer, d->worker, d->dkim, on_queued, d, why,
	                       sizeof why);
	if (d->smtpd == NULL)
		goto fail;
	d->tlsrpt = tlsrpt_sender_start(&(struct tlsrpt_sender_config){.base = d->base,
	                                                                .conf = d->conf,
	                                                                .reader = d->reader,
	                                                                .writer = d->writer,
	                                                                .dkim = d->dkim,
	                                                                .queued = on_queued,
	                                                                .queued_arg = d,
	                                                                .schedule =
	                                                                    d->conf->tlsrpt_enabled},
	                                why, sizeof why);
	if (d->tlsrpt == NULL)
		goto fail;
	d->admin = admin_start(d->base, d->conf, d->writer, d->sched, d->tlsrpt, d->worker, why,
	                       sizeof why);
	if (d->admin == NULL)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "outpost: %s\n", why);
	log_event(LOG_ERROR, "start_failed", "reason=%s", log_quote(why));
	return -1;
}

/* After the loop: the drain (on_signal) has let every commit finish and
 * every reply go; what remains (a forced stop) is freed here. */
static void daemon_stop(struct daemon *d)
{
	smtpd_drain(d->smtpd);
	admin_drain(d->admin);
	scheduler_stop(d->sched);
	/* jobs still on the worker end first: a signed message's done hands it
	 * to the writer, which must still be there to take it */
	worker_stop(d->worker);
	spool_writer_stop(d->writer); /* reports what is left, to no one */
	tlsrpt_sender_free(d->tlsrpt); /* after the writer: its jobs have reported */
	smtpd_stop(d->smtpd);
	admin_stop(d->admin);
	scheduler_free(d->sched);
	spool_close(d->reader);
	dkim_signer_free(d->dkim);
	if (d->drain_timer)
		event_free(d->drain_timer);
}

static int cmd_serve(struct conf *conf, const char *conf_path)
{
	struct daemon d = {.conf = conf, .conf_path = conf_path, .lock_fd = -1};
	signal(SIGPIPE, SIG_IGN);
	if (lock_data_dir(&d) < 0)
		return 1;
	d.base = event_base_new();
	struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	struct event *sighup = evsignal_new(d.base, SIGHUP, on_sighup, &d);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_add(sighup, NULL);
	log_event(LOG_INFO, "starting", "version=%s hostname=%s data_dir=%s", OUTPOST_VERSION,
	          conf->hostname, log_quote(conf->data_dir));
	int rc = daemon_start(&d) == 0 ? 0 : 1;
	if (rc == 0) {
		/* every listener is bound and listening: connections wait in
		 * their backlogs until the loop takes them (sd_notify(3)) */
		notify_send("READY=1");
		event_base_dispatch(d.base);
	}
	daemon_stop(&d);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_base_free(d.base);
	close(d.lock_fd);
	log_event(LOG_INFO, "stopped", "%s", "");
	return rc;
}

static void print_problem(const char *problem, void *arg)
{
	fprintf(stderr, "outpost: spool: %s\n", problem);
}

static int cmd_spool(int argc, char **argv, struct conf *conf)
{
	if (argc < 1 || strcmp(argv[0], "check") != 0)
		return usage();
	char why[256];
	struct spool *s = spool_open(conf->data_dir, why, sizeof why);
	if (s == NULL) {
		fprintf(stderr, "outpost: %s\n", why);
		return 1;
	}
	int problems = spool_check(s, print_problem, NULL);
	spool_close(s);
	printf("%d problem%s\n", problems, problems == 1 ? "" : "s");
	return problems == 0 ? 0 : 1;
}

static void print_config_error(const char *file, int line, const char *msg, void *arg)
{
	fprintf(stderr, "%s:%d: %s\n", file, line, msg);
}

static int cmd_config(int argc, char **argv, const char *path)
{
	if (argc >= 1 && strcmp(argv[0], "defaults") == 0) {
		/* --man: outpost.conf(5), made at build time; --reloadable: the
		 * keys a reload applies (docs/install.md) */
		if (argc == 1)
			conf_print_defaults(stdout);
		else if (argc == 2 && strcmp(argv[1], "--man") == 0)
			confdoc_print_man(stdout);
		else if (argc == 2 && strcmp(argv[1], "--reloadable") == 0)
			confdoc_print_reloadable(stdout);
		else
			return usage();
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (argc < 1 || strcmp(argv[0], "check") != 0)
		return usage();
	if (path == NULL && argc >= 2)
		path = argv[1];
	if (path == NULL)
		path = conf_default_path();
	if (path == NULL) {
		fprintf(stderr, "outpost: no outpost.conf%s%s; the built-in defaults apply\n",
		        conf_system_path()[0] ? " nor " : "", conf_system_path());
		return 1;
	}
	struct conf c;
	conf_defaults(&c);
	int n = conf_load_file(&c, path, print_config_error, NULL);
	conf_free(&c);
	if (n < 0) {
		fprintf(stderr, "outpost: cannot read %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (n > 0)
		return 1;
	printf("%s: ok\n", path);
	return 0;
}

static int dispatch(int argc, char **argv, struct conf *conf, const char *conf_path)
{
	const char *cmd = argv[0];
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(conf, conf_path);
	if (strcmp(cmd, "send") == 0) {
		log_set_level(LOG_WARN); /* a cron job's sendmail stays quiet */
		return send_main(argc, argv, conf, stdin);
	}
	if (strcmp(cmd, "queue") == 0)
		return argc < 2 ? usage() : cli_queue(argc - 1, argv + 1, conf);
	if (strcmp(cmd, "spool") == 0)
		return cmd_spool(argc - 1, argv + 1, conf);
	if (strcmp(cmd, "tlsrpt") == 0)
		return cli_tlsrpt(argc - 1, argv + 1, conf);
	if (strcmp(cmd, "dkim") == 0)
		return cli_dkim(argc, argv, conf);
	if (strcmp(cmd, "check") == 0)
		return cli_check(argc, argv, conf); /* argv[0] "check": getopt skips it */
	return usage();
}

int main(int argc, char **argv)
{
	const char *name = basename(argv[0]);
	bool as_sendmail = strcmp(name, "sendmail") == 0;
	argv[0] = as_sendmail ? "sendmail" : argv[0];
	const char *path = take_config_option(&argc, argv);
	if (!as_sendmail && argc < 2)
		return usage();
	if (!as_sendmail && strcmp(argv[1], "version") == 0) {
		printf("outpost %s\n", OUTPOST_VERSION);
		return 0;
	}
	if (!as_sendmail && strcmp(argv[1], "config") == 0)
		return cmd_config(argc - 2, argv + 2, path);
	struct conf conf;
	if (conf_load_default(&conf, path) < 0)
		return 1;
	log_set_level((enum log_level)conf.log_level);
	int rc;
	if (as_sendmail) {
		log_set_level(LOG_WARN);
		rc = send_main(argc, argv, &conf, stdin);
	} else {
		rc = dispatch(argc - 1, argv + 1, &conf, path);
	}
	conf_free(&conf);
	return rc;
}
