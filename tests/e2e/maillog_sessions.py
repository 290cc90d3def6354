"""Reads a Postfix instance's maillog (delivery_peers.sh) and prints, as JSON,
its SMTP sessions and its deliveries, so that a test can tell which
listener took a message and whether that session was encrypted.

    maillog_sessions.py MAILLOG [MAIN]
        -> {"sessions": [{"service": S, "pid": N, "client": "unknown[127.0.0.1]",
                          "tls": bool, "tls_line": "TLSv1.3 with cipher ...",
                          "qids": [...], "rejects": [...], "commands": "ehlo=2 ...",
                          "mail": N, "ended": "disconnect" | "lost connection ..." | None}],
            "deliveries": [{"qid", "rcpt", "status", "relay", "service", "tls",
                            "session": index in sessions or null}]}

A listener's service is what its syslog_name adds: "postfix/NAME/smtpd"
is service NAME, the instance's own "postfix/smtpd" is service MAIN ("" by
default).
Sessions of one smtpd process follow each other ("connect from" starts
one); a message is tied to its session by the "QID: client=" line, and a
delivery by the queue id on the "to=<...>, status=..." line of the
delivery agent (virtual, here).
"""
import json
import re
import sys

LINE = re.compile(r"^\S+\s+\S+\s+\S+\s+\S+\s+(?P<prog>[^\s\[]+)\[(?P<pid>\d+)\]:\s(?P<text>.*)$")
ISO = re.compile(r"^\S+\s+\S+\s+(?P<prog>[^\s\[]+)\[(?P<pid>\d+)\]:\s(?P<text>.*)$")


def parse(path, main=""):
    sessions, current, qid_session, deliveries = [], {}, {}, []
    with open(path, errors="replace") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            m = LINE.match(raw) or ISO.match(raw)
            if not m:
                continue
            prog, pid, text = m.group("prog"), int(m.group("pid")), m.group("text")
            parts = prog.split("/")
            agent = parts[-1]
            if agent == "smtpd":
                service = "/".join(parts[1:-1]) or main
                key = (service, pid)
                if text.startswith("connect from "):
                    s = {"service": service, "pid": pid, "client": text[len("connect from "):],
                         "tls": False, "tls_line": None, "qids": [], "rejects": [],
                         "commands": None, "mail": 0, "ended": None}
                    sessions.append(s)
                    current[key] = len(sessions) - 1
                    continue
                i = current.get(key)
                if i is None:
                    continue
                s = sessions[i]
                if "TLS connection established from" in text:
                    s["tls"] = True
                    s["tls_line"] = text.split(": ", 1)[-1]
                elif text.startswith("disconnect from "):
                    s["ended"] = "disconnect"
                    s["commands"] = text.split("]", 1)[-1].strip()
                    mm = re.search(r"\bmail=(\d+)", s["commands"])
                    s["mail"] = int(mm.group(1)) if mm else 0
                    del current[key]
                elif text.startswith("lost connection") or text.startswith("timeout after"):
                    s["ended"] = text
                elif text.startswith("NOQUEUE: reject:"):
                    s["rejects"].append(text)
                else:
                    mm = re.match(r"^([0-9A-F]{6,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}):\s+client=", text)
                    if mm:
                        s["qids"].append(mm.group(1))
                        qid_session[mm.group(1)] = i
            else:
                mm = re.match(r"^(\w+):\s+to=<([^>]*)>,.*?relay=([^,]*),.*?status=(\w+)", text)
                if mm:
                    qid, rcpt, relay, status = mm.groups()
                    i = qid_session.get(qid)
                    deliveries.append({
                        "qid": qid, "rcpt": rcpt.lower(), "relay": relay, "status": status,
                        "service": sessions[i]["service"] if i is not None else None,
                        "tls": sessions[i]["tls"] if i is not None else None,
                        "session": i,
                    })
    return {"sessions": sessions, "deliveries": deliveries}


if __name__ == "__main__":
    print(json.dumps(parse(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")))
