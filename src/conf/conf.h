/* conf.h - the typed configuration and its one table of keys.
 *
 * Every key has a section, a name, a type, a default and a one-line doc in
 * the table of conf.c; `outpost config defaults` prints that table and the
 * docs are checked against it. Loading starts from the defaults and applies
 * an INI file (inih). Errors name the file's line.
 */
#ifndef OUTPOST_CONF_CONF_H
#define OUTPOST_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct strlist {
	char **items;
	size_t len;
};

enum trust_ad { TRUST_AD_AUTO, TRUST_AD_YES, TRUST_AD_NO };
enum metrics_auth { METRICS_AUTH_LOOPBACK, METRICS_AUTH_ALWAYS, METRICS_AUTH_NEVER };

struct conf {
	/* [server] */
	char *hostname;
	char *data_dir;
	int64_t log_level; /* enum log_level */
	/* [submission] */
	struct strlist submission_listen;
	char *tls_cert;
	char *tls_key;
	char *users_file;
	char *local_socket;
	int64_t max_message_size;
	int64_t max_pending_bytes;
	int64_t max_recipients;
	int64_t max_line_length;
	int64_t max_errors;
	int64_t max_commands;
	int64_t max_auth_failures;
	int64_t idle_timeout_ms;
	int64_t max_connections;
	int64_t max_connections_per_ip;
	/* [admin] */
	struct strlist admin_listen;
	char *admin_token_file;
	char *admin_users_file;
	char *admin_tls_cert;
	char *admin_tls_key;
	int64_t metrics_auth; /* enum metrics_auth */
	/* [dns] */
	struct strlist dns_nameserver;
	int64_t trust_ad; /* enum trust_ad */
	/* [delivery] */
	int64_t delivery_port;
	int64_t max_attempts;
	int64_t first_retry_ms;
	int64_t delay_notice_after;
	bool paused;
	int64_t delivery_max_connections;
	int64_t delivery_max_per_destination;
	int64_t connection_max_messages;
	int64_t connection_idle_timeout_ms;
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms;
	int64_t data_timeout_ms;
	int64_t tls_timeout_ms;
	int64_t log_retention_ms;
	/* [tls] */
	char *ca_file;
	/* [dane] */
	bool dane_enabled;
	/* [mtasts] */
	bool mtasts_enabled;
	int64_t mtasts_fetch_timeout_ms;
	int64_t mtasts_refresh_interval_ms;
	/* [tlsrpt] */
	bool tlsrpt_enabled;
	char *tlsrpt_organization;
	char *tlsrpt_contact;
	char *tlsrpt_submitter;
	bool tlsrpt_all_success;
	/* [dkim] */
	struct strlist dkim_keys;      /* "DOMAIN SELECTOR PATH" */
	int64_t dkim_canonicalization; /* header/body, see conf.c */
};

/* Called once per error found while loading; line is 0 when unknown. */
typedef void (*conf_error_fn)(const char *file, int line, const char *msg, void *arg);

/* Fills c with the built-in defaults. */
void conf_defaults(struct conf *c);

/* Applies the INI file at path on top of c. Returns the number of errors
 * (each reported through err), or -1 when the file cannot be read. */
int conf_load_file(struct conf *c, const char *path, conf_error_fn err, void *arg);

/* Resolves the default: path when given, else ./outpost.conf when it exists,
 * else defaults only. Errors are printed on stderr. Returns 0 or -1. */
int conf_load_default(struct conf *c, const char *path);

/* Prints every key: section, name, type, default, doc. */
void conf_print_defaults(FILE *out);

/* Prints the effective configuration as INI. */
void conf_print(const struct conf *c, FILE *out);

void conf_free(struct conf *c);

/* A path setting: absolute as it is, relative to data_dir otherwise ("" stays ""). */
void conf_path(const struct conf *c, const char *value, char *buf, size_t n);

void strlist_add(struct strlist *l, const char *s);
void strlist_clear(struct strlist *l);

#endif
