"""SMTP receivers for the REQUIRETLS scenarios (RFC 8689), on aiosmtpd
(docs/testing.md), and the tools to submit to outpost and to read what
the receivers got.

    requiretls_mx.py serve DIR NAME,ADDR,PORT,MODE,CERT,KEY [...]
        One asyncio loop, one listener per spec, until SIGTERM. MODE:
          requiretls       STARTTLS (CERT/KEY), "250-REQUIRETLS" in the EHLO
                           reply only after TLS; MAIL ... REQUIRETLS accepted
                           there (aiosmtpd itself knows no REQUIRETLS)
          no-requiretls    STARTTLS, never REQUIRETLS: a MAIL with it gets
                           aiosmtpd's own 555
          requiretls-before-tls  STARTTLS; REQUIRETLS announced only in the
                           EHLO reply before TLS (and never accepted)
          refuse-starttls  STARTTLS announced and answered "454 4.7.0";
                           mail without TLS accepted
        Writes under DIR/NAME/:
          session.log  "conn N tls=VERSION|none VERB ARGS", one line per
                       EHLO, STARTTLS, MAIL, RCPT and DATA as received
          m.N          each accepted message: X-Conn, X-TLS ("TLSv1.3
                       CIPHER" or "none"), X-Mail-Args (the MAIL FROM
                       argument as sent, "<a@b> REQUIRETLS"), one
                       X-Rcpt-Args per recipient, then the data as received
                       (the smtp-sink dump layout: maildir_check.py reads it)

    requiretls_mx.py show DIR RCPT
        JSON about RCPT at a receiver: {"messages": [{"file", "tls",
        "mail_args", "rcpts", "subject", "raw"}], "rcpt_cmds": [{"conn",
        "tls"}]}. DIR is a dump directory (above: tls from X-TLS), or a
        Postfix Maildir (tls from the topmost Received: field's "using
        TLSv1.x", "none" without it; no rcpt_cmds).

    requiretls_mx.py submit PORT SENDER RCPT [--starttls] [--requiretls]
                     [--tls-required-no] [--tag TAG]
        One message over SMTP to outpost's submission port on 127.0.0.1,
        after STARTTLS with --starttls (the certificate is not checked),
        MAIL FROM ... REQUIRETLS with --requiretls, a "TLS-Required: No"
        header field with --tls-required-no. Subject "secret subject TAG",
        body "secret body TAG": a redacted notice must hold neither.
        Prints the queue id; exits 1 when the message is not queued.

    requiretls_mx.py submit-batch PORT
        The same for each line of stdin, "SENDER RCPT [OPTIONS]" (--tag
        among them), in one process: prints "TAG ID" per line ("TAG -" when
        not queued, and exits 1 at the end).
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import re
import signal
import smtplib
import ssl
import sys


def serve(argv):
    from aiosmtpd.smtp import SMTP

    top = argv[0]
    specs = [s.split(",") for s in argv[1:]]
    counters = {}

    class Handler:
        def __init__(self, name, mode):
            self.name, self.mode = name, mode

        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname  # the 5-argument hook must do it
            tls = server._tls_protocol is not None
            if (self.mode == "requiretls" and tls) or \
                    (self.mode == "requiretls-before-tls" and not tls):
                responses.insert(len(responses) - 1, "250-REQUIRETLS")
            return responses

        async def handle_DATA(self, server, session, envelope):
            c = counters.setdefault(self.name + "/msg", [0])
            c[0] += 1
            path = os.path.join(top, self.name, "m.%d" % c[0])
            head = "X-Conn: %d\r\nX-TLS: %s\r\nX-Mail-Args: %s\r\n" % (
                server.conn, server.tls_text(), getattr(envelope, "x_mail_args", ""))
            for r in envelope.rcpt_tos:
                head += "X-Rcpt-Args: <%s>\r\n" % r
            with open(path + ".tmp", "wb") as f:
                f.write(head.encode() + envelope.original_content)
            os.rename(path + ".tmp", path)
            return "250 2.0.0 Ok: queued as %s.%d" % (self.name, c[0])

    class Server(SMTP):
        def __init__(self, handler, name, mode, ctx):
            super().__init__(handler, hostname="%s.test" % name, tls_context=ctx,
                             enable_SMTPUTF8=True)
            self.name, self.mode = name, mode
            c = counters.setdefault(name + "/conn", [0])
            c[0] += 1
            self.conn = c[0]

        def tls_text(self):
            if self._tls_protocol is None or not self.session.ssl:
                return "none"
            obj = self.session.ssl.get("ssl_object")
            return "%s %s" % (obj.version(), obj.cipher()[0]) if obj else "unknown"

        def note(self, line):
            tls = self.tls_text().split(" ")[0]
            with open(os.path.join(top, self.name, "session.log"), "a") as f:
                f.write("conn %d tls=%s %s\n" % (self.conn, tls, line))

        async def smtp_EHLO(self, arg):
            self.note("EHLO %s" % arg)
            await super().smtp_EHLO(arg)

        async def smtp_STARTTLS(self, arg):
            self.note("STARTTLS")
            if self.mode == "refuse-starttls":
                await self.push("454 4.7.0 TLS not available due to temporary reason")
                return
            await super().smtp_STARTTLS(arg)

        async def smtp_MAIL(self, arg):
            self.note("MAIL %s" % arg)
            raw = arg or ""
            words = raw.split()
            rest = [w for w in words if w.upper() != "REQUIRETLS"]
            if len(rest) != len(words) and self.mode == "requiretls" and \
                    self._tls_protocol is not None:
                arg = " ".join(rest)  # ours to take; aiosmtpd would say 555
            await super().smtp_MAIL(arg)
            if self.envelope.mail_from is not None:
                self.envelope.x_mail_args = re.sub(r"(?i)^\s*FROM:\s*", "", raw)

        async def smtp_RCPT(self, arg):
            self.note("RCPT %s" % arg)
            await super().smtp_RCPT(arg)

        async def smtp_DATA(self, arg):
            self.note("DATA")
            await super().smtp_DATA(arg)

    async def main():
        loop = asyncio.get_running_loop()
        for name, addr, port, mode, cert, key in specs:
            os.makedirs(os.path.join(top, name), exist_ok=True)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            handler = Handler(name, mode)
            await loop.create_server(
                lambda h=handler, n=name, m=mode, c=ctx: Server(h, n, m, c),
                addr, int(port), reuse_address=True)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()

    asyncio.run(main())


def received_tls(msg):
    rec = msg.get_all("Received", [])
    if not rec:
        return "none"
    m = re.search(r"using (TLSv[0-9.]+) with cipher (\S+)", " ".join(str(rec[0]).split()))
    return "%s %s" % (m.group(1), m.group(2)) if m else "none"


def show(argv):
    where, rcpt = argv[0], argv[1].lower()
    out = {"messages": [], "rcpt_cmds": []}
    dirs = [d for d in (os.path.join(where, "new"), os.path.join(where, "cur")) if os.path.isdir(d)]
    maildir = bool(dirs)
    for d in dirs or ([where] if os.path.isdir(where) else []):
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if not os.path.isfile(path) or name.endswith(".tmp") or name == "session.log":
                continue
            raw = open(path, "rb").read()
            msg = email.message_from_bytes(raw, policy=email.policy.compat32)
            if maildir:
                rcpts = [v.strip().lower() for v in msg.get_all("Delivered-To", [])]
                tls, margs = received_tls(msg), None
            else:
                rcpts = [v.strip().strip("<>").lower() for v in msg.get_all("X-Rcpt-Args", [])]
                tls, margs = msg.get("X-TLS", ""), msg.get("X-Mail-Args", "")
            if rcpt not in rcpts:
                continue
            out["messages"].append({"file": name, "tls": tls, "mail_args": margs, "rcpts": rcpts,
                                    "subject": str(msg.get("Subject", "")),
                                    "raw": raw.decode("utf-8", "replace")})
    log = os.path.join(where, "session.log")
    if os.path.exists(log):
        for line in open(log, encoding="utf-8", errors="replace"):
            m = re.match(r"conn (\d+) tls=(\S+) RCPT (.*)", line.rstrip("\n"))
            if m and rcpt in m.group(3).lower():
                out["rcpt_cmds"].append({"conn": int(m.group(1)), "tls": m.group(2)})
    print(json.dumps(out))


def submit_one(port, sender, rcpt, starttls=False, requiretls=False, tls_required_no=False,
               tag=""):
    """One message to outpost; returns its queue id, or None (said on stderr)."""
    msg = "From: <%s>\r\nTo: <%s>\r\nSubject: secret subject %s\r\n" % (sender, rcpt, tag)
    msg += "Message-ID: <%s.%d@client.test>\r\n" % (tag or "m", os.getpid())
    if tls_required_no:
        msg += "TLS-Required: No\r\n"
    msg += "\r\nsecret body %s\r\n" % tag
    s = smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30)
    s.ehlo()
    if starttls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.ehlo()
    code, text = s.mail(sender, ["REQUIRETLS"] if requiretls else [])
    if code != 250:
        print("%s: MAIL: %d %s" % (tag, code, text), file=sys.stderr)
        return None
    code, text = s.rcpt(rcpt)
    if code != 250:
        print("%s: RCPT: %d %s" % (tag, code, text), file=sys.stderr)
        return None
    code, text = s.data(msg.encode())
    m = re.search(rb"queued as ([0-9A-Fa-f]+)", text)
    s.quit()
    if code != 250 or not m:
        print("%s: DATA: %d %s" % (tag, code, text), file=sys.stderr)
        return None
    return m.group(1).decode()


def submit_args(argv):
    ap = argparse.ArgumentParser(prog="requiretls_mx.py submit")
    ap.add_argument("sender")
    ap.add_argument("rcpt")
    ap.add_argument("--starttls", action="store_true")
    ap.add_argument("--requiretls", action="store_true")
    ap.add_argument("--tls-required-no", action="store_true")
    ap.add_argument("--tag", default="")
    return ap.parse_args(argv)


def submit(argv):
    a = submit_args(argv[1:])
    qid = submit_one(int(argv[0]), a.sender, a.rcpt, a.starttls, a.requiretls,
                     a.tls_required_no, a.tag)
    if qid:
        print(qid)
    return 0 if qid else 1


def submit_batch(argv):
    rc = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        a = submit_args(line.split())
        qid = submit_one(int(argv[0]), a.sender, a.rcpt, a.starttls, a.requiretls,
                         a.tls_required_no, a.tag)
        print("%s %s" % (a.tag, qid or "-"), flush=True)
        rc |= qid is None
    return rc


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(rest)
    elif cmd == "show":
        show(rest)
    elif cmd == "submit":
        sys.exit(submit(rest))
    elif cmd == "submit-batch":
        sys.exit(submit_batch(rest))
    else:
        sys.exit("usage: requiretls_mx.py serve|show|submit ...")
