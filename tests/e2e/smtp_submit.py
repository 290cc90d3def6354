"""Submits messages to outpost's submission listener and prints each queue id.

    smtp_submit.py PORT SENDER RCPT[,RCPT...] [--count N] [--size BYTES]
                   [--eightbit] [--subject S]

One SMTP session; N messages (default 1) from SENDER to the recipients,
each printed as its queue id (from "250 ... queued as ID") on a line of its
own. SMTPUTF8 is asked for when an address is not ASCII, BODY=8BITMIME with
--eightbit (the body then holds UTF-8 text). --size pads the body to about
BYTES octets. Exits 1 when a message is not queued."""
import argparse
import re
import smtplib
import sys

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("sender")
ap.add_argument("rcpts")
ap.add_argument("--count", type=int, default=1)
ap.add_argument("--size", type=int, default=0)
ap.add_argument("--eightbit", action="store_true")
ap.add_argument("--subject", default="e2e delivery")
a = ap.parse_args()
rcpts = a.rcpts.split(",")


def ascii(s):
    try:
        s.encode("ascii")
        return True
    except UnicodeEncodeError:
        return False


utf8 = not all(ascii(x) for x in [a.sender] + rcpts)
opts = []
if utf8:
    opts.append("SMTPUTF8")
if a.eightbit or utf8:
    opts.append("BODY=8BITMIME")

s = smtplib.SMTP("127.0.0.1", a.port, local_hostname="client.test", timeout=30)
s.ehlo()
rc = 0
for i in range(a.count):
    body = "hello %d from the delivery scenarios\r\n" % i
    if a.eightbit:
        body += "d\u00e9j\u00e0 vu, gr\u00fc\u00dfe, \u65e5\u672c\r\n"
    if a.size:
        line = "x" * 76 + "\r\n"
        body += line * max(0, (a.size - len(body)) // len(line))
    msg = "From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\n" % (a.sender, rcpts[0], a.subject, i)
    if a.eightbit:
        msg += "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        msg += "Content-Transfer-Encoding: 8bit\r\n"
    msg += "\r\n" + body
    code, text = s.mail(a.sender, opts)
    if code != 250:
        print("MAIL: %d %s" % (code, text), file=sys.stderr)
        rc = 1
        break
    for r in rcpts:
        code, text = s.rcpt(r)
        if code != 250:
            print("RCPT %s: %d %s" % (r, code, text), file=sys.stderr)
            rc = 1
    code, text = s.data(msg.encode("utf-8"))
    m = re.search(rb"queued as ([0-9A-Fa-f]+)", text)
    if code != 250 or not m:
        print("DATA: %d %s" % (code, text), file=sys.stderr)
        rc = 1
        break
    print(m.group(1).decode())
s.quit()
sys.exit(rc)
