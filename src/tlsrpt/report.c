/* report.c - one daily TLS report: JSON, gzip, mail (RFC 8460 §4, §5.3). */
#include "tlsrpt/report.h"

#include "util/buf.h"
#include "util/timeutil.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

/* The UTC day as [begin, end] in seconds since the epoch. */
static void day_range(const char *day, int64_t *begin, int64_t *end)
{
	struct tm tm = {0};
	*begin = *end = 0;
	if (sscanf(day, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
		return;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*begin = (int64_t)timegm(&tm);
	*end = *begin + 86400 - 1;
}

static void report_id(const struct tlsrpt_report_info *info, char *buf, size_t n)
{
	char compact[16] = "";
	for (size_t i = 0, k = 0; info->day[i] && k + 1 < sizeof compact; i++)
		if (info->day[i] != '-')
			compact[k++] = info->day[i], compact[k] = '\0';
	snprintf(buf, n, "%s.%s@%s", compact, info->policy_domain, info->submitter);
}

json_t *tlsrpt_report_json(const struct tlsrpt_report_info *info,
                           const struct tlsrpt_result *results, size_t n)
{
	int64_t begin, end;
	char start[32], stop[32], id[600];
	day_range(info->day, &begin, &end);
	time_format_rfc3339(begin * 1000, start, sizeof start);
	time_format_rfc3339(end * 1000, stop, sizeof stop);
	report_id(info, id, sizeof id);
	json_t *policies = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(policies, tlsrpt_result_json(&results[i]));
	return json_pack("{s:s, s:{s:s, s:s}, s:s, s:s, s:o}", "organization-name",
	                 info->organization, "date-range", "start-datetime", start, "end-datetime",
	                 stop, "contact-info", info->contact, "report-id", id, "policies", policies);
}

unsigned char *tlsrpt_gzip(const void *data, size_t len, size_t *outlen)
{
	z_stream z = {0};
	/* 15 + 16: a gzip wrapper rather than zlib's */
	if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	size_t cap = deflateBound(&z, (uLong)len) + 32;
	unsigned char *out = malloc(cap);
	if (out == NULL) {
		deflateEnd(&z);
		return NULL;
	}
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	*outlen = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

void tlsrpt_report_filename(const struct tlsrpt_report_info *info, char *buf, size_t n)
{
	int64_t begin, end;
	day_range(info->day, &begin, &end);
	snprintf(buf, n, "%s!%s!%lld!%lld.json.gz", info->submitter, info->policy_domain,
	         (long long)begin, (long long)end);
}

/* base64 in lines of 76 (RFC 2045 §6.8) */
static void put_base64(struct buf *b, const unsigned char *p, size_t len)
{
	unsigned char line[80];
	for (size_t off = 0; off < len; off += 57) {
		size_t chunk = len - off < 57 ? len - off : 57;
		int k = EVP_EncodeBlock(line, p + off, (int)chunk);
		buf_add(b, line, (size_t)k);
		buf_str(b, "\r\n");
	}
}

static bool random_hex(char *out, size_t nbytes)
{
	unsigned char raw[32];
	if (nbytes > sizeof raw || RAND_bytes(raw, (int)nbytes) != 1)
		return false;
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
	return true;
}

char *tlsrpt_report_mail(const struct tlsrpt_report_info *info, const char *const *to,
                         size_t nto, const unsigned char *gz, size_t gzlen, const char *hostname,
                         int64_t now_ms, size_t *len)
{
	struct buf m = {0};
	char boundary[48], id[600], file[700], msgid[40], date[64], begin[32], end[32];
	int64_t b, e;
	if (!random_hex(msgid, 16) || !random_hex(boundary + 10, 16))
		return NULL;
	/* "=_" cannot occur in base64 or in the ASCII text part */
	memcpy(boundary, "=_tlsrpt_", 9);
	boundary[9] = '_';
	report_id(info, id, sizeof id);
	tlsrpt_report_filename(info, file, sizeof file);
	time_format_rfc5322(now_ms, date, sizeof date);
	day_range(info->day, &b, &e);
	time_format_rfc3339(b * 1000, begin, sizeof begin);
	time_format_rfc3339(e * 1000, end, sizeof end);

	buf_fmt(&m, "From: <postmaster@%s>\r\n", info->submitter);
	buf_str(&m, "To: ");
	for (size_t i = 0; i < nto; i++)
		buf_fmt(&m, "%s<%s>", i ? ",\r\n " : "", to[i]);
	buf_str(&m, "\r\n");
	buf_fmt(&m, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n",
	        info->policy_domain, info->submitter, id);
	buf_fmt(&m, "TLS-Report-Domain: %s\r\n", info->policy_domain);
	buf_fmt(&m, "TLS-Report-Submitter: %s\r\n", info->submitter);
	buf_str(&m, "TLS-Required: No\r\n");
	buf_fmt(&m, "Date: %s\r\n", date);
	buf_fmt(&m, "Message-ID: <%s@%s>\r\n", msgid, hostname);
	buf_str(&m, "Auto-Submitted: auto-generated\r\n"); /* RFC 3834 §5 */
	buf_str(&m, "MIME-Version: 1.0\r\n");
	buf_fmt(&m, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n boundary=\"%s\"\r\n",
	        boundary);
	buf_str(&m, "\r\nThis is a MIME-encapsulated message.\r\n");
	buf_fmt(&m, "\r\n--%s\r\n", boundary);
	buf_str(&m, "Content-Type: text/plain; charset=us-ascii\r\n"
	            "Content-Transfer-Encoding: 7bit\r\n\r\n");
	buf_fmt(&m, "This is an aggregate TLS report (RFC 8460) from %s\r\n", info->submitter);
	buf_fmt(&m, "for %s, covering %s to %s.\r\n", info->policy_domain, begin, end);
	buf_fmt(&m, "Report-ID: <%s>\r\n", id);
	buf_fmt(&m, "\r\n--%s\r\n", boundary);
	buf_fmt(&m, "Content-Type: application/tlsrpt+gzip; name=\"%s\"\r\n", file);
	buf_str(&m, "Content-Transfer-Encoding: base64\r\n");
	buf_fmt(&m, "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", file);
	put_base64(&m, gz, gzlen);
	buf_fmt(&m, "\r\n--%s--\r\n", boundary);
	if (m.failed) {
		buf_free(&m);
		return NULL;
	}
	*len = m.len;
	return m.data;
}
