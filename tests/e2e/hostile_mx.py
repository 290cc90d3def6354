"""An SMTP server that misbehaves on purpose, for the delivery scenarios.

    hostile_mx.py ADDR PORT MODE DIR

Listens on ADDR:PORT until killed; one thread per connection. Notes in
DIR/connections.log "conn N starttls=yes" when a session asks for STARTTLS,
"conn N starttls=no" when one sends MAIL without it, and the mode's event;
writes each accepted message to DIR/msg.N (envelope lines, a blank line, the data).

Modes:
  tls-fallback   offers STARTTLS; answers it with 220 and then sends garbage
                 instead of a TLS handshake; a session that does not ask
                 for STARTTLS gets its mail accepted (250)
  tls-garbage    the same garbage after STARTTLS, and a session without TLS
                 gets "451 4.7.0 TLS required" to MAIL
  ehlo-endless   answers EHLO with "250-" lines that never end
  long-line      answers EHLO with one reply line of 1 MB
  trickle        sends its greeting one byte per second
  reset-data     takes MAIL, RCPT, DATA (354), reads a little of the message
                 and resets the connection (RST)
  no-smtputf8    a plain, well-behaved server offering 8BITMIME but not
                 SMTPUTF8 (accepts any mail)
  accept         the same, offering SMTPUTF8 too
  gate           notes "conn N ehlo" and "conn N mail" as those commands come;
                 accepts a message, notes "conn N waiting" once its data is in,
                 and answers only when DIR/go appears (written whole, then
                 renamed there): with the reply written in it (a 250 when
                 empty); notes "conn N replied CODE"; each go answers one
                 waiting connection
  greet-554      greets with 554 and closes after QUIT
  ehlo-550       answers EHLO and HELO with 550
  rcpt-421       answers RCPT with 421 and closes the connection
  rcpt-451       answers RCPT with 451 (a deferral)
  rcpt-550       answers RCPT with 550 (a failure)
"""
import os
import socket
import socketserver
import struct
import sys
import threading
import time

ADDR, PORT, MODE, DIR = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
LOCK = threading.Lock()
COUNT = {"conn": 0, "msg": 0}
GARBAGE = b"this is not a TLS server hello, just garbage\r\n" * 8


def note(line):
    with LOCK:
        with open(os.path.join(DIR, "connections.log"), "a") as f:
            f.write(line + "\n")


class Handler(socketserver.StreamRequestHandler):
    def send(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def handle(self):
        with LOCK:
            COUNT["conn"] += 1
            n = COUNT["conn"]
        try:
            self.session(n)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, OSError):
            pass

    def session(self, n):
        self.request.settimeout(60)
        if MODE == "trickle":
            note("conn %d trickle" % n)
            for b in b"220 trickle.test ESMTP slowly\r\n":
                self.send(bytes([b]))
                time.sleep(1)
            return
        if MODE == "greet-554":
            note("conn %d greet-554" % n)
            self.send(b"554 5.7.1 no service for you\r\n")
            self.rfile.readline(4096)
            self.send(b"221 2.0.0 Bye\r\n")
            return
        self.send(b"220 %s.test ESMTP\r\n" % MODE.encode())
        starttls = plain_noted = False
        sender, rcpts = None, []
        while True:
            line = self.rfile.readline(4096)
            if not line:
                break
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                if MODE == "ehlo-550":
                    note("conn %d ehlo-550" % n)
                    self.send(b"550 5.7.1 go away\r\n")
                    continue
                if MODE == "ehlo-endless":
                    note("conn %d ehlo-endless" % n)
                    i = 0
                    while True:
                        self.send(b"".join(b"250-EXTENSION-%d\r\n" % (i + k) for k in range(100)))
                        i += 100
                if MODE == "long-line":
                    note("conn %d long-line" % n)
                    self.send(b"250-" + b"x" * (1 << 20) + b"\r\n250 OK\r\n")
                    continue
                if MODE == "gate":
                    note("conn %d ehlo" % n)
                caps = [b"250-%s.test" % MODE.encode(), b"250-8BITMIME", b"250-ENHANCEDSTATUSCODES"]
                if MODE in ("accept", "gate"):
                    caps.append(b"250-SMTPUTF8")
                if MODE in ("tls-fallback", "tls-garbage"):
                    caps.append(b"250-STARTTLS")
                caps.append(b"250 SIZE 10000000")
                self.send(b"\r\n".join(caps) + b"\r\n")
            elif verb == b"STAR":
                starttls = True
                note("conn %d starttls=yes" % n)
                self.send(b"220 2.0.0 Ready to start TLS\r\n")
                time.sleep(0.2)  # the garbage in a packet of its own, not behind the 220
                self.send(GARBAGE)
                time.sleep(0.5)
                return
            elif verb == b"MAIL":
                if MODE == "gate":
                    note("conn %d mail" % n)
                if not starttls and not plain_noted:
                    plain_noted = True
                    note("conn %d starttls=no" % n)
                if MODE == "tls-garbage":
                    self.send(b"451 4.7.0 TLS required but STARTTLS failed\r\n")
                    continue
                sender, rcpts = line[5:].strip(), []
                self.send(b"250 2.1.0 Ok\r\n")
            elif verb == b"RCPT":
                if MODE == "rcpt-421":
                    note("conn %d rcpt-421" % n)
                    self.send(b"421 4.3.2 closing, try another host\r\n")
                    return
                if MODE in ("rcpt-451", "rcpt-550"):
                    code = MODE[5:].encode()
                    self.send(b"%s %s.0.0 not today\r\n" % (code, code[:1]))
                    continue
                rcpts.append(line[5:].strip())
                self.send(b"250 2.1.5 Ok\r\n")
            elif verb == b"DATA":
                self.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                if MODE == "reset-data":
                    self.rfile.readline(4096)
                    note("conn %d reset-data" % n)
                    self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                            struct.pack("ii", 1, 0))
                    self.request.close()
                    return
                data = []
                while True:
                    l = self.rfile.readline(1 << 16)
                    if not l or l == b".\r\n":
                        break
                    data.append(l)
                with LOCK:
                    COUNT["msg"] += 1
                    m = COUNT["msg"]
                reply = b"250 2.0.0 Ok: queued"
                if MODE == "gate":
                    reply = self.wait_for_go(n)
                if reply.startswith(b"250"):
                    with open(os.path.join(DIR, "msg.%d" % m), "wb") as f:
                        f.write(b"MAIL " + sender + b"\n")
                        for r in rcpts:
                            f.write(b"RCPT " + r + b"\n")
                        f.write(b"\n" + b"".join(data))
                self.send(reply + b"\r\n")
            elif verb == b"RSET":
                sender, rcpts = None, []
                self.send(b"250 2.0.0 Ok\r\n")
            elif verb == b"NOOP":
                self.send(b"250 2.0.0 Ok\r\n")
            elif verb == b"QUIT":
                self.send(b"221 2.0.0 Bye\r\n")
                break
            else:
                self.send(b"502 5.5.2 Error: command not recognized\r\n")


def _wait_for_go(self, n):
    note("conn %d waiting" % n)
    go, mine = os.path.join(DIR, "go"), os.path.join(DIR, "go.%d" % n)
    while True:  # one go answers one waiting connection: whoever renames it
        try:
            os.rename(go, mine)
            break
        except FileNotFoundError:
            time.sleep(0.05)
    with open(mine, "rb") as f:
        reply = f.read().strip() or b"250 2.0.0 Ok: queued"
    os.unlink(mine)
    note("conn %d replied %s" % (n, reply[:3].decode()))
    return reply


Handler.wait_for_go = _wait_for_go


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


os.makedirs(DIR, exist_ok=True)
with Server((ADDR, PORT), Handler) as srv:
    srv.serve_forever()
