/* cache.c - DNS answers kept for their time to live. */
#include "dns/cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 8192 /* a power of two */

struct entry {
	struct entry *chain;            /* next in the bucket */
	struct entry *older, *newer;    /* insertion order, for eviction */
	enum dns_type type;
	int64_t expires_ms;
	size_t size; /* dns_cache_answer_size */
	struct dns_answer answer;
	char key[DNS_NAME_MAX + 1];
};

struct dns_cache {
	uint32_t max_ttl_s;
	struct entry *buckets[BUCKETS];
	struct entry *oldest, *newest;
	size_t entries, bytes;
};

static void *cache_alloc(size_t n)
{
	void *p = calloc(1, n);
	if (p == NULL)
		abort();
	return p;
}

/* FNV-1a over the key and the type. */
static size_t bucket_of(const char *key, enum dns_type type)
{
	uint32_t h = 2166136261u;
	for (const char *p = key; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h = (h ^ (uint32_t)type) * 16777619u;
	return h & (BUCKETS - 1);
}

static struct entry **slot_of(struct dns_cache *c, const char *key, enum dns_type type)
{
	struct entry **e = &c->buckets[bucket_of(key, type)];
	while (*e && ((*e)->type != type || strcmp((*e)->key, key) != 0))
		e = &(*e)->chain;
	return e;
}

static void entry_remove(struct dns_cache *c, struct entry **slot)
{
	struct entry *e = *slot;
	*slot = e->chain;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->entries--;
	c->bytes -= e->size;
	dns_answer_free(&e->answer);
	free(e);
}

struct dns_cache *dns_cache_new(uint32_t max_ttl_s)
{
	struct dns_cache *c = cache_alloc(sizeof *c);
	c->max_ttl_s = max_ttl_s;
	return c;
}

void dns_cache_free(struct dns_cache *c)
{
	if (c == NULL)
		return;
	while (c->oldest)
		entry_remove(c, slot_of(c, c->oldest->key, c->oldest->type));
	free(c);
}

const struct dns_answer *dns_cache_get(struct dns_cache *c, const char *key, enum dns_type type,
                                       int64_t now_ms, uint32_t *ttl_left)
{
	struct entry **slot = slot_of(c, key, type);
	if (*slot == NULL)
		return NULL;
	if ((*slot)->expires_ms <= now_ms) {
		entry_remove(c, slot);
		return NULL;
	}
	*ttl_left = (uint32_t)(((*slot)->expires_ms - now_ms + 999) / 1000);
	return &(*slot)->answer;
}

size_t dns_cache_answer_size(const struct dns_answer *a)
{
	size_t size = sizeof(struct entry);
	if (a->mx)
		size += a->n * sizeof *a->mx;
	if (a->addrs)
		size += a->n * sizeof *a->addrs;
	for (size_t i = 0; a->tlsa && i < a->n; i++)
		size += sizeof *a->tlsa + a->tlsa[i].len;
	for (size_t i = 0; a->txt && i < a->n; i++)
		size += sizeof *a->txt + strlen(a->txt[i]) + 1;
	return size;
}

void dns_cache_put(struct dns_cache *c, const char *key, enum dns_type type,
                   const struct dns_answer *a, uint32_t ttl, int64_t now_ms)
{
	if (ttl > c->max_ttl_s)
		ttl = c->max_ttl_s;
	size_t size = dns_cache_answer_size(a);
	if (ttl == 0 || size > DNS_CACHE_ANSWER_MAX || strlen(key) > DNS_NAME_MAX)
		return;
	struct entry **slot = slot_of(c, key, type);
	if (*slot)
		entry_remove(c, slot);
	while (c->oldest &&
	       (c->entries + 1 > DNS_CACHE_ENTRIES || c->bytes + size > DNS_CACHE_BYTES))
		entry_remove(c, slot_of(c, c->oldest->key, c->oldest->type));
	struct entry *e = cache_alloc(sizeof *e);
	e->type = type;
	e->expires_ms = now_ms + (int64_t)ttl * 1000;
	e->size = size;
	dns_answer_copy(&e->answer, a);
	strcpy(e->key, key);
	slot = slot_of(c, key, type); /* eviction may have moved the chain's end */
	*slot = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->entries++;
	c->bytes += size;
}

size_t dns_cache_entries(const struct dns_cache *c)
{
	return c->entries;
}
