"""Walks the admin API's pages while the queue changes (test_api_paging.sh).

    paging_walk.py walk ADMIN_PORT TOKEN_FILE QUERY OUT [PAUSE_MS]
        follows next_cursor from /api/v1/queue?QUERY to the end, writing each
        message id seen to OUT, one a line; prints the number of pages
    paging_walk.py churn SMTP_PORT ADMIN_PORT TOKEN_FILE INITIAL DIR
        until DIR/stop exists, or CHURN_MAX messages: submits a message (one
        SMTP session, kept) and
        every few messages drops one message of INITIAL (ids, one a line) and
        one of those it added, through POST /api/v1/queue/drop; writes the
        ids it added to DIR/added and those it asked to drop to DIR/dropped
        (before asking: a drop that may have happened counts as one)
    paging_walk.py check INITIAL DROPPED SEEN
        every id of INITIAL not in DROPPED is in SEEN exactly once, and no id
        is in SEEN twice; prints what it found, exits 1 otherwise
"""
import json
import os
import random
import re
import smtplib
import sys
import time
import urllib.request


def api(port, token, path, body=None):
    req = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path),
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def walk(port, token_file, query, out, pause_ms=0):
    token = open(token_file).read().strip()
    cursor, pages = None, 0
    with open(out, "w") as f:
        while True:
            q = query + ("&cursor=" + cursor if cursor else "")
            page = api(port, token, "/api/v1/queue?" + q)
            pages += 1
            for m in page["messages"]:
                f.write(m["id"] + "\n")
            cursor = page["next_cursor"]
            if cursor is None:
                break
            time.sleep(pause_ms / 1000)
    print(pages)


# An oldest-first walk follows the mail added behind it: a churn without end,
# adding as fast as the walk paged (25 a page, about 560/s both), kept one
# walk going for 10 minutes in CI, until the test's timeout.
CHURN_MAX = 2000


def churn(smtp_port, port, token_file, initial, d):
    token = open(token_file).read().strip()
    pool = [x.strip() for x in open(initial) if x.strip()]
    random.seed(9)
    random.shuffle(pool)
    added_f = open(os.path.join(d, "added"), "w")
    dropped_f = open(os.path.join(d, "dropped"), "w")
    added = []
    s = smtplib.SMTP("127.0.0.1", smtp_port, timeout=60)
    s.ehlo()
    n = 0
    while not os.path.exists(os.path.join(d, "stop")):
        if n == CHURN_MAX:
            time.sleep(0.05)
            continue
        s.docmd("MAIL", "FROM:<churn@example.org>")
        s.docmd("RCPT", "TO:<c%d@[127.0.7.3]>" % n)
        s.docmd("DATA")
        s.send(b"Subject: churn\r\n\r\nx\r\n.\r\n")
        code, msg = s.getreply()
        m = re.search(rb"queued as ([0-9A-F]+)", msg)
        if code == 250 and m:
            added.append(m.group(1).decode())
            added_f.write(added[-1] + "\n")
            added_f.flush()
        n += 1
        if n % 3 == 0 and pool:
            ids = [pool.pop()]
            if len(added) > 10:
                ids.append(added.pop(random.randrange(len(added) - 5)))
            for i in ids:
                dropped_f.write(i + "\n")
            dropped_f.flush()
            api(port, token, "/api/v1/queue/drop", {"ids": ids})
    s.quit()


def check(initial, dropped, seen):
    ids = lambda p: [x.strip() for x in open(p) if x.strip()]
    init, gone, walked = set(ids(initial)), set(ids(dropped)), ids(seen)
    count = {}
    for i in walked:
        count[i] = count.get(i, 0) + 1
    twice = [i for i, k in count.items() if k > 1]
    kept = init - gone
    missing = [i for i in kept if i not in count]
    print("initial %d, dropped meanwhile %d, seen %d (of which %d added meanwhile), "
          "missing %d, seen twice %d" % (len(init), len(init & gone), len(walked),
                                         len(set(walked) - init), len(missing), len(twice)))
    sys.exit(1 if missing or twice else 0)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "walk":
        walk(int(args[0]), args[1], args[2], args[3], int(args[4]) if len(args) > 4 else 0)
    elif cmd == "churn":
        churn(int(args[0]), int(args[1]), args[2], args[3], args[4])
    elif cmd == "check":
        check(*args)
    else:
        sys.exit("unknown command " + cmd)
