"""The outpost side and the receiving side of the DANE scenarios
(test_dane.sh), in one process instead of hundreds.

    dane_check.py submit PORT SENDER RCPT...
        one SMTP session to outpost's submission port, one message per
        recipient; prints "RCPT QUEUE-ID" lines
    dane_check.py settle OUTPOST CONF TIMEOUT DIR N QID...
        waits until every recipient of every message is delivered, failed,
        or deferred after N attempts and not in flight, then
        writes `queue show ID --json` to DIR/ID.json; prints the ids that did
        not settle
    dane_check.py check OUTPOST CONF CASES DIR MAILLOG MAILDIR [ROUND]
        for every case of CASES (JSON lines, see test_dane.sh), checks what
        outpost recorded (DIR/ID.json, `tlsrpt results --domain BASE
        --json`) and what the receiving Postfix saw (its maillog, its
        Maildir); prints "ok   - ..." or "FAIL - ..." per check, followed
        by "     ..." lines that say why. test_dane.sh counts them. ROUND 2:
        the deferred cases once more, after one retry each.
    dane_check.py verdict CASES DIR ID
        outpost's verdict on case ID, in posttls-finger's terms (see there)

Case kinds (what RFC 7672 asks for, and the contract in test_dane.sh):
  dane           usable records match: delivered over TLS, verified by DANE
  dane-fail      usable records, no match: deferred 4.7.5, never delivered
  refused        usable records, no STARTTLS: deferred 4.7.4, never delivered
  skipped        TLSA lookup failed: not dialled, deferred 4.7.5
  unauth         records, none usable: delivered over TLS, unverified
  opportunistic  DANE does not apply: delivered (over TLS: the peer offers
                 it), no DANE policy and no TLSA result
  hsfail         usable or unusable records, the TLS handshake fails
                 (hostile_mx.py tls-fallback): deferred, never in plaintext
  plainfb        DANE does not apply and the handshake fails: delivered in
                 plaintext on the same host (hostile_mx.py tls-fallback)
A case may name the receiving listener (listener, default its id), its
TLS-RPT session count (sessions, default 1, for hosts shared by cases) and
an MX tried before the one that took it (first: its listener, first_kind,
first_base/first_addr/first_rtype: its TLSA result).
"""
import email
import email.policy
import json
import os
import re
import smtplib
import subprocess
import sys
import time


def submit(port, sender, rcpts):
    s = smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.test", timeout=30)
    s.ehlo()
    for r in rcpts:
        msg = "From: <%s>\r\nTo: <%s>\r\nSubject: dane %s\r\n\r\nfor %s\r\n" % (sender, r, r, r)
        s.mail(sender)
        code, text = s.rcpt(r)
        if code != 250:
            sys.exit("RCPT %s: %d %s" % (r, code, text))
        code, text = s.data(msg.encode())
        m = re.search(rb"queued as ([0-9A-Fa-f]+)", text)
        if code != 250 or not m:
            sys.exit("DATA: %d %s" % (code, text))
        print(r, m.group(1).decode())
    s.quit()


def show(outpost, conf, qid):
    p = subprocess.run([outpost, "-c", conf, "queue", "show", qid, "--json"],
                       capture_output=True, text=True)
    return json.loads(p.stdout) if p.returncode == 0 else None


def settled(j, least):
    return j is not None and all(
        r["state"] in ("delivered", "failed") or
        (r["state"] == "deferred" and r["attempts"] >= least and not r.get("in_flight"))
        for r in j["recipients"])


def settle(outpost, conf, timeout, out, least, qids):
    until = time.time() + float(timeout)
    todo = list(qids)
    while todo:
        left = []
        for q in todo:
            j = show(outpost, conf, q)
            if settled(j, int(least)):
                with open(os.path.join(out, q + ".json"), "w") as f:
                    json.dump(j, f)
            else:
                left.append(q)
        todo = left
        if todo and time.time() > until:
            break
        if todo:
            time.sleep(0.2)
    for q in todo:  # as they are, for the diagnosis
        with open(os.path.join(out, q + ".json"), "w") as f:
            json.dump(show(outpost, conf, q), f)
        print(q)


# ---- check -------------------------------------------------------------------

RESULTS = {"ok": 0, "fail": 0}


def report(ok, what, why=()):
    RESULTS["ok" if ok else "fail"] += 1
    print(("ok   - " if ok else "FAIL - ") + what)
    if not ok:
        for w in why:
            print("     " + w)
    sys.stdout.flush()


def expect(what, conds, dump=None):
    """conds: (description, bool) pairs; the check passes when all hold."""
    bad = [d for d, c in conds if not c]
    why = ["not: " + d for d in bad]
    if bad and dump is not None:
        why.append("got: " + json.dumps(dump)[:1500])
    report(not bad, what, why)


def one_of(v, allowed):
    return v in allowed.split("|")


class Receiver:
    """What the shared Postfix logged and delivered, per listener."""

    def __init__(self, maillog, maildir):
        self.lines = open(maillog, errors="replace").read().splitlines() if os.path.exists(
            maillog) else []
        self.msgs = []
        for sub in ("new", "cur"):
            d = os.path.join(maildir, sub)
            for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                with open(os.path.join(d, n), "rb") as f:
                    self.msgs.append(email.message_from_binary_file(f, policy=email.policy.compat32))

    def log(self, cid):
        tag = " postfix/%s/" % cid
        return [l for l in self.lines if tag in l]

    def delivered(self, rcpt):
        return [m for m in self.msgs
                if any(v.strip().lower() == rcpt.lower() for v in m.get_all("Delivered-To", []))]

    @staticmethod
    def facts(log):
        """Its sessions, followed per smtpd process (one session at a time
        each): TLS or not, the messages it accepted, its summary."""
        sessions, cur = [], {}
        for l in log:
            m = re.search(r"/smtpd\[(\d+)\]: (.*)", l)
            if not m:
                continue
            pid, text = m.groups()
            if text.startswith("connect from "):
                cur[pid] = {"tls": None, "msgs": [], "summary": None}
                sessions.append(cur[pid])
                continue
            s = cur.get(pid)
            if s is None:
                continue
            if "TLS connection established from" in text:
                s["tls"] = text
            elif re.match(r"[0-9A-F]+: client=", text):
                s["msgs"].append(text.split(":")[0])
            elif text.startswith("disconnect from "):
                s["summary"] = text
        f = {"connects": len(sessions), "sessions": sessions,
             "tls": [s["tls"] for s in sessions if s["tls"]],
             "ended": [s["summary"] for s in sessions if s["summary"]],
             # a message taken, or MAIL sent, in a session without TLS
             "plain_mail": [s for s in sessions if (s["msgs"] and not s["tls"]) or
                            (s["summary"] and re.search(r"\bmail=", s["summary"]) and
                             not re.search(r"\bstarttls=1\b", s["summary"]))],
             "mail": [s for s in sessions if s["msgs"] or
                      (s["summary"] and re.search(r"\bmail=", s["summary"]))],
             # STARTTLS asked for (and a handshake begun, or refused)
             "starttls": [l for l in log if re.search(r"STARTTLS|starttls=|SSL_accept|TLS connection", l)]}
        # smtpd logs the SNI name only when its table knows it ("... to NAME:")
        f["sni"] = [m.group(1) for t in f["tls"] for m in [re.search(r"\] to ([^:]+):", t)] if m]
        f["sni_other"] = [l for l in log if "SNI" in l]
        return f


def tlsrpt(outpost, conf, domain):
    p = subprocess.run([outpost, "-c", conf, "tlsrpt", "results", "--domain", domain, "--json"],
                       capture_output=True, text=True)
    try:
        return json.loads(p.stdout)
    except ValueError:
        return None


def records(base, tlsadir, which):
    """The records published for base: "all", or the "usable" ones."""
    path = os.path.join(tlsadir, base + "." + which)
    if not os.path.exists(path):
        return []
    return sorted(l.strip().lower() for l in open(path) if l.strip())


def check_receiver(tag, kind, listener, rcpt, rec, sni=None):
    """The receiving side of one outcome, from the listener's own log."""
    log = rec.log(listener)
    f = rec.facts(log)
    got = rec.delivered(rcpt) if rcpt else []
    if kind == "plainfb":  # hostile_mx.py tls-fallback: its own notes
        d = os.path.join(rec.peers, listener)
        notes = [n for n in open(os.path.join(d, "connections.log")).read().split("\n") if n] \
            if os.path.exists(os.path.join(d, "connections.log")) else []
        msgs = [open(os.path.join(d, n)).read() for n in os.listdir(d) if n.startswith("msg.")] \
            if os.path.isdir(d) else []
        expect(tag + "receiver: STARTTLS on connection 1, then the message without it",
               [("conn 1 starttls=yes, conn 2 starttls=no",
                 notes == ["conn 1 starttls=yes", "conn 2 starttls=no"]),
                ("one message, for %s" % rcpt, len(msgs) == 1 and ("<%s>" % rcpt) in msgs[0])],
               {"notes": notes, "msgs": msgs})
    elif kind in ("dane", "unauth", "opportunistic"):
        first = (got[0].get_all("Received") or [""])[0] if got else ""
        m = re.search(r"with (\w+) id ([0-9A-F]+)", first)
        qid = m.group(2) if m else None
        took = [x for x in f["sessions"] if qid and qid in x["msgs"]]
        expect(tag + "receiver: got it once, over TLS (Received: ESMTPS using TLS), no plaintext MAIL",
               [("one copy in the Maildir", len(got) == 1),
                ("Received: says ESMTPS, using TLS",
                 m is not None and m.group(1) == "ESMTPS" and "using TLS" in first),
                ("listener %s took it (queue id %s) in a TLS session" % (listener, qid),
                 len(took) == 1 and took[0]["tls"]),
                ("no message or MAIL in any of its sessions without TLS", not f["plain_mail"])],
               {"received": first, "log": log})
        if sni:
            expect(tag + "receiver: the client's SNI was %s" % sni,
                   [("every TLS session had SNI %s" % sni,
                     f["sni"] and all(x == sni for x in f["sni"]) and len(f["sni"]) == len(f["tls"]))],
                   {"tls": f["tls"], "sni": f["sni_other"]})
    elif kind == "skipped":
        expect(tag + "receiver: %s never contacted, nothing delivered" % listener,
               [("no connection in its log", f["connects"] == 0), ("no copy", not got)], log)
    elif kind == "refused":
        expect(tag + "receiver: %s: STARTTLS asked for and refused, no TLS, no MAIL, nothing delivered"
               % listener,
               [("a session, ended", len(f["ended"]) >= 1),
                ("STARTTLS asked for, not done (starttls=0/1)",
                 all(re.search(r"\bstarttls=0/1\b", x) for x in f["ended"])),
                ("no TLS session", not f["tls"]), ("no MAIL", not f["mail"]), ("no copy", not got)],
               log)
    elif kind == "dane-fail":
        expect(tag + "receiver: %s: STARTTLS and a handshake, then no MAIL, nothing delivered" % listener,
               [("a session, ended", len(f["ended"]) >= 1),
                ("STARTTLS and a handshake seen", len(f["starttls"]) >= 1),
                ("no session sent MAIL", not f["mail"]), ("no copy", not got)],
               log)
    elif kind == "hsfail":  # hostile_mx.py tls-fallback: its own notes
        d = os.path.join(rec.peers, listener)
        notes = open(os.path.join(d, "connections.log")).read().split("\n") if os.path.exists(
            os.path.join(d, "connections.log")) else []
        notes = [n for n in notes if n]
        msgs = [n for n in os.listdir(d) if n.startswith("msg.")] if os.path.isdir(d) else []
        expect(tag + "receiver: asked for STARTTLS, never MAIL without it, nothing delivered",
               [("at least one connection asked for STARTTLS",
                 any(n.endswith("starttls=yes") for n in notes)),
                ("no connection sent MAIL without TLS (starttls=no)",
                 not any(n.endswith("starttls=no") for n in notes)),
                ("no message", not msgs)], {"notes": notes, "msgs": msgs})


def check_tlsrpt(tag, kind, base, mx, addr, c, outpost, conf, tlsadir):
    res = tlsrpt(outpost, conf, base)
    tl = [p for p in res or [] if p["policy"]["policy-type"] == "tlsa"]
    if kind in ("opportunistic", "plainfb"):
        expect(tag + "TLS-RPT: no tlsa result for %s" % base,
               [("results readable", res is not None), ("no tlsa policy", not tl)], res)
        return
    p = tl[0] if len(tl) == 1 else {"policy": {}, "summary": {}, "failure-details": []}
    s, fd = p["summary"], p["failure-details"]
    conds = [("one tlsa result", len(tl) == 1),
             ("policy-domain %s" % base, p["policy"].get("policy-domain") == base),
             ("mx-host [%s]" % mx, p["policy"].get("mx-host") == [mx])]
    want, published = records(base, tlsadir, "usable"), records(base, tlsadir, "all")
    got = [x.lower() for x in p["policy"].get("policy-string", [])]
    if kind != "skipped" and want == published:
        conds.append(("policy-string = the records, sorted %s" % want, got == want))
    elif kind != "skipped":
        # RFC 8460 §4.4 does not say whether unusable records belong in it
        conds.append(("policy-string has the usable records %s" % want,
                      set(want) <= set(got) and got == sorted(got)))
    n = int(c.get("sessions", 1))
    ok_n, fail_n = (n, 0) if kind in ("dane", "unauth") else (0, n)
    conds.append(("summary: %d successful, %d failed" % (ok_n, fail_n),
                  s.get("total-successful-session-count") == ok_n and
                  s.get("total-failure-session-count") == fail_n))
    if kind == "dane":
        conds.append(("no failure details", fd == []))
    else:
        rt, reason = c.get("rtype"), c.get("reason")
        m = [d for d in fd if (rt is None or one_of(d.get("result-type"), rt)) and
             (reason is None or re.fullmatch(reason, d.get("failure-reason-code", "")))]
        conds.append(("a failure detail %s%s" % (rt or "(any type)", " / " + reason if reason else ""),
                      len(m) == 1))
        if m:
            d = m[0]
            conds.append(("it names the host %s" % mx, d.get("receiving-mx-hostname") == mx))
            if kind != "unauth":  # (its session succeeded: the summary counts it)
                conds.append(("failed-session-count %d" % n, d.get("failed-session-count") == n))
            if kind in ("dane-fail", "refused", "hsfail"):
                conds.append(("receiving-ip %s, a sending-mta-ip" % addr,
                              d.get("receiving-ip") == addr and bool(d.get("sending-mta-ip"))))
    what = "tlsa, %d successful session%s" % (n, "s" if n > 1 else "") if kind == "dane" else \
        "tlsa, %s" % (c.get("rtype") or "a failure detail")
    expect(tag + "TLS-RPT: " + what, conds, res)


def check_case(c, j, rec, outpost, conf, tlsadir, rnd):
    cid, kind, rcpt = c["id"], c["kind"], c["rcpt"]
    mx, base = c["mx"], c.get("base", c["mx"])
    tag = "[%s] " % cid if rnd == 1 else "[%s] retry: " % cid
    if j is None:
        report(False, tag + "queue show gave nothing")
        return
    R = [r for r in j["recipients"] if r["address"] == rcpt]
    A = [a for a in j["attempts"] if a["recipient"] == rcpt]
    r = R[0] if R else {}
    a = A[-1] if A else {}
    delivered_kinds = ("dane", "unauth", "opportunistic", "plainfb")
    code = c.get("code", {"refused": "4.7.4"}.get(kind, "4.7.5"))

    # -- what outpost recorded: the recipient and its delivery log entries
    if kind == "plainfb":
        conds = [("recipient delivered", r.get("state") == "delivered"),
                 ("in 1 attempt with 1 log entry", r.get("attempts") == 1 and len(A) == 1),
                 ("log entry: result delivered via %s [%s]" % (mx, c["addr"]),
                  a.get("result") == "delivered" and a.get("mx") == mx and a.get("ip") == c["addr"]),
                 ("in plaintext (no tls)", not a.get("tls"))]
        what = "delivered in plaintext after the failed handshake, in one attempt"
    elif kind in delivered_kinds:
        conds = [("recipient delivered", r.get("state") == "delivered"),
                 ("in 1 attempt with 1 log entry", r.get("attempts") == 1 and len(A) == 1),
                 ("log entry: result delivered via %s [%s]" % (mx, c["addr"]),
                  a.get("result") == "delivered" and a.get("mx") == mx and a.get("ip") == c["addr"]),
                 ("over TLS (tls, tls_version TLSv1.x)",
                  bool(a.get("tls")) and (a.get("tls_version") or "").startswith("TLSv1."))]
        what = "delivered over TLS in one attempt"
    else:
        conds = [("recipient deferred", r.get("state") == "deferred"),
                 ("%d attempt(s), as many log entries" % rnd, r.get("attempts") == rnd and len(A) == rnd),
                 ("last_error has %s" % code, code in (r.get("last_error") or "")),
                 ("a next attempt is scheduled", bool(r.get("next_attempt"))),
                 ("every log entry deferred with %s" % code,
                  len(A) >= 1 and all(x.get("result") == "deferred" and code in (x.get("reply") or "")
                                      for x in A)),
                 ("no log entry says delivered or TLS verified",
                  not any(x.get("result") == "delivered" or
                          (x.get("tls_verified") or "") in ("DANE-EE", "DANE-TA", "PKIX") for x in A))]
        what = "deferred %s, never delivered" % code
    expect(tag + "outpost: " + what, conds, j)

    if rnd == 1:
        # -- the recorded TLS result: policy, verification, detail
        pol = "none" if kind in ("opportunistic", "plainfb") else "dane"
        conds = [("tls_policy %s" % pol, a.get("tls_policy") == pol)]
        if kind == "dane":
            conds += [("tls_verified %s" % c["verified"], a.get("tls_verified") == c["verified"]),
                      ("tls_detail names the matching record %r" % c["record"],
                       (a.get("tls_detail") or "").startswith(c["record"] + " "))]
        elif kind in ("unauth", "opportunistic"):
            conds += [("tls_verified unverified", a.get("tls_verified") == "unverified")]
        elif kind == "plainfb":
            conds += [("no tls_verified", not a.get("tls_verified"))]
        elif kind in ("dane-fail", "hsfail"):
            conds += [("tls_detail or reply says why (%s)" % c["why"],
                       any(re.search(c["why"], (x.get("tls_detail") or "") + " " + (x.get("reply") or ""))
                           for x in A))]
        elif kind == "skipped":
            conds += [("not dialled: no address, no TLS",
                       all(not x.get("ip") and not x.get("tls") for x in A)),
                      ("tls_detail says the TLSA lookup failed",
                       "TLSA lookup" in (a.get("tls_detail") or "") + (a.get("reply") or ""))]
        elif kind == "refused":
            conds += [("reply says STARTTLS was refused", "STARTTLS" in (a.get("reply") or ""))]
        expect(tag + "recorded TLS: policy %s%s" % (pol, ", " + c["verified"] if kind == "dane" else ""),
               conds, A)
        # -- RFC 8460 results for the TLSA base domain (and the first MX's)
        check_tlsrpt(tag, kind, base, mx, c["addr"], c, outpost, conf, tlsadir)
        if c.get("first_base"):
            fc = dict(c, rtype=c.get("first_rtype"), reason=None, sessions=1)
            check_tlsrpt(tag + "first MX: ", c["first_kind"], c["first_base"], c["first_base"],
                         c["first_addr"], fc, outpost, conf, tlsadir)

    # -- the receiving server(s): their own logs and the Maildir
    check_receiver(tag, kind, c.get("listener", cid), rcpt, rec,
                   c.get("sni") if rnd == 1 else None)
    if c.get("first"):
        check_receiver(tag + "first MX: ", c["first_kind"], c["first"], None, rec)


def check(outpost, conf, cases, dumps, maillog, maildir, rnd="1"):
    rec = Receiver(maillog, maildir)
    rec.peers = os.path.dirname(os.path.dirname(maillog))
    tlsadir = os.path.join(os.path.dirname(cases), "tlsa")
    rnd = int(rnd)
    for line in open(cases):
        if not line.strip():
            continue
        c = json.loads(line)
        if rnd > 1 and c["kind"] in ("dane", "unauth", "opportunistic", "plainfb"):
            continue  # retries: only the deferred ones
        path = os.path.join(dumps, c["qid"] + ".json")
        j = json.load(open(path)) if os.path.exists(path) else None
        check_case(c, j, rec, outpost, conf, tlsadir, rnd)


def verdict(cases, dumps, cid):
    """outpost's verdict on case cid, in posttls-finger's terms: verified
    (delivered, DANE), failed (deferred after a handshake), unauthenticated
    (delivered, unverified), no-connection (never dialled)."""
    c = [json.loads(l) for l in open(cases) if json.loads(l)["id"] == cid][0]
    j = json.load(open(os.path.join(dumps, c["qid"] + ".json")))
    a = [x for x in j["attempts"] if x["recipient"] == c["rcpt"]][0]
    if a["result"] == "delivered":
        print("verified" if a.get("tls_verified") in ("DANE-EE", "DANE-TA") else "unauthenticated")
    elif not a.get("ip"):
        print("no-connection")
    else:
        print("failed")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "submit":
        submit(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif cmd == "settle":
        settle(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7:])
    elif cmd == "check":
        check(*sys.argv[2:])
    elif cmd == "verdict":
        verdict(*sys.argv[2:5])
    else:
        sys.exit("unknown command " + cmd)
