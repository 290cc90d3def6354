#!/usr/bin/python3
"""https_peer.py - small servers for the HTTPS cases nginx cannot play
(tests/e2e/test_mtasts_fetch.sh).

  https_peer.py silent ADDR PORT          accepts TCP and never says a word;
                                          also binds UDP ADDR:PORT and never
                                          answers (a resolver that is gone)
  https_peer.py plain ADDR PORT           answers plain HTTP on a TLS port
  https_peer.py tls ADDR PORT CERT KEY    HTTPS: GET of the policy path sends a
                                          chunked body (no Content-Length) of
                                          CHUNKED_SIZE octets; POST /report
                                          answers JSON describing the body
Runs until killed.
"""
import hashlib
import http.server
import json
import os
import socket
import ssl
import sys


def silent(addr, port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(16)
    held = [udp]
    while True:
        conn, _ = srv.accept()
        held.append(conn)  # kept open, never read or written


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("https_peer: " + (fmt % args) + "\n")

    def do_GET(self):
        size = int(os.environ.get("CHUNKED_SIZE", "71680"))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = b"x" * 4096
        left = size
        try:
            while left > 0:
                part = chunk[: min(left, len(chunk))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                left -= len(part)
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the client hung up at its cap

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        out = json.dumps({
            "path": self.path,
            "content_type": self.headers.get("Content-Type"),
            "expect": self.headers.get("Expect"),
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(out)


class PlainHandler(Handler):
    def do_GET(self):
        out = b"version: STSv1\r\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def serve(addr, port, handler, wrap=None):
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    srv = http.server.ThreadingHTTPServer((addr, port), handler)
    if wrap is not None:
        srv.socket = wrap(srv.socket)
    srv.serve_forever()


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "silent":
        silent(addr, port)
    elif mode == "plain":
        serve(addr, port, PlainHandler)
    elif mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        serve(addr, port, Handler, lambda s: ctx.wrap_socket(s, server_side=True))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
