/* data.h - the DATA body: dot-unstuffing on receipt, dot-stuffing on send.
 *
 * The reader consumes raw octets after a 354 reply, removes dot-stuffing
 * (RFC 5321 §4.5.2), finds the end-of-data line "CRLF.CRLF" and reports what
 * it saw: octets >= 0x80, NUL, bare CR or bare LF, and lines longer than the
 * limit. Only CRLF.CRLF ends the data: a bare LF before or after the dot does
 * not (the SMTP smuggling attacks of 2023 rely on receivers that accept it).
 * The reader stops storing octets beyond max_size but keeps scanning for the
 * end, so the session stays in sync and the client gets a 552.
 */
#ifndef OUTPOST_SMTP_DATA_H
#define OUTPOST_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum smtp_data_flags {
	SMTP_DATA_8BIT = 1 << 0,      /* an octet >= 0x80 */
	SMTP_DATA_NUL = 1 << 1,       /* a NUL octet */
	SMTP_DATA_BARE_CR = 1 << 2,   /* CR not followed by LF */
	SMTP_DATA_BARE_LF = 1 << 3,   /* LF not preceded by CR */
	SMTP_DATA_LONG_LINE = 1 << 4, /* a line longer than max_line (without CRLF) */
	SMTP_DATA_TOO_BIG = 1 << 5,   /* more than max_size octets after unstuffing */
};

struct smtp_data_reader {
	size_t max_size;
	size_t max_line;
	uint64_t size;   /* octets of unstuffed body seen (counted past max_size too) */
	size_t line_len; /* octets in the current line so far */
	unsigned flags;
	int state; /* internal */
};

void smtp_data_reader_init(struct smtp_data_reader *r, size_t max_size, size_t max_line);

/* Consumes octets from in (up to and including the end-of-data line, not
 * beyond it) and appends the unstuffed body to body, which ends with CRLF when
 * the data did. Returns true when the end-of-data line was found; false when
 * more input is needed (in is then empty). */
bool smtp_data_reader_feed(struct smtp_data_reader *r, struct evbuffer *in, struct evbuffer *body);

/* Scans a chunk of len octets (BDAT: no dot-unstuffing) and updates the
 * flags and size as the reader would. */
void smtp_data_scan(struct smtp_data_reader *r, const unsigned char *p, size_t len);

/* Sending: the stored body, fed in chunks of any size as the connection
 * takes them, becomes what goes on the wire. Every bare CR or LF becomes
 * CRLF (RFC 5321 §2.3.8), a line longer than max_line octets (0: no limit)
 * is broken with CRLF SP (RFC 5322 §2.1.1), with dot_stuff a line starting
 * with '.' gets another (RFC 5321 §4.5.2), and the end makes sure the body
 * ends with CRLF and adds ".\r\n" when dot-stuffing (DATA; BDAT has no end
 * marker). The same octets come out however the input is cut. */
struct smtp_encoder {
	bool dot_stuff;
	size_t max_line;
	size_t line_len; /* octets of the current line sent so far */
	bool bol;        /* at the start of a line */
	bool pending_cr; /* the last chunk ended in CR */
};

void smtp_encoder_init(struct smtp_encoder *e, bool dot_stuff, size_t max_line);
void smtp_encoder_feed(struct smtp_encoder *e, const unsigned char *p, size_t n,
                       struct evbuffer *out);
void smtp_encoder_end(struct smtp_encoder *e, struct evbuffer *out);

/* The whole body at once: dot-stuffed, no line limit, then ".\r\n". */
void smtp_dot_stuff(const unsigned char *body, size_t len, struct evbuffer *out);

#endif
