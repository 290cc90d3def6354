"""Malformed and hostile SMTP input against a running outpost daemon.

    bad_input.py SMTP_PORT ADMIN_PORT DAEMON_PID QUEUED_FILE [RSS_LIMIT_KB [GROWTH_LIMIT_KB]]

Runs the TABLE below, one fresh connection per row, and prints one line per
row: "ok   - NAME" or "FAIL - NAME: why". Then checks that the daemon still
answers, that every session it had is gone and that its VmRSS stayed under
RSS_LIMIT_KB (default 64 MiB) at every measurement, and that it grew by
less than GROWTH_LIMIT_KB (default 8 MiB; 0: not checked, for sanitizer
builds whose quarantine keeps freed memory) while a row streamed 10 MB.
QUEUED_FILE receives the recipient of each message a row means to queue (one
a line), so that the caller can check the spool grew by exactly those.

A row is (name, expected, steps[, queued recipients]). Steps are run in order:
  bytes            sent as is (plain sockets: by a sender thread, so a row
                   may pipeline megabytes while replies are read)
  "CODE [X.Y.Z] [~text]"   the next reply must have this code, enhanced code
                   and contain text
  N(n, spec)       the next n replies all match spec
  EOF              the server closes the connection, sending nothing more
  EOF_ANY          the server closes the connection (whatever it sends first,
                   e.g. a TLS alert)
  SILENT(t)        nothing arrives for t seconds
  WITHIN(lo, hi, spec)  the next reply matches spec and arrives after lo..hi s
  TLS              TLS handshake (after a 220 to STARTTLS)
  SLEEP(t), JOIN   wait; wait until everything queued to send has been sent
  RSS              the daemon's VmRSS is under the limit
  MARK, GREW       remember VmRSS; it grew by less than GROWTH_LIMIT_KB since
  OTHER            meanwhile, another client is served (EHLO, NOOP, QUIT)
  SESSIONS(n, t)   the daemon's outpost_smtp_sessions gauge reaches n within t s
  STALLED          what this row sent is not all read yet (backpressure)
  DROPPED          the daemon may close on us while we send
"""
import base64
import re
import select
import socket
import ssl
import sys
import threading
import time
import urllib.request

PORT = int(sys.argv[1])
ADMIN_PORT = int(sys.argv[2])
DAEMON_PID = int(sys.argv[3])
QUEUED_FILE = sys.argv[4]
RSS_LIMIT_KB = int(sys.argv[5]) if len(sys.argv) > 5 else 64 * 1024
GROWTH_LIMIT_KB = int(sys.argv[6]) if len(sys.argv) > 6 else 8 * 1024

# Must match the test's config.
MAX_RECIPIENTS = 100
MAX_ERRORS = 10
MAX_LINE = 998
MAX_SIZE = 1024 * 1024
MAX_PER_IP = 20
MAX_CONNECTIONS = 30
MAX_AUTH_FAILURES = 3
USER, PASSWORD = "alice", "s3cret pass"

REPLY_TIMEOUT = 10.0
rss_peak = [0]


class Fail(Exception):
    pass


# ---- step markers --------------------------------------------------------


class Step:
    def __init__(self, kind, *args):
        self.kind, self.args = kind, args


EOF = Step("eof", False)
EOF_ANY = Step("eof", True)
TLS = Step("tls")
JOIN = Step("join")
STALLED = Step("stalled")  # the daemon stopped reading: our send is still pending
DROPPED = Step("dropped")  # the daemon may drop us: a failed send is expected
RSS = Step("rss")
MARK = Step("mark")
GREW = Step("grew")
OTHER = Step("other")


def N(n, spec):
    return Step("n", n, spec)


def SILENT(t):
    return Step("silent", t)


def SLEEP(t):
    return Step("sleep", t)


def WITHIN(lo, hi, spec):
    return Step("within", lo, hi, spec)


def SESSIONS(n, t):
    return Step("sessions", n, t)


def TRICKLE(data, delay=0.01):
    """data one octet per write."""
    return Step("trickle", data, delay)


# ---- helpers -------------------------------------------------------------


def vm_rss_kb():
    with open("/proc/%d/status" % DAEMON_PID) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail("no VmRSS for pid %d" % DAEMON_PID)


def check_rss():
    kb = vm_rss_kb()
    rss_peak[0] = max(rss_peak[0], kb)
    if kb > RSS_LIMIT_KB:
        raise Fail("daemon VmRSS %d kB over the %d kB limit" % (kb, RSS_LIMIT_KB))


def sessions_gauge():
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % ADMIN_PORT, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("outpost_smtp_sessions "):
                return int(float(line.split()[1]))
    return 0


def wait_sessions(n, t):
    deadline = time.monotonic() + t
    while True:
        got = sessions_gauge()
        if got == n:
            return
        if time.monotonic() > deadline:
            raise Fail("outpost_smtp_sessions is %d, expected %d after %.1fs" % (got, n, t))
        time.sleep(0.05)


def b64(s):
    return base64.b64encode(s if isinstance(s, bytes) else s.encode()).decode()


SPEC = re.compile(r"^(\d{3})(?: (\d\.\d{1,3}\.\d{1,3}))?(?: ~(.*))?$")
ENH = re.compile(r"^(\d\.\d{1,3}\.\d{1,3})\b")


class Reply:
    def __init__(self, code, lines):
        self.code = code
        self.lines = lines
        m = ENH.match(lines[-1])
        self.enh = m.group(1) if m else ""
        self.text = "\n".join(lines)

    def matches(self, spec):
        m = SPEC.match(spec)
        if not m:
            raise ValueError("bad spec %r" % spec)
        code, enh, sub = m.groups()
        return (self.code == int(code) and (enh is None or self.enh == enh)
                and (sub is None or sub in self.text))

    def __repr__(self):
        return "%d %r" % (self.code, self.text[:120])


class Conn:
    def __init__(self, source=None, timeout=REPLY_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", PORT), timeout=30,
                                             source_address=(source, 0) if source else None)
        self.buf = bytearray()
        self.tls = False
        self.timeout = timeout
        self.cond = threading.Condition()
        self.outq = []
        self.closing = False
        self.send_error = None
        self.dropped_ok = False
        self.mark_kb = 0
        self.sender = threading.Thread(target=self._send_loop, daemon=True)
        self.sender.start()

    # sending: in order, by one thread, so that the reader never blocks it
    def _send_loop(self):
        while True:
            with self.cond:
                while not self.outq and not self.closing:
                    self.cond.wait()
                if not self.outq:
                    return
                data = self.outq[0]
            try:
                self.sock.sendall(data)
            except (OSError, ValueError) as e:
                if not self.closing and not self.dropped_ok:
                    self.send_error = e
                with self.cond:
                    self.outq.clear()
                    self.cond.notify_all()
                return
            with self.cond:
                self.outq.pop(0)
                self.cond.notify_all()

    def send(self, data):
        if self.tls:
            self.sock.sendall(data)
            return
        with self.cond:
            self.outq.append(bytes(data))
            self.cond.notify_all()

    def join(self, t=30.0):
        deadline = time.monotonic() + t
        with self.cond:
            while self.outq:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail("could not send everything in %.0fs" % t)
                self.cond.wait(left)
        if self.send_error:
            raise Fail("send failed: %s" % self.send_error)

    def close(self):
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.sender.join(5)

    # receiving
    def _fill(self, deadline):
        """Reads more octets; False on EOF. Raises Fail at the deadline."""
        while True:
            if self.tls and self.sock.pending():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([self.sock], [], [], left)
            if r:
                break
        try:
            data = self.sock.recv(262144)
        except ssl.SSLWantReadError:
            return True
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return False
        if not data:
            return False
        self.buf += data
        return True

    def reply(self, timeout=None):
        """The next reply, or None on EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            i = self.buf.find(b"\r\n")
            while i < 0:
                try:
                    if not self._fill(deadline):
                        if self.buf or lines:
                            raise Fail("connection closed inside a reply: %r" % bytes(self.buf[:80]))
                        return None
                except TimeoutError:
                    raise Fail("no reply within %.1fs (have %r)" %
                               (timeout or self.timeout, bytes(self.buf[:80])))
                i = self.buf.find(b"\r\n")
            line = bytes(self.buf[:i]).decode("latin-1")
            del self.buf[:i + 2]
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                raise Fail("not an SMTP reply line: %r" % line[:80])
            lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return Reply(int(line[:3]), lines)

    def expect(self, spec, timeout=None):
        r = self.reply(timeout)
        if r is None:
            raise Fail("expected %s, the connection was closed" % spec)
        if not r.matches(spec):
            raise Fail("expected %s, got %r" % (spec, r))
        return r

    def expect_eof(self, any_data, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.buf and not any_data:
                raise Fail("expected the connection closed, got %r" % bytes(self.buf[:80]))
            self.buf.clear()
            try:
                if not self._fill(deadline):
                    return
            except TimeoutError:
                raise Fail("connection still open after %.0fs" % timeout)
            except OSError:
                return

    def silent(self, t):
        deadline = time.monotonic() + t
        try:
            if not self._fill(deadline):
                raise Fail("connection closed while waiting")
        except TimeoutError:
            return
        raise Fail("unexpected reply %r" % bytes(self.buf[:80]))

    def starttls(self):
        self.join()
        if self.buf:
            raise Fail("data before the TLS handshake: %r" % bytes(self.buf[:80]))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.cond:  # the sender thread is idle and must stay so
            self.closing = True
            self.cond.notify_all()
        self.sender.join(5)
        try:
            self.sock = ctx.wrap_socket(self.sock, server_hostname="outpost.test")
        except (ssl.SSLError, OSError) as e:
            raise Fail("TLS handshake failed: %s" % e)
        self.tls = True


def other_client():
    c = Conn(timeout=5.0)
    try:
        c.expect("220")
        c.send(b"EHLO other.test\r\nNOOP\r\nQUIT\r\n")
        c.expect("250")
        c.expect("250 2.0.0")
        c.expect("221 2.0.0")
    except Fail as e:
        raise Fail("another client was not served: %s" % e)
    finally:
        c.close()


def run_steps(c, steps):
    for st in steps:
        if isinstance(st, (bytes, bytearray)):
            c.send(st)
        elif isinstance(st, str):
            c.expect(st)
        elif st.kind == "n":
            n, spec = st.args
            for i in range(n):
                r = c.reply()
                if r is None or not r.matches(spec):
                    raise Fail("reply %d of %d: expected %s, got %r" % (i + 1, n, spec, r))
        elif st.kind == "eof":
            c.join()
            c.expect_eof(st.args[0])
        elif st.kind == "silent":
            c.silent(st.args[0])
        elif st.kind == "within":
            lo, hi, spec = st.args
            t0 = time.monotonic()
            c.expect(spec, timeout=hi)
            dt = time.monotonic() - t0
            if dt < lo:
                raise Fail("%s after %.2fs, expected no sooner than %.1fs" % (spec, dt, lo))
        elif st.kind == "tls":
            c.starttls()
        elif st.kind == "sleep":
            time.sleep(st.args[0])
        elif st.kind == "stalled":
            with c.cond:
                if not c.outq:
                    raise Fail("everything was read: the daemon applied no backpressure")
        elif st.kind == "dropped":
            c.dropped_ok = True
        elif st.kind == "join":
            c.join()
        elif st.kind == "rss":
            check_rss()
        elif st.kind == "mark":
            c.mark_kb = vm_rss_kb()
        elif st.kind == "grew":
            kb = vm_rss_kb()
            if GROWTH_LIMIT_KB and kb - c.mark_kb > GROWTH_LIMIT_KB:
                raise Fail("daemon VmRSS grew by %d kB (%d -> %d), limit %d kB" %
                           (kb - c.mark_kb, c.mark_kb, kb, GROWTH_LIMIT_KB))
        elif st.kind == "other":
            other_client()
        elif st.kind == "sessions":
            wait_sessions(*st.args)
        elif st.kind == "trickle":
            data, delay = st.args
            for i in range(len(data)):
                c.send(data[i:i + 1])
                c.join()
                time.sleep(delay)
        else:
            raise ValueError(st.kind)


# ---- the table -------------------------------------------------------------

EHLO = [b"EHLO client.test\r\n", "250"]


def TXN(rcpt="rcpt@example.net"):
    """EHLO, MAIL and one RCPT, all accepted."""
    return EHLO + [b"MAIL FROM:<sender@example.org>\r\n", "250 2.1.0",
                   b"RCPT TO:<%s>\r\n" % rcpt.encode(), "250 2.1.5"]


def DATA():
    return TXN() + [b"DATA\r\n", "354"]


NOOP_OK = [b"NOOP\r\n", "250 2.0.0"]
QUIT = [b"QUIT\r\n", "221 2.0.0", EOF]

HDR = b"From: sender@example.org\r\nTo: rcpt@example.net\r\nSubject: hostile\r\n\r\n"
BAD_PLAIN = b64(b"\0alice\0wrong guess")
GOOD_PLAIN = b64(b"\0" + USER.encode() + b"\0" + PASSWORD.encode())


def big_body(n):
    line = b"x" * 76 + b"\r\n"
    return line * (n // len(line) + 1)


# Domains: 254 octets fits the 256-octet path "x@" + domain, 256 does not.
DOMAIN_254 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])
DOMAIN_256 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62, "e"])
assert len(DOMAIN_254) == 254 and len(DOMAIN_256) == 256


def flood_per_ip():
    """More connections than max_connections_per_ip from one address: the
    extra ones get 421 4.7.0 and are closed; the others work."""
    wait_sessions(0, 5)
    conns, got = [], []
    try:
        for _ in range(MAX_PER_IP + 5):
            c = Conn(timeout=5.0)
            conns.append(c)
            got.append(c.reply())
        want = ["220"] * MAX_PER_IP + ["421 4.7.0"] * 5
        for i, (r, w) in enumerate(zip(got, want)):
            if r is None or not r.matches(w):
                raise Fail("connection %d: expected %s, got %r" % (i + 1, w, r))
        for c in conns[MAX_PER_IP:]:
            c.expect_eof(False)
        c = conns[0]
        c.send(b"EHLO client.test\r\n")
        c.expect("250")
    finally:
        for c in conns:
            c.close()
    wait_sessions(0, 5)
    c = Conn(timeout=5.0)
    try:
        c.expect("220")  # the slots are free again
    finally:
        c.close()


def flood_total():
    """max_connections over all addresses: 127.0.0.1 fills its 20, then
    127.0.0.2 gets 10 before the total of 30 refuses the rest."""
    wait_sessions(0, 5)
    conns = []
    try:
        for i in range(MAX_CONNECTIONS + 3):
            c = Conn(source="127.0.0.1" if i < MAX_PER_IP else "127.0.0.2", timeout=5.0)
            conns.append(c)
            want = "220" if i < MAX_CONNECTIONS else "421 4.7.0"
            r = c.reply()
            if r is None or not r.matches(want):
                raise Fail("connection %d: expected %s, got %r" % (i + 1, want, r))
        for c in conns[MAX_CONNECTIONS:]:
            c.expect_eof(False)
    finally:
        for c in conns:
            c.close()
    wait_sessions(0, 5)


ROWS = [
    # name, expected (for the reader), steps[, queued recipients]
    ("bare LF ends a command line", "500 5.5.2, session goes on",
     [b"EHLO client.test\n", "500 5.5.2", *EHLO, *QUIT]),
    ("bare LF in MAIL does not execute it", "500 5.5.2, then RCPT gets 503 5.5.1",
     EHLO + [b"MAIL FROM:<a@example.org>\nRCPT TO:<b@example.net>\r\n",
             "500 5.5.2", "503 5.5.1", *QUIT]),
    ("bare CR inside a command", "500 5.5.2",
     EHLO + [b"NOOP\rMAIL FROM:<a@example.org>\r\n", "500 5.5.2",
             b"RCPT TO:<b@example.net>\r\n", "503 5.5.1", *QUIT]),
    ("command split into 1-octet writes", "250, 250",
     [TRICKLE(b"EHLO client.test\r\nNOOP\r"), SLEEP(0.1), b"\n", "250", "250 2.0.0", *QUIT]),
    ("bare LF inside DATA, then a clean message in the same session",
     "554 5.6.0, then 250 queued (1 message)",
     DATA() + [HDR + b"line one\nline two\r\n.\r\n", "554 5.6.0",
               b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<after-bare-lf@example.net>\r\n"
               b"DATA\r\n", "250 2.1.0", "250 2.1.5", "354",
               HDR + b"clean\r\n.\r\n", "250 2.0.0 ~queued as", *QUIT],
     ["after-bare-lf@example.net"]),
    ("bare CR inside DATA", "554 5.6.0",
     DATA() + [HDR + b"carriage\rreturn\r\n.\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("smuggling: LF.LF does not end DATA", "no reply until CRLF.CRLF, then one 554 5.6.0",
     DATA() + [HDR + b"body\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<evil@example.net>\r\n"
               b"DATA\r\nsmuggled\r\n", SILENT(0.5), b".\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("smuggling: CRLF.LF does not end DATA", "no reply until CRLF.CRLF, then one 554 5.6.0",
     DATA() + [HDR + b"body\r\n.\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<evil@example.net>\r\n"
               b"DATA\r\nsmuggled\r\n", SILENT(0.5), b".\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("smuggling: LF.CRLF does not end DATA", "no reply until CRLF.CRLF, then one 554 5.6.0",
     DATA() + [HDR + b"body\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<evil@example.net>\r\n"
               b"DATA\r\nsmuggled\r\n", SILENT(0.5), b".\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("smuggling: CR.CR does not end DATA", "no reply until CRLF.CRLF, then one 554 5.6.0",
     DATA() + [HDR + b"body\r.\rMAIL FROM:<evil@example.org>\r\n", SILENT(0.5),
               b"\r\n.\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("end of DATA split over writes", "554 5.6.0 once CRLF.CRLF is complete",
     DATA() + [HDR + b"nul\x00here", TRICKLE(b"\r\n.\r"), SILENT(0.3), b"\n", "554 5.6.0",
               *NOOP_OK, *QUIT]),
    ("command line of max_line_length octets", "250",
     EHLO + [b"NOOP " + b"a" * (MAX_LINE - 5) + b"\r\n", "250 2.0.0", *QUIT]),
    ("command line one octet too long, pipelined NOOP", "500 5.5.2 then 250: in sync",
     EHLO + [b"NOOP " + b"a" * (MAX_LINE - 4) + b"\r\nNOOP\r\n", "500 5.5.2", "250 2.0.0",
             b"NOOP " + b"a" * 20000 + b"\r\nNOOP\r\n", "500 5.5.2", "250 2.0.0", *QUIT]),
    ("overlong line in pieces hiding a command at its end", "one 500 5.5.2, MAIL not run",
     EHLO + [b"X" * 3000, SLEEP(0.2), b"Y" * 3000, SLEEP(0.2),
             b"MAIL FROM:<a@example.org>\r\n", "500 5.5.2",
             b"RCPT TO:<b@example.net>\r\n", "503 5.5.1", *QUIT]),
    ("overlong line inside DATA", "554 5.6.0",
     DATA() + [HDR + b"y" * 1500 + b"\r\n.\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("NUL octets in commands", "500 5.5.2 each",
     EHLO + [b"NOOP\x00\r\n\x00EHLO x\r\nMAIL FROM:<a\x00@example.org>\r\n\x00\x00\r\n",
             N(4, "500 5.5.2"), b"RCPT TO:<b@example.net>\r\n", "503 5.5.1", *NOOP_OK, *QUIT]),
    ("control and DEL octets in commands", "500 5.5.2 each",
     [b"EHLO a\x1bb\r\nEHLO a\x7fb\r\nHELO \x01\r\n", N(3, "500 5.5.2"), *EHLO, *QUIT]),
    ("NUL octets inside DATA", "554 5.6.0",
     DATA() + [HDR + b"a\x00b\r\n.\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("NUL octets inside BDAT", "554 5.6.0",
     TXN() + [b"BDAT 5 LAST\r\na\x00b\r\n", "554 5.6.0", *NOOP_OK, *QUIT]),
    ("10000 RCPTs pipelined in one write",
     "%d x 250 2.1.5, then 452 4.5.3 for the rest; one reply per command" % MAX_RECIPIENTS,
     EHLO + [b"MAIL FROM:<sender@example.org>\r\n", "250 2.1.0",
             b"".join(b"RCPT TO:<r%d@example.net>\r\n" % i for i in range(10000)),
             N(MAX_RECIPIENTS, "250 2.1.5"), N(10000 - MAX_RECIPIENTS, "452 4.5.3"),
             b"RSET\r\n", "250 2.0.0", RSS, *QUIT]),
    ("garbage pipelined after DATA without recipients",
     "501, 554 5.5.1, 500 per line, 421 4.7.0 at max_errors, closed",
     EHLO + [b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<>\r\nDATA\r\n" + HDR +
             b"line one\r\nline two\r\nline three\r\n.\r\nQUIT\r\n",
             "250 2.1.0", "501 5.1.3", "554 5.5.1", N(MAX_ERRORS - 2, "500 5.5.2"),
             "421 4.7.0", EOF]),
    ("DATA without MAIL, body pipelined", "503 5.5.1, then 500 per line",
     EHLO + [b"DATA\r\nSubject: x\r\n\r\n.\r\n", "503 5.5.1", N(3, "500 5.5.2"),
             *NOOP_OK, *QUIT]),
    ("too many errors", "500 x %d, 421 4.7.0, closed, pipelined NOOP unanswered" % MAX_ERRORS,
     EHLO + [b"BOGUS\r\n" * MAX_ERRORS + b"NOOP\r\n", N(MAX_ERRORS, "500 5.5.2"),
             "421 4.7.0", EOF]),
    ("max_errors reached by a refused DATA message", "554 5.6.0, 421 4.7.0, closed",
     DATA() + [HDR + b"bare\nlf\r\n.\r\n", "554 5.6.0", b"BOGUS\r\n" * 8,
               N(8, "500 5.5.2"), b"MAIL FROM:<s@example.org>\r\nRCPT TO:<r@example.net>\r\n"
               b"DATA\r\n", "250", "250", "354", HDR + b"bare\nlf\r\n.\r\nNOOP\r\n",
               "554 5.6.0", "421 4.7.0", EOF]),
    ("max_errors reached by a refused BDAT message", "554 5.6.0, 421 4.7.0, closed",
     TXN() + [b"BOGUS\r\n" * (MAX_ERRORS - 1), N(MAX_ERRORS - 1, "500 5.5.2"),
              b"BDAT 5 LAST\r\nab\ncdNOOP\r\n", "554 5.6.0", "421 4.7.0", EOF]),
    ("STARTTLS with commands injected before the handshake",
     "220, handshake, injected MAIL/RCPT had no effect (first reply is ours, RCPT 503)",
     EHLO + [b"STARTTLS\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<y@example.net>\r\n",
             "220 2.0.0", TLS, b"NOOP\r\n", "250 2.0.0", b"EHLO client.test\r\n",
             "250 ~REQUIRETLS", b"RCPT TO:<z@example.net>\r\n", "503 5.5.1 ~need MAIL", *QUIT]),
    ("STARTTLS resets the session", "MAIL before a new EHLO: 503 5.5.1",
     TXN() + [b"STARTTLS\r\n", "220 2.0.0", TLS, b"MAIL FROM:<a@example.org>\r\n",
              "503 5.5.1 ~EHLO", *EHLO, b"STARTTLS\r\n", "503 5.5.1", *QUIT]),
    ("STARTTLS with an argument", "501 5.5.4",
     EHLO + [b"STARTTLS now\r\n", "501 5.5.4", *NOOP_OK, *QUIT]),
    ("STARTTLS then plaintext instead of a handshake", "220, then closed",
     EHLO + [b"STARTTLS\r\n", "220 2.0.0", b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\n",
             EOF_ANY, OTHER]),
    ("AUTH PLAIN guessing", "535 5.7.8 x %d, then 421 4.7.0 and closed" % (MAX_AUTH_FAILURES - 1),
     [b"EHLO client.test\r\n", "250 ~AUTH PLAIN LOGIN"] +
     [b"AUTH PLAIN %s\r\n" % BAD_PLAIN.encode() * (MAX_AUTH_FAILURES + 1) + b"NOOP\r\n",
      N(MAX_AUTH_FAILURES - 1, "535 5.7.8"), "421 4.7.0", EOF]),
    ("AUTH LOGIN guessing", "334, 334, 535 ... then 421 4.7.0 and closed",
     EHLO + [b"AUTH LOGIN\r\n%s\r\n%s\r\n" % (b64(USER).encode(), b64("guess%d" % i).encode())
             for i in range(MAX_AUTH_FAILURES)] +
     [x for _ in range(MAX_AUTH_FAILURES - 1) for x in ("334", "334", "535 5.7.8")] +
     ["334", "334", "421 4.7.0", EOF]),
    ("AUTH with bad base64", "501 5.5.2 each, session goes on",
     EHLO + [b"AUTH PLAIN !!!!\r\n", "501 5.5.2",
             b"AUTH PLAIN\r\n", "334", b"not base64 at all\r\n", "501 5.5.2",
             b"AUTH LOGIN\r\n", "334", b"%%%%\r\n", "501 5.5.2",
             b"AUTH PLAIN " + b64(b"no-nul-in-here").encode() + b"\r\n", "501 5.5.2",
             b"AUTH LOGIN\r\n", "334", b64(b"u" * 700).encode() + b"\r\n", "501 5.5.2",
             b"AUTH PLAIN\r\n", "334", b"*\r\n", "501 5.0.0", *NOOP_OK, *QUIT]),
    ("AUTH with an unknown mechanism", "504 5.5.4; no mechanism: 501 5.5.4",
     EHLO + [b"AUTH CRAM-MD5\r\n", "504 5.5.4", b"AUTH X-EVIL =\r\n", "504 5.5.4",
             b"AUTH\r\n", "501 5.5.4", *NOOP_OK, *QUIT]),
    ("AUTH twice", "235 2.7.0, then 503 5.5.1",
     EHLO + [b"AUTH PLAIN %s\r\n" % GOOD_PLAIN.encode(), "235 2.7.0",
             b"AUTH PLAIN %s\r\n" % GOOD_PLAIN.encode(), "503 5.5.1", *QUIT]),
    ("AUTH inside a transaction", "503 5.5.1",
     TXN() + [b"AUTH PLAIN %s\r\n" % GOOD_PLAIN.encode(), "503 5.5.1", *QUIT]),
    ("SIZE lie: SIZE=100 then a body over max_message_size", "552 5.3.4, session goes on",
     EHLO + [b"MAIL FROM:<sender@example.org> SIZE=100\r\nRCPT TO:<r@example.net>\r\nDATA\r\n",
             "250 2.1.0", "250 2.1.5", "354", HDR + big_body(MAX_SIZE + 100000) + b".\r\n",
             "552 5.3.4", RSS, *NOOP_OK, *QUIT]),
    ("MAIL SIZE= above max_message_size", "552 5.3.4",
     EHLO + [b"MAIL FROM:<sender@example.org> SIZE=%d\r\n" % (MAX_SIZE + 1), "552 5.3.4",
             b"MAIL FROM:<sender@example.org> SIZE=%d\r\n" % MAX_SIZE, "250 2.1.0", *QUIT]),
    ("MAIL SIZE= malformed", "501 5.5.4",
     EHLO + [b"MAIL FROM:<s@example.org> SIZE=184467440737095516160\r\n", "501 5.5.4",
             b"MAIL FROM:<s@example.org> SIZE=-1\r\n", "501 5.5.4",
             b"MAIL FROM:<s@example.org> SIZE=1 SIZE=2\r\n", "501 5.5.4", *QUIT]),
    ("unknown MAIL and RCPT parameters", "555 5.5.4",
     EHLO + [b"MAIL FROM:<s@example.org> XFOO=bar\r\n", "555 5.5.4",
             b"MAIL FROM:<s@example.org> BODY=BINARYMIME\r\n", "504 5.5.4",
             b"MAIL FROM:<s@example.org>SIZE=1\r\n", "501 5.5.4",
             b"MAIL FROM:<s@example.org> =x\r\n", "501 5.5.4",
             b"MAIL FROM:<s@example.org>\r\n", "250 2.1.0",
             b"RCPT TO:<r@example.net> NOTIFY=NEVER XBAR\r\n", "555 5.5.4", *QUIT]),
    ("MAIL before EHLO", "503 5.5.1",
     [b"MAIL FROM:<s@example.org>\r\n", "503 5.5.1", *EHLO, *QUIT]),
    ("nested MAIL", "503 5.5.1",
     TXN() + [b"MAIL FROM:<other@example.org>\r\n", "503 5.5.1", *QUIT]),
    ("RCPT without MAIL", "503 5.5.1",
     EHLO + [b"RCPT TO:<r@example.net>\r\n", "503 5.5.1", *QUIT]),
    ("DATA without RCPT", "554 5.5.1",
     EHLO + [b"MAIL FROM:<s@example.org>\r\nDATA\r\n", "250 2.1.0", "554 5.5.1", *QUIT]),
    ("BDAT LAST chunk larger than max_message_size", "552 5.3.4, chunk consumed",
     TXN() + [b"BDAT %d LAST\r\n" % (MAX_SIZE + 50000) + big_body(MAX_SIZE + 50000)[:MAX_SIZE + 50000],
              "552 5.3.4", RSS, *NOOP_OK, *QUIT]),
    ("BDAT chunk over max_message_size, then LAST", "552 5.3.4, then 503 5.5.1",
     TXN() + [b"BDAT %d\r\n" % (MAX_SIZE + 1) + b"z" * (MAX_SIZE + 1), "552 5.3.4",
              b"BDAT 6 LAST\r\nQUIT\r\n", "503 5.5.1", *NOOP_OK, *QUIT]),
    ("BDAT without MAIL, QUIT inside the chunk", "503 5.5.1, chunk not parsed, session open",
     EHLO + [b"BDAT 12 LAST\r\nQUIT\r\nQUIT\r\n", "503 5.5.1", SILENT(0.3), *NOOP_OK,
             b"BDAT 0\r\n", "503 5.5.1", *QUIT]),
    ("BDAT size that overflows", "501 5.5.4",
     TXN() + [b"BDAT 184467440737095516160 LAST\r\n", "501 5.5.4",
              b"BDAT 12 LST\r\n", "501 5.5.4", *NOOP_OK, *QUIT]),
    ("DATA after BDAT", "503 5.5.1",
     TXN() + [b"BDAT 6\r\nhello\n", "250 2.0.0", b"DATA\r\n", "503 5.5.1",
              b"RSET\r\n", "250 2.0.0", *QUIT]),
    ("sender address syntax", "501 5.5.4 without <>, else 501 5.1.7",
     EHLO + [b"MAIL FROM:s@example.org\r\n", "501 5.5.4",
             b"MAIL FROM:<s@example.org\r\n", "501 5.1.7",
             b"MAIL FROM:<\"s@example.org>\r\n", "501 5.1.7",
             b"MAIL FROM:<s@@example.org>\r\n", "501 5.1.7",
             b"MAIL FROM:<%s@example.org>\r\n" % (b"l" * 65), "501 5.1.7",
             b"MAIL FROM: <s@example.org>\r\n", "250 2.1.0", *QUIT]),
    ("recipient address syntax", "501 5.5.4 / 501 5.1.3 / 550 / 553",
     TXN() + [b"RCPT TO:r@example.net\r\n", "501 5.5.4",
              b"RCPT TO:<r@example.net\r\n", "501 5.1.3",
              b"RCPT TO:<\"unbalanced@example.net>\r\n", "501 5.1.3",
              b"RCPT TO:<r@-bad-.example>\r\n", "501 5.1.3",
              b"RCPT TO:<r@[1.2.3.999]>\r\n", "501 5.1.3",
              b"RCPT TO:<>\r\n", "501 5.1.3",
              b"RCPT TO:<Postmaster>\r\n", "550 5.1.1",
              "RCPT TO:<jörg@example.net>\r\n".encode(), "553 5.6.7", *QUIT]),
    ("local part of 64 octets accepted, 65 refused", "250 2.1.5, 501 5.1.3",
     TXN() + [b"RCPT TO:<%s@example.net>\r\n" % (b"l" * 64), "250 2.1.5",
              b"RCPT TO:<%s@example.net>\r\n" % (b"l" * 65), "501 5.1.3", *QUIT]),
    ("domain: path of 256 octets accepted, domain of 256 refused", "250 2.1.5, 501 5.1.3",
     TXN() + [b"RCPT TO:<x@%s>\r\n" % DOMAIN_254.encode(), "250 2.1.5",
              b"RCPT TO:<x@%s>\r\n" % DOMAIN_256.encode(), "501 5.1.3", *QUIT]),
    ("connection flood from one address", "the %d extra get 421 4.7.0" % 5, flood_per_ip),
    ("connection flood over max_connections", "the extra get 421 4.7.0", flood_total),
    ("idle client after the greeting", "421 4.4.2 after ~2s, closed",
     [WITHIN(1.5, 5.0, "421 4.4.2"), EOF]),
    ("idle client in the middle of a command", "421 4.4.2 after ~2s, closed",
     EHLO + [b"NOOP", WITHIN(1.5, 5.0, "421 4.4.2"), EOF]),
    ("idle client inside DATA", "421 4.4.2 after ~2s, closed, nothing queued",
     DATA() + [HDR + b"half a message\r\n", WITHIN(1.5, 5.0, "421 4.4.2"), EOF]),
    ("client that pipelines NOOPs and stops reading",
     "memory bounded, others served, dropped by the idle timeout",
     EHLO + [MARK, DROPPED, b"NOOP\r\n" * 1000000, SLEEP(1.0), STALLED, RSS, GREW, OTHER,
             RSS, GREW, SESSIONS(0, 10.0)]),
    ("a 10 MB line without LF", "drained, 500 5.5.2 at the LF, memory bounded",
     EHLO + [MARK, b"A" * (10 << 20), JOIN, RSS, GREW, b"\r\nNOOP\r\n", "500 5.5.2",
             "250 2.0.0", RSS, GREW, *QUIT]),
    ("a 10 MB DATA line without CRLF", "552 5.3.4, memory bounded",
     DATA() + [MARK, HDR + b"B" * (10 << 20), JOIN, RSS, GREW, b"\r\n.\r\n", "552 5.3.4",
               RSS, GREW, *NOOP_OK, *QUIT]),
    ("QUIT with an argument", "501 5.5.4",
     EHLO + [b"QUIT now\r\n", "501 5.5.4", *QUIT]),
    ("commands pipelined after QUIT", "221, closed, nothing else answered",
     EHLO + [b"QUIT\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\n", "221 2.0.0", EOF]),
    ("QUIT", "221 2.0.0 and closed", QUIT),
]


def main():
    queued = []
    base = vm_rss_kb()
    print("# daemon VmRSS at start: %d kB, limit %d kB, growth limit %d kB" %
          (base, RSS_LIMIT_KB, GROWTH_LIMIT_KB))
    fails = 0
    t_start = time.monotonic()
    for row in ROWS:
        name, expected, steps = row[:3]
        t0 = time.monotonic()
        c = None
        try:
            if callable(steps):
                steps()
            else:
                c = Conn()
                c.expect("220")
                run_steps(c, steps)
                if c.send_error:
                    raise Fail("send failed: %s" % c.send_error)
            if len(row) > 3:
                queued.extend(row[3])
            print("ok   - %s -> %s (%.1fs)" % (name, expected, time.monotonic() - t0), flush=True)
        except (Fail, OSError) as e:
            fails += 1
            print("FAIL - %s -> %s: %s" % (name, expected, e), flush=True)
        finally:
            if c:
                c.close()
    print("# table: %d rows in %.1fs" % (len(ROWS), time.monotonic() - t_start))

    def final(name, fn):
        try:
            fn()
            print("ok   - " + name, flush=True)
        except (Fail, OSError) as e:
            print("FAIL - %s: %s" % (name, e), flush=True)

    final("every session is gone once its client closed", lambda: wait_sessions(0, 5.0))
    final("the daemon still answers", other_client)
    final("the daemon's VmRSS stayed under %d kB (peak %d kB)" % (RSS_LIMIT_KB, max(rss_peak[0], vm_rss_kb())),
          check_rss)
    with open(QUEUED_FILE, "w") as f:
        for r in queued:
            f.write(r + "\n")


if __name__ == "__main__":
    main()
