#!/usr/bin/python3
"""Submission latency at a steady rate (stdlib only; W10).

    latency.py PORT --rate R --seconds S [--sessions N] [--size BYTES] --out FILE

N sessions (default 8), each one SMTP connection kept open (EHLO once), share a
fixed schedule: message k is due at start + k / R and goes on session k mod N,
lock-step (MAIL, RCPT, DATA, body + ".", one reply each). A message's latency
is from the moment it was due to the reply to its "."; a session that falls
behind its schedule counts the wait as latency too (no coordinated omission:
a stalled MTA shows as the delay it causes, not as fewer samples).

FILE gets one line per message: "due_s latency_ms code". stdout gets a JSON
summary: sent, ok, errors, p50/p90/p99/p999/max latency in ms, and the rate
achieved.
"""
import argparse
import json
import socket
import sys
import threading
import time


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


class Session:
    def __init__(self, port, body):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""
        self.body = body
        self.reply()  # greeting
        self.cmd(b"EHLO latency.example.test")

    def reply(self):
        while True:
            i = self.buf.find(b"\r\n")
            while i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if line[3:4] != b"-":
                    return int(line[:3])
                i = self.buf.find(b"\r\n")
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed")
            self.buf += data

    def cmd(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def message(self, n):
        if self.cmd(b"MAIL FROM:<latency@example.test>") != 250:
            return 0
        if self.cmd(b"RCPT TO:<%drcpt@dest.example.test>" % n) != 250:
            return 0
        if self.cmd(b"DATA") != 354:
            return 0
        self.sock.sendall(self.body)
        return self.reply()


def run_session(i, a, t0, total, body, results, lock):
    s = Session(a.port, body)
    for k in range(i, total, a.sessions):
        due = t0 + k / a.rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        try:
            code = s.message(k)
        except OSError:
            code = -1
        lat = (time.monotonic() - due) * 1000.0
        with lock:
            results.append((due - t0, lat, code))
        if code == -1:
            s = Session(a.port, body)
    try:
        s.cmd(b"QUIT")
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    line = b"x" * 75 + b"\r\n"
    body = b"Subject: latency\r\n\r\n" + line * max(1, a.size // len(line)) + b".\r\n"
    total = int(a.rate * a.seconds)
    results, lock = [], threading.Lock()
    t0 = time.monotonic() + 0.5  # every session connected before the first is due
    threads = [threading.Thread(target=run_session, args=(i, a, t0, total, body, results, lock))
               for i in range(a.sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t1 = time.monotonic()
    results.sort()
    with open(a.out, "w") as f:
        for due, lat, code in results:
            f.write("%.4f %.3f %d\n" % (due, lat, code))
    ok = sorted(lat for _, lat, code in results if code == 250)
    summary = {
        "sent": len(results), "ok": len(ok), "errors": len(results) - len(ok),
        "rate": round(len(results) / max(t1 - t0, 1e-9), 1),
        "p50_ms": percentile(ok, 50), "p90_ms": percentile(ok, 90),
        "p99_ms": percentile(ok, 99), "p999_ms": percentile(ok, 99.9),
        "max_ms": ok[-1] if ok else None,
    }
    json.dump(summary, sys.stdout)
    print()


if __name__ == "__main__":
    main()
