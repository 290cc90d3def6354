"""Checks the metric names in contrib/ against a daemon's /metrics.

    contrib_metrics.py METRICS_FILE METRICS_MD FILE...

Every outpost_* name in the files must be a metric of the exposition in
METRICS_FILE (its # TYPE lines name every metric, also one without samples
yet), or a histogram's _bucket, _sum or _count. Every label value a file
matches with = or =~ (label="a|b") on such a metric must appear in that
metric's row of docs/metrics.md, which lists the values each label takes.
Prints one line per problem and "N names checked"; exits 1 on a problem.
"""
import re
import sys

metrics_file, metrics_md, files = sys.argv[1], sys.argv[2], sys.argv[3:]
types = {}
for line in open(metrics_file):
    m = re.match(r"# TYPE (\S+) (\S+)", line)
    if m:
        types[m.group(1)] = m.group(2)

rows = {}
for line in open(metrics_md):
    m = re.match(r"\| `(outpost_[a-z0-9_]+)` \|", line)
    if m:
        rows[m.group(1)] = line


def base_of(name):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return None


problems = 0
names = set()
for path in files:
    text = open(path).read()
    for m in re.finditer(r"(outpost_[a-z0-9_]+)(\{[^}]*\})?", text):
        name, selector = m.group(1), m.group(2) or ""
        names.add(name)
        base = base_of(name)
        if base is None:
            print("%s: %s is not in /metrics" % (path, name))
            problems += 1
            continue
        # label="value" and label=~"a|b" (the instance and le labels are
        # Prometheus' own; $-variables are Grafana's)
        for lm in re.finditer(r'(\w+)\s*=~?\s*\\?"([^"\\]*)\\?"', selector):
            label, values = lm.group(1), lm.group(2)
            if label in ("instance", "job", "le") or "$" in values:
                continue
            row = rows.get(base, "")
            if "`%s`" % label not in row:
                print("%s: %s has no label %s in docs/metrics.md" % (path, base, label))
                problems += 1
                continue
            for v in values.split("|"):
                if not re.search(r"\b%s\b" % re.escape(v), row.split("`%s`" % label, 1)[1]):
                    print("%s: %s{%s=\"%s\"}: no such value in docs/metrics.md" % (path, base, label, v))
                    problems += 1
print("%d names checked" % len(names))
sys.exit(1 if problems else 0)
