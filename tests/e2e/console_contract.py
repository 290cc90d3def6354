#!/usr/bin/python3
"""console_contract.py - a stand-in for the API contracts the console is
written for (docs/console.md), for those the daemon does not have yet, in
front of the real daemon, for test_console.sh:

    console_contract.py LISTEN_HOST LISTEN_PORT UPSTREAM_URL TOKEN_FILE USERS_FILE

* sessions: POST/GET/DELETE /api/v1/session (users_file passwords, a cookie
  HttpOnly SameSite=Strict, a CSRF token every POST and DELETE must carry,
  429 after 5 failures), and no WWW-Authenticate on a 401;
* the paged queue listing: GET /api/v1/queue?limit&cursor&state&domain&
  recipient&sender&older_than&newer_than&sort -> {"messages", "next_cursor"};
* GET /api/v1/history?limit&cursor&recipient&domain&id&result ->
  {"attempts": [...], "next_cursor"}, from the finished messages' logs.

Everything else goes to the daemon with its bearer token. This checks the
page's side of the contracts; the daemon's side is its own engineers' work.
"""
import base64
import http.client
import http.server
import json
import re
import secrets
import sys
import time
import urllib.parse
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import crypt

HOST, PORT, UPSTREAM, TOKEN_FILE, USERS_FILE = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
TOKEN = open(TOKEN_FILE).read().strip()
USERS = dict(line.strip().split(":", 1) for line in open(USERS_FILE) if ":" in line)
SESSIONS = {}  # cookie value -> (user, csrf)
FAILURES = []
UP = urllib.parse.urlsplit(UPSTREAM)


def upstream(method, path, body=None, extra=None):
    c = http.client.HTTPConnection(UP.hostname, UP.port, timeout=90)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    headers.update(extra or {})
    if body is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    out = r.status, r.getheader("Content-Type") or "", r.read()
    c.close()
    return out


def passthrough(handler, method):
    """The console's files and /metrics, headers and all."""
    c = http.client.HTTPConnection(UP.hostname, UP.port, timeout=30)
    inm = handler.headers.get("If-None-Match")
    c.request(method, handler.path, headers={"If-None-Match": inm} if inm else {})
    r = c.getresponse()
    body = r.read()
    handler.send_response(r.status)
    for k, v in r.getheaders():
        if k.lower() not in ("date", "server", "connection"):
            handler.send_header(k, v)
    handler.end_headers()
    if method != "HEAD":
        handler.wfile.write(body)
    c.close()


def seconds(d):
    return int(d[:-1]) * {"m": 60, "h": 3600, "d": 86400, "s": 1}[d[-1]]


def rfc3339(t):
    return time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, obj=None, raw=None, ctype="application/json", headers=()):
        body = raw if raw is not None else (json.dumps(obj).encode() + b"\n" if obj is not None else b"")
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def session(self):
        m = re.search(r"outpost_session=([\w-]+)", self.headers.get("Cookie") or "")
        return m and SESSIONS.get(m.group(1)), m and m.group(1)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        self.route("GET")

    def do_HEAD(self):
        self.route("HEAD")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        body = self.body()
        if not url.path.startswith("/api/"):
            return passthrough(self, method)
        if url.path == "/api/v1/session":
            return self.session_api(method, body)
        sess, _ = self.session()
        if not sess:
            return self.answer(401, {"error": "log in first"})
        if method in ("POST", "DELETE") and self.headers.get("X-CSRF-Token") != sess[1]:
            return self.answer(403, {"error": "refused: missing or wrong CSRF token"})
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/api/v1/queue" and method == "GET":
            return self.queue(q)
        if url.path == "/api/v1/history" and method == "GET":
            return self.history(q)
        status, ctype, data = upstream(method, self.path, body if method == "POST" else None)
        self.answer(status, raw=data, ctype=ctype)

    def session_api(self, method, body):
        sess, cookie = self.session()
        if method == "GET":
            return self.answer(200, {"user": sess[0], "csrf": sess[1]}) if sess else self.answer(401, {"error": "no session"})
        if method == "DELETE":
            if not sess or self.headers.get("X-CSRF-Token") != sess[1]:
                return self.answer(403, {"error": "refused: missing or wrong CSRF token"})
            del SESSIONS[cookie]
            return self.answer(204)
        now = time.time()
        FAILURES[:] = [t for t in FAILURES if now - t < 60]
        if len(FAILURES) >= 5:
            return self.answer(429, {"error": "too many failed logins"})
        try:
            cred = json.loads(body)
            user, password = cred["user"], cred["password"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "the body must be {\"user\", \"password\"}"})
        known = USERS.get(user)
        if not known or crypt.crypt(password, known) != known:
            FAILURES.append(now)
            return self.answer(401, {"error": "wrong user or password"})
        cookie, csrf = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        SESSIONS[cookie] = (user, csrf)
        self.answer(200, {"user": user, "csrf": csrf},
                    headers=[("Set-Cookie", f"outpost_session={cookie}; Path=/; HttpOnly; SameSite=Strict")])

    def queue(self, q):
        one = lambda k: (q.get(k) or [""])[0]
        up = {k: one(k) for k in ("state", "domain", "recipient") if one(k)}
        status, _, data = upstream("GET", "/api/v1/queue?" + urllib.parse.urlencode(up))
        if status != 200:
            return self.answer(status, raw=data)
        msgs = json.loads(data)
        if one("sender"):
            msgs = [m for m in msgs if one("sender").lower() in m["sender"].lower()]
        for k, older in (("older_than", True), ("newer_than", False)):
            if one(k):
                edge = time.time() - seconds(one(k))
                msgs = [m for m in msgs if (rfc3339(m["queued"]) < edge) == older]
        sort = one("sort") or "queued"
        key = sort.lstrip("-")
        msgs.sort(key=lambda m: m["size"] if key == "size" else m["id"], reverse=sort.startswith("-"))
        at, limit = int(one("cursor") or 0), int(one("limit") or 100)
        nxt = str(at + limit) if at + limit < len(msgs) else None
        self.answer(200, {"messages": msgs[at:at + limit], "next_cursor": nxt})

    def history(self, q):
        one = lambda k: (q.get(k) or [""])[0]
        rows = []
        for state in ("delivered", "failed"):
            _, _, data = upstream("GET", f"/api/v1/queue?state={state}")
            for m in json.loads(data):
                _, _, shown = upstream("GET", f"/api/v1/queue/{m['id']}")
                for a in json.loads(shown)["attempts"]:
                    rows.append(dict(a, id=m["id"], sender=m["sender"]))
        if one("recipient"):
            rows = [a for a in rows if (a["recipient"] or "").lower() == one("recipient").lower()]
        if one("domain"):
            rows = [a for a in rows if (a["recipient"] or "").lower().endswith("@" + one("domain").lower())]
        if one("id"):
            rows = [a for a in rows if a["id"] == one("id").upper()]
        if one("result"):
            rows = [a for a in rows if a["result"] == one("result")]
        rows.sort(key=lambda a: a["time"] or "", reverse=True)
        at, limit = int(one("cursor") or 0), int(one("limit") or 50)
        nxt = str(at + limit) if at + limit < len(rows) else None
        self.answer(200, {"attempts": rows[at:at + limit], "next_cursor": nxt})


http.server.ThreadingHTTPServer((HOST, PORT), Handler).serve_forever()
