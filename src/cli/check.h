/* check.h - `outpost check DOMAIN [--json]`: what delivery to a domain
 * would do, and why, for an operator whose mail to it is stuck.
 *
 * The report is check/report.h's (MX hosts, addresses and DNSSEC, TLSA,
 * MTA-STS fetched now and cached, a probe connection to each host, the plan
 * delivery would make), printed as text or, with --json, as it is. Uses the
 * daemon's configuration; needs no running daemon. Exit status: 0 when
 * delivery would find a host to deliver to, 1 otherwise, 2 usage error.
 */
#ifndef OUTPOST_CLI_CHECK_H
#define OUTPOST_CLI_CHECK_H

#include "conf/conf.h"

int cli_check(int argc, char **argv, const struct conf *conf);

#endif
