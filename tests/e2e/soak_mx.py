"""The receiving side of the soak test: one SMTP server on several loopback
addresses, each behaving its own way, all on one port.

    soak_mx.py PORT DIR

    127.0.0.2  accept   takes every message
    127.0.0.3  defer    451 to every RCPT
    127.0.0.4  reject   550 to every RCPT
    127.0.0.5  stall    waits 0-8 s before each reply to the end of the data,
                        then 451 (a slow server; never a late 250, so a reply
                        outpost gave up waiting for is never a delivery)
    127.0.0.6  drop     closes the connection at a random point of the dialogue
    127.0.0.7  flaky    per connection one of accept, defer, stall, drop
    127.0.0.8  senders  takes every message (the DSNs come here)

Each accepted message is one JSON line in DIR/accepted.jsonl: {"t", "addr",
"from", "rcpts", "subject", "body"} (body only for messages from <>). Once
DIR/calm exists every address but defer and reject accepts (the test's
final phase).
"""
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time

PORT, DIR = int(sys.argv[1]), sys.argv[2]
LOCK = threading.Lock()
ROLES = {"127.0.0.2": "accept", "127.0.0.3": "defer", "127.0.0.4": "reject",
         "127.0.0.5": "stall", "127.0.0.6": "drop", "127.0.0.7": "flaky", "127.0.0.8": "accept"}


def record(entry):
    with LOCK:
        with open(os.path.join(DIR, "accepted.jsonl"), "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())


def calm():
    return os.path.exists(os.path.join(DIR, "calm"))


class Dropped(Exception):
    pass


class Handler(socketserver.StreamRequestHandler):
    def send(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def maybe_drop(self):
        if self.role == "drop" and random.random() < 0.25:
            raise Dropped()

    def handle(self):
        addr = self.request.getsockname()[0]
        role = ROLES.get(addr, "accept")
        if calm() and role not in ("defer", "reject"):
            role = "accept"
        if role == "flaky":
            role = random.choice(["accept", "defer", "stall", "drop"])
        self.role, self.addr = role, addr
        self.request.settimeout(60)
        try:
            self.session()
        except (Dropped, OSError):
            try:
                self.request.close()
            except OSError:
                pass

    def session(self):
        self.send(b"220 soak.test ESMTP\r\n")
        sender, rcpts = None, []
        while True:
            self.maybe_drop()
            line = self.rfile.readline(1 << 16)
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.send(b"250-soak.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                          b"250-ENHANCEDSTATUSCODES\r\n250 SIZE 50000000\r\n")
            elif verb == b"MAIL":
                # A connection opened before the calm-down may be reused
                # after it: the calm applies from its next transaction.
                if calm() and ROLES.get(self.addr) not in ("defer", "reject"):
                    self.role = "accept"
                path = line[10:]
                sender, rcpts = path[path.find(b"<") + 1:path.find(b">")], []
                self.send(b"250 2.1.0 ok\r\n")
            elif verb == b"RCPT":
                if self.role == "defer":
                    self.send(b"451 4.3.0 try later\r\n")
                elif self.role == "reject":
                    self.send(b"550 5.1.1 no such user\r\n")
                else:
                    path = line[8:]
                    rcpts.append(path[path.find(b"<") + 1:path.find(b">")].decode(errors="replace"))
                    self.send(b"250 2.1.5 ok\r\n")
            elif verb == b"DATA":
                if not rcpts:
                    self.send(b"554 5.5.1 no valid recipients\r\n")
                    continue
                self.send(b"354 go\r\n")
                data = []
                while True:
                    l = self.rfile.readline(1 << 20)
                    if not l:
                        return
                    if l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b"..") else l)
                    if len(data) % 50 == 0:
                        self.maybe_drop()
                self.maybe_drop()
                if self.role == "stall":
                    time.sleep(random.uniform(0, 8))
                    self.send(b"451 4.4.2 too slow today\r\n")
                    continue
                body = b"".join(data).decode(errors="replace")
                subject = ""
                for h in body.split("\r\n\r\n", 1)[0].split("\r\n"):
                    if h.lower().startswith("subject:"):
                        subject = h[8:].strip()
                entry = {"t": time.time(), "addr": self.addr, "from": sender.decode(errors="replace"),
                         "rcpts": rcpts, "subject": subject}
                if not sender:
                    entry["body"] = body
                record(entry)  # before the 250: an acknowledged message is always on record
                self.send(b"250 2.0.0 ok\r\n")
                rcpts = []
            elif verb == b"RSET":
                sender, rcpts = None, []
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == b"NOOP":
                self.send(b"250 2.0.0 ok\r\n")
            elif verb == b"QUIT":
                self.send(b"221 2.0.0 bye\r\n")
                return
            else:
                self.send(b"502 5.5.2 unknown command\r\n")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


os.makedirs(DIR, exist_ok=True)
servers = [Server((a, PORT), Handler) for a in ROLES]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(3600)
