/* fuzz_smtp_data.c - libFuzzer target for the DATA reader, the BDAT scanner
 * and dot-stuffing.
 *
 * The first input octets choose the limits and the chunking; the rest is
 * the data stream. Properties checked:
 *  - feeding in chunks gives exactly what feeding at once gives (body,
 *    flags, size, the octets left after the end);
 *  - dot-stuffing any body and reading it back ends exactly at the end of
 *    the stuffed text, with no bare CR/LF left, and gives the body back
 *    when it was CRLF text already. */
#include "smtp/data.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct outcome {
	bool done;
	unsigned flags;
	uint64_t size;
	struct evbuffer *body, *rest;
};

static uint32_t next_rand(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Feeds data in chunks of 1..max_chunk octets (all at once when 0). */
static struct outcome run(const uint8_t *data, size_t size, size_t max_size, size_t max_line,
                          size_t max_chunk, uint32_t seed)
{
	struct smtp_data_reader r;
	struct outcome o = {0};
	size_t off = 0;

	o.body = evbuffer_new();
	o.rest = evbuffer_new();
	smtp_data_reader_init(&r, max_size, max_line);
	while (off < size && !o.done) {
		size_t n = max_chunk ? 1 + next_rand(&seed) % max_chunk : size - off;

		if (n > size - off)
			n = size - off;
		evbuffer_add(o.rest, data + off, n);
		off += n;
		o.done = smtp_data_reader_feed(&r, o.rest, o.body);
		if (!o.done && evbuffer_get_length(o.rest) != 0)
			abort();
	}
	evbuffer_add(o.rest, data + off, size - off);
	o.flags = r.flags;
	o.size = r.size;
	if (r.size < max_size && evbuffer_get_length(o.body) != r.size)
		abort();
	return o;
}

static bool same_buffer(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	if (n != evbuffer_get_length(b))
		return false;
	return n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0;
}

static void outcome_free(struct outcome *o)
{
	evbuffer_free(o->body);
	evbuffer_free(o->rest);
}

/* True when every CR and LF of p is part of a CRLF and p ends with one. */
static bool is_crlf_text(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			return false;
	}
	return n == 0 || (n >= 2 && p[n - 1] == '\n');
}

static void stuff_round_trip(const uint8_t *data, size_t size)
{
	struct evbuffer *wire = evbuffer_new(), *body = evbuffer_new();
	struct smtp_data_reader r;

	smtp_dot_stuff(data, size, wire);
	smtp_data_reader_init(&r, 0, 0);
	if (!smtp_data_reader_feed(&r, wire, body) || evbuffer_get_length(wire) != 0)
		abort();
	if (r.flags & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF))
		abort();
	if (is_crlf_text(data, size) &&
	    (evbuffer_get_length(body) != size ||
	     (size && memcmp(evbuffer_pullup(body, -1), data, size) != 0)))
		abort();
	evbuffer_free(wire);
	evbuffer_free(body);
}

static void scan_in_chunks(const uint8_t *data, size_t size, size_t max_line, uint32_t seed)
{
	struct smtp_data_reader whole, parts;
	size_t off = 0;

	smtp_data_reader_init(&whole, 100, max_line);
	smtp_data_reader_init(&parts, 100, max_line);
	smtp_data_scan(&whole, data, size);
	while (off < size) {
		size_t n = 1 + next_rand(&seed) % 5;

		if (n > size - off)
			n = size - off;
		smtp_data_scan(&parts, data + off, n);
		off += n;
	}
	if (whole.flags != parts.flags || whole.size != parts.size || whole.size != size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b;
	size_t max_size, max_line, max_chunk;
	uint32_t seed;

	if (size < 3)
		return 0;
	max_size = data[0] < 8 ? 0 : (size_t)data[0] * 4;
	max_line = data[1] % 64;
	max_chunk = 1 + data[2] % 16;
	seed = (uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[2];
	data += 3;
	size -= 3;

	a = run(data, size, max_size, max_line, 0, seed);
	b = run(data, size, max_size, max_line, max_chunk, seed);
	if (a.done != b.done || a.flags != b.flags || a.size != b.size ||
	    !same_buffer(a.body, b.body) || !same_buffer(a.rest, b.rest))
		abort();
	outcome_free(&a);
	outcome_free(&b);
	scan_in_chunks(data, size, max_line, seed);
	stuff_round_trip(data, size);
	return 0;
}
