/* send.h - `outpost send` / `sendmail`: queue one message read from stdin.
 *
 * Any local user may send: the message goes to the running daemon over its
 * local socket ([submission] local_socket, an SMTP dialogue), so it meets
 * every check and limit of the listener and the daemon logs who sent it
 * (the kernel names the user). Only when no daemon listens, and the caller
 * may write the spool (its owner), is the message written into the spool
 * directly, after the same checks (checks.h). Either way exit 0 only once
 * the message is durably queued; a refusal prints the reply on stderr.
 */
#ifndef OUTPOST_SUBMIT_SEND_H
#define OUTPOST_SUBMIT_SEND_H

#include "conf/conf.h"

#include <stdio.h>

/* argv as given after "send" (or the whole sendmail command line, argv[0]
 * included, when invoked as sendmail); -c was already removed. Reads the
 * message from in. Returns the exit status: 0 queued, 1 not queued, 2 usage,
 * 75 (EX_TEMPFAIL) when the message was sent but the daemon went away before
 * its answer, so that it may or may not be queued. */
int send_main(int argc, char **argv, const struct conf *conf, FILE *in);

#endif
