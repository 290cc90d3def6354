"""Checks the JSON of `outpost queue list --json` after test_submission.sh."""
import json
import sys

q = json.load(open(sys.argv[1]))
by_rcpt = {r["address"]: (m, r) for m in q for r in m["recipients"]}
need = ["b@example.net", "c@example.com", "t1@example.com", "t2@example.com", "sm@example.com",
        "bdat@example.net", "eight@example.net", "ünï@exämple.net"]
missing = [n for n in need if n not in by_rcpt]
assert not missing, missing
m, r = by_rcpt["c@example.com"]
assert m["sender"] == "local@example.org" and m["size"] > 0, m
assert r["state"] == "queued" and r["attempts"] == 0 and r["last_error"] == "", r
for key in ("id", "sender", "size", "queued", "recipients"):
    assert key in m, key
for key in ("address", "state", "attempts", "next_attempt", "last_error"):
    assert key in r, key
