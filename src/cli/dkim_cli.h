/* dkim_cli.h - `outpost dkim genkey` and `outpost dkim check` (docs/dkim.md).
 *
 * genkey DOMAIN SELECTOR [--algorithm ed25519|rsa] [--bits N] [--out PATH]
 *   makes a private key (Ed25519 by default; RSA of 2048 bits by default, at
 *   least 1024), writes it as PEM with mode 0600 to PATH or
 *   data_dir/dkim/SELECTOR._domainkey.DOMAIN.pem (never over an existing
 *   file), and prints the DNS TXT record to publish (strings of at most 255
 *   octets, RFC 7208-style splitting that DKIM verifiers join, RFC 6376
 *   §3.6.2.2) and the [dkim] key line to add.
 * check DOMAIN
 *   looks up SELECTOR._domainkey.DOMAIN TXT for each configured selector of
 *   DOMAIN with outpost's resolver ([dns] nameserver) and says whether its
 *   p= is the configured key's public half.
 * Exit status: 0 success / every selector matches, 1 otherwise, 2 usage.
 */
#ifndef OUTPOST_CLI_DKIM_CLI_H
#define OUTPOST_CLI_DKIM_CLI_H

#include "conf/conf.h"

/* argv[0] is "dkim". */
int cli_dkim(int argc, char **argv, const struct conf *conf);

#endif
