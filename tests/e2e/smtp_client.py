"""Scripted SMTP client scenarios for the e2e tests: smtp_client.py PORT SCENARIO [ARGS].

Each scenario exits 0 when the server behaved as expected, 1 otherwise (with
the reason on stderr)."""
import base64
import socket
import ssl
import smtplib
import sys

PORT = int(sys.argv[1])
SCENARIO = sys.argv[2]
ARGS = sys.argv[3:]
MSG = b"Subject: e2e\r\nFrom: a@example.org\r\n\r\nhello\r\n"


def client():
    s = smtplib.SMTP("127.0.0.1", PORT, local_hostname="client.test", timeout=10)
    return s


def tls_client():
    s = client()
    s.ehlo()
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)
    s.ehlo()
    return s


def expect(cond, what):
    if not cond:
        print("expected: " + what, file=sys.stderr)
        sys.exit(1)


def queued(code, text):
    expect(code == 250 and b"queued as" in text, "250 queued, got %d %r" % (code, text))


def ehlo():
    s = client()
    code, text = s.ehlo()
    print(text.decode().replace("\n", " "))
    s.quit()


def tls_auth(mech, user, password, ok=True):
    s = tls_client()
    expect("PLAIN" in s.esmtp_features.get("auth", ""), "AUTH offered after STARTTLS")
    expect("requiretls" in s.esmtp_features, "REQUIRETLS offered after STARTTLS")
    if mech == "PLAIN":
        resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        code, text = s.docmd("AUTH", "PLAIN " + resp)
    else:
        code, text = s.docmd("AUTH", "LOGIN")
        expect(code == 334, "334 to AUTH LOGIN")
        code, text = s.docmd(base64.b64encode(user.encode()).decode())
        expect(code == 334, "334 for the password")
        code, text = s.docmd(base64.b64encode(password.encode()).decode())
    if not ok:
        expect(code == 535, "535 for bad credentials, got %d" % code)
        return
    expect(code == 235, "235 after AUTH, got %d %r" % (code, text))
    s.mail("a@example.org")
    s.rcpt("auth@example.net")
    queued(*s.data(MSG))
    s.quit()


def requiretls(over_tls):
    s = tls_client() if over_tls else client()
    if not over_tls:
        s.ehlo()
    code, text = s.docmd("MAIL FROM:<a@example.org> REQUIRETLS")
    if not over_tls:
        expect(code == 530 and b"5.7.10" in text, "530 5.7.10, got %d %r" % (code, text))
        return
    expect(code == 250, "250 to MAIL REQUIRETLS, got %d %r" % (code, text))
    s.rcpt("requiretls@example.net")
    queued(*s.data(MSG))
    s.quit()


def bdat():
    sock = socket.create_connection(("127.0.0.1", PORT), 10)
    f = sock.makefile("rb")
    def reply():
        lines = []
        while True:
            line = f.readline()
            lines.append(line)
            if line[3:4] != b"-":
                return lines
    reply()
    chunk1 = b"Subject: bdat\r\n\r\nfirst "
    chunk2 = b"second\r\n"
    sock.sendall(b"EHLO client.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<bdat@example.net>\r\n")
    reply(); reply(); reply()
    sock.sendall(b"BDAT %d\r\n" % len(chunk1) + chunk1)
    r = reply()
    expect(r[0].startswith(b"250"), "250 for the first chunk, got %r" % r)
    sock.sendall(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
    r = reply()
    expect(r[0].startswith(b"250") and b"queued" in r[0], "queued after LAST, got %r" % r)
    sock.sendall(b"QUIT\r\n")


def eightbit():
    s = client()
    s.ehlo()
    s.mail("a@example.org", ["BODY=8BITMIME"])
    s.rcpt("eight@example.net")
    queued(*s.data("Subject: 8bit\r\n\r\ncaf\u00e9 \u00fcber\r\n".encode("utf-8")))
    s.quit()


def smtputf8():
    s = client()
    s.ehlo()
    s.command_encoding = "utf-8"
    code, _ = s.docmd("MAIL FROM:<s\u00e9nder@ex\u00e4mple.org> SMTPUTF8 BODY=8BITMIME")
    expect(code == 250, "250 to MAIL with SMTPUTF8, got %d" % code)
    code, _ = s.docmd("RCPT TO:<\u00fcn\u00ef@ex\u00e4mple.net>")
    expect(code == 250, "250 to a UTF-8 RCPT, got %d" % code)
    queued(*s.data("Subject: \u00fcnicode\r\n\r\nhi\r\n".encode("utf-8")))
    s.quit()


def utf8_without_smtputf8():
    s = client()
    s.ehlo()
    s.command_encoding = "utf-8"
    code, _ = s.docmd("MAIL FROM:<a@example.org>")
    code, text = s.docmd("RCPT TO:<\u00fcn\u00ef@ex\u00e4mple.net>")
    expect(code == 553, "553 for a UTF-8 address without SMTPUTF8, got %d %r" % (code, text))
    s.quit()


def tls_required_no():
    s = client()
    s.ehlo()
    s.mail("a@example.org")
    s.rcpt("trn@example.net")
    code, text = s.data(b"Subject: x\r\nTLS-Required: No\r\n\r\nhi\r\n")
    queued(code, text)
    s.quit()


SCENARIOS = {
    "ehlo": ehlo,
    "tls-auth-plain": lambda: tls_auth("PLAIN", *ARGS),
    "tls-auth-login": lambda: tls_auth("LOGIN", *ARGS),
    "tls-auth-bad": lambda: tls_auth("PLAIN", ARGS[0], ARGS[1], ok=False),
    "tls-requiretls": lambda: requiretls(True),
    "plain-requiretls": lambda: requiretls(False),
    "bdat": bdat,
    "eightbit": eightbit,
    "smtputf8": smtputf8,
    "utf8-without-smtputf8": utf8_without_smtputf8,
    "tls-required-no": tls_required_no,
}

if __name__ == "__main__":
    SCENARIOS[SCENARIO]()
