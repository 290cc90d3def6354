"""Finds outpost log lines (ts=... level=... event=NAME key=value ...) by
event and fields.

    outpost_log.py LOG EVENT [KEY=VALUE ...]

Prints the matching lines: exit 0 when there is one, 1 when there is none,
2 when the log cannot be read. Values are compared whole, after the log's
quoting ("a b", \\" and \\\\) is undone; KEY~=TEXT asks for TEXT inside
the value instead.
"""
import re
import sys

TOKEN = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def unquote(v):
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return re.sub(r'\\(x[0-9a-f]{2}|.)',
                      lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == 'x'
                      and len(m.group(1)) == 3 else m.group(1), v[1:-1])
    return v


def fields(line):
    return {k: unquote(v) for k, v in TOKEN.findall(line)}


def main():
    path, event, wants = sys.argv[1], sys.argv[2], sys.argv[3:]
    hits = []
    with open(path, errors="replace") as f:
        for line in f:
            fs = fields(line)
            if fs.get("event") != event:
                continue
            ok = True
            for w in wants:
                if "~=" in w:
                    k, v = w.split("~=", 1)
                    ok = v in fs.get(k, "")
                else:
                    k, v = w.split("=", 1)
                    ok = fs.get(k) == v
                if not ok:
                    break
            if ok:
                hits.append(line.rstrip("\n"))
    for h in hits:
        print(h)
    return 0 if hits else 1


try:
    rc = main()
except Exception as e:  # unreadable log, bad arguments: neither found nor absent
    print("outpost_log.py: %s" % e, file=sys.stderr)
    rc = 2
sys.exit(rc)
