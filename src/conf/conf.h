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
	int64_t dns_cache_max_ttl_ms;
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

/* The file read when no -c FILE is given: ./outpost.conf when it exists,
 * else the system file (OUTPOST_SYSTEM_CONFIG, set at build time, e.g.
 * /etc/outpost/outpost.conf) when it exists, else NULL: built-in defaults. */
const char *conf_default_path(void);

/* OUTPOST_SYSTEM_CONFIG: the system file of this build, or "" for none. */
const char *conf_system_path(void);

/* Resolves the default: path when given, else conf_default_path(). Errors
 * are printed on stderr. Returns 0 or -1. */
int conf_load_default(struct conf *c, const char *path);

/* Called by conf_reload for each key whose value changed. The values are
 * as a config file would spell them (lists joined with ", "); applied says
 * whether the running daemon takes the new value now or at its next start. */
typedef void (*conf_change_fn)(const char *section, const char *name, const char *old_value,
                               const char *new_value, bool applied, void *arg);

/* A reload: compares fresh (a newly loaded configuration) with live, key by
 * key. A changed key marked as reloadable in the table is copied into live;
 * any other change is only reported, and live keeps its value until a
 * restart. Reloadable keys are scalars, so no pointer into live that a
 * module holds changes. Returns the number of changes that need a restart. */
int conf_reload(struct conf *live, const struct conf *fresh, conf_change_fn fn, void *arg);

/* One key of the table, for the documentation generated from it. */
struct conf_key_info {
	const char *section, *name;
	const char *type; /* "string", "integer", "size", "duration", "bool", "list", "enum" */
	const char *def;  /* as `config defaults` prints it: "" for empty, "(system)" */
	const char *doc;
	const char *const *values; /* enum: the allowed names; else NULL */
	bool reload;               /* conf_reload applies a change at run time */
};

/* The number of keys, and key i (0 <= i < conf_key_count()) in table order. */
size_t conf_key_count(void);
void conf_key_get(size_t i, struct conf_key_info *out);

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
