"""A randomized soak of the whole daemon: submitters, scripted MX hosts
(soak_mx.py), admin actions and restarts all at once, then a reckoning.

    soak.py OUTPOST CONF DATA SMTP_PORT ADMIN_PORT MX_PORT MX_DIR SECONDS

For SECONDS: two SMTP submitters and one `outpost send` loop queue messages
of one to three recipients at hosts that accept, defer, reject, stall or
drop the connection; a chaos loop holds, releases, kicks and drops
messages, pauses and resumes delivery, and restarts the daemon (SIGTERM or
SIGKILL) every 10-25 s. Then everything calms down (the stalling and
dropping hosts start to accept, held mail is released and kicked) and the
outcome is checked:
  - every recipient of an acknowledged message was delivered (at least
    once), or failed with exactly one notice, or is still queued at the
    host that always defers, with its reason, or was dropped by the test;
  - delivered exactly once, unless a restart interrupted the attempt
    (a delivery from 5 s before a restart signal until 1 s after the old
    daemon exited: the stop aborts attempts in flight, and the receiver
    may log one whose data left just before the signal a little later);
  - no notice names a recipient that is not failed in the spool (so none
    for a dropped one), none is sent twice;
  - nothing is stuck: nothing in flight, nothing left picked, the counts of
    /api/v1/status equal the table's, `spool check` finds no problem.
Prints its figures and one "ok"/"FAIL" line per check; exits 1 on a failure.
"""
import json
import os
import itertools
import random
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request

OUTPOST, CONF, DATA, SMTP_PORT, ADMIN_PORT, MX_PORT, MX_DIR, SECONDS = sys.argv[1:9]
SMTP_PORT, MX_PORT, SECONDS = int(SMTP_PORT), int(MX_PORT), float(SECONDS)
HOSTS = {"accept": "127.0.0.2", "defer": "127.0.0.3", "reject": "127.0.0.4",
         "stall": "127.0.0.5", "drop": "127.0.0.6", "flaky": "127.0.0.7"}
SENDERS = "127.0.0.8"
LOG = os.path.join(os.path.dirname(CONF), "outpost.log")
rnd = random.Random(int(os.environ.get("SOAK_SEED", "0")) or None)

lock = threading.Lock()
messages = {}     # token -> {"rcpts": [...], "outcome": acked|refused|unknown|unsent}
restarts = []     # (signal sent, old daemon exited) of each restart
serial = itertools.count(1)
dropped = set()   # tokens of the messages the chaos loop dropped (some recipients)
dropped_notices = set()  # tokens of the messages whose notice the chaos loop dropped
stats = {"restarts_term": 0, "restarts_kill": 0, "holds": 0, "releases": 0, "kicks": 0,
         "drops": 0, "pauses": 0}
stop = threading.Event()
daemon = {"proc": None}


def cli(*args, timeout=15):
    try:
        return subprocess.run([OUTPOST, "-c", CONF] + list(args), capture_output=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def start_daemon():
    log = open(LOG, "ab")
    daemon["proc"] = subprocess.Popen([OUTPOST, "serve", "-c", CONF], stdout=log, stderr=log)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", SMTP_PORT), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
        if daemon["proc"].poll() is not None:
            raise SystemExit("outpost exited at start")


def restart(kill):
    p = daemon["proc"]
    with lock:
        signalled = time.time()
        stats["restarts_kill" if kill else "restarts_term"] += 1
    p.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
    p.wait()
    with lock:
        restarts.append((signalled, time.time()))
    time.sleep(rnd.uniform(0, 1))
    start_daemon()


def new_message(tag):
    # A counter keeps tokens unique: a collision would make two messages
    # look like one delivered twice.
    token = "%s%d" % (tag, next(serial))
    roles = rnd.sample(list(HOSTS), rnd.randint(1, 3))
    rcpts = ["r%d-%s@[%s]" % (i, token, HOSTS[r]) for i, r in enumerate(roles)]
    sender = "s-%s@[%s]" % (token, SENDERS)
    body = ("Subject: soak %s\r\n\r\n" % token + "line of the soak test\r\n" * rnd.randint(1, 60))
    with lock:
        messages[token] = {"rcpts": rcpts, "outcome": "unsent", "sender": sender}
    return token, sender, rcpts, body


def outcome(token, what):
    with lock:
        messages[token]["outcome"] = what


BACKLOG_MAX = int(os.environ.get("SOAK_BACKLOG", "2000"))
calm_backlog = threading.Event()  # set while the queue is short enough to add to
calm_backlog.set()


def backlog_watch():
    """Submitters wait while more than BACKLOG_MAX recipients are queued and
    never tried, so that a long soak stays a steady state that the final
    calm-down can drain (the counts come from /status: no scan)."""
    while not stop.wait(1):
        try:
            queued = api("/api/v1/status")["recipients"]["queued"]
        except Exception:
            continue
        if queued > BACKLOG_MAX:
            calm_backlog.clear()
        else:
            calm_backlog.set()


def submit_pause():
    while not calm_backlog.wait(1):
        if stop.is_set():
            return


def smtp_submitter(tag):
    while not stop.wait(rnd.uniform(0.02, 0.2)):  # ~10 messages a second each
        submit_pause()
        token, sender, rcpts, body = new_message(tag)
        try:
            c = smtplib.SMTP("127.0.0.1", SMTP_PORT, timeout=30)
            c.ehlo("soak.test")
            if c.mail(sender)[0] != 250 or any(c.rcpt(r)[0] != 250 for r in rcpts):
                outcome(token, "refused")
                c.close()
                continue
            if c.docmd("DATA")[0] != 354:
                outcome(token, "refused")
                c.close()
                continue
            outcome(token, "unknown")  # from the first octet of the data on
            c.send((body + ".\r\n").encode())
            code, _ = c.getreply()
            outcome(token, "acked" if code == 250 else "refused")
            c.quit()
        except (OSError, smtplib.SMTPException):
            time.sleep(0.2)


def send_submitter():
    while not stop.wait(rnd.uniform(0.05, 0.3)):
        submit_pause()
        token, sender, rcpts, body = new_message("e")
        try:
            p = subprocess.run([OUTPOST, "-c", CONF, "send", "-f", sender] + rcpts,
                               input=body.replace("\r\n", "\n").encode(), capture_output=True,
                               timeout=60)
            outcome(token, {0: "acked", 75: "unknown"}.get(p.returncode, "refused"))
        except subprocess.TimeoutExpired:
            outcome(token, "unknown")


def queue_list():
    """{queue id: [tokens of its recipients]}; a notice's are "s-TOKEN" (its
    recipient is the sender s-TOKEN of the message it is about)."""
    r = cli("queue", "list", "--json")
    try:
        listed = json.loads(r.stdout) if r and r.returncode == 0 else []
    except ValueError:
        return {}
    def token(a):
        t = a.split("@")[0]
        return t if t.startswith("s-") else t.split("-", 1)[1]
    return {m["id"]: [token(x["address"]) for x in m["recipients"]] for m in listed}


def chaos():
    next_restart = time.time() + rnd.uniform(10, 25)
    while not stop.is_set():
        time.sleep(rnd.uniform(0.3, 1.5))
        if time.time() >= next_restart:
            restart(kill=rnd.random() < 0.4)
            next_restart = time.time() + rnd.uniform(10, 25)
            continue
        listed = queue_list()
        ids = list(listed)
        pick = rnd.sample(ids, min(len(ids), rnd.randint(1, 3)))
        action = rnd.choice(["hold", "release", "kick", "drop", "pause", "release", "kick"])
        if action == "pause":
            cli("queue", "pause")
            time.sleep(rnd.uniform(0.5, 2))
            cli("queue", "resume")
            stats["pauses"] += 1
        elif pick:
            if action == "drop":  # noted before: the drop may land though the CLI fails
                for i in pick:  # a dropped notice: its recipients go without one
                    dropped.update(t for t in listed[i] if not t.startswith("s-"))
                    dropped_notices.update(t[2:] for t in listed[i] if t.startswith("s-"))
            r = cli("queue", action, *pick)
            if r and r.returncode == 0:
                stats[action + "s" if action != "hold" else "holds"] += 1


def api(path):
    token = open(os.path.join(DATA, "admin.token")).read().strip()
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (ADMIN_PORT, path),
                                 headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(req, timeout=10))


def calm_down():
    """The hosts that stall or drop accept from now on; held mail is
    released; what waits for a retry is kicked, every few seconds, except
    at the host that always defers (kicking it would only keep it busy)."""
    open(os.path.join(MX_DIR, "calm"), "w").close()
    cli("queue", "resume")
    cli("queue", "release", "--all")
    domains = ["[%s]" % a for r, a in HOSTS.items() if r != "defer"] + ["[%s]" % SENDERS]
    deadline = time.time() + int(os.environ.get("SOAK_DRAIN_SECONDS", "300"))
    while time.time() < deadline:
        db = sqlite3.connect("file:%s/spool.db?mode=ro" % DATA, uri=True)
        left = db.execute("SELECT count(*) FROM recipients WHERE state IN (0, 1, 2) AND "
                          "domain != ?", ("[%s]" % HOSTS["defer"],)).fetchone()[0]
        db.close()
        if left == 0:
            return True
        for d in domains:
            cli("queue", "kick", "--domain", d)
        time.sleep(3)
    return False


def accepted():
    out = []
    path = os.path.join(MX_DIR, "accepted.jsonl")
    with open(path) as f:
        for line in f:
            out.append(json.loads(line))
    return out


def dsn_fields(entry):
    """(its Message-ID, the recipients it names)"""
    names, msgid = [], ""
    for line in entry.get("body", "").split("\r\n"):
        if line.lower().startswith("final-recipient:"):
            names.append(line.split(";", 1)[-1].strip())
        elif line.lower().startswith("message-id:") and not msgid:
            msgid = line.split(":", 1)[1].strip()
    return msgid, names


FAILS = []


def check(ok, what):
    print(("ok   - " if ok else "FAIL - ") + what, flush=True)
    if not ok:
        FAILS.append(what)


def quiesce():
    """Delivery paused, nothing in flight, no commit pending: the spool holds still."""
    cli("queue", "pause")
    for _ in range(600):
        st = api("/api/v1/status")
        if st["in_flight"] == 0 and st["commits_pending"] == 0 and st["picked"] == 0:
            return st
        time.sleep(0.1)
    return api("/api/v1/status")


def reckon(calm):
    status = quiesce()
    got = accepted()
    deliveries, dsns = {}, {}
    for e in got:
        if e["from"] == "":
            msgid, names = dsn_fields(e)
            for r in names:  # one notice delivered twice (a restart) is one notice
                dsns.setdefault(r.lower(), set()).add(msgid)
            continue
        for r in e["rcpts"]:
            deliveries.setdefault(r.lower(), []).append(e["t"])
    db = sqlite3.connect("file:%s/spool.db?mode=ro" % DATA, uri=True)
    rows = {a.lower(): (st, err, fl) for a, st, err, fl in db.execute(
        "SELECT address, state, last_error, in_flight FROM recipients")}
    counts = dict(db.execute("SELECT state, count(*) FROM recipients GROUP BY state"))
    db.close()
    acked = [t for t, m in messages.items() if m["outcome"] == "acked"]
    lost, twice, unexplained_dup, stuck, no_reason = [], [], [], [], []
    for t in acked:
        for r in messages[t]["rcpts"]:
            key = r.lower()
            row = rows.get(key)
            n = len(deliveries.get(key, []))
            if n > 1:
                twice.append(r)
                near = [d for d in deliveries[key]
                        if any(s - 5 < d <= e + 1 for s, e in restarts)]
                if not near:
                    unexplained_dup.append(r)
            if n >= 1:
                continue
            if row is None:  # dropped by the test, or lost
                if t not in dropped:
                    lost.append(r)
                continue
            state, err, _ = row
            if state == 4:
                continue  # failed: its notice is checked below
            if state in (0, 1, 2):
                if HOSTS["defer"] not in r:
                    stuck.append(r)
                elif not err:
                    no_reason.append(r)
                continue
            lost.append(r)
    acked_rcpts = sum(len(messages[t]["rcpts"]) for t in acked)
    print("# submitted %d messages: %d acknowledged (%d recipients), %d refused, %d unknown, "
          "%d unsent" % (len(messages), len(acked), acked_rcpts,
                         sum(m["outcome"] == "refused" for m in messages.values()),
                         sum(m["outcome"] == "unknown" for m in messages.values()),
                         sum(m["outcome"] == "unsent" for m in messages.values())))
    print("# deliveries recorded %d, notices %d; restarts: %d SIGTERM, %d SIGKILL; actions: %s" % (
        sum(len(v) for v in deliveries.values()), len([e for e in got if e["from"] == ""]),
        stats["restarts_term"], stats["restarts_kill"],
        ", ".join("%s %d" % (k, v) for k, v in stats.items() if not k.startswith("restarts"))))
    print("# recipients delivered twice: %d (all around a restart: %s)" % (
        len(twice), "yes" if not unexplained_dup else "no"))
    check(calm, "after the calm-down only the always-deferring host's recipients are pending")
    check(not lost, "every acknowledged recipient is delivered, failed, queued or dropped (%d lost: %s)"
          % (len(lost), lost[:5]))
    check(not unexplained_dup, "delivered twice only when a restart cut the attempt (%s)"
          % unexplained_dup[:5])
    check(not stuck, "nothing stuck (%s)" % stuck[:5])
    check(not no_reason, "every recipient still queued has its reason (%s)" % no_reason[:5])
    bad_dsn = [r for r in dsns if r not in rows or rows[r][0] != 4]
    check(not bad_dsn, "every notice names a failed recipient, none a dropped one (%s)" % bad_dsn[:5])
    twice_dsn = [r for r, v in dsns.items() if len(v) > 1]
    check(not twice_dsn, "no recipient is named by two notices (%s)" % twice_dsn[:5])
    failed_no_dsn = [a for a, (st, _, _) in rows.items() if st == 4 and a not in dsns
                     and not a.startswith("s-")
                     and a.split("@")[0].split("-", 1)[1] not in dropped_notices]
    check(not failed_no_dsn, "every failed recipient got its notice, unless the test dropped it "
          "(%d dropped; %s)" % (len(dropped_notices), failed_no_dsn[:5]))
    check(not any(fl for _, (_, _, fl) in rows.items()), "nothing in flight in the spool")
    check(status["picked"] == 0, "nothing left picked")
    names = ["queued", "held", "deferred", "delivered", "failed"]
    check(all(status["recipients"][n] == counts.get(i, 0) for i, n in enumerate(names)),
          "the counts of /status equal the table's (%s vs %s)" % (status["recipients"], counts))
    r = cli("spool", "check")
    check(r is not None and r.returncode == 0, "spool check: no problem")


def main():
    start_daemon()
    threads = [threading.Thread(target=smtp_submitter, args=("a",)),
               threading.Thread(target=smtp_submitter, args=("b",)),
               threading.Thread(target=send_submitter), threading.Thread(target=chaos),
               threading.Thread(target=backlog_watch)]
    for t in threads:
        t.start()
    time.sleep(SECONDS)
    stop.set()
    for t in threads:
        t.join()
    if daemon["proc"].poll() is not None:
        start_daemon()
    calm = calm_down()
    reckon(calm)
    daemon["proc"].send_signal(signal.SIGTERM)
    daemon["proc"].wait()
    return 1 if FAILS else 0


sys.exit(main())
