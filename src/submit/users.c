/* users.c - users file and password verification. */
#include "submit/users.h"

#include <crypt.h>
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

struct users *users_load(const char *path, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(why, whylen, "cannot read users file %s", path);
		return NULL;
	}
	struct users *u = calloc(1, sizeof *u);
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (colon == NULL || colon == line || colon[1] == '\0') {
			snprintf(why, whylen, "%s:%d: expected user:hash", path, lineno);
			fclose(f);
			users_free(u);
			return NULL;
		}
		*colon = '\0';
		users_add(u, line, colon + 1);
	}
	fclose(f);
	return u;
}

/* Compares without an early exit, so timing does not reveal the prefix. */
static bool equal_constant_time(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = (unsigned char)(la != lb);
	for (size_t i = 0; i < la && i < lb; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

bool users_verify(const struct users *u, const char *user, const char *password)
{
	for (size_t i = 0; u && i < u->len; i++) {
		if (strcmp(u->list[i].name, user) != 0)
			continue;
		struct crypt_data data;
		memset(&data, 0, sizeof data);
		const char *h = crypt_r(password, u->list[i].hash, &data);
		return h != NULL && h[0] != '*' && equal_constant_time(h, u->list[i].hash);
	}
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
	free(u);
}
