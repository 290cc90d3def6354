/* notify.h - tell the service manager how the daemon is doing (sd_notify).
 *
 * systemd starts a Type=notify service with NOTIFY_SOCKET naming a unix
 * datagram socket (a path, or "@name" in the abstract namespace); the
 * daemon sends it newline-separated assignments such as "READY=1" or
 * "STOPPING=1" (sd_notify(3)). This is that protocol in a few lines, with
 * no libsystemd: without NOTIFY_SOCKET nothing is sent and nothing fails.
 * docs/install.md says which states outpost sends and when.
 */
#ifndef OUTPOST_UTIL_NOTIFY_H
#define OUTPOST_UTIL_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=accepting") as one datagram to
 * $NOTIFY_SOCKET. Returns 1 when sent, 0 when no manager listens
 * (NOTIFY_SOCKET unset or empty), -1 with errno set when sending failed. */
int notify_send(const char *state);

#endif
