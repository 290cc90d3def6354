/* users.h - a users file: one "user:crypt(3) hash" per line.
 *
 * Used for AUTH on submission and for HTTP Basic / console logins on the
 * admin listener. Loaded at start; lines starting with '#' and empty lines
 * are skipped. Only strong hashing schemes are accepted (yescrypt, scrypt,
 * bcrypt, SHA-512 and SHA-256 crypt); DES and MD5 crypt, which fall to a
 * laptop in hours, refuse the file with an error naming the line.
 *
 * users_verify costs as much as the scheme makes it (milliseconds): call it
 * off the event loop (util/worker.h). It hashes even for an unknown user,
 * against a hash of the file's own scheme, so the time taken does not tell
 * which user names exist. The structure is immutable once loaded, so
 * several threads may verify at once.
 */
#ifndef OUTPOST_SUBMIT_USERS_H
#define OUTPOST_SUBMIT_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct users;

/* NULL with why filled (naming the line) when the file is unusable. */
struct users *users_load(const char *path, char *why, size_t whylen);
bool users_verify(const struct users *u, const char *user, const char *password);
void users_free(struct users *u);

/* Whether hash uses a scheme users files may use (see above). */
bool users_scheme_strong(const char *hash);

#endif
