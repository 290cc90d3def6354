/* users.c - users file and password verification. */
#include "submit/users.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct user {
	char *name;
	char *hash;
};

struct users {
	struct user *list;
	size_t len;
	char *dummy; /* hashed for unknown users: same scheme, same cost */
};

static void users_add(struct users *u, const char *name, const char *hash)
{
	u->list = realloc(u->list, (u->len + 1) * sizeof *u->list);
	if (u->list == NULL)
		abort();
	u->list[u->len].name = strdup(name);
	u->list[u->len].hash = strdup(hash);
	u->len++;
}

bool users_scheme_strong(const char *hash)
{
	static const char *const strong[] = {"$y$",  "$gy$", "$7$", "$2b$",
	                                     "$2y$", "$2a$", "$6$", "$5$"};
	for (size_t i = 0; i < sizeof strong / sizeof strong[0]; i++)
		if (strncmp(hash, strong[i], strlen(strong[i])) == 0)
			return true;
	return false;
}

/* A hash of a random password with the scheme (and cost) of the file's
 * first user, so that checking an unknown name takes as long as a known. */
static char *make_dummy(const struct users *u)
{
	char prefix[64] = "$y$", salt[CRYPT_GENSALT_OUTPUT_SIZE];
	unsigned char random[16];
	char password[33];
	struct crypt_data data;
	if (u->len > 0) {
		const char *h = u->list[0].hash, *end = strchr(h + 1, '$');
		size_t n = end ? (size_t)(end - h) + 1 : 0;
		if (n > 0 && n < sizeof prefix) {
			memcpy(prefix, h, n);
			prefix[n] = '\0';
		}
	}
	if (RAND_bytes(random, sizeof random) != 1)
		abort();
	for (size_t i = 0; i < sizeof random; i++)
		snprintf(password + 2 * i, 3, "%02x", random[i]);
	if (crypt_gensalt_rn(prefix, 0, NULL, 0, salt, sizeof salt) == NULL &&
	    crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt) == NULL)
		return strdup("*");
	memset(&data, 0, sizeof data);
	const char *h = crypt_r(password, salt, &data);
	return strdup(h && h[0] != '*' ? h : "*");
}

static int load_line(struct users *u, char *line, const char *path, int lineno, char *why,
                     size_t whylen)
{
	char *colon = strchr(line, ':');
	if (colon == NULL || colon == line || colon[1] == '\0') {
		snprintf(why, whylen, "%s:%d: expected user:hash", path, lineno);
		return -1;
	}
	*colon = '\0';
	if (!users_scheme_strong(colon + 1)) {
		snprintf(why, whylen,
		         "%s:%d: the hash of %s uses a weak or unknown scheme (use yescrypt, e.g. "
		         "mkpasswd -m yescrypt)",
		         path, lineno, line);
		return -1;
	}
	users_add(u, line, colon + 1);
	return 0;
}

struct users *users_load(const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, whylen, "cannot read users file %s", path);
		return NULL;
	}
	struct users *u = calloc(1, sizeof *u);
	if (u == NULL)
		abort();
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (load_line(u, line, path, lineno, why, whylen) < 0) {
			fclose(f);
			users_free(u);
			return NULL;
		}
	}
	fclose(f);
	u->dummy = make_dummy(u);
	return u;
}

/* Hashes password with the setting of hash and compares in constant time. */
static bool matches(const char *password, const char *hash)
{
	struct crypt_data data;
	memset(&data, 0, sizeof data);
	const char *h = crypt_r(password, hash, &data);
	size_t n = strlen(hash);
	return h != NULL && h[0] != '*' && strlen(h) == n && CRYPTO_memcmp(h, hash, n) == 0;
}

bool users_verify(const struct users *u, const char *user, const char *password)
{
	if (u == NULL)
		return false;
	for (size_t i = 0; i < u->len; i++)
		if (strcmp(u->list[i].name, user) == 0)
			return matches(password, u->list[i].hash);
	matches(password, u->dummy); /* the same work for a name that does not exist */
	return false;
}

void users_free(struct users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->len; i++) {
		free(u->list[i].name);
		free(u->list[i].hash);
	}
	free(u->list);
	free(u->dummy);
	free(u);
}
