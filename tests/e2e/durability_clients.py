#!/usr/bin/python3
"""durability_clients.py - the clients and the verdict of test_durability.sh.

  durability_clients.py run OUTCOMES STOPFILE SMTP_PORT OUTPOST CONF [NSMTP]
      NSMTP SMTP clients (plain sessions, no pipelining, several messages per
      connection, reconnecting after any error) and one loop of `outpost send`
      submit until STOPFILE exists, then finish the message in hand and write
      every message's outcome to OUTCOMES (JSON).
  durability_clients.py verify OUTCOMES LIST_JSON OUTPOST CONF
      Compares the outcomes with `queue list --json`; one "ok"/"FAIL" line
      per check, exit status 1 if any failed.

Each message carries a unique token t-<client>-<n>: it is the recipient's
localpart (t-<client>-<n>@example.net) and it is in the Subject. Outcomes:
  acked    250 after the final dot / `send` exited 0: must be queued exactly once
  refused  a 4xx/5xx reply (to MAIL, RCPT, DATA or the final dot) / `send`
           exited non-zero: must not be queued
  unsent   the connection broke before any of the body was sent: must not be queued
  unknown  the connection broke while the body or the final reply was in
           flight, or `send` exited 75 (the same, seen from send): may be
           queued once, or not at all, never twice
"""
import json
import os
import random
import smtplib
import socket
import subprocess
import sys
import threading
import time

DOMAIN = "example.net"
SENDER = "durability@example.org"


def rcpt_of(token):
    return "%s@%s" % (token, DOMAIN)


def body_of(token):
    """The message text (LF line ends, no line starting with a dot); its
    length is 200 B to ~40 KiB, drawn from the token so verify can rebuild it."""
    rnd = random.Random(token)
    lines = ["Subject: durability %s" % token, "From: <%s>" % SENDER,
             "To: <%s>" % rcpt_of(token), "", "token %s" % token]
    for i in range(rnd.choice([2, 5, 20, 100, 500])):
        lines.append("%s line %d %s" % (token, i, "x" * rnd.randrange(0, 70)))
    lines.append("end %s" % token)
    return "\n".join(lines) + "\n"


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.outcomes = {}  # token -> {"outcome": ..., "detail": ...}

    def put(self, token, outcome, detail=""):
        with self.lock:
            self.outcomes[token] = {"outcome": outcome, "detail": detail}


def smtp_client(cid, port, stop, rec):
    rnd = random.Random()
    n = 0
    conn = None
    left = 0  # messages still to send on this connection
    while not os.path.exists(stop):
        if conn is None:
            try:
                conn = smtplib.SMTP("127.0.0.1", port, timeout=10)
                code, _ = conn.ehlo("client%d.test" % cid)
                if code != 250:
                    raise smtplib.SMTPException("EHLO %d" % code)
                left = rnd.choice([1, 1, 3, 10, 50])
            except (OSError, smtplib.SMTPException):
                # connection refused while the daemon restarts, or it died
                # during the greeting: try again shortly
                try:
                    if conn is not None:
                        conn.close()
                except Exception:
                    pass
                conn = None
                time.sleep(0.01 + rnd.random() * 0.03)
                continue
        token = "t-%d-%d" % (cid, n)
        n += 1
        phase = "unsent"
        try:
            code, msg = conn.mail(SENDER)
            if code != 250:
                rec.put(token, "refused", "MAIL %d" % code)
                conn.rset()
                continue
            code, msg = conn.rcpt(rcpt_of(token))
            if code not in (250, 251):
                rec.put(token, "refused", "RCPT %d" % code)
                conn.rset()
                continue
            code, msg = conn.docmd("DATA")
            if code != 354:
                rec.put(token, "refused", "DATA %d" % code)
                conn.rset()
                continue
            phase = "unknown"  # from the first byte of the body on
            conn.send(smtplib.quotedata(body_of(token)).encode() + b".\r\n")  # ends in CRLF
            code, msg = conn.getreply()
            if code == 250:
                rec.put(token, "acked", msg.decode(errors="replace"))
            else:
                rec.put(token, "refused", "final %d %s" % (code, msg.decode(errors="replace")))
            left -= 1
            if left <= 0:
                try:
                    conn.quit()
                except (OSError, smtplib.SMTPException):
                    pass
                conn = None
        except (OSError, smtplib.SMTPException) as e:
            if token not in rec.outcomes:  # not a failing RSET after a refusal
                rec.put(token, phase, "%s: %s" % (type(e).__name__, e))
            try:
                conn.close()
            except Exception:
                pass
            conn = None
    if conn is not None:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            pass


def send_client(cid, outpost, conf, stop, rec):
    n = 0
    while not os.path.exists(stop):
        token = "t-%d-%d" % (cid, n)
        n += 1
        try:
            p = subprocess.run([outpost, "send", "-c", conf, "-f", SENDER, rcpt_of(token)],
                               input=body_of(token).encode(), capture_output=True,
                               timeout=30)
        except subprocess.TimeoutExpired:
            rec.put(token, "unknown", "send timed out")
            continue
        if p.returncode == 0:
            rec.put(token, "acked", "send exit 0")
        elif p.returncode == 75:  # sent, then the daemon was killed before its answer
            rec.put(token, "unknown", "send exit 75")
        else:
            rec.put(token, "refused", "send exit %d: %s" % (
                p.returncode, p.stderr.decode(errors="replace").strip()))


def run(argv):
    outcomes_path, stop, port, outpost, conf = argv[:5]
    nsmtp = int(argv[5]) if len(argv) > 5 else 4
    rec = Recorder()
    threads = [threading.Thread(target=smtp_client, args=(i, int(port), stop, rec))
               for i in range(nsmtp)]
    threads.append(threading.Thread(target=send_client,
                                    args=(nsmtp, outpost, conf, stop, rec)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tmp = outcomes_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"clients": nsmtp + 1, "send_client": nsmtp, "outcomes": rec.outcomes}, f)
    os.rename(tmp, outcomes_path)
    return 0


def verify(argv):
    outcomes_path, list_path, outpost, conf = argv[:4]
    with open(outcomes_path) as f:
        data = json.load(f)
    with open(list_path) as f:
        queue = json.load(f)
    outcomes = data["outcomes"]
    fails = 0

    def check(ok, what, bad=()):
        nonlocal fails
        if ok:
            print("ok   - %s" % what)
        else:
            fails += 1
            bad = list(bad)
            print("FAIL - %s (%d: %s%s)" % (what, len(bad), ", ".join(map(str, bad[:10])),
                                            " ..." if len(bad) > 10 else ""))

    count = {}       # token -> recipients with that token in the queue
    ids = {}         # token -> message ids
    strangers = []   # recipients that no client submitted
    multi = []       # messages with more than one recipient
    for m in queue:
        if len(m["recipients"]) != 1:
            multi.append(m["id"])
        for r in m["recipients"]:
            addr = r["address"]
            tok = addr.split("@")[0]
            if addr != rcpt_of(tok) or tok not in outcomes:
                strangers.append(addr)
                continue
            count[tok] = count.get(tok, 0) + 1
            ids.setdefault(tok, []).append(m["id"])

    by = {"acked": [], "refused": [], "unsent": [], "unknown": []}
    for tok, o in outcomes.items():
        by[o["outcome"]].append(tok)
    for k in by:
        by[k].sort()
    unknown_present = sum(1 for t in by["unknown"] if count.get(t, 0) == 1)
    send_cid = data["send_client"]
    print("# acknowledged %d (by outpost send: %d), unknown %d (%d of them queued), "
          "unsent %d, refused %d, queue has %d messages" % (
              len(by["acked"]),
              sum(1 for t in by["acked"] if t.startswith("t-%d-" % send_cid)),
              len(by["unknown"]), unknown_present, len(by["unsent"]), len(by["refused"]),
              len(queue)))
    for t in by["refused"][:5]:
        print("# refused %s: %s" % (t, outcomes[t]["detail"]))

    per_client = [sum(1 for t in by["acked"] if t.startswith("t-%d-" % c))
                  for c in range(data["clients"])]
    check(all(n > 0 for n in per_client),
          "every client had messages acknowledged (%s)" % per_client,
          [c for c, n in enumerate(per_client) if n == 0])
    check(len(by["acked"]) >= 50, "at least 50 messages acknowledged (%d)" % len(by["acked"]))
    check(not [t for t in by["acked"] if count.get(t, 0) == 0],
          "every acknowledged message is in the queue",
          [t for t in by["acked"] if count.get(t, 0) == 0])
    check(not [t for t in count if count[t] > 1],
          "no message is in the queue twice",
          ["%s x%d %s" % (t, count[t], ids[t]) for t in count if count[t] > 1])
    check(not [t for t in by["refused"] if t in count],
          "no refused message is in the queue", [t for t in by["refused"] if t in count])
    check(not [t for t in by["unsent"] if t in count],
          "no message cut off before its body is in the queue",
          [t for t in by["unsent"] if t in count])
    check(not strangers, "the queue holds nothing the clients did not submit", strangers)
    check(not multi, "every queued message has its one recipient", multi)

    # Spot-check contents: the text as queued ends with what the client sent.
    rnd = random.Random(len(queue))
    acked = sorted(t for t in by["acked"] if count.get(t) == 1)
    sample = rnd.sample(acked, min(20, len(acked)))
    sends = [t for t in acked if t.startswith("t-%d-" % send_cid)]
    if sends and not any(t in sends for t in sample):
        sample.append(rnd.choice(sends))
    bad = []
    for t in sample:
        p = subprocess.run([outpost, "queue", "cat", ids[t][0], "-c", conf],
                           capture_output=True, timeout=30)
        text = p.stdout.decode(errors="replace").replace("\r\n", "\n")
        if p.returncode != 0 or "Subject: durability %s\n" % t not in text or \
                not text.endswith(body_of(t).split("\n\n", 1)[1]):
            bad.append(t)
    check(not bad, "%d sampled acknowledged messages are intact (queue cat)" % len(sample), bad)
    return 1 if fails else 0


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "verify"):
        sys.stderr.write(__doc__)
        return 2
    return run(sys.argv[2:]) if sys.argv[1] == "run" else verify(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
