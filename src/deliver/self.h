/* self.h - is this address ourselves? (RFC 5321 §5.1 mail loops)
 *
 * An MX host that resolves to an address where outpost itself listens for
 * mail on the delivery port would hand the message back to us: RFC 5321
 * §5.1 says to discard that host and every host of the same or a lower
 * preference. Built once from the [submission] listen addresses: a
 * specific address counts as itself, a wildcard one (0.0.0.0, ::) as every
 * address of the machine's interfaces and the loopback ranges.
 */
#ifndef OUTPOST_DELIVER_SELF_H
#define OUTPOST_DELIVER_SELF_H

#include "conf/conf.h"
#include "dns/dns.h"

#include <stdbool.h>

struct self_addrs;

struct self_addrs *self_addrs_new(const struct conf *conf);
void self_addrs_free(struct self_addrs *s);

/* True when delivering to a on the configured delivery port reaches us. */
bool self_addrs_match(const struct self_addrs *s, const struct dns_addr *a);

#endif
