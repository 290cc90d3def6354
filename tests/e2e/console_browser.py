#!/usr/bin/python3
"""console_browser.py - the web console in headless Chromium, for test_console.sh.

    console_browser.py --url http://127.0.0.1:PORT --user U --password P
        --shots DIR --tls-id ID --dead-id ID --hold-id ID

Drives the page as a user would (Selenium, chromium-driver) and makes the raw
HTTP requests a browser would not (a state change without the CSRF token).
Prints one "ok   - ..." or "FAIL - ..." line per check, and "note: ..." lines.
Screenshots: DIR/PAGE-phone.png (390x844) and DIR/PAGE-desktop.png (1366x900).

The answers the page is checked against come from the daemon's API
(docs/api.md) read from inside the page: what a listing holds is what the API
says, walked page by page.
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

SIZES = {"phone": (390, 844, True), "desktop": (1366, 900, False)}


def check(desc, ok, detail=""):
    print(("ok   - " if ok else "FAIL - ") + desc + ("" if ok or not detail else f" ({detail})"),
          flush=True)
    return ok


def note(text):
    print(f"note: {text}", flush=True)


class Console:
    def __init__(self, args):
        self.args = args
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1366,900", "--lang=en-GB"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.d.set_script_timeout(90)
        self.shots = []

    def quit(self):
        self.d.quit()

    def wait(self, fn, timeout=10):
        try:
            WebDriverWait(self.d, timeout, poll_frequency=0.1).until(lambda _: fn())
            return True
        except TimeoutException:
            return False

    def find(self, css):
        found = self.d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found else None

    def visible(self, css):
        e = self.find(css)
        try:
            return e is not None and e.is_displayed()
        except WebDriverException:
            return False

    def text(self, css):
        e = self.find(css)
        try:
            return e.text if e else ""
        except WebDriverException:
            return ""

    def notice(self):
        return self.text("#notice-text") if self.visible("#notice") else ""

    def clear_notice(self):
        self.d.execute_script("document.querySelector('#notice').hidden = true;")

    def rendered(self):
        """The page has drawn the current route (app.js sets main's data-ready)."""
        return self.d.execute_script(
            "return document.querySelector('main').dataset.ready === (location.hash || '#/');")

    def goto(self, hash_, ready_css, timeout=10):
        self.d.execute_script("location.hash = arguments[0];", hash_)
        return self.wait(lambda: self.rendered() and self.visible(ready_css), timeout)

    def click(self, css):
        self.find(css).click()

    def answer_dialog(self, yes=True):
        """The text of the confirmation dialog, answered."""
        if not self.wait(lambda: self.visible("dialog#confirm[open]"), 5):
            return None
        text = self.text("#confirm-text")
        self.click("#confirm-yes" if yes else "#confirm-no")
        return text

    def wait_notice(self, want, timeout=10):
        self.wait(lambda: want in self.notice(), timeout)
        return self.notice()

    def shoot(self, name):
        for size, (w, h, mobile) in SIZES.items():
            self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                   {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": mobile})
            time.sleep(0.4)
            path = f"{self.args.shots}/{name}-{size}.png"
            self.d.save_screenshot(path)
            self.shots.append(path)
        self.d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        time.sleep(0.2)

    def fetch(self, path):
        """A GET from inside the page (its credentials): [status, text]."""
        return self.d.execute_async_script(
            "const done = arguments[1];"
            "fetch(arguments[0], {credentials: 'same-origin'})"
            ".then(async r => done([r.status, await r.text()])).catch(e => done([0, String(e)]));", path)

    def errors(self):
        """Script errors and CSP violations in the browser's log."""
        return [e["message"] for e in self.d.get_log("browser")
                if "Content Security Policy" in e["message"] or "Uncaught" in e["message"]]


def raw(args, method, path, body=None, headers=None):
    """One request outside the browser: (status, headers, body)."""
    u = urllib.parse.urlsplit(args.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = c.getresponse()
    out = (r.status, r.headers, r.read().decode("utf-8", "replace"))
    c.close()
    return out


def test_static(args):
    status, h, _ = raw(args, "GET", "/")
    csp = h.get("Content-Security-Policy") or ""
    check("GET / is the console, with CSP default-src 'self', nosniff and DENY",
          status == 200 and "default-src 'self'" in csp and h.get("X-Content-Type-Options") == "nosniff"
          and h.get("X-Frame-Options") == "DENY" and (h.get("Content-Type") or "").startswith("text/html"),
          f"{status} {dict(h)}")
    status, h, body = raw(args, "GET", "/static/app.js")
    check("/static/app.js is JavaScript, revalidated by its ETag",
          status == 200 and (h.get("Content-Type") or "").startswith("text/javascript")
          and h.get("Cache-Control") == "no-cache" and h.get("ETag") and "route()" in body)
    status, _, _ = raw(args, "GET", "/static/app.js", headers={"If-None-Match": h.get("ETag") or "x"})
    check("a known ETag gets 304", status == 304, str(status))
    status, _, _ = raw(args, "GET", "/static/nothing.js")
    check("an unknown file is 404", status == 404, str(status))


def test_login(c, args):
    c.d.get(args.url + "/")
    if not check("without a session the page asks for a login",
                 c.wait(lambda: c.visible("form#login"), 10), c.text("main")):
        return False
    c.shoot("login")
    c.find("form#login input[name=user]").send_keys(args.user)
    c.find("form#login input[name=password]").send_keys("not-the-password")
    c.click("form#login button[type=submit]")
    c.wait(lambda: "Checking" not in c.text("#login-result") and c.text("#login-result"), 10)
    check("a wrong password is refused", "Wrong user or password" in c.text("#login-result")
          and not c.visible("#nav"), c.text("#login-result"))
    status, _, _ = raw(args, "POST", "/api/v1/session", {"user": args.user, "password": "not-the-password"})
    check("POST /api/v1/session with a wrong password is 401", status == 401, str(status))
    c.find("form#login input[name=user]").clear()
    c.find("form#login input[name=user]").send_keys(args.user)
    c.find("form#login input[name=password]").send_keys(args.password)
    c.click("form#login button[type=submit]")
    ok = c.wait(lambda: c.visible("#nav") and "Overview" in c.text("main h1"), 10)
    check(f"{args.user} logs in with the users_file password", ok, c.text("#login-result"))
    return ok


def test_overview(c):
    c.goto("#/", "#count-queued")
    check("the overview counts 6 queued recipients", c.text("#count-queued .n") == "6", c.text("#by-state"))
    check("the overview says delivery is paused", "Delivery is paused" in c.text("main"))
    check("the overview shows rates from two /metrics samples and the connections open",
          c.wait(lambda: c.visible("#rate-accepted") and c.visible("#connections-open"), 10), c.text("#rates"))
    check("the overview names the oldest message", c.wait(lambda: "queued" in c.text("#oldest"), 5), c.text("#oldest"))
    c.shoot("overview")


def select(c, *ids):
    for i in ids:
        c.click(f"#m-{i} input[type=checkbox]")


def queue_action(c, action, ids, want_dialog, want_notice):
    c.goto("#/queue", "table.queue")
    select(c, *ids)
    c.click(f"#actions button[data-act={action}]")
    dialog = c.answer_dialog()
    check(f"{action}: the confirmation names the recipients it affects ({want_dialog!r})",
          dialog is not None and want_dialog in dialog, repr(dialog))
    got = c.wait_notice(want_notice)
    check(f"{action}: the result says what changed ({want_notice!r})", want_notice in got, repr(got))


def row_text(c, id_):
    return c.text(f"#m-{id_}")


def row_ids(c):
    return [r.get_attribute("id") for r in c.d.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")]


def test_bulk(c):
    """A filter that is a recipient domain alone can be acted on whole."""
    for action, dialog, done in (("hold", "Hold 5 recipients at [127.0.9.3]?", "5 recipients held."),
                                 ("release", "Release 5 recipients at [127.0.9.3]?", "5 recipients released.")):
        c.goto("#/queue?domain=%5B127.0.9.3%5D", "#bulk")
        c.click(f"#bulk button[data-bulk={action}]")
        got = c.answer_dialog()
        check(f"{action} all at a domain: the confirmation counts every recipient there", got == dialog, repr(got))
        got = c.wait_notice(done)
        check(f"{action} all at a domain: the result says what changed", done in got, repr(got))


def api_all(c, path, key):
    """Every row of a listing, walked through next_cursor from inside the page."""
    rows, cursor = [], None
    for _ in range(100):
        sep = "&" if "?" in path else "?"
        status, body = c.fetch(path + sep + "limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else ""))
        if status != 200:
            raise RuntimeError(f"{path}: {status} {body[:200]}")
        d = json.loads(body)
        rows += d[key]
        cursor = d["next_cursor"]
        if cursor is None:
            break
    return rows


def walk(c, hash_, ready_css, rows, prefix):
    """The rows of each page from hash_ on, clicking Next while it is enabled."""
    pages = []
    if not c.goto(hash_, ready_css):
        return pages
    while len(pages) < 50:
        pages.append(rows())
        nxt = c.find(f"#{prefix}next")
        if nxt is None or not nxt.is_enabled():
            break
        nxt.click()
        n = len(pages) + 1
        if not c.wait(lambda: c.text(f"#{prefix}page") == f"Page {n}" and c.rendered(), 10):
            break
    return pages


def back(c, prefix, n):
    """Previous, to page n: the rows shown."""
    c.click(f"#{prefix}prev")
    c.wait(lambda: c.text(f"#{prefix}page") == f"Page {n}" and c.rendered(), 10)


def test_pages(c):
    want = ["m-" + m["id"] for m in api_all(c, "/api/v1/queue", "messages")]
    pages = walk(c, "#/queue?limit=2", "#pager", lambda: row_ids(c), "")
    flat = [i for p in pages for i in p]
    check("the queue in pages of 2: 3 pages, every message once, oldest first as the API lists them",
          [len(p) for p in pages] == [2, 2, 2] and flat == want, f"{pages} {want}")
    check("the last page offers no Next", c.find("#next") is not None and not c.find("#next").is_enabled())
    back(c, "", 2)
    check("Previous returns to page 2", len(pages) > 1 and row_ids(c) == pages[1], str(row_ids(c)))
    back(c, "", 1)
    check("... and to page 1, which offers no Previous",
          row_ids(c) == pages[0] and not c.find("#prev").is_enabled(), str(row_ids(c)))
    pages = walk(c, "#/queue?limit=4&sort=newest", "#pager", lambda: row_ids(c), "")
    flat = [i for p in pages for i in p]
    check("newest first (sort=newest), in pages of 4: the same messages in the other order",
          [len(p) for p in pages] == [4, 2] and flat == want[::-1], f"{pages}")


def test_filters(c):
    """The filters are the API's: the daemon filters, the page shows its answer."""
    c.goto("#/queue", "#filters")
    Select(c.find("#filters select[name=age]")).select_by_value("older_than:1d")
    c.click("#filters button[type=submit]")
    ok = c.wait(lambda: "older_than=1d" in c.d.current_url and c.rendered() and c.visible("#empty"), 10)
    check("the age filter asks the daemon (older_than=1d): no message is that old", ok, c.d.current_url)
    c.goto("#/queue?newer_than=1h", "table.queue")
    check("newer_than=1h lists all 6", len(row_ids(c)) == 6, str(row_ids(c)))
    c.goto("#/queue", "#filters")
    c.find("#filters input[name=sender]").send_keys("Sender@Outpost.test")
    c.click("#filters button[type=submit]")
    ok = c.wait(lambda: "sender=" in c.d.current_url and c.rendered() and c.visible("table.queue"), 10)
    check("the sender filter (any case) lists the 6 messages from sender@outpost.test",
          ok and len(row_ids(c)) == 6, str(row_ids(c)))
    c.goto("#/queue?sender=%3C%3E", "#empty")
    check("sender=<> (the null sender) lists none", c.visible("#empty"))
    c.goto("#/queue?state=bogus", "#filter-error")
    check("a filter the daemon refuses is shown with its reason, by the form",
          "unknown state" in c.text("#filter-error") and c.visible("#filters"), c.text("main")[:200])


def test_queue(c, args):
    ok = c.goto("#/queue", f"#m-{args.tls_id}")
    check("the queue lists the queued message while delivery is paused",
          ok and "queued" in row_text(c, args.tls_id), row_text(c, args.tls_id))
    c.shoot("queue")
    test_pages(c)
    test_filters(c)
    queue_action(c, "hold", [args.hold_id], "Hold 1 recipient in 1 selected message?", "1 recipient held.")
    check("the held message shows as held", c.wait(lambda: "held" in row_text(c, args.hold_id), 5),
          row_text(c, args.hold_id))
    # filters: state held shows it alone
    Select(c.find("#filters select[name=state]")).select_by_value("held")
    c.click("#filters button[type=submit]")
    c.wait(lambda: "state=held" in c.d.current_url and c.rendered(), 5)
    rows = c.d.find_elements(By.CSS_SELECTOR, "table.queue tbody tr")
    check("the state filter shows the held message alone",
          len(rows) == 1 and rows[0].get_attribute("id") == f"m-{args.hold_id}", str(len(rows)))
    # cancelling changes nothing, and says so
    select(c, args.hold_id)
    c.click("#actions button[data-act=drop]")
    c.answer_dialog(yes=False)
    got = c.wait_notice("cancelled")
    check("a cancelled drop changes nothing and says so", "nothing changed" in got, got)
    queue_action(c, "release", [args.hold_id], "Release 1 recipient in 1 selected message?", "1 recipient released.")
    check("the released message is queued again", c.wait(lambda: "queued" in row_text(c, args.hold_id), 5),
          row_text(c, args.hold_id))
    test_bulk(c)
    queue_action(c, "kick", [args.tls_id, args.dead_id], "Kick 2 recipients in 2 selected messages?",
                 "2 recipients made due now.")


def test_pause_resume(c, args):
    c.goto("#/queue", "#resume")
    c.click("#resume")
    got = c.wait_notice("Delivery resumed")
    check("resume: the page says delivery resumed", "Delivery resumed" in got, got)
    check("resume: the button now offers to pause", c.wait(lambda: c.visible("#pause"), 5))
    deadline = time.time() + 20
    while time.time() < deadline:
        status, body = c.fetch(f"/api/v1/queue/{args.tls_id}")
        if status == 200 and json.loads(body)["recipients"][0]["state"] == "delivered":
            break
        time.sleep(0.3)
    check("resumed, the kicked message is delivered", status == 200 and '"delivered"' in body, body[:200])
    c.click("#pause")
    got = c.wait_notice("Delivery paused")
    check("pause: the page says delivery is paused", "Delivery paused" in got, got)
    check("pause: the banner is back", c.wait(lambda: c.visible("#resume"), 5))


def test_message(c, args):
    c.goto(f"#/message/{args.tls_id}", "table.attempts")
    t = c.text("table.attempts")
    check("a delivered message lists its attempt: time, MX host, IP, TLS outcome, reply",
          all(w in t for w in ("127.0.9.2", "TLSv1.3", "policy none", "unverified", "delivered", "250")), t)
    check("a delivered message has no body left, and the page says so",
          c.wait(lambda: "body is gone" in c.text("#headers"), 5), c.text("#headers"))
    check("times are local with UTC on hover",
          (c.find("table.attempts time").get_attribute("title") or "").endswith("Z UTC"))
    c.shoot("message")
    c.goto(f"#/message/{args.dead_id}", "table.attempts")
    t = c.text("table.attempts")
    check("a deferred attempt shows the host and the error", "127.0.9.3" in t and "deferred" in t, t)
    check("the headers of a pending message are shown",
          c.wait(lambda: "Subject: console to a dead host" in c.text("#headers"), 5), c.text("#headers"))
    href = c.find("#download").get_attribute("href")
    status, body = c.fetch(href)
    check("the raw message can be downloaded", status == 200 and "console to a dead host" in body
          and c.find("#download").get_attribute("download") == f"{args.dead_id}.eml", f"{status} {href}")
    c.shoot("message-deferred")
    c.click("#message-actions button[data-act=drop]")
    dialog = c.answer_dialog()
    check("drop from the message page names 1 recipient", dialog == f"Drop 1 recipient of message {args.dead_id}?",
          repr(dialog))
    got = c.wait_notice("dropped")
    check("drop: the result says 1 recipient dropped", "1 recipient dropped." in got, got)
    c.goto("#/queue", "table.queue")
    check("the dropped message has left the queue", c.find(f"#m-{args.dead_id}") is None)


def history_ids(c):
    return [r.get_attribute("data-id") for r in c.d.find_elements(By.CSS_SELECTOR, "table.history tbody tr")]


def test_history(c, args):
    rows = api_all(c, "/api/v1/history", "attempts")
    results = [a["result"] for a in rows]
    note(f"the history holds {len(rows)} attempts: {', '.join(sorted(set(results)))}")
    check("the history has real attempts: one delivered, some deferred",
          results.count("delivered") == 1 and "deferred" in results, str(results))
    ok = c.goto("#/history", "#history-filters")
    check("the history page lists every attempt, newest first as the API does",
          ok and history_ids(c) == [a["id"] for a in rows], f"{history_ids(c)} {[a['id'] for a in rows]}")
    c.shoot("history")

    c.find("#history-filters input[name=recipient]").send_keys("tls@[127.0.9.2]")
    c.click("#history-filters button[type=submit]")
    ok = c.wait(lambda: "recipient=" in c.d.current_url and c.rendered() and c.visible("table.history"), 10)
    t = c.text("table.history")
    check("search by recipient: the delivered attempt alone, with its TLS outcome",
          ok and history_ids(c) == [args.tls_id] and all(w in t for w in ("delivered", "TLSv1.3", "127.0.9.2", "250")), t)
    check("history times are local with UTC on hover",
          (c.find("table.history time").get_attribute("title") or "").endswith("Z UTC"))

    deferred = [a["id"] for a in rows if a["result"] == "deferred"]
    c.goto("#/history?result=deferred", "table.history")
    t = c.text("table.history")
    check(f"search by result: the {len(deferred)} deferred attempts, each with the host that refused",
          history_ids(c) == deferred and "delivered" not in t and "127.0.9.3" in t, t[:300])

    at = [a["id"] for a in rows if a["recipient"].endswith("@[127.0.9.3]")]
    c.goto("#/history?domain=%5B127.0.9.3%5D", "table.history")
    check("search by recipient domain: the attempts at [127.0.9.3]", history_ids(c) == at, str(history_ids(c)))

    c.goto("#/history", "#history-filters")
    c.find("#history-filters input[name=id]").send_keys(args.hold_id)
    Select(c.find("#history-filters select[name=result]")).select_by_value("deferred")
    c.click("#history-filters button[type=submit]")
    want = [a["id"] for a in rows if a["id"] == args.hold_id and a["result"] == "deferred"]
    ok = c.wait(lambda: "id=" in c.d.current_url and c.rendered(), 10)
    check("search by queue id and result together", ok and want and history_ids(c) == want,
          f"{history_ids(c)} {want}")

    c.goto(f"#/history?id={args.dead_id}", "#empty")
    check("a dropped message's attempts are gone with it: nothing matches", c.visible("#empty"),
          c.text("main")[:200])

    pages = walk(c, "#/history?limit=2", "#history-pager", lambda: history_ids(c), "history-")
    flat = [i for p in pages for i in p]
    check(f"the history in pages of 2: {len(pages)} pages, every attempt once, in order",
          flat == [a["id"] for a in rows] and len(pages) >= 2 and all(len(p) == 2 for p in pages[:-1]),
          str(pages))
    check("the last history page offers no Next", not c.find("#history-next").is_enabled())
    back(c, "history-", len(pages) - 1)
    check("Previous in the history returns to the page before",
          len(pages) > 1 and history_ids(c) == pages[-2], str(history_ids(c)))


def test_tls(c, args):
    c.goto("#/tls", "#check-form")
    check("the TLS page shows today's results", "Results by policy domain" in c.text("main"))
    c.find("#check-domain").send_keys("[127.0.9.2]")
    c.click("#check-form button[type=submit]")
    ok = c.wait(lambda: c.visible("#check-report") or "failed" in c.text("#check-result"), 70)
    t = c.text("#check-result")
    check("the check form runs outpost check over the API and shows the TLS session",
          ok and "TLSv1.3" in t and "Decision" in t and "deliver over TLS" in t, t[:400])
    c.shoot("tls")


def test_csrf(args):
    status, h, body = raw(args, "POST", "/api/v1/session", {"user": args.user, "password": args.password})
    cookie = (h.get("Set-Cookie") or "").split(";")[0]
    if not check("POST /api/v1/session answers the user, a CSRF token and a cookie",
                 status == 200 and cookie and '"csrf"' in body, f"{status} {body.strip()[:120]}"):
        check("an action with the session cookie but without X-CSRF-Token is refused", False, "no session")
        return
    token = json.loads(body)["csrf"]
    attrs = (h.get("Set-Cookie") or "").lower()
    check("the session cookie is HttpOnly and SameSite=Strict", "httponly" in attrs and "samesite=strict" in attrs,
          attrs)
    status, _, body = raw(args, "POST", "/api/v1/queue/hold", {"ids": [args.hold_id]}, {"Cookie": cookie})
    check("an action with the session cookie but without X-CSRF-Token is refused", status == 403,
          f"{status} {body.strip()}")
    status, _, body = raw(args, "POST", "/api/v1/queue/hold", {"ids": [args.hold_id]},
                          {"Cookie": cookie, "X-CSRF-Token": "0" * len(token)})
    check("... and so is one with a wrong token", status == 403, f"{status} {body.strip()}")
    status, _, body = raw(args, "POST", "/api/v1/queue/release", {"ids": [args.hold_id]},
                          {"Cookie": cookie, "X-CSRF-Token": token})
    check("the same request with the token is accepted", status == 200, f"{status} {body.strip()}")
    status, _, _ = raw(args, "DELETE", "/api/v1/session", None, {"Cookie": cookie, "X-CSRF-Token": token})
    status2, _, _ = raw(args, "GET", "/api/v1/session", None, {"Cookie": cookie})
    check("DELETE /api/v1/session ends the session", status in (200, 204) and status2 == 401, f"{status} {status2}")


def test_session_end(c, args):
    """A session that ends under the page (expiry, a restart) brings the form back."""
    cookie = next((k for k in c.d.get_cookies() if k["name"] == "outpost_session"), None)
    if not check("the session's cookie is HttpOnly", cookie is not None and cookie.get("httpOnly"), str(cookie)):
        return
    session = f"outpost_session={cookie['value']}"
    _, _, body = raw(args, "GET", "/api/v1/session", None, {"Cookie": session})
    token = json.loads(body)["csrf"]
    raw(args, "DELETE", "/api/v1/session", None, {"Cookie": session, "X-CSRF-Token": token})
    c.goto("#/queue?state=held", "main")
    ok = c.wait(lambda: c.visible("form#login"), 10)
    check("a session ended under the page brings the login form back, saying so",
          ok and "session has ended" in c.text("#login-result"), c.text("main")[:200])
    if ok:
        c.find("form#login input[name=user]").send_keys(args.user)
        c.find("form#login input[name=password]").send_keys(args.password)
        c.click("form#login button[type=submit]")
        check("logged in again, the page goes on where it was",
              c.wait(lambda: c.visible("#nav") and c.rendered() and "Queue" in c.text("main h1"), 10),
              c.text("main")[:200])


def test_logout(c, args):
    if not check("the page offers to log out", c.visible("#logout")):
        return
    c.click("#logout")
    check("after logging out the page asks for a login again", c.wait(lambda: c.visible("form#login"), 5))
    status, _ = c.fetch("/api/v1/session")
    check("after logging out GET /api/v1/session is 401", status == 401, str(status))


def main():
    p = argparse.ArgumentParser()
    for a in ("--url", "--user", "--password", "--shots", "--tls-id", "--dead-id", "--hold-id"):
        p.add_argument(a, required=True)
    args = p.parse_args()
    test_static(args)
    test_csrf(args)
    c = Console(args)
    try:
        if not test_login(c, args):
            return
        test_overview(c)
        test_queue(c, args)
        test_pause_resume(c, args)
        test_message(c, args)
        test_history(c, args)
        test_tls(c, args)
        errors = c.errors()
        check("no script error or CSP violation in the browser's log", not errors, "; ".join(errors)[:500])
        test_session_end(c, args)
        test_logout(c, args)
    except Exception as e:  # a page that never came: say where, then stop
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        check("the browser script ran to its end", False, f"{type(e).__name__}: {first}")
        raise
    finally:
        c.quit()


if __name__ == "__main__":
    sys.exit(main())
