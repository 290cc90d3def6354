/* https.h - HTTPS requests on the event loop (libcurl's multi-socket API).
 *
 * One struct https_client per event_base drives a CURLM from libevent: curl
 * says which sockets to watch and when to wake it, nothing blocks and no
 * thread is started. Curl never resolves a name: the caller passes the
 * addresses to connect to (from our resolver), so that every lookup goes
 * through src/dns/ and its validating resolver.
 *
 * Every request is https only, never follows a redirect (a 3xx is a
 * result), verifies the server with PKIX against the system roots plus the
 * client's extra CA file, checks the host name, uses TLS 1.2 or later, has
 * one total timeout and a cap on the response body, ignores proxies from
 * the environment and opens a fresh connection that it does not keep.
 *
 * The callback runs once, from the loop, never from within https_request.
 * Until it has started, https_cancel withdraws the request and the callback
 * never runs.
 */
#ifndef OUTPOST_UTIL_HTTPS_H
#define OUTPOST_UTIL_HTTPS_H

#include <openssl/x509_vfy.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct https_client;
struct https_request;

enum https_method { HTTPS_GET, HTTPS_POST };

enum https_outcome {
	HTTPS_RESPONSE,       /* a final response that is not a 3xx: see status */
	HTTPS_REDIRECT,       /* a 3xx, not followed: status and location */
	HTTPS_TIMEOUT,        /* the total timeout ran out */
	HTTPS_CONNECT_FAILED, /* no TCP connection to any of the addresses */
	HTTPS_CERT_INVALID,   /* PKIX or host name verification failed: verify_result */
	HTTPS_TLS_FAILED,     /* any other TLS failure (handshake, alert, not TLS) */
	HTTPS_TOO_LARGE,      /* the body went over max_body: transfer aborted */
	HTTPS_OTHER,          /* bad request, connection lost, protocol error, ... */
};

struct https_result {
	enum https_outcome outcome;
	long status;              /* HTTP status when a response header came, else 0 */
	long verify_result;       /* OpenSSL X509_V_ERR_* for HTTPS_CERT_INVALID, else 0 */
	const char *body;         /* NUL-terminated after body_len octets (which may hold NULs) */
	size_t body_len;          /* complete for HTTPS_RESPONSE and HTTPS_REDIRECT only */
	const char *content_type; /* as received, NULL when absent */
	const char *location;     /* HTTPS_REDIRECT: the target, NULL when absent */
	char reason[256];         /* human text for logs ("" for a response) */
};

struct https_request_opts {
	enum https_method method;
	const char *url;          /* https://host[:port]/path */
	const char *const *addrs; /* numeric IPv4/IPv6 addresses of the URL's host, tried */
	size_t naddrs;            /* in order (IPv4 and IPv6 raced, RFC 8305); at least one */
	const void *body;         /* HTTPS_POST: the request body (copied) */
	size_t body_len;          /* HTTPS_POST */
	const char *content_type; /* HTTPS_POST: its media type */
	int64_t timeout_ms;       /* the whole request, connect included; > 0 */
	size_t max_body;          /* largest response body accepted, in octets */
};

/* Called once on the loop thread; the result and everything it points to
 * are valid only during the call (copy what you keep). */
typedef void (*https_callback)(void *arg, const struct https_result *r);

/* Creates the client on base. ca_file (PEM, NULL or "" for none) adds trust
 * anchors to the system's. NULL with why filled when the file cannot be
 * used or libcurl cannot start. */
struct https_client *https_client_new(struct event_base *base, const char *ca_file, char *why,
                                      size_t whylen);

/* Requests still pending are dropped without their callbacks. Not from
 * within a callback. */
void https_client_free(struct https_client *c);

/* The loop the client runs on (for callers' own timers). */
struct event_base *https_client_base(const struct https_client *c);

/* Starts a request; everything in o is copied. Invalid options (not https,
 * no address, an address that is not numeric) fail through the callback
 * with HTTPS_OTHER. Returns a handle for https_cancel. */
struct https_request *https_request(struct https_client *c, const struct https_request_opts *o,
                                    https_callback cb, void *arg);

/* The callback will not be called. Accepts NULL; a no-op from within the
 * request's own callback (the handle dies when the callback returns). */
void https_cancel(struct https_request *r);

/* "response", "redirect", "timeout", ... for logs and metrics. */
const char *https_outcome_name(enum https_outcome o);

/* The trust anchors every request uses: OpenSSL's default system store
 * plus the certificates in ca_file (NULL or "" for none). The caller frees
 * it with X509_STORE_free. NULL with why filled when ca_file holds no
 * usable certificate. Exposed for tests. */
X509_STORE *https_trust_store_new(const char *ca_file, char *why, size_t whylen);

#endif
