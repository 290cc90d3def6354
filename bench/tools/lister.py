#!/usr/bin/python3
"""Full listings of the queue through the admin API, one after the other (stdlib only; W10).

    lister.py ADMIN_PORT TOKEN_FILE --stop FILE --out FILE [--limit N]

Until FILE (--stop) exists: walks GET /api/v1/queue?limit=N from the first page
to the one whose next_cursor is null, over one keep-alive connection, and
starts again. A lean client: it finds next_cursor at the end of each answer and
counts the messages by their "id" keys, without parsing the JSON, so that the
CPU it takes is little next to the daemon's. --out gets one line per walk:
"seconds pages messages bytes".
"""
import argparse
import http.client
import os
import re
import time

CURSOR = re.compile(rb'"next_cursor":(?:null|"([^"]+)")\}\s*$')


def walk(conn, token, limit):
    cursor, pages, messages, size = None, 0, 0, 0
    while True:
        path = "/api/v1/queue?limit=%d%s" % (limit, "&cursor=" + cursor if cursor else "")
        conn.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, body[:200]))
        pages += 1
        size += len(body)
        messages += body.count(b'{"id":')
        m = CURSOR.search(body[-200:])
        if m is None:
            raise RuntimeError("no next_cursor at the end of the answer")
        if m.group(1) is None:
            return pages, messages, size
        cursor = m.group(1).decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("token_file")
    ap.add_argument("--stop", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=1000)
    a = ap.parse_args()
    token = open(a.token_file).read().strip()
    conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=120)
    with open(a.out, "w") as out:
        while not os.path.exists(a.stop):
            t = time.monotonic()
            pages, messages, size = walk(conn, token, a.limit)
            out.write("%.3f %d %d %d\n" % (time.monotonic() - t, pages, messages, size))
            out.flush()


if __name__ == "__main__":
    main()
