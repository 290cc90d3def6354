#!/usr/bin/python3
"""An HTTPS peer for tests/e2e/test_tlsrpt.sh: it serves MTA-STS policies
(RFC 8461 §3.3) and collects TLS reports POSTed to it (RFC 8460 §5.4).

    tlsrpt_collector.py ADDR PORT CERT_CHAIN KEY DIR

  GET /.well-known/mta-sts.txt   DIR/policies/<Host>.txt, or 404
  POST <any path>                the request is stored, then answered:
        503  while the file DIR/refuse exists
        500  for the first POST to a path under /flaky/ (each path once)
        200  otherwise
      Each POST becomes DIR/posts/NNNN.json (written whole, then renamed):
      {"n", "path", "status" (the answer given), "headers": {lower-cased
      name: value}, "length", "body_b64"}. The answer is written after the
      file, so a stored 200 is one the client may have seen.
Runs until killed; one line per request on stderr.
"""
import base64
import http.server
import json
import os
import ssl
import sys
import threading

LOCK = threading.Lock()
STATE = {"n": 0, "flaky_seen": set()}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tlsrpt-collector"

    def log_message(self, fmt, *args):
        sys.stderr.write("tlsrpt_collector: " + (fmt % args) + "\n")

    def reply(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower().rstrip(".")
        path = os.path.join(self.server.dir, "policies", host + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or "/" in host or not os.path.isfile(path):
            return self.reply(404, b"not found\n")
        with open(path, "rb") as f:
            self.reply(200, f.read())

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or "0")
        body = self.rfile.read(length) if length > 0 else b""
        with LOCK:
            STATE["n"] += 1
            n = STATE["n"]
            if os.path.exists(os.path.join(self.server.dir, "refuse")):
                status = 503
            elif self.path.startswith("/flaky/") and self.path not in STATE["flaky_seen"]:
                STATE["flaky_seen"].add(self.path)
                status = 500
            else:
                status = 200
            rec = {
                "n": n,
                "path": self.path,
                "status": status,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "length": len(body),
                "body_b64": base64.b64encode(body).decode(),
            }
            posts = os.path.join(self.server.dir, "posts")
            tmp = os.path.join(posts, ".%04d.tmp" % n)
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(posts, "%04d.json" % n))
        self.reply(status, b"stored\n" if status == 200 else b"try again later\n")


def main():
    addr, port, chain, key, where = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], \
        sys.argv[5]
    os.makedirs(os.path.join(where, "posts"), exist_ok=True)
    os.makedirs(os.path.join(where, "policies"), exist_ok=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(chain, key)
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer((addr, port), Handler)
    srv.dir = where
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
