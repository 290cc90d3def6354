"""Reads what a test peer received and prints JSON: a Postfix peer's Maildir
(virtual(8) adds Delivered-To: with the envelope recipient), or the dump
directory of an smtp-sink (each file starts with X-Rcpt-Args: <rcpt>).

    maildir_check.py MAILDIR|SINK_DUMP_DIR RCPT
        -> [{"subject": ..., "content_type": ..., "report_type": ...,
             "status_type": ..., "human": ..., "blocks": [{field: value}...],
             "headers_part": ..., "body": ...}, ...]
           one object per message delivered to RCPT (case-insensitive)

For a multipart/report the per-message and per-recipient blocks of its
message/delivery-status (or message/global-delivery-status) part are
"blocks", lower-cased field names; the human-readable part is "human".
"""
import email
import email.policy
import json
import os
import sys


def text_blocks(text):
    blocks, cur, last = [], {}, None
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur, last = {}, None
        elif line[0] in " \t" and last:
            cur[last] += " " + line.strip()
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip().lower()
            cur[last] = v.strip()
    if cur:
        blocks.append(cur)
    return blocks


def status_blocks(part):
    # The part as it was received (bytes kept as they are: the global
    # variant carries UTF-8), less its own MIME header section.
    text = part.as_bytes().decode("utf-8", "replace").replace("\r\n", "\n")
    return text_blocks(text.split("\n\n", 1)[1] if "\n\n" in text else "")


def describe(msg):
    out = {
        "subject": str(msg.get("Subject", "")),
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type"),
        "status_type": None,
        "human": "",
        "blocks": [],
        "headers_part": None,
        "body": "",
    }
    if msg.is_multipart():
        for part in msg.walk():
            ct = part.get_content_type()
            if ct in ("message/delivery-status", "message/global-delivery-status"):
                out["status_type"] = ct
                out["blocks"] = status_blocks(part)
            elif ct == "text/plain" and not out["human"]:
                out["human"] = part.get_payload(decode=True).decode("utf-8", "replace")
            elif ct in ("text/rfc822-headers", "message/global-headers", "message/rfc822"):
                out["headers_part"] = ct
    else:
        body = msg.get_payload(decode=True) or b""
        out["body"] = body.decode("utf-8", "replace")
    return out


def addressed_to(msg, rcpt):
    if any(v.strip().lower() == rcpt for v in msg.get_all("Delivered-To", [])):
        return True
    return any(v.strip().strip("<>").lower() == rcpt for v in msg.get_all("X-Rcpt-Args", []))


def files(where):
    dirs = [os.path.join(where, s) for s in ("new", "cur")]
    for d in [d for d in dirs if os.path.isdir(d)] or [where]:
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.isfile(path) and os.path.getsize(path) > 0:
                yield path


def main():
    where, rcpt = sys.argv[1], sys.argv[2].lower()
    found = []
    for path in files(where) if os.path.isdir(where) else []:
        with open(path, "rb") as f:
            msg = email.message_from_binary_file(f, policy=email.policy.compat32)
        if addressed_to(msg, rcpt):
            found.append(describe(msg))
    print(json.dumps(found))


main()
