/* cli.h - the commands that talk to a running daemon over its admin API.
 *
 * The CLI finds the daemon through the configuration's first [admin] listen
 * address (host:port or unix:PATH) and speaks HTTP/JSON to it with libcurl,
 * with the bearer token of [admin] token_file: who cannot read that file
 * cannot use these commands.
 * Exit status: 0 success, 1 failure with a one-line reason on stderr,
 * 2 usage error.
 */
#ifndef OUTPOST_CLI_CLI_H
#define OUTPOST_CLI_CLI_H

#include "conf/conf.h"

/* outpost queue list|show|cat|kick|hold|release|drop|pause|resume ...
 * argv[0] is "list" etc. (the word after "queue"); -c was already removed. */
int cli_queue(int argc, char **argv, const struct conf *conf);

/* outpost tlsrpt results [--day YYYY-MM-DD] [--domain D] [--json]: the TLS
 * results of a UTC day (default today), as RFC 8460 §4.4 "policies". */
int cli_tlsrpt(int argc, char **argv, const struct conf *conf);

#endif
