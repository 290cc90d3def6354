#!/usr/bin/python3
"""Aggregate one benchmark session directory into a JSON report and a text table.

usage: report.py SESSION_DIR [--json OUT.json]

Reads SESSION_DIR/session.env, SESSION_DIR/ceiling/*/ and SESSION_DIR/runs/*/ (meta.env,
pss.json, strace.txt) as written by bench/lib.sh and a workload script. Ratios are
outpost / Postfix within each interleaved pair; their median, min and max are reported.
"""
import argparse
import glob
import json
import os
import statistics
import sys

NOISY_CEILING_DRIFT = 0.20  # start/end ceilings differing by more -> noisy (bench/README.md)
DISTURBED_FOREIGN_PCT = 20  # a run during which other tenants used more of the CPUs is flagged


def read_env(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    d[k] = v
    except OSError:
        pass
    return d


def num(v):
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return None


def stat_delta(before, after):
    """/proc/stat 'cpu' lines -> busy %, steal %, iowait % of all CPUs over the interval."""
    try:
        b = [int(x) for x in before.split()]
        a = [int(x) for x in after.split()]
    except (AttributeError, ValueError):
        return {}
    d = [y - x for x, y in zip(b, a)]
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    total = sum(d[:8])
    if total <= 0:
        return {}
    idle, iowait = d[3], d[4]
    steal = d[7] if len(d) > 7 else 0
    return {"host_busy_ms": round((total - idle - iowait) * 1000.0 / os.sysconf("SC_CLK_TCK")),
            "host_busy_pct": round(100.0 * (total - idle - iowait) / total, 1),
            "host_iowait_pct": round(100.0 * iowait / total, 1),
            "host_steal_pct": round(100.0 * steal / total, 1)}


def parse_strace(path):
    calls = {}
    try:
        with open(path) as f:
            for line in f:
                t = line.split()
                if len(t) >= 5 and t[-1] not in ("syscall", "total") and t[0][0].isdigit():
                    try:
                        calls[t[-1]] = int(t[3])
                    except ValueError:
                        pass
    except OSError:
        return None
    return calls


def parse_strace_log(path, t0, t1):
    """strace -f -ttt -o log: 'PID EPOCH syscall(args) = rc' lines; count the calls that
    started inside [t0, t1] (resumed halves are not calls)."""
    calls, total = {}, 0
    try:
        with open(path) as f:
            for line in f:
                t = line.split(None, 2)
                if len(t) < 3 or "(" not in t[2] or t[2].startswith("<..."):
                    continue
                name = t[2].split("(", 1)[0]
                try:
                    ts = float(t[1])
                except ValueError:
                    continue
                total += 1
                if t0 <= ts <= t1:
                    calls[name] = calls.get(name, 0) + 1
    except OSError:
        return None, None
    return calls, total


def spread(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": round(statistics.median(v), 4), "min": round(min(v), 4),
            "max": round(max(v), 4), "n": len(v)}


def load_run(d):
    m = read_env(os.path.join(d, "meta.env"))
    r = {"dir": os.path.relpath(d, os.path.dirname(os.path.dirname(d)))}
    for k in ("seq", "pair", "messages", "sessions", "size", "source_rc", "queued", "other_queues",
              "source_stderr_lines", "warnings", "root_pid", "stop_clean", "sink_count",
              "pre_run_busy_pct", "quiet_waited_s", "log_lines"):
        if k in m:
            r[k] = num(m[k]) if num(m[k]) is not None else m[k]
    for k in ("kind", "mta", "label", "cgroup", "queued_method", "error"):
        if k in m:
            r[k] = m[k]
    n = num(m.get("messages")) or 0
    t0, t1 = num(m.get("t_inject_start")), num(m.get("t_inject_end"))
    if t0 is not None and t1 is not None and t1 > t0:
        r["inject_s"] = round(t1 - t0, 3)
        r["msgs_per_s"] = round(n / (t1 - t0), 1)
    c0, c1 = num(m.get("cpu_ns_before")), num(m.get("cpu_ns_after"))
    if c0 is not None and c1 is not None and n:
        r["cpu_ms"] = round((c1 - c0) / 1e6, 1)
        r["cpu_ms_per_msg"] = round((c1 - c0) / 1e6 / n, 4)
    try:
        u0, s0 = (int(x) for x in m["cpu_user_sys_ms_before"].split())
        u1, s1 = (int(x) for x in m["cpu_user_sys_ms_after"].split())
        r["cpu_user_ms"], r["cpu_sys_ms"] = u1 - u0, s1 - s0
        if (u1 - u0) + (s1 - s0) > 0:
            r["cpu_sys_pct"] = round(100.0 * (s1 - s0) / ((u1 - u0) + (s1 - s0)), 1)
    except (KeyError, ValueError):
        pass
    r.update(stat_delta(m.get("stat_before"), m.get("stat_after")))
    h0, h1 = num(m.get("harness_ns_before")), num(m.get("harness_ns_after"))
    if h0 is not None and h1 is not None:
        r["harness_cpu_ms"] = round((h1 - h0) / 1e6, 1)
        # CPU used by neither the MTA nor the harness (other tenants, kernel threads):
        # the noise indicator for a run on a shared machine
        if "host_busy_ms" in r and "inject_s" in r:
            foreign = r["host_busy_ms"] - r.get("cpu_ms", 0) - r["harness_cpu_ms"]
            r["foreign_cpu_pct"] = round(100.0 * foreign / (r["inject_s"] * 1000 * os.cpu_count()), 1)
            r["disturbed"] = r["foreign_cpu_pct"] > DISTURBED_FOREIGN_PCT
    pss = os.path.join(d, "pss.json")
    if os.path.exists(pss):
        with open(pss) as f:
            p = json.load(f)
        r["peak_pss_mb"] = round(p["peak_pss_kb"] / 1024, 1)
        r["rss_mb_at_peak_pss"] = round(p["rss_kb_at_peak_pss"] / 1024, 1)
        r["peak_rss_mb"] = round(p["peak_rss_kb"] / 1024, 1)
        r["peak_procs"] = p["peak_procs"]
        r["peak_threads"] = p["peak_threads"]
        r["pss_samples"] = p["samples"]
    st = os.path.join(d, "strace.txt")
    sl = os.path.join(d, "strace.log")
    if "fsync_mode" in m:
        r["fsync_mode"] = m["fsync_mode"]
    if os.path.exists(sl) and t0 is not None and t1 is not None:
        calls, total = parse_strace_log(sl, t0, t1)
        if calls is not None:
            r["syscalls"] = calls
            r["fsyncs_whole_life"] = total
            r["fsyncs"] = sum(calls.values())
            if n:
                r["fsyncs_per_msg"] = round(r["fsyncs"] / n, 4)
    elif os.path.exists(st) or r.get("kind") == "fsync":
        calls = parse_strace(st)
        if calls is not None:
            r["syscalls"] = calls
            r["fsyncs"] = sum(calls.values())
            if n:
                r["fsyncs_per_msg"] = round(r["fsyncs"] / n, 4)
    r["ok"] = m.get("ok") == "1" if "ok" in m else (r.get("source_rc") == 0)
    return r


def load_ceilings(S):
    """The session's loopback (smtp-source -> smtp-sink) and durable-create ceilings."""
    ceil = {"loopback": {"start": [], "end": []}, "fsync": {}}
    for d in sorted(glob.glob(os.path.join(S, "ceiling", "*"))):
        name = os.path.basename(d)
        if os.path.exists(os.path.join(d, "meta.env")):
            r = load_run(d)
            phase = "start" if name.startswith("start") else "end"
            ceil["loopback"][phase].append(r)
        for fj in sorted(glob.glob(os.path.join(d, "fsync-*.json"))):
            with open(fj) as f:
                ceil["fsync"].setdefault(name, {})[os.path.basename(fj)[6:-5] + "_thread"] = json.load(f)
    lb = ceil["loopback"]
    rs = [r["msgs_per_s"] for ph in ("start", "end") for r in lb[ph] if r.get("msgs_per_s")]
    s_med = spread([r.get("msgs_per_s") for r in lb["start"]])
    e_med = spread([r.get("msgs_per_s") for r in lb["end"]])
    lb["r_ss_median"] = round(statistics.median(rs), 1) if rs else None
    if s_med and e_med:
        drift = abs(e_med["median"] - s_med["median"]) / s_med["median"]
        lb["start_end_drift_pct"] = round(100 * drift, 1)
        lb["noisy"] = drift > NOISY_CEILING_DRIFT
    else:
        lb["noisy"] = None
    return ceil


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("session")
    ap.add_argument("--json")
    args = ap.parse_args()
    S = args.session
    sess = read_env(os.path.join(S, "session.env"))
    out = {"session": {k: (num(v) if num(v) is not None and k not in ("timestamp", "git_rev") else v)
                       for k, v in sess.items()}}

    # ---------------------------------------------------------------- ceilings
    ceil = load_ceilings(S)
    lb = ceil["loopback"]
    out["ceilings"] = ceil

    # ---------------------------------------------------------------- runs
    runs = [load_run(d) for d in sorted(glob.glob(os.path.join(S, "runs", "*")))]
    out["runs"] = runs
    r_ss = lb["r_ss_median"]
    for r in runs:
        if r_ss and r.get("msgs_per_s") and r.get("kind") == "main":
            r["rate_over_r_ss"] = round(r["msgs_per_s"] / r_ss, 4)

    metrics = [("msgs_per_s", "main"), ("cpu_ms_per_msg", "main"), ("peak_pss_mb", "main"),
               ("fsyncs_per_msg", "fsync"), ("rate_over_r_ss", "main")]
    summary = {}
    for mta in sorted({r["mta"] for r in runs if "mta" in r}):
        summary[mta] = {m: spread([r.get(m) for r in runs if r.get("mta") == mta and r.get("kind") == k and r["ok"]])
                        for m, k in metrics}
        summary[mta]["runs_ok"] = sum(1 for r in runs if r.get("mta") == mta and r["ok"])
        summary[mta]["runs_failed"] = sum(1 for r in runs if r.get("mta") == mta and not r["ok"])
    out["summary"] = summary

    def pick(pair, mta, kind):
        for r in runs:
            if r.get("pair") == pair and r.get("mta") == mta and r.get("kind") == kind and r["ok"]:
                return r
        return None

    ratios = {}
    pairs = sorted({r["pair"] for r in runs if isinstance(r.get("pair"), int)})
    for m, k in metrics[:4]:
        per = []
        for p in pairs:
            a, b = pick(p, "outpost", k), pick(p, "postfix", k)
            if a and b and a.get(m) is not None and b.get(m):
                per.append({"pair": p, "ratio": round(a[m] / b[m], 4)})
        ratios[m] = {"per_pair": per, **(spread([x["ratio"] for x in per]) or {})}
    out["ratios_outpost_over_postfix"] = ratios

    # ---------------------------------------------------------------- text
    lines = []
    P = lines.append
    P(f"Workload {sess.get('workload', '?')} session {sess.get('timestamp', '?')}: "
      f"{sess.get('messages')} msgs x {sess.get('size')} B, {sess.get('sessions')} sessions (reuse), "
      f"{sess.get('pairs')} pair(s); host {sess.get('host_nproc')} CPU, kernel {sess.get('host_kernel')}, "
      f"Postfix {sess.get('postfix_version')}" + (f", outpost {sess.get('outpost_version')}" if sess.get("outpost_version") else ""))
    if lb["start"] or lb["end"]:
        P("Loopback ceiling smtp-source -> smtp-sink (msg/s): start " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["start"]) + "; end " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["end"]) +
          f"; R_ss median {r_ss}" + (f"; drift {lb.get('start_end_drift_pct')}%" if "start_end_drift_pct" in lb else "") +
          ("  ** NOISY SESSION (>20% drift): repeat **" if lb.get("noisy") else ""))
    for name, v in sorted(ceil["fsync"].items(), key=lambda kv: ("end" in kv[0], kv[0])):
        P(f"Durable create microbenchmark {name}: " + ", ".join(
            f"{k.replace('_thread', '')} thr {x['ops_per_s']:.0f}/s (p99 {x['p99_ms']:.1f} ms)" for k, x in sorted(v.items(), key=lambda kv: int(kv[0].split('_')[0]))))
    P("")
    hdr = f"{'#':>2} {'pair':>4} {'mta':<8} {'kind':<5} {'msgs':>6} {'inject s':>8} {'msg/s':>8} {'CPU-ms/msg':>10} {'sys%':>5} {'peakPSS MB':>10} {'procs':>5} {'fsync/msg':>9} {'queued':>6} {'pre-busy%':>9} {'host busy%':>10} {'foreign%':>8} {'steal%':>6} ok"
    P(hdr)
    P("-" * len(hdr))

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in runs:
        P(f"{f(r.get('seq'), 'd'):>2} {f(r.get('pair'), 'd'):>4} {r.get('mta', '?'):<8} {r.get('kind', '?'):<5} "
          f"{f(r.get('messages'), 'd'):>6} {f(r.get('inject_s'), '.2f'):>8} {f(r.get('msgs_per_s'), '.0f'):>8} "
          f"{f(r.get('cpu_ms_per_msg'), '.3f'):>10} {f(r.get('cpu_sys_pct'), '.0f'):>5} {f(r.get('peak_pss_mb'), '.1f'):>10} "
          f"{f(r.get('peak_procs'), 'd'):>5} {f(r.get('fsyncs_per_msg'), '.3f'):>9} {str(r.get('queued', '-')):>6} "
          f"{f(r.get('pre_run_busy_pct'), 'd'):>9} {f(r.get('host_busy_pct'), '.0f'):>10} {f(r.get('foreign_cpu_pct'), '.0f'):>8} {f(r.get('host_steal_pct'), '.1f'):>6} {('yes' if r['ok'] else 'NO: ' + r.get('error', '')) + (' (disturbed)' if r.get('disturbed') else '')}")
    P("")
    P("Per MTA (median [min-max] over ok runs):")
    for mta, s in summary.items():
        parts = []
        for m, _ in metrics:
            if s.get(m):
                parts.append(f"{m} {s[m]['median']:g} [{s[m]['min']:g}-{s[m]['max']:g}]")
        P(f"  {mta:<8} " + "; ".join(parts) + f"  (ok {s['runs_ok']}, failed {s['runs_failed']})")
    if any(v.get("per_pair") for v in ratios.values()):
        P("Ratios outpost/Postfix per pair -> median [min-max]:")
        for m, v in ratios.items():
            if v.get("per_pair"):
                P(f"  {m:<15} " + " ".join(f"{x['ratio']:g}" for x in v["per_pair"]) +
                  f"  -> {v['median']:g} [{v['min']:g}-{v['max']:g}]")
    nd = sum(1 for r in runs if r.get("disturbed"))
    if nd:
        P(f"{nd} of {len(runs)} runs disturbed (other tenants used > {DISTURBED_FOREIGN_PCT}% of all CPUs during the injection).")
    P("Columns: pre-busy% = host CPU busy just before the run (after the quiet wait); host busy% / foreign% / steal% =")
    P("during the injection: all CPU use / CPU used by neither the MTA nor the harness (other tenants) / hypervisor steal.")
    text = "\n".join(lines)
    out["table"] = text
    print(text)
    if args.json:
        with open(args.json + ".tmp", "w") as fo:
            json.dump(out, fo, indent=1)
        os.rename(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
