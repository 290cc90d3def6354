/* client.h - the SMTP client: one connection to one MX host, as a state machine.
 *
 * Session setup (RFC 5321 §3.1, §4.1.1.1): connect, greeting, EHLO (HELO
 * when EHLO is refused with 500-504), then STARTTLS (RFC 3207) when the mode
 * asks for it, and EHLO again over TLS, forgetting what the server said
 * before (RFC 3207 §4.2). Then any number of transactions, each with several
 * recipients and one result per recipient, pipelined when the server offers
 * PIPELINING (RFC 2920), with BDAT when it offers CHUNKING (RFC 3030) and
 * the message fits one chunk, else DATA with dot-stuffing, streamed from
 * the spool as the socket drains. No line longer than 998 octets is ever
 * sent (RFC 5322 §2.1.1; smtp_encoder breaks it). RSET between transactions when the previous one
 * left state behind, QUIT at the end.
 *
 * Every failure is a struct smtp_client_error: the command it belongs to,
 * the reply (code, enhanced code, text) when there was one, and whether it
 * is permanent (5xx replies, RFC 5321 §4.2.1, and a message over the
 * server's SIZE; I/O, timeouts, protocol errors and TLS failures are
 * temporary: docs/delivery.md, "Which replies are permanent"). The
 * enhanced code travels to the log and the DSN unchanged.
 */
#ifndef OUTPOST_DELIVER_CLIENT_H
#define OUTPOST_DELIVER_CLIENT_H

#include "tls/session_cache.h"
#include "tls/verify.h"

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;
struct smtp_client;

enum smtp_tls_mode {
	SMTP_TLS_OPPORTUNISTIC, /* STARTTLS when offered (RFC 7435) */
	SMTP_TLS_REQUIRED,      /* STARTTLS sent even when not offered; no TLS, no session */
	SMTP_TLS_SKIP,          /* never: the plaintext retry after a failed handshake */
};

/* What went wrong with TLS, for the decision and for TLS reporting. */
enum smtp_tls_failure {
	SMTP_TLS_OK,
	SMTP_TLS_NOT_OFFERED, /* REQUIRED: no STARTTLS in the EHLO reply (sent anyway) */
	SMTP_TLS_REFUSED,     /* the reply to STARTTLS was not 220 (code in the error) */
	SMTP_TLS_HANDSHAKE,   /* the handshake failed or timed out */
	SMTP_TLS_UNVERIFIED,  /* done, but the verdict does not authenticate the server */
};

enum smtp_error_kind {
	SMTP_ERR_NONE,
	SMTP_ERR_STATUS,     /* the server replied with an unexpected code */
	SMTP_ERR_PROTOCOL,   /* a malformed reply: the connection is unusable */
	SMTP_ERR_IO,         /* connect, read or write failed; connection closed */
	SMTP_ERR_TIMEOUT,    /* no (complete) reply in time */
	SMTP_ERR_TLS,        /* STARTTLS refused or the handshake failed */
	SMTP_ERR_SIZE,       /* larger than the server's SIZE: permanent */
	SMTP_ERR_8BITMIME,   /* 8-bit message, server lacks 8BITMIME */
	SMTP_ERR_SMTPUTF8,   /* needs SMTPUTF8, server lacks it */
	SMTP_ERR_REQUIRETLS, /* needs REQUIRETLS, server lacks it */
	SMTP_ERR_LOCAL,      /* our side: the message could not be read */
};

struct smtp_client_error {
	enum smtp_error_kind kind;
	bool permanent;
	const char *command;       /* "connect", "greeting", "ehlo", "helo", "starttls",
	                              "tls", "mail", "rcpt", "data", "bdat", "rset", "quit" */
	int code;                  /* reply code, 0 when none */
	char enhanced[16];         /* "5.1.1" from the reply (or our own), "" when none */
	char text[512];            /* the reply's text (lines joined by spaces), or our reason */
	enum smtp_tls_failure tls; /* with SMTP_ERR_TLS: which step */
};

/* Registers the client's metrics (connections open). */
void smtp_client_metrics_init(void);

/* "mail: 550 5.7.1 relaying denied" style, for logs and DSNs. */
void smtp_client_error_format(const struct smtp_client_error *e, char *buf, size_t n);

struct smtp_client_config {
	const char *ehlo_name;   /* our hostname, A-labels */
	const char *server_name; /* the MX host name, for SNI and logs */
	enum smtp_tls_mode tls_mode;
	SSL_CTX *tls_ctx; /* client context; required unless SMTP_TLS_SKIP */
	/* Who the server must be (verify.h); read until the ready callback.
	 * NULL: SNI and the PKIX check (recorded, not required) for
	 * server_name. */
	const struct tls_peer_policy *tls_policy;
	bool tls_authenticate;                  /* the verdict must authenticate the server */
	struct tls_session_cache *tls_sessions; /* resumption (NULL: none) */
	int64_t connect_timeout_ms;
	int64_t command_timeout_ms; /* whole reply to any command, and write stalls */
	int64_t data_timeout_ms;    /* the reply after the end of the data */
	int64_t tls_timeout_ms;
};

/* What a connected session learned about its server. */
struct smtp_server_info {
	char greeting_name[256]; /* first word of the greeting text (TLSRPT receiving-mx-helo) */
	bool esmtp;
	bool pipelining, chunking, eightbitmime, smtputf8, enhancedstatuscodes, requiretls,
	    starttls;
	uint64_t size_max; /* 0: no limit announced (SIZE 0 means no limit too) */
	bool tls;          /* the session is protected by TLS */
	char tls_version[16];
	char tls_cipher[64];
	bool tls_tried;                 /* a handshake completed, accepted or not */
	struct tls_peer_result verdict; /* of that handshake (verify.h) */
	char local_ip[46];              /* our address on this connection */
};

/* Called once the session is ready for transactions (ok) or failed (err).
 * smtp_client_info(c) is valid during the call, also on failure (what the
 * server offered, the TLS verdict). */
typedef void (*smtp_ready_fn)(void *arg, struct smtp_client *c, bool ok,
                              const struct smtp_client_error *err);

/* Connects to addr and sets the session up. The callback runs later, never
 * from inside this call. On failure the client is already freed. */
struct smtp_client *smtp_client_connect(struct event_base *base, const struct sockaddr *addr,
                                        socklen_t addrlen, const struct smtp_client_config *cfg,
                                        smtp_ready_fn ready, void *arg);

const struct smtp_server_info *smtp_client_info(const struct smtp_client *c);

enum smtp_rcpt_status {
	SMTP_RCPT_OK,        /* accepted, and the message was accepted after the data */
	SMTP_RCPT_FAILED,    /* refused (see reply; permanent when 5xx) */
	SMTP_RCPT_NOT_TRIED, /* 452 "too many recipients" or the transaction ended
	                        before it: send it in another transaction */
};

struct smtp_rcpt_result {
	enum smtp_rcpt_status status;
	struct smtp_client_error error; /* for FAILED, and the final reply for OK */
};

/* The message, read in pieces as the connection takes them, so that a
 * large message is never held whole in memory. read returns the octets
 * read (up to n, at offset), 0 at the end, or -1 with why filled. */
struct smtp_body {
	size_t len; /* CRLF lines, not dot-stuffed */
	ssize_t (*read)(void *arg, size_t offset, void *buf, size_t n, char *why, size_t whylen);
	void *arg;
};

/* A body held in memory (tests, small messages): m must outlive the txn. */
struct smtp_body_memory {
	const char *p;
	size_t len;
};
void smtp_body_from_memory(struct smtp_body *b, struct smtp_body_memory *m, const char *p,
                           size_t len);

struct smtp_txn {
	const char *sender; /* "" for <> */
	const char *const *rcpts;
	size_t nrcpt;
	struct smtp_body body;
	bool eightbit, smtputf8, requiretls;
};

/* Called when the transaction is over. results has txn->nrcpt entries.
 * When err->kind != NONE the transaction as a whole failed (recipients that
 * were accepted before are FAILED with this error, or NOT_TRIED); the
 * connection may still be usable (smtp_client_usable). */
typedef void (*smtp_txn_fn)(void *arg, struct smtp_client *c,
                            const struct smtp_rcpt_result *results,
                            const struct smtp_client_error *err);

/* Runs one transaction on a ready session. The txn and its strings must
 * stay valid until the callback. */
void smtp_client_send(struct smtp_client *c, const struct smtp_txn *txn, smtp_txn_fn done,
                      void *arg);

/* True when another transaction may follow on this connection. */
bool smtp_client_usable(const struct smtp_client *c);

/* While the session is idle (parked for reuse): fn runs if the server
 * closes the connection or sends anything unasked, after which the client is
 * unusable and the caller should smtp_client_abort it. NULL unsets. */
void smtp_client_watch_idle(struct smtp_client *c, void (*fn)(void *arg, struct smtp_client *c),
                            void *arg);

/* The certificates the server presented, leaf first (verify.h), for
 * `outpost check`; 0 without TLS. */
size_t smtp_client_peer_chain(struct smtp_client *c, struct tls_cert_summary *out, size_t max);

/* Sends QUIT (when usable), waits briefly for its reply, closes, frees. */
void smtp_client_quit(struct smtp_client *c);

/* Closes at once and frees; no callback is called afterwards. */
void smtp_client_abort(struct smtp_client *c);

#endif
