/* check.h - `outpost check DOMAIN [--json]`: what delivery to a domain
 * would do, and why, for an operator whose mail to it is stuck.
 *
 * Resolves the domain as delivery does (MX hosts, their addresses, DNSSEC
 * status, TLSA records), looks up and fetches its MTA-STS policy now and
 * shows the one the spool has cached, decides each host's TLS plan with the
 * same table delivery uses (deliver/tls_policy.h), then connects to each
 * host and reports the TLS version, the certificate chain, the DANE match
 * or why there is none, the PKIX result, whether REQUIRETLS is announced
 * and what delivery would do. Uses the daemon's configuration; needs no
 * running daemon. Exit status: 0 when delivery would find a host to
 * deliver to, 1 otherwise, 2 usage error.
 */
#ifndef OUTPOST_CLI_CHECK_H
#define OUTPOST_CLI_CHECK_H

#include "conf/conf.h"

int cli_check(int argc, char **argv, const struct conf *conf);

#endif
