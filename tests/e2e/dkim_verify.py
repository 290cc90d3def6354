#!/usr/bin/python3
"""DKIM checks for tests/e2e/test_dkim.sh, with Debian's python3-dkim (dkimpy).

  dkim_verify.py verify FILE IP:PORT
      verifies every DKIM-Signature field of FILE on its own with dkimpy,
      the key records resolved at the test bed's resolver (dnspython);
      prints "s=SELECTOR d=DOMAIN a=ALG pass|fail" per signature and exits 0
      only when there is at least one signature and all pass.
  dkim_verify.py split FILE OUTDIR
      writes OUTDIR/sigN.eml: FILE with only its N-th DKIM-Signature field
      (for opendkim-testmsg, which reports one verdict per message); prints
      the number written.
  dkim_verify.py forward LISTEN_IP UPSTREAM_IP:PORT
      a UDP DNS forwarder on LISTEN_IP:53, for resolvers that cannot be given
      a port (libresolv, as opendkim-testmsg uses it).
"""
import os
import re
import socket
import sys

import dkim
import dns.message
import dns.query
import dns.rdatatype

SIG_FIELD = re.compile(rb"^DKIM-Signature:.*?\r?\n(?![ \t])", re.S | re.M | re.I)


def txt_lookup(host, port):
    def lookup(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        reply = dns.query.udp(dns.message.make_query(name, "TXT"), host, port=port, timeout=timeout)
        for rrset in reply.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                for rd in rrset:
                    return b"".join(rd.strings)
        return None
    return lookup


def header_and_body(msg):
    end = msg.find(b"\r\n\r\n")
    return (msg, len(msg)) if end < 0 else (msg[:end + 2], end + 2)


def signature_fields(msg):
    head, _ = header_and_body(msg)
    return [m for m in SIG_FIELD.finditer(head)]


def tag(field, name):
    m = re.search(rb"(?:^|;)\s*" + name + rb"\s*=\s*([^;]*)", field.split(b":", 1)[1])
    return re.sub(rb"\s+", b"", m.group(1)).decode() if m else "?"


def verify(path, resolver):
    host, port = resolver.rsplit(":", 1)
    msg = open(path, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    fields = signature_fields(msg)
    ok = len(fields) > 0
    for i, m in enumerate(fields):
        d = dkim.DKIM(msg)
        try:
            good = d.verify(idx=i, dnsfunc=txt_lookup(host, int(port)))
        except dkim.DKIMException as e:
            good = False
            print("  dkimpy: %s" % e)
        f = m.group(0)
        print("s=%s d=%s a=%s %s" % (tag(f, b"s"), tag(f, b"d"), tag(f, b"a"),
                                     "pass" if good else "fail"))
        ok = ok and good
    if not fields:
        print("no DKIM-Signature")
    return 0 if ok else 1


def split(path, outdir):
    msg = open(path, "rb").read().replace(b"\r\n", b"\n")
    head, body_at = header_and_body(msg.replace(b"\n", b"\r\n"))
    fields = signature_fields(msg.replace(b"\n", b"\r\n"))
    whole = msg.replace(b"\n", b"\r\n")
    for i, keep in enumerate(fields):
        out = whole
        for j in reversed(range(len(fields))):
            if j != i:
                m = fields[j]
                out = out[:m.start()] + out[m.end():]
        with open(os.path.join(outdir, "sig%d.eml" % i), "wb") as f:
            f.write(out.replace(b"\r\n", b"\n"))
    print(len(fields))
    return 0


def forward(listen_ip, upstream):
    host, port = upstream.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((listen_ip, 53))
    print("ready", flush=True)
    for _ in range(10000):  # bounded: the test asks a few dozen questions
        data, peer = s.recvfrom(4096)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(5)
        try:
            u.sendto(data, (host, int(port)))
            s.sendto(u.recv(65535), peer)
        except OSError:
            pass
        finally:
            u.close()
    return 0


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "verify":
        sys.exit(verify(sys.argv[2], sys.argv[3]))
    if cmd == "split":
        sys.exit(split(sys.argv[2], sys.argv[3]))
    if cmd == "forward":
        sys.exit(forward(sys.argv[2], sys.argv[3]))
    sys.exit(2)
