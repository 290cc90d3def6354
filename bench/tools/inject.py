#!/usr/bin/python3
"""SMTP injector that records which messages got a 250 (stdlib only; W9 crash test).

smtp-source cannot be used to check a crash: its -c counter counts messages whose
final "." was *sent*, not the 250 replies, and it exits (msg_fatal) at the first lost
connection, so nobody knows which of the in-flight messages were acknowledged.

This injector works like `smtp-source -d -s S -m N -l SIZE -N`: S sessions in
parallel, each reusing its connection, lock-step (no pipelining: EHLO once, then MAIL,
RCPT, DATA, body + ".", one reply each), one unique recipient per message
(`<n><local>@<domain>`, n = 1..N, like smtp-source -N). For every message it records
the outcome:
  acked    the reply to "." was 2xx: the MTA took responsibility for it
  rejected the reply to "." (or an earlier command) was not 2xx
  unknown  the connection was lost after the final "." was written and before its
           reply was read: the MTA may or may not have queued it (never re-sent)
A message whose transaction broke before its final "." was written cannot have been
accepted; its number is put back and sent again on the next connection.

With --reconnect-for S a session whose connection is lost (or refused) keeps trying to
connect for S seconds, so injection resumes when a killed MTA is restarted.

Output: --acked FILE (one recipient per line, in reply order), --unknown FILE, and a
JSON summary (--out): counts, first/last acknowledgement times, errors.
"""
import argparse
import asyncio
import json
import os
import sys
import time


class Lost(Exception):
    pass


class State:
    def __init__(self, n):
        self.next = 1
        self.n = n
        self.retry = []          # numbers to send again (broke before ".")
        self.acked = []          # (time, recipient)
        self.unknown = []
        self.rejected = []
        self.errors = {}
        self.connects = 0
        self.connect_failures = 0
        self.t_first_ack = None
        self.t_last_ack = None

    def take(self):
        if self.retry:
            return self.retry.pop()
        if self.next > self.n:
            return None
        k = self.next
        self.next += 1
        return k

    def error(self, what):
        self.errors[what] = self.errors.get(what, 0) + 1


async def reply(reader, timeout):
    """Read one (possibly multi-line) SMTP reply; return its code."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\n"):
            raise Lost("eof")
        if len(line) < 4 or line[3:4] != b"-":
            try:
                return int(line[:3])
            except ValueError:
                raise Lost("garbled reply")


def make_body(size, sender, rcpt, k, helo):
    line = b"X" * 76 + b"\r\n"
    reps, rest = divmod(size, len(line))
    payload = line * reps + (b"X" * max(0, rest - 2) + b"\r\n" if rest >= 2 else b"")
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-Id: <inj.{os.getpid()}.{k}@{helo}>\r\nSubject: bench {k}\r\n\r\n").encode()
    return head + payload + b".\r\n"


async def session(idx, a, st, local, domain):
    trouble_since = None   # start of the current run of failed or lost connections

    def keep_trying():
        nonlocal trouble_since
        now = time.time()
        if trouble_since is None:
            trouble_since = now
        return now - trouble_since < a.reconnect_for

    while True:
        k = st.take()
        if k is None:
            return
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(a.host, a.port), a.timeout)
        except (OSError, asyncio.TimeoutError) as e:
            st.retry.append(k)
            st.connect_failures += 1
            st.error("connect: " + type(e).__name__)
            if keep_trying():
                await asyncio.sleep(0.05)
                continue
            return
        st.connects += 1
        inflight = None   # number whose "." was written, reply not yet read
        current = k
        try:
            if await reply(reader, a.timeout) // 100 != 2:
                raise Lost("banner not 2xx")
            writer.write(f"EHLO {a.helo}\r\n".encode())
            if await reply(reader, a.timeout) // 100 != 2:
                raise Lost("EHLO not 2xx")
            trouble_since = None
            while current is not None:
                rcpt = f"{current}{local}@{domain}"
                writer.write(f"MAIL FROM:<{a.sender}>\r\n".encode())
                c = await reply(reader, a.timeout)
                if c // 100 == 2:
                    writer.write(f"RCPT TO:<{rcpt}>\r\n".encode())
                    c = await reply(reader, a.timeout)
                if c // 100 == 2:
                    writer.write(b"DATA\r\n")
                    c = await reply(reader, a.timeout)
                    c = 250 if c == 354 else c
                if c // 100 != 2:
                    st.rejected.append(rcpt)
                    st.error(f"reply {c}")
                    writer.write(b"RSET\r\n")
                    await reply(reader, a.timeout)
                else:
                    writer.write(make_body(a.size, a.sender, rcpt, current, a.helo))
                    await writer.drain()
                    inflight = current
                    c = await reply(reader, a.timeout)
                    inflight = None
                    if c // 100 == 2:
                        now = time.time()
                        st.acked.append((now, rcpt))
                        st.t_first_ack = st.t_first_ack or now
                        st.t_last_ack = now
                    else:
                        st.rejected.append(rcpt)
                        st.error(f"end of data {c}")
                current = st.take()
            writer.write(b"QUIT\r\n")
            try:
                await reply(reader, a.timeout)
            except (Lost, OSError, asyncio.TimeoutError):
                pass
            writer.close()
            return
        except (Lost, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            st.error("session: " + (str(e) if isinstance(e, Lost) else type(e).__name__))
            try:
                writer.close()
            except Exception:
                pass
            if inflight is not None:
                st.unknown.append(f"{inflight}{local}@{domain}")
            elif current is not None:
                st.retry.append(current)
            if keep_trying():
                await asyncio.sleep(0.05)
                continue
            return


async def main_async(a):
    st = State(a.messages)
    local, domain = a.rcpt.split("@", 1)
    t0 = time.time()
    await asyncio.gather(*(session(i, a, st, local, domain) for i in range(a.sessions)))
    t1 = time.time()
    return st, t0, t1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--messages", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--helo", default="client.example.test")
    ap.add_argument("--sender", default="sender@example.test")
    ap.add_argument("--rcpt", default="rcpt@dest.example.test")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--reconnect-for", type=float, default=0,
                    help="after a lost or refused connection keep retrying this many seconds")
    ap.add_argument("--acked", required=True)
    ap.add_argument("--unknown")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    st, t0, t1 = asyncio.run(main_async(a))
    with open(a.acked, "w") as f:
        for _, r in st.acked:
            f.write(r + "\n")
    if a.unknown:
        with open(a.unknown, "w") as f:
            for r in st.unknown:
                f.write(r + "\n")
    res = {"messages": a.messages, "sessions": a.sessions, "t_start": t0, "t_end": t1,
           "acked": len(st.acked), "unknown": len(st.unknown), "rejected": len(st.rejected),
           "not_sent": a.messages - len(st.acked) - len(st.unknown) - len(st.rejected),
           "connects": st.connects, "connect_failures": st.connect_failures,
           "t_first_ack": st.t_first_ack, "t_last_ack": st.t_last_ack, "errors": st.errors}
    with open(a.out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.rename(a.out + ".tmp", a.out)
    print(json.dumps({k: res[k] for k in ("acked", "unknown", "rejected", "not_sent", "connects")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
