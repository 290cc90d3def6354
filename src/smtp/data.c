/* data.c - the DATA body: dot-unstuffing on receipt, dot-stuffing on send.
 *
 * The reader is a small state machine over octets, but it only looks at
 * octets one by one at the start of a line (where a '.' matters); the rest
 * of each line is found with memchr and copied to the body in bulk, and the
 * flags are computed over whole runs. The input is read in place through
 * evbuffer_peek and drained once per batch of chains.
 *
 * Lines are CRLF lines (RFC 5321 §2.3.8). A bare LF or bare CR is content:
 * it is flagged and kept, it does not start a new line, so neither a '.'
 * after it is unstuffed nor can "LF . CRLF" or "CRLF . LF" end the data
 * (the 2023 SMTP smuggling attacks). Consequently line_len and the
 * max_line check count octets since the last CRLF.
 *
 * Sizes are counted after unstuffing. A max_size or max_line of 0 means no
 * limit.
 */
#include "smtp/data.h"

#include <event2/buffer.h>
#include <string.h>

enum data_state {
	ST_BOL,    /* at the start of a line */
	ST_DOT,    /* a line began with '.', which was dropped */
	ST_DOT_CR, /* ".\r" at the start of a line, neither written yet */
	ST_MID,    /* inside a line */
	ST_CR,     /* inside a line, the last octet was CR */
	ST_DONE,   /* the end-of-data line was consumed */
};

#define PEEK_CHAINS 16

void smtp_data_reader_init(struct smtp_data_reader *r, size_t max_size, size_t max_line)
{
	memset(r, 0, sizeof(*r));
	r->max_size = max_size ? max_size : SIZE_MAX;
	r->max_line = max_line ? max_line : SIZE_MAX;
	r->state = ST_BOL;
}

/* True when any octet of p has its high bit set. Written as an OR-reduction
 * so that the compiler vectorizes it. */
static bool any_8bit(const unsigned char *p, size_t n)
{
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc & 0x80;
}

/* Flags 8BIT, NUL and bare CR for content octets p[0..n) that contain no
 * LF. A CR in the last position is not judged: it may start a CRLF. */
static void note_content(struct smtp_data_reader *r, const unsigned char *p, size_t n)
{
	if (n == 0)
		return;
	if (r->state == ST_CR)
		r->flags |= SMTP_DATA_BARE_CR; /* the pending CR met a non-LF */
	if (!(r->flags & SMTP_DATA_8BIT) && any_8bit(p, n))
		r->flags |= SMTP_DATA_8BIT;
	if (!(r->flags & SMTP_DATA_NUL) && memchr(p, '\0', n))
		r->flags |= SMTP_DATA_NUL;
	if (!(r->flags & SMTP_DATA_BARE_CR) && n > 1 && memchr(p, '\r', n - 1))
		r->flags |= SMTP_DATA_BARE_CR;
	r->line_len += n;
	r->state = p[n - 1] == '\r' ? ST_CR : ST_MID;
}

/* A CRLF ended the current line; line_len still counts its CR. */
static void line_end(struct smtp_data_reader *r)
{
	if (r->line_len - 1 > r->max_line)
		r->flags |= SMTP_DATA_LONG_LINE;
	r->line_len = 0;
}

/* Scans line content from p up to and including the LF of a CRLF (the
 * state is then ST_BOL), or to the end of the run. Returns the octets
 * consumed. A bare LF is content and does not stop the scan. ST_BOL counts
 * as "inside a line" here, which is what BDAT chunks need. */
static size_t scan_line(struct smtp_data_reader *r, const unsigned char *p, size_t len)
{
	size_t off = 0;

	while (off < len) {
		const unsigned char *nl = memchr(p + off, '\n', len - off);
		size_t seg = nl ? (size_t)(nl - p) - off : len - off;

		note_content(r, p + off, seg);
		off += seg;
		if (!nl)
			break;
		off++; /* the LF */
		if (r->state == ST_CR) {
			line_end(r);
			r->state = ST_BOL;
			return off;
		}
		r->flags |= SMTP_DATA_BARE_LF;
		r->line_len++;
		r->state = ST_MID;
	}
	/* A long line is known before it ends; the pending CR may be CRLF's. */
	if (r->line_len - (r->state == ST_CR) > r->max_line)
		r->flags |= SMTP_DATA_LONG_LINE;
	return off;
}

/* Counts n body octets and appends as many as fit under max_size. */
static void body_add(struct smtp_data_reader *r, struct evbuffer *body, const void *p, size_t n)
{
	uint64_t stored = r->size < r->max_size ? r->size : r->max_size;
	uint64_t room = r->max_size - stored;

	if (n == 0)
		return;
	evbuffer_add(body, p, n < room ? n : (size_t)room);
	r->size += n;
	if (r->size > r->max_size)
		r->flags |= SMTP_DATA_TOO_BIG;
}

/* Handles the octet at the start of a line, or after a leading dot.
 * Returns true when the octet was consumed here. */
static bool line_start(struct smtp_data_reader *r, unsigned char ch, struct evbuffer *body)
{
	switch (r->state) {
	case ST_BOL:
		if (ch != '.')
			break;
		r->state = ST_DOT; /* §4.5.2: drop the first '.' of a line */
		return true;
	case ST_DOT:
		if (ch != '\r')
			break;
		r->state = ST_DOT_CR;
		return true;
	case ST_DOT_CR:
		if (ch == '\n') {
			r->state = ST_DONE; /* CRLF "." CRLF */
			return true;
		}
		/* ".\r" then not LF: the CR is content of the line. */
		body_add(r, body, "\r", 1);
		r->line_len = 1;
		r->state = ST_CR;
		return false;
	default:
		return false;
	}
	r->state = ST_MID;
	return false;
}

/* Processes one contiguous run of input. Returns the octets consumed; stops
 * right after the end-of-data line. Content between skipped octets (dots,
 * the final line) goes to body in one piece. */
static size_t data_run(struct smtp_data_reader *r, const unsigned char *p, size_t len,
                       struct evbuffer *body)
{
	size_t off = 0, copy_from = 0;

	while (off < len && r->state != ST_DONE) {
		if (r->state == ST_BOL && p[off] != '.') {
			r->state = ST_MID; /* the common case: nothing to drop */
		} else if (r->state != ST_MID && r->state != ST_CR) {
			body_add(r, body, p + copy_from, off - copy_from);
			copy_from = off;
			if (line_start(r, p[off], body)) {
				copy_from = ++off;
				continue;
			}
		}
		off += scan_line(r, p + off, len - off);
	}
	body_add(r, body, p + copy_from, off - copy_from);
	return off;
}

bool smtp_data_reader_feed(struct smtp_data_reader *r, struct evbuffer *in, struct evbuffer *body)
{
	while (r->state != ST_DONE) {
		struct evbuffer_iovec vec[PEEK_CHAINS];
		int n = evbuffer_peek(in, -1, NULL, vec, PEEK_CHAINS);
		size_t used = 0;
		int i;

		if (n <= 0)
			return false;
		if (n > PEEK_CHAINS)
			n = PEEK_CHAINS;
		for (i = 0; i < n && r->state != ST_DONE; i++)
			used += data_run(r, vec[i].iov_base, vec[i].iov_len, body);
		evbuffer_drain(in, used);
	}
	return true;
}

/* BDAT chunks are not stuffed and carry no end marker (RFC 3030 §2), so
 * only the line and flag accounting applies. */
void smtp_data_scan(struct smtp_data_reader *r, const unsigned char *p, size_t len)
{
	size_t off = 0;

	while (off < len)
		off += scan_line(r, p + off, len - off);
	r->size += len;
	if (r->size > r->max_size)
		r->flags |= SMTP_DATA_TOO_BIG;
}

/* ---- sending ---- */

void smtp_encoder_init(struct smtp_encoder *e, bool dot_stuff, size_t max_line)
{
	memset(e, 0, sizeof *e);
	e->dot_stuff = dot_stuff;
	e->max_line = max_line;
	e->bol = true;
}

/* Position of the next ch at or after p, or end; reuses *cache while it is
 * still ahead so that a chunk is searched once per character. */
static const unsigned char *next_of(const unsigned char **cache, const unsigned char *p,
                                    const unsigned char *end, int ch)
{
	const unsigned char *q;

	if (*cache && *cache >= p)
		return *cache;
	q = memchr(p, ch, (size_t)(end - p));
	*cache = q ? q : end;
	return *cache;
}

static void line_break(struct smtp_encoder *e, struct evbuffer *out)
{
	evbuffer_add(out, "\r\n", 2);
	e->line_len = 0;
	e->bol = true;
}

/* Content runs go out in one piece, across well-formed lines; the run is
 * cut only where the encoder adds or changes octets. */
void smtp_encoder_feed(struct smtp_encoder *e, const unsigned char *p, size_t n,
                       struct evbuffer *out)
{
	const unsigned char *end = p + n, *run = p;
	const unsigned char *cr_cache = NULL, *lf_cache = NULL;

	if (n > 0 && e->pending_cr) { /* a CR ended the last chunk */
		e->pending_cr = false;
		line_break(e, out); /* CRLF, or a bare CR made one */
		if (*p == '\n')
			run = ++p;
	}
	while (p < end) {
		if (e->bol) {
			e->bol = false;
			if (e->dot_stuff && *p == '.') {
				evbuffer_add(out, run, (size_t)(p - run));
				evbuffer_add(out, ".", 1);
				run = p;
			}
		}
		const unsigned char *cr = next_of(&cr_cache, p, end, '\r');
		const unsigned char *lf = next_of(&lf_cache, p, end, '\n');
		const unsigned char *eol = cr < lf ? cr : lf;
		const unsigned char *limit =
		    e->max_line && (size_t)(end - p) > e->max_line - e->line_len
		        ? p + (e->max_line - e->line_len)
		        : end;

		if (eol < end && eol <= limit) {
			if (eol == cr && eol + 1 < end && eol[1] == '\n') {
				p = eol + 2; /* a CRLF line: stays in the run */
				e->line_len = 0;
				e->bol = true;
				continue;
			}
			evbuffer_add(out, run, (size_t)(eol - run));
			if (eol == cr && eol + 1 == end) { /* CR LF split across chunks? */
				e->pending_cr = true;
				e->line_len += (size_t)(eol - p);
				return;
			}
			/* RFC 5321 §2.3.8: no bare CR or LF on the wire */
			line_break(e, out);
			run = p = eol + 1;
			continue;
		}
		if (limit < end) {
			/* RFC 5322 §2.1.1: at most 998 octets a line; broken with
			 * CRLF SP so that MIME structure survives (as Postfix's
			 * smtp_line_length_limit does). */
			evbuffer_add(out, run, (size_t)(limit - run));
			evbuffer_add(out, "\r\n ", 3);
			e->line_len = 1;
			run = p = limit;
			continue;
		}
		e->line_len += (size_t)(end - p);
		p = end;
	}
	evbuffer_add(out, run, (size_t)(p - run));
}

void smtp_encoder_end(struct smtp_encoder *e, struct evbuffer *out)
{
	if (e->pending_cr || !e->bol)
		line_break(e, out); /* the body ends with CRLF */
	e->pending_cr = false;
	if (e->dot_stuff)
		evbuffer_add(out, ".\r\n", 3);
}

/* RFC 5321 §4.5.2 transparency, and §2.3.8: a client must not send a bare CR
 * or LF, so each becomes CRLF. That also keeps receivers that (wrongly) end
 * lines at a bare LF from ever seeing an unstuffed "." line. */
void smtp_dot_stuff(const unsigned char *body, size_t len, struct evbuffer *out)
{
	struct smtp_encoder e;

	smtp_encoder_init(&e, true, 0);
	smtp_encoder_feed(&e, body, len, out);
	smtp_encoder_end(&e, out);
}
