/* send.h - `outpost send` / `sendmail`: queue one message read from stdin.
 *
 * Works with or without a running daemon: it opens the spool itself and
 * commits the message in its own transaction (SQLite serialises it with the
 * daemon's writer). Exit 0 only once the message is durably queued.
 */
#ifndef OUTPOST_SUBMIT_SEND_H
#define OUTPOST_SUBMIT_SEND_H

#include "conf/conf.h"

#include <stdio.h>

/* argv as given after "send" (or the whole sendmail command line, argv[0]
 * included, when invoked as sendmail); -c was already removed. Reads the
 * message from in. Returns the exit status (0, 1 failure, 2 usage). */
int send_main(int argc, char **argv, const struct conf *conf, FILE *in);

#endif
