/* tls_hsbench.c - per-core TLS handshake rates on this host (bench/ W7's ceiling).
 *
 * Not part of outpost: built by bench/tools/Makefile.
 *
 *   tls_hsbench -c CHAIN.pem -k KEY.pem [-A CA.pem] [-s SECONDS] [-r] [-t TICKETS] [-H NAME]
 *
 * Client and server in one thread, connected by an in-memory BIO pair (no sockets, no
 * SMTP): OpenSSL's defaults on both sides, as tls_sink and outpost use them (TLS 1.3,
 * X25519). Each side's CPU time is measured separately (CLOCK_THREAD_CPUTIME_ID around its
 * own SSL calls), so the figures say what one handshake costs the client (the MTA) and the
 * server (the sink). -r: every handshake after the first resumes the last session received
 * (TLS 1.3 ticket; the client reads it after the handshake, as an MTA does while it waits
 * for the EHLO reply); otherwise every one is a full handshake. -A: the client verifies the
 * chain against CA.pem and the name NAME (SNI too; PKIX, as with verification on; DANE-EE costs less: no signature
 * check of the chain). Prints one line of JSON.
 */
#define _GNU_SOURCE
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static SSL_SESSION *last_session;
static uint64_t tickets_received;

static int on_new_session(SSL *ssl, SSL_SESSION *s)
{
	/* a copy: SSL_free without close_notify marks the connection's own session not
	 * resumable (outpost's session cache keeps copies for the same reason) */
	tickets_received++;
	if (last_session != NULL)
		SSL_SESSION_free(last_session);
	last_session = SSL_SESSION_dup(s);
	return 0;
}

static uint64_t cpu_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "tls_hsbench: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

int main(int argc, char **argv)
{
	const char *cert = NULL, *key = NULL, *ca = NULL, *host = "mx.hsbench.test";
	double seconds = 3;
	bool resume = false;
	int tickets = -1, opt;
	while ((opt = getopt(argc, argv, "c:k:A:s:rt:H:")) != -1) {
		switch (opt) {
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'A': ca = optarg; break;
		case 's': seconds = atof(optarg); break;
		case 'r': resume = true; break;
		case 't': tickets = atoi(optarg); break;
		case 'H': host = optarg; break;
		default: goto usage;
		}
	}
	if (cert == NULL || key == NULL) {
	usage:
		fprintf(stderr, "usage: tls_hsbench -c CHAIN.pem -k KEY.pem [-A CA.pem] [-s SECONDS] [-r] [-t TICKETS] [-H NAME]\n");
		return 2;
	}
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (sctx == NULL || cctx == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_min_proto_version(sctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(sctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM) != 1)
		die("loading the certificate or key");
	SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(sctx, (const unsigned char *)"hsb", 3);
	SSL_CTX_set_timeout(sctx, 3600);
	if (tickets >= 0)
		SSL_CTX_set_num_tickets(sctx, (size_t)tickets);
	SSL_CTX_set_min_proto_version(cctx, TLS1_2_VERSION);
	SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(cctx, on_new_session);
	if (ca != NULL) {
		if (SSL_CTX_load_verify_locations(cctx, ca, NULL) != 1)
			die("loading the CA file");
		SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	}

	uint64_t cli = 0, srv = 0, n = 0, reused = 0;
	double t0 = now(), t1;
	char buf[64];
	do {
		SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
		BIO *bc, *bs;
		if (c == NULL || s == NULL || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
			die("SSL_new");
		SSL_set_bio(c, bc, bc);
		SSL_set_bio(s, bs, bs);
		if (ca != NULL)
			SSL_set1_host(c, host);
		if (resume && last_session != NULL)
			SSL_set_session(c, last_session);
		SSL_set_tlsext_host_name(c, host);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		int rc = -1, rs = -1, rounds = 0;
		while (rc != 1 || rs != 1) {
			uint64_t a = cpu_ns();
			if (rc != 1)
				rc = SSL_do_handshake(c);
			uint64_t b = cpu_ns();
			if (rs != 1)
				rs = SSL_do_handshake(s);
			uint64_t d = cpu_ns();
			cli += b - a;
			srv += d - b;
			if (rc != 1 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ)
				die("client handshake");
			if (rs != 1 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ)
				die("server handshake");
			if (++rounds > 20)
				die("handshake does not finish");
		}
		/* the client takes the tickets the server sent after its Finished */
		uint64_t a = cpu_ns();
		int r = SSL_read(c, buf, sizeof buf);
		cli += cpu_ns() - a;
		if (r > 0 || SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
			die("client read");
		if (SSL_session_reused(c))
			reused++;
		a = cpu_ns();
		SSL_free(c);
		uint64_t b = cpu_ns();
		SSL_free(s);
		cli += b - a;
		srv += cpu_ns() - b;
		n++;
		t1 = now();
	} while (t1 - t0 < seconds);
	printf("{\"cert\": \"%s\", \"resume\": %s, \"verify\": %s, \"handshakes\": %lu, \"resumed\": %lu, \"tickets_per_hs\": %.2f, "
	       "\"client_us\": %.1f, \"server_us\": %.1f, \"client_per_core_s\": %.0f, \"server_per_core_s\": %.0f, "
	       "\"both_per_core_s\": %.0f, \"wall_s\": %.2f}\n",
	       cert, resume ? "true" : "false", ca ? "true" : "false", n, reused, (double)tickets_received / n, cli / 1e3 / n, srv / 1e3 / n,
	       n * 1e9 / cli, n * 1e9 / srv, n * 1e9 / (cli + srv), t1 - t0);
	return 0;
}
