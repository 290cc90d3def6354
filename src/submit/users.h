/* users.h - the submission users file: one "user:crypt(3) hash" per line.
 *
 * Loaded at start; lines starting with '#' and empty lines are skipped.
 * Verification uses crypt_r and a constant-time comparison.
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

#endif
