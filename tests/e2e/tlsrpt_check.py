#!/usr/bin/python3
"""What the TLS-report receivers of tests/e2e/test_tlsrpt.sh got, and checks
over it (stdlib only).

    tlsrpt_check.py inventory MAILDIR POSTS_DIR > FILE
        One JSON object: {"mails": [...], "posts": [...]}, each report as
        received, decoded:
          mail: file, rcpts (Delivered-To), return_path, message_id, from,
                to, subject, content_type, report_type, tls_report_domain,
                tls_report_submitter, tls_required, auto_submitted, parts
                (leaf content types), attachment {content_type, name,
                filename, sha256}, report (the gunzipped JSON), report_id,
                error (what could not be decoded)
          post: file, n, path, status (the collector's answer),
                content_type, content_encoding, length, sha256, report,
                report_id, error
    tlsrpt_check.py eval FILE EXPR [JSONFILE...]
        EXPR over the inventory FILE; exit 0 when true. Names: mails, posts,
        M(**kw) / P(**kw) (those whose fields equal kw; P counts accepted
        ones only unless status= is given), J[i] (the JSON files given),
        same(a, b) (policies equal whatever their order), rfc(report,
        domain, day, submitter) (the RFC 8460 §4.4 problems of a report:
        [] when none). On false or an error it prints why on stderr.
    tlsrpt_check.py rfc FILE DOMAIN DAY SUBMITTER
        Prints rfc()'s problems of the report JSON in FILE, one a line;
        exit 0 when there are none.
"""
import base64
import email
import email.policy
import gzip
import hashlib
import json
import os
import re
import sys


def gunzip_json(data):
    try:
        raw = gzip.decompress(data)
    except Exception as e:
        return None, "not gzip: %s" % e
    try:
        return json.loads(raw.decode("utf-8")), None
    except Exception as e:
        return None, "not JSON: %s" % e


def one_header(msg, name):
    v = msg.get_all(name)
    if not v:
        return None
    if len(v) > 1:
        return v  # a list: more than one field
    return re.sub(r"\s+", " ", str(v[0])).strip()


def mail_entry(path):
    with open(path, "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.compat32)
    e = {
        "file": path,
        "rcpts": [v.strip().lower() for v in msg.get_all("Delivered-To", [])],
        "return_path": one_header(msg, "Return-Path"),
        "message_id": one_header(msg, "Message-ID"),
        "from": one_header(msg, "From"),
        "to": one_header(msg, "To"),
        "subject": one_header(msg, "Subject"),
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type"),
        "tls_report_domain": one_header(msg, "TLS-Report-Domain"),
        "tls_report_submitter": one_header(msg, "TLS-Report-Submitter"),
        "tls_required": one_header(msg, "TLS-Required"),
        "auto_submitted": one_header(msg, "Auto-Submitted"),
        "parts": [],
        "attachment": None,
        "report": None,
        "report_id": None,
        "error": None,
    }
    gz = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        ct = part.get_content_type()
        e["parts"].append(ct)
        if ct.startswith("application/tlsrpt"):
            gz = part.get_payload(decode=True) or b""
            e["attachment"] = {
                "content_type": ct,
                "transfer_encoding": (part.get("Content-Transfer-Encoding") or "").lower(),
                "name": part.get_param("name"),
                "filename": part.get_filename(),
                "sha256": hashlib.sha256(gz).hexdigest(),
            }
    if gz is None:
        e["error"] = "no application/tlsrpt+gzip part"
    else:
        e["report"], e["error"] = gunzip_json(gz)
    if isinstance(e["report"], dict):
        e["report_id"] = e["report"].get("report-id")
    return e


def post_entry(path):
    with open(path) as f:
        rec = json.load(f)
    body = base64.b64decode(rec["body_b64"])
    e = {
        "file": path,
        "n": rec["n"],
        "path": rec["path"],
        "status": rec["status"],
        "content_type": rec["headers"].get("content-type"),
        "content_encoding": rec["headers"].get("content-encoding"),
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "report": None,
        "report_id": None,
        "error": None,
    }
    e["report"], e["error"] = gunzip_json(body)
    if isinstance(e["report"], dict):
        e["report_id"] = e["report"].get("report-id")
    return e


def inventory(maildir, posts):
    mails, out_posts = [], []
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            p = os.path.join(d, name)
            if os.path.isfile(p) and os.path.getsize(p) > 0:
                e = mail_entry(p)
                if e["tls_report_domain"] or e["report_type"] == "tlsrpt":
                    mails.append(e)
    for name in sorted(os.listdir(posts)) if os.path.isdir(posts) else []:
        if name.endswith(".json") and not name.startswith("."):
            out_posts.append(post_entry(os.path.join(posts, name)))
    return {"mails": mails, "posts": out_posts}


# ---- RFC 8460 §4.4 ------------------------------------------------------------------

TOP = {"organization-name", "date-range", "contact-info", "report-id", "policies"}
POLICY = {"policy-type", "policy-string", "policy-domain", "mx-host"}
SUMMARY = {"total-successful-session-count", "total-failure-session-count"}
DETAIL_REQ = {"result-type", "failed-session-count"}
DETAIL_ALL = DETAIL_REQ | {"sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo",
                           "receiving-ip", "additional-information", "failure-reason-code"}
TYPES = {"tlsa", "sts", "no-policy-found"}
# RFC 8460 §4.3 result types
RESULTS = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
           "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
           "dane-required", "sts-policy-fetch-error", "sts-policy-invalid",
           "sts-webpki-invalid"}


def rfc(r, domain, day, submitter):
    bad = []
    if not isinstance(r, dict):
        return ["not a JSON object"]
    if set(r) != TOP:
        bad.append("top-level fields %s, RFC 8460 §4.4 has %s" % (sorted(r), sorted(TOP)))
    dr = r.get("date-range") or {}
    if dr != {"start-datetime": day + "T00:00:00Z", "end-datetime": day + "T23:59:59Z"}:
        bad.append("date-range %s is not the UTC day %s" % (dr, day))
    want_id = "%s.%s@%s" % (day.replace("-", ""), domain, submitter)
    if r.get("report-id") != want_id:
        bad.append("report-id %r, expected %r" % (r.get("report-id"), want_id))
    for k in ("organization-name", "contact-info"):
        if not isinstance(r.get(k), str) or not r.get(k):
            bad.append("%s missing or empty" % k)
    pols = r.get("policies")
    if not isinstance(pols, list) or not pols:
        return bad + ["policies missing or empty"]
    for i, p in enumerate(pols):
        if set(p) != {"policy", "summary", "failure-details"} and set(p) != {"policy", "summary"}:
            bad.append("policies[%d] fields %s" % (i, sorted(p)))
        pol, summ = p.get("policy", {}), p.get("summary", {})
        if not set(pol) <= POLICY or not {"policy-type", "policy-domain"} <= set(pol):
            bad.append("policies[%d].policy fields %s" % (i, sorted(pol)))
        if pol.get("policy-type") not in TYPES:
            bad.append("policies[%d] policy-type %r" % (i, pol.get("policy-type")))
        if pol.get("policy-domain") != domain:
            bad.append("policies[%d] policy-domain %r, not %s" % (i, pol.get("policy-domain"),
                                                                  domain))
        if set(summ) != SUMMARY or not all(isinstance(summ[k], int) and summ[k] >= 0
                                           for k in SUMMARY & set(summ)):
            bad.append("policies[%d].summary %s" % (i, summ))
        fails = 0
        for j, d in enumerate(p.get("failure-details", [])):
            if not DETAIL_REQ <= set(d) or not set(d) <= DETAIL_ALL:
                bad.append("policies[%d].failure-details[%d] fields %s" % (i, j, sorted(d)))
            if d.get("result-type") not in RESULTS:
                bad.append("policies[%d].failure-details[%d] result-type %r" %
                           (i, j, d.get("result-type")))
            fails += d.get("failed-session-count", 0)
        if isinstance(summ.get("total-failure-session-count"), int) and \
                fails > summ["total-failure-session-count"]:
            bad.append("policies[%d]: failure details count %d sessions, the summary %d" %
                       (i, fails, summ["total-failure-session-count"]))
    return bad


def canon(policies):
    def key(p):
        return json.dumps(p, sort_keys=True)
    out = []
    for p in policies or []:
        q = dict(p)
        q["failure-details"] = sorted(p.get("failure-details", []), key=key)
        out.append(q)
    return sorted(out, key=key)


def same(a, b):
    return canon(a) == canon(b)


def evaluate(path, expr, jsons):
    with open(path) as f:
        inv = json.load(f)
    mails, posts = inv["mails"], inv["posts"]

    def match(e, kw):
        return all(e.get(k) == v for k, v in kw.items())

    def M(**kw):
        return [m for m in mails if match(m, kw)]

    def P(**kw):
        if "status" not in kw:
            kw["status"] = 200
        return [p for p in posts if match(p, kw)]

    J = []
    for j in jsons:
        with open(j) as f:
            J.append(json.load(f))
    env = {"mails": mails, "posts": posts, "M": M, "P": P, "J": J, "same": same, "rfc": rfc,
           "len": len, "set": set, "sorted": sorted, "any": any, "all": all}
    try:
        ok = eval(expr, env)
    except Exception as e:
        print("     (%s: %s)" % (type(e).__name__, e), file=sys.stderr)
        ok = False
    if not ok:
        print("     received: %d mails %s; %d posts %s" % (
            len(mails), [(m["report_id"], m["rcpts"]) for m in mails], len(posts),
            [(p["report_id"], p["path"], p["status"]) for p in posts]), file=sys.stderr)
    return 0 if ok else 1


def main():
    cmd = sys.argv[1]
    if cmd == "inventory":
        json.dump(inventory(sys.argv[2], sys.argv[3]), sys.stdout)
        return 0
    if cmd == "eval":
        return evaluate(sys.argv[2], sys.argv[3], sys.argv[4:])
    if cmd == "rfc":
        with open(sys.argv[2]) as f:
            problems = rfc(json.load(f), sys.argv[3], sys.argv[4], sys.argv[5])
        for p in problems:
            print(p)
        return 0 if not problems else 1
    return 2


sys.exit(main())
