"""Evaluates one check of tests/e2e/test_mtasts.sh: a python expression over
a JSON document, with helpers for its kind. Exits 0 when the expression is
true, 1 otherwise (an exception is a false, and is printed).

    sts_eval.py queue  FILE EXPR   FILE: `outpost queue show ID --json` (one recipient)
        j: the message; r: its recipient; a: the recipient's delivery log
        entries; last: the last of them ({} when there is none)
    sts_eval.py tlsrpt FILE EXPR   FILE: `outpost tlsrpt results --domain D --json`
        p: the policies; of(TYPE): those of that policy-type;
        fd(type=, reason=, mx=, ip=, count=, ptype=): the failure details
        (across policies, or those of policy-type ptype) whose fields are
        equal to the ones given (reason_has= for a part of the reason)
    sts_eval.py maillog FILE EXPR  FILE: maillog_sessions.py's output
        D(rcpt): the deliveries to rcpt as (service, tls, status) tuples;
        S(service): that listener's sessions
"""
import json
import sys


def main():
    kind, path, expr = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(path) as f:
        doc = json.load(f)
    env = {}
    if kind == "queue":
        j = doc
        r = j["recipients"][0]
        a = [x for x in j.get("attempts", []) if x["recipient"] == r["address"]]
        env = {"j": j, "r": r, "a": a, "last": a[-1] if a else {}}
    elif kind == "tlsrpt":
        p = doc

        def of(t):
            return [x for x in p if x["policy"]["policy-type"] == t]

        def fd(ptype=None, reason_has=None, **kw):
            names = {"type": "result-type", "reason": "failure-reason-code",
                     "mx": "receiving-mx-hostname", "ip": "receiving-ip",
                     "count": "failed-session-count", "sender": "sending-mta-ip"}
            out = []
            for x in p:
                if ptype and x["policy"]["policy-type"] != ptype:
                    continue
                for f in x.get("failure-details", []):
                    if all(f.get(names[k]) == v for k, v in kw.items()) and \
                            (reason_has is None or reason_has in f.get("failure-reason-code", "")):
                        out.append(f)
            return out

        env = {"p": p, "of": of, "fd": fd}
    elif kind == "maillog":
        m = doc

        def D(rcpt):
            return [(d["service"], d["tls"], d["status"]) for d in m["deliveries"]
                    if d["rcpt"] == rcpt.lower()]

        def S(service):
            return [s for s in m["sessions"] if s["service"] == service]

        env = {"m": m, "D": D, "S": S}
    else:
        raise SystemExit("unknown kind " + kind)
    try:
        ok = eval(expr, env)
    except Exception as e:
        print("     (%s: %s)" % (type(e).__name__, e), file=sys.stderr)
        ok = False
    return 0 if ok else 1


sys.exit(main())
