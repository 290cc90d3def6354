/* dkim.h - DKIM signatures for the messages outpost queues (RFC 6376, RFC 8463).
 *
 * The [dkim] keys are loaded once (dkim_signer_load) and are immutable
 * afterwards: one signer is shared by the loop, the worker threads and the
 * spool writer. A key that is missing, unreadable or of a type other than
 * RSA (at least 1024 bits) or Ed25519 stops the load with an error naming
 * it: a configured domain never has its mail go out silently unsigned.
 *
 * dkim_sign_message is the one function the ways in share (the listener,
 * `outpost send` writing the spool, the delivery status notices): it signs a
 * message with every selector of its author's domain (RFC5322.From, else
 * the envelope sender) and returns the DKIM-Signature fields for the caller
 * to prepend before the commit, so a retry never signs again. The crypto is
 * OpenSSL's EVP API only: rsa-sha256 (RFC 6376 §3.3.1) and ed25519-sha256,
 * which signs the SHA-256 hash of the data (RFC 8463 §3). See docs/dkim.md.
 *
 * The canonicalizers and header selection are exposed for the unit tests
 * and the fuzzer; they take remote input and never read past len.
 */
#ifndef OUTPOST_DKIM_DKIM_H
#define OUTPOST_DKIM_DKIM_H

#include "conf/conf.h"
#include "util/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dkim_canon { DKIM_CANON_SIMPLE, DKIM_CANON_RELAXED };
enum dkim_algorithm { DKIM_RSA_SHA256, DKIM_ED25519_SHA256 };

/* Header and body canonicalization of a signature (the c= tag). */
struct dkim_canons {
	enum dkim_canon header, body;
};

struct dkim_key;
struct dkim_signer;

/* ---- keys ---------------------------------------------------------------- */

/* Reads a PEM private key for domain and selector (both checked and the
 * domain lower-cased). NULL with why filled (the path, and what is wrong).
 * The caller frees with dkim_key_free. */
struct dkim_key *dkim_key_load(const char *domain, const char *selector, const char *path,
                               char *why, size_t whylen);
void dkim_key_free(struct dkim_key *k);

enum dkim_algorithm dkim_key_algorithm(const struct dkim_key *k);
const char *dkim_key_domain(const struct dkim_key *k);
const char *dkim_key_selector(const struct dkim_key *k);

/* The p= value of the key's DNS record (RFC 6376 §3.6.1): base64 of the
 * DER SubjectPublicKeyInfo for RSA, of the 32-octet raw key for Ed25519
 * (RFC 8463 §4.2). Appended to out. */
void dkim_key_public(const struct dkim_key *k, struct buf *out);

/* "rsa" or "ed25519": the k= value of the key's DNS record. */
const char *dkim_key_type_name(const struct dkim_key *k);

/* Splits a [dkim] key value "DOMAIN SELECTOR PATH" into its three words
 * (copied into the buffers). False with why when it is not three words. */
bool dkim_key_spec_parse(const char *value, char *domain, size_t dn, char *selector, size_t sn,
                         char *path, size_t pn, char *why, size_t whylen);

/* ---- the configured keys --------------------------------------------------- */

/* Loads every [dkim] key of conf (paths relative to data_dir). NULL with why
 * on the first that cannot be used; with no key configured, a signer that
 * signs nothing. The caller frees with dkim_signer_free. */
struct dkim_signer *dkim_signer_load(const struct conf *conf, char *why, size_t whylen);
void dkim_signer_free(struct dkim_signer *s);

/* The keys of domain (case-insensitive; NULL: every key), in configuration
 * order: calls fn (may be NULL) for each; returns how many. */
size_t dkim_signer_keys(const struct dkim_signer *s, const char *domain,
                        void (*fn)(const struct dkim_key *k, void *arg), void *arg);

/* Signs msg (CRLF lines) with every key of its author domain: the From
 * field's domain, else the envelope sender's. Appends the DKIM-Signature
 * fields (CRLF-terminated) to out, to be prepended to the message. Returns
 * the number of signatures (0 when the domain has no key, or s is NULL), or
 * -1 with why. Counts outpost_dkim_signatures_total. Thread-safe. */
int dkim_sign_message(const struct dkim_signer *s, const char *msg, size_t len,
                      const char *envelope_sender, int64_t now_s, struct buf *out, char *why,
                      size_t whylen);

/* Registers the metric, so that it shows before the first signature. */
void dkim_metrics_init(void);

/* ---- the parts, for tests and the fuzzer ----------------------------------- */

/* One signature by k over msg at time now_s with canonicalization c and the
 * default header selection; the field (CRLF-terminated) is appended to out.
 * Returns 0, or -1 with why. */
int dkim_sign(const struct dkim_key *k, struct dkim_canons c, const char *msg, size_t len,
              int64_t now_s, struct buf *out, char *why, size_t whylen);

/* Receives canonical output in pieces. */
typedef void (*dkim_sink)(const char *p, size_t n, void *arg);

/* RFC 6376 §3.4.3 / §3.4.4: the canonical form of a body (the octets after
 * the empty line that ends the header section). */
void dkim_canon_body(enum dkim_canon c, const char *body, size_t len, dkim_sink fn, void *arg);

/* RFC 6376 §3.4.1 / §3.4.2: the canonical form of one header field, given
 * as it stands (name, colon, value, folding, without its final CRLF);
 * appended to out with a final CRLF. */
void dkim_canon_header(enum dkim_canon c, const char *field, size_t len, struct buf *out);

/* The h= tag's value for msg: the names of the default signed fields that
 * are present, once per instance, From once more than present
 * (oversigning, RFC 6376 §8.15), colon-separated, lower-case. */
void dkim_header_list(const char *msg, size_t len, struct buf *out);

#endif
