#!/usr/bin/python3
"""Report of a delivery-workload session (W1, W2, W5, W6, W9): table and JSON.

usage: report_delivery.py SESSION_DIR [--json OUT.json]
       report_delivery.py --run RUN_DIR        (one line about one run, used while running)

Reads SESSION_DIR/session.env, ceiling/*/ (as report.py) and runs/*/: meta.env (bench/lib.sh
rec), sinkwatch.json (first/last arrival per sink), pss.json, mtalog.json (counts, latency),
and for W9 w9.json / inject.json. Figures (bench/README.md, "W1, W2, W6, W9: delivery"), per run:
  e2e msg/s      messages to healthy sinks / (last of them at its sink - injection start)
  inject msg/s   messages / (last smtp-source exit - injection start)
  deliv msg/s    messages to healthy sinks / (last - first arrival at any sink)
  CPU-ms/msg     MTA cgroup cpuacct.usage from injection start to the last healthy arrival,
                 divided by the messages injected
  p50/p99        queue latency, acceptance -> delivery (outpost: its log's ts=; Postfix: delay=)
Ratios are outpost / Postfix within each interleaved pair, per mode: median [min-max].
W6: each MTA's rate for the nine healthy domains divided by its W2 rate for the same nine
domains in the same pair (target >= 0.9).
W5 (modes w5c<C>, one slow sink, concurrency C), per run also:
  steady msg/s   0.8 N / (time the sink reached 90 % of N - time it reached 10 %)
  conns          established connections to the sink port (pss.json samples): peak, and
                 median over the steady window (10 % .. 90 % of N received)
  idle PSS       the PSS sampler's first sample: after settle and quiet wait, before injection
  drain PSS      peak PSS over the samples taken after the injection ended
  KB/conn        (peak PSS - idle PSS) / C; also / peak connections (pss_per_peak_conn_kb)
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import DISTURBED_FOREIGN_PCT, load_ceilings, num, read_env, spread, stat_delta  # noqa: E402

W6_BAD = "d2"


def jload(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_drun(d):
    m = read_env(os.path.join(d, "meta.env"))
    r = {"dir": os.path.relpath(d, os.path.dirname(os.path.dirname(d)))}
    for k in ("seq", "pair", "messages", "sessions", "size", "source_rc", "healthy_messages",
              "unhealthy_messages", "warnings", "root_pid", "stop_clean", "pre_run_busy_pct",
              "quiet_waited_s", "log_lines", "deferred_logged", "pending_expected"):
        if k in m:
            r[k] = num(m[k]) if num(m[k]) is not None else m[k]
    for k in ("kind", "mta", "mode", "cgroup", "error", "pending", "pending_by_domain", "sink_counts",
              "outpost_delivery", "postfix_limits", "sink_options"):
        if k in m:
            r[k] = m[k]
    r["ok"] = m.get("ok") == "1"
    n = num(m.get("messages")) or 0
    healthy = num(m.get("healthy_messages")) or n
    t0, t1 = num(m.get("t_inject_start")), num(m.get("t_inject_end"))
    if t0 is not None and t1 is not None and t1 > t0:
        r["inject_s"] = round(t1 - t0, 3)
        r["inject_rate"] = round(n / (t1 - t0), 1)
    sw = jload(os.path.join(d, "sinkwatch.json")) or {}
    if sw:
        r["stalled"] = sw.get("stalled")
        tf, tl = sw.get("t_first"), sw.get("t_last")
        if t0 is not None and tl:
            r["e2e_s"] = round(tl - t0, 3)
            r["e2e_rate"] = round(healthy / (tl - t0), 1)
        if tf and tl and tl > tf:
            r["delivery_rate"] = round(healthy / (tl - tf), 1)
        if tf and t0 is not None:
            r["first_delivery_after_s"] = round(tf - t0, 3)
        per = {}
        for lab, s in (sw.get("sinks") or {}).items():
            e = {"target": s.get("target"), "count": s.get("count")}
            if s.get("t_last") and t0 is not None and s.get("target"):
                e["e2e_s"] = round(s["t_last"] - t0, 3)
                e["rate"] = round(s["target"] / (s["t_last"] - t0), 1)
            per[lab] = e
        if len(per) > 1:
            r["per_domain"] = per
            nine = {k: v for k, v in per.items() if k != W6_BAD}
            if nine and all("e2e_s" in v for v in nine.values()):
                tot = sum(v["target"] for v in nine.values())
                r["nine_rate"] = round(tot / max(v["e2e_s"] for v in nine.values()), 1)
                r["nine_messages"] = tot
    c0, c1 = num(m.get("cpu_ns_before")), num(m.get("cpu_ns_after"))
    if c0 is not None and c1 is not None and n:
        r["cpu_ms"] = round((c1 - c0) / 1e6, 1)
        r["cpu_ms_per_msg"] = round((c1 - c0) / 1e6 / n, 4)
    try:
        u0, s0 = (int(x) for x in m["cpu_user_sys_ms_before"].split())
        u1, s1 = (int(x) for x in m["cpu_user_sys_ms_after"].split())
        if (u1 - u0) + (s1 - s0) > 0:
            r["cpu_sys_pct"] = round(100.0 * (s1 - s0) / ((u1 - u0) + (s1 - s0)), 1)
    except (KeyError, ValueError):
        pass
    r.update(stat_delta(m.get("stat_before"), m.get("stat_after")))
    h0, h1 = num(m.get("harness_ns_before")), num(m.get("harness_ns_after"))
    dn0, dn1 = num(m.get("dns_ns_before")), num(m.get("dns_ns_after"))
    if dn0 is not None and dn1 is not None:
        r["dns_cpu_ms"] = round((dn1 - dn0) / 1e6, 1)
    td = num(m.get("t_done"))
    if h0 is not None and h1 is not None:
        r["harness_cpu_ms"] = round((h1 - h0) / 1e6, 1)
        if "host_busy_ms" in r and td and t0:
            foreign = r["host_busy_ms"] - r.get("cpu_ms", 0) - r["harness_cpu_ms"] - r.get("dns_cpu_ms", 0)
            r["foreign_cpu_pct"] = round(100.0 * foreign / ((td - t0) * 1000 * os.cpu_count()), 1)
            r["disturbed"] = r["foreign_cpu_pct"] > DISTURBED_FOREIGN_PCT
    pss = jload(os.path.join(d, "pss.json"))
    if pss:
        r["peak_pss_mb"] = round(pss["peak_pss_kb"] / 1024, 1)
        r["rss_mb_at_peak_pss"] = round(pss["rss_kb_at_peak_pss"] / 1024, 1)
        r["peak_procs"] = pss["peak_procs"]
        r["peak_threads"] = pss["peak_threads"]
        if pss.get("first_pss_kb") is not None:
            r["idle_pss_mb"] = round(pss["first_pss_kb"] / 1024, 1)
            r["idle_procs"] = pss.get("first_procs")
        if pss.get("conn_port"):
            r["peak_conns"] = pss.get("peak_conns")
            r["conns_at_peak_pss"] = pss.get("conns_at_peak_pss")
        if pss.get("udp_peer_port"):
            r["resolver_udp_drops"] = pss.get("udp_peer_drops")
    sess_total = None
    for sf in glob.glob(os.path.join(d, "sink-*.out")):
        try:
            with open(sf, "rb") as fo:
                found = re.findall(rb"sess=(\d+)", fo.read()[-4096:])
        except OSError:
            found = []
        if found:
            sess_total = (sess_total or 0) + int(found[-1])
    if sess_total is not None:
        r["sink_sessions"] = sess_total   # SMTP sessions the sinks saw end (the MTA is stopped by then)
        if sess_total and r.get("sink_counts"):
            got = sum(int(x.split("=")[1]) for x in r["sink_counts"].split() if "=" in x)
            r["msgs_per_session"] = round(got / sess_total, 2)
    u0, u1 = num(m.get("udp_rcvbuf_errors_before")), num(m.get("udp_rcvbuf_errors_after"))
    if u0 is not None and u1 is not None:
        r["udp_rcvbuf_drops"] = u1 - u0   # host-wide, during the run: e.g. queries Unbound never saw
    om = read_metrics(os.path.join(d, "metrics.txt"))
    if om:
        conns = {k: v for k, v in om.items() if k.startswith("outpost_delivery_connections_total")}
        dns = {k: v for k, v in om.items() if k.startswith("outpost_dns_lookups_total")}
        r["op_connections"] = {k.split("{", 1)[-1].rstrip("}"): int(v) for k, v in conns.items()}
        r["op_dns_lookups"] = {k.split("{", 1)[-1].rstrip("}"): int(v) for k, v in dns.items()}
        if n:
            r["op_dns_lookups_per_msg"] = round(sum(dns.values()) / n, 3)
    mc = re.match(r"w5c(\d+)$", m.get("mode", ""))
    if mc:
        r["t_inject_start"] = t0
        w5_figures(r, int(mc.group(1)), healthy, t1, sw, pss)
    ml = jload(os.path.join(d, "mtalog.json"))
    if ml:
        lat = ml.get("latency") or {}
        for k in ("p50_s", "p90_s", "p99_s", "max_s"):
            if lat.get(k) is not None:
                r["lat_" + k] = lat[k]
        r["log_delivered"] = ml.get("delivered")
        r["log_deferred"] = ml.get("deferred")
        r["log_failed"] = ml.get("failed")
        if ml.get("first_deferral_reply"):
            r["first_deferral_reply"] = ml["first_deferral_reply"]
        if ml.get("warning_samples"):
            r["warning_samples"] = ml["warning_samples"]
    w9 = jload(os.path.join(d, "w9.json"))
    if w9:
        r["w9"] = w9
        for k in ("t_kill", "t_restart_listening", "t_drained"):
            if k in m:
                r[k] = num(m[k])
        for k in ("kill_count", "kill_pids", "inject_acked", "pending"):
            if k in m:
                r[k] = num(m[k]) if num(m[k]) is not None else m[k]
        if r.get("t_kill") and r.get("t_restart_listening"):
            r["down_s"] = round(r["t_restart_listening"] - r["t_kill"], 2)
        if r.get("t_kill") and r.get("t_drained"):
            r["drain_after_kill_s"] = round(r["t_drained"] - r["t_kill"], 2)
    inj = jload(os.path.join(d, "inject.json"))
    if inj:
        r["inject"] = {k: inj.get(k) for k in ("acked", "unknown", "rejected", "not_sent", "connects",
                                                "connect_failures", "errors")}
        if inj.get("t_start") and inj.get("t_end"):
            r["inject_s"] = round(inj["t_end"] - inj["t_start"], 3)
    return r


def read_metrics(path):
    """Prometheus text (outpost /metrics): {'name{labels}': value} for counters and gauges."""
    out = {}
    try:
        with open(path) as fo:
            for line in fo:
                if line.startswith("#") or not line.strip():
                    continue
                k, _, v = line.rstrip("\n").rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
    except OSError:
        return None
    return out


def _crossing(series, level):
    """First time a [t, count] series reaches LEVEL, interpolated between samples."""
    prev = None
    for t, n in series:
        if n >= level:
            if prev is None or n == prev[1]:
                return t
            return prev[0] + (t - prev[0]) * (level - prev[1]) / (n - prev[1])
        prev = (t, n)
    return None


def _count_at(series, t):
    """The [t, count] series' count at time T, interpolated."""
    prev = None
    for ts, n in series:
        if ts >= t:
            if prev is None or ts == prev[0]:
                return n
            return prev[1] + (n - prev[1]) * (t - prev[0]) / (ts - prev[0])
        prev = (ts, n)
    return series[-1][1] if series else 0


def w5_figures(r, conc, n, t_inject_end, sw, pss):
    """W5: steady rate, connections reached and memory per connection (see the docstring)."""
    r["concurrency"] = conc
    ser = (sw or {}).get("series") or []
    t10, t90 = _crossing(ser, 0.1 * n), _crossing(ser, 0.9 * n)
    if t10 is not None and t90 is not None and t90 > t10:
        r["steady_rate"] = round(0.8 * n / (t90 - t10), 1)
        r["steady_window_s"] = round(t90 - t10, 2)
    # arrivals per second (the sink's count, interpolated at whole seconds from the first
    # arrival): shows ramps, waves and collapses of the rate
    t_first = _crossing(ser, 1)
    if t_first is not None and ser:
        per, k, prev = [], 1, 0
        t_end = ser[-1][0]
        while t_first + k <= t_end + 1e-9:
            c = _count_at(ser, t_first + k)
            per.append(round(c - prev))
            prev, k = c, k + 1
        r["arrivals_per_s"] = per
        if t90 is not None:   # stalls: whole seconds with at most 10 arrivals before 90 % of N
            r["seconds_le_10"] = sum(1 for x in per[:int(t90 - t_first)] if x <= 10)
    if t90 is not None and r.get("t_inject_start") is not None:
        r["t90_s"] = round(t90 - r["t_inject_start"], 1)
    if not pss:
        return
    first, peak = pss.get("first_pss_kb"), pss.get("peak_pss_kb")
    if first is not None and peak is not None:
        r["pss_per_conn_kb"] = round((peak - first) / conc, 1)
        if pss.get("peak_conns"):
            r["pss_per_peak_conn_kb"] = round((peak - first) / pss["peak_conns"], 1)
    fields = pss.get("series_fields") or []
    rows = pss.get("series") or []
    if not rows or "pss_kb" not in fields:
        return
    it, ip = fields.index("t"), fields.index("pss_kb")
    ic = fields.index("conns") if "conns" in fields else None
    if t_inject_end is not None:
        drain = [x[ip] for x in rows if x[it] >= t_inject_end]
        r["drain_samples"] = len(drain)
        if len(drain) >= 4:   # at least ~2 s of draining after the injection
            r["drain_peak_pss_mb"] = round(max(drain) / 1024, 1)
    if ic is not None and t10 is not None and t90 is not None:
        c = [x[ic] for x in rows if t10 <= x[it] <= t90]
        if c:
            r["steady_conns_median"] = statistics.median(c)
            r["steady_conns_min"] = min(c)


W9_METRICS = ["acked", "delivered_unique", "duplicates", "lost", "down_s", "drain_after_kill_s"]
METRICS = ["e2e_rate", "inject_rate", "delivery_rate", "cpu_ms_per_msg", "peak_pss_mb",
           "lat_p50_s", "lat_p99_s", "nine_rate"]
W5_METRICS = ["steady_rate", "t90_s", "seconds_le_10", "e2e_rate", "delivery_rate", "inject_rate", "cpu_ms_per_msg",
              "idle_pss_mb", "peak_pss_mb", "drain_peak_pss_mb", "pss_per_conn_kb",
              "pss_per_peak_conn_kb", "peak_conns", "steady_conns_median", "sink_sessions",
              "msgs_per_session", "lat_p50_s", "lat_p99_s"]


def metrics_for(mode):
    if mode == "w9":
        return []
    return W5_METRICS if mode.startswith("w5") else METRICS


def f(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) and not isinstance(v, bool) else "-"


def size_str(b):
    if not isinstance(b, int):
        return "-"
    for unit, k in (("M", 1048576), ("K", 1024)):
        if b >= k and b % k == 0:
            return f"{b // k}{unit}"
    return str(b)


def one_line(r):
    s = (f"{r.get('mode', '?')} {r.get('mta', '?')}: e2e {f(r.get('e2e_rate'), '.0f')} msg/s, inject "
         f"{f(r.get('inject_rate'), '.0f')}/s, {f(r.get('cpu_ms_per_msg'), '.3f')} CPU-ms/msg, p50/p99 "
         f"{f(r.get('lat_p50_s'), '.3f')}/{f(r.get('lat_p99_s'), '.3f')} s, PSS {f(r.get('peak_pss_mb'), '.1f')} MB")
    if r.get("nine_rate"):
        s += f", nine healthy domains {r['nine_rate']:.0f} msg/s"
    if r.get("concurrency"):
        s += (f"; C={r['concurrency']}: steady {f(r.get('steady_rate'), '.0f')} msg/s, conns peak "
              f"{f(r.get('peak_conns'), 'd')} (median {f(r.get('steady_conns_median'), 'g')}), idle PSS "
              f"{f(r.get('idle_pss_mb'), '.1f')} MB, (peak-idle)/C {f(r.get('pss_per_conn_kb'), '.1f')} KB")
    if r.get("w9"):
        w = r["w9"]
        s = (f"{r.get('mode')} {r.get('mta')}: acked {w.get('acked')}, delivered unique {w.get('delivered_unique')}, "
             f"duplicates {w.get('duplicates')}, lost {w.get('lost')}")
    s += ", ok" if r["ok"] else f", FAILED: {r.get('error', '')}"
    if r.get("disturbed"):
        s += f" (disturbed: foreign {r['foreign_cpu_pct']}%)"
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("session", nargs="?")
    ap.add_argument("--json")
    ap.add_argument("--run")
    args = ap.parse_args()
    if args.run:
        r = load_drun(args.run)
        print("[report] " + one_line(r), file=sys.stderr)
        return 0
    S = args.session
    sess = read_env(os.path.join(S, "session.env"))
    out = {"session": {k: (num(v) if num(v) is not None and k not in ("timestamp", "git_rev") else v)
                       for k, v in sess.items()}}
    ceil = load_ceilings(S)
    lb = ceil["loopback"]
    out["ceilings"] = ceil
    r_ss = lb["r_ss_median"]
    runs = [load_drun(d) for d in sorted(glob.glob(os.path.join(S, "runs", "*")))]
    for r in runs:
        if r_ss and r.get("e2e_rate"):
            r["e2e_over_r_ss"] = round(r["e2e_rate"] / r_ss, 4)
    out["runs"] = runs
    modes = []
    for r in runs:
        if r.get("mode") and r["mode"] not in modes:
            modes.append(r["mode"])
    mtas = sorted({r["mta"] for r in runs if "mta" in r})

    def pick(pair, mta, mode):
        for r in runs:
            if r.get("pair") == pair and r.get("mta") == mta and r.get("mode") == mode and r["ok"]:
                return r
        return None

    pairs = sorted({r["pair"] for r in runs if isinstance(r.get("pair"), int)})
    summary, ratios = {}, {}
    for mode in modes:
        summary[mode] = {}
        for mta in mtas:
            sel = [r for r in runs if r.get("mta") == mta and r.get("mode") == mode and r["ok"]]
            if mode == "w9":
                for r in sel:
                    for k in ("acked", "delivered_unique", "duplicates", "lost"):
                        r[k] = (r.get("w9") or {}).get(k)
                s = {m: spread([r.get(m) for r in sel]) for m in W9_METRICS}
            else:
                s = {m: spread([r.get(m) for r in sel]) for m in metrics_for(mode) + ["e2e_over_r_ss"]}
            s = {k: v for k, v in s.items() if v}
            s["runs_ok"] = len(sel)
            s["runs_failed"] = sum(1 for r in runs if r.get("mta") == mta and r.get("mode") == mode and not r["ok"])
            doms = {}
            for r in sel:
                for lab, e in (r.get("per_domain") or {}).items():
                    doms.setdefault(lab, []).append(e.get("rate"))
            if doms:
                s["per_domain_rate"] = {lab: spread(v) for lab, v in doms.items()}
            summary[mode][mta] = s
        ratios[mode] = {}
        for m in metrics_for(mode):
            per = []
            for p in pairs:
                a, b = pick(p, "outpost", mode), pick(p, "postfix", mode)
                if a and b and a.get(m) is not None and b.get(m):
                    per.append({"pair": p, "ratio": round(a[m] / b[m], 4)})
            if per:
                ratios[mode][m] = {"per_pair": per, **(spread([x["ratio"] for x in per]) or {})}
    out["summary"] = summary
    out["ratios_outpost_over_postfix"] = ratios
    w6 = {}
    if "w6" in modes and "w2" in modes:
        for mta in mtas:
            per = []
            for p in pairs:
                a, b = pick(p, mta, "w6"), pick(p, mta, "w2")
                if a and b and a.get("nine_rate") and b.get("nine_rate"):
                    per.append({"pair": p, "w6_nine_rate": a["nine_rate"], "w2_nine_rate": b["nine_rate"],
                                "fraction": round(a["nine_rate"] / b["nine_rate"], 4),
                                "deferred_logged": a.get("deferred_logged"), "pending": a.get("pending")})
            w6[mta] = {"per_pair": per, **(spread([x["fraction"] for x in per]) or {})}
        out["w6_healthy_fraction_of_w2"] = w6

    # ---------------------------------------------------------------- text
    L = []
    P = L.append
    conc_info = (f"concurrency C = {sess.get('w5_concurrency')} (both MTAs), sink answers DATA after "
                 f"{sess.get('w5_sink_delay_s')} s" + (
                     f"; outpost max_connections = {sess['w5_outpost_max_connections']} (diagnosis, not C)"
                     if sess.get("w5_outpost_max_connections") not in (None, "C") else "")
                 if sess.get("w5_concurrency") is not None
                 else f"per-destination concurrency {sess.get('per_dest')}")
    P(f"Workload {sess.get('workload', '?')} ({sess.get('modes', '')}) session {sess.get('timestamp', '?')}: "
      f"{sess.get('messages')} msgs x {sess.get('size')} B, {sess.get('sessions')} injection sessions (reuse), "
      f"{sess.get('pairs')} pair(s); {conc_info}; host {sess.get('host_nproc')} CPU, "
      f"Postfix {sess.get('postfix_version')}" + (f", outpost {sess.get('outpost_version')} (sha256 {sess.get('outpost_sha256')})" if sess.get("outpost_version") else ""))
    if lb["start"] or lb["end"]:
        P("Loopback ceiling smtp-source -> smtp-sink (msg/s): start " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["start"]) + "; end " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["end"]) +
          f"; R_ss median {r_ss}" + (f"; drift {lb.get('start_end_drift_pct')}%" if "start_end_drift_pct" in lb else "") +
          ("  ** NOISY SESSION (>20% drift): repeat **" if lb.get("noisy") else ""))
    for name, v in sorted(ceil["fsync"].items(), key=lambda kv: ("end" in kv[0], kv[0])):
        P(f"Durable create microbenchmark {name}: " + ", ".join(
            f"{k.replace('_thread', '')} thr {x['ops_per_s']:.0f}/s" for k, x in sorted(v.items(), key=lambda kv: int(kv[0].split('_')[0]))))
    P("")
    if any(r.get("mode") != "w9" and not r.get("concurrency") for r in runs):
        hdr = (f"{'#':>2} {'pr':>2} {'mode':<4} {'mta':<7} {'e2e/s':>7} {'inj/s':>7} {'dlv/s':>7} {'9dom/s':>7} "
               f"{'CPUms/m':>7} {'sys%':>4} {'PSS MB':>6} {'procs':>5} {'p50 s':>6} {'p99 s':>6} {'max s':>6} "
               f"{'dns ms':>6} {'busy%':>5} {'frgn%':>5} {'pend':>5} ok")
        P(hdr)
        P("-" * len(hdr))
        for r in runs:
            if r.get("mode") == "w9" or r.get("concurrency"):
                continue
            pend = (r.get("pending") or "-").split(" ")[0]
            P(f"{f(r.get('seq'), 'd'):>2} {f(r.get('pair'), 'd'):>2} {r.get('mode', '?'):<4} {r.get('mta', '?'):<7} "
              f"{f(r.get('e2e_rate'), '.0f'):>7} {f(r.get('inject_rate'), '.0f'):>7} {f(r.get('delivery_rate'), '.0f'):>7} "
              f"{f(r.get('nine_rate'), '.0f'):>7} {f(r.get('cpu_ms_per_msg'), '.3f'):>7} {f(r.get('cpu_sys_pct'), '.0f'):>4} "
              f"{f(r.get('peak_pss_mb'), '.1f'):>6} {f(r.get('peak_procs'), 'd'):>5} {f(r.get('lat_p50_s'), '.3f'):>6} "
              f"{f(r.get('lat_p99_s'), '.3f'):>6} {f(r.get('lat_max_s'), '.2f'):>6} {f(r.get('dns_cpu_ms'), '.0f'):>6} "
              f"{f(r.get('host_busy_pct'), '.0f'):>5} {f(r.get('foreign_cpu_pct'), '.0f'):>5} {pend:>5} "
              f"{('yes' if r['ok'] else 'NO: ' + r.get('error', '')) + (' (disturbed)' if r.get('disturbed') else '')}")
        P("")
    w5runs = [r for r in runs if r.get("concurrency")]
    if w5runs:
        hdr = (f"{'#':>2} {'pr':>2} {'C':>5} {'mta':<7} {'msgs':>6} {'size':>7} {'e2e/s':>6} {'stdy/s':>6} {'t90 s':>6} {'slow s':>6} {'inj/s':>6} "
               f"{'conn pk':>7} {'conn md':>7} {'idle MB':>7} {'peak MB':>7} {'drn MB':>7} {'KB/conn':>7} "
               f"{'CPUms/m':>7} {'procs':>5} {'sess':>6} {'m/sess':>6} {'p50 s':>6} {'p99 s':>6} {'busy%':>5} "
               f"{'frgn%':>5} {'pend':>5} ok")
        P(hdr)
        P("-" * len(hdr))
        for r in w5runs:
            pend = (r.get("pending") or "-").split(" ")[0]
            P(f"{f(r.get('seq'), 'd'):>2} {f(r.get('pair'), 'd'):>2} {r['concurrency']:>5} {r.get('mta', '?'):<7} "
              f"{f(r.get('messages'), 'd'):>6} {size_str(r.get('size')):>7} {f(r.get('e2e_rate'), '.0f'):>6} "
              f"{f(r.get('steady_rate'), '.0f'):>6} {f(r.get('t90_s'), '.0f'):>6} {f(r.get('seconds_le_10'), 'd'):>6} "
              f"{f(r.get('inject_rate'), '.0f'):>6} {f(r.get('peak_conns'), 'd'):>7} "
              f"{f(r.get('steady_conns_median'), 'g'):>7} {f(r.get('idle_pss_mb'), '.1f'):>7} {f(r.get('peak_pss_mb'), '.1f'):>7} "
              f"{f(r.get('drain_peak_pss_mb'), '.1f'):>7} {f(r.get('pss_per_conn_kb'), '.1f'):>7} "
              f"{f(r.get('cpu_ms_per_msg'), '.3f'):>7} {f(r.get('peak_procs'), 'd'):>5} {f(r.get('sink_sessions'), 'd'):>6} "
              f"{f(r.get('msgs_per_session'), '.1f'):>6} {f(r.get('lat_p50_s'), '.2f'):>6} "
              f"{f(r.get('lat_p99_s'), '.2f'):>6} {f(r.get('host_busy_pct'), '.0f'):>5} {f(r.get('foreign_cpu_pct'), '.0f'):>5} "
              f"{pend:>5} {('yes' if r['ok'] else 'NO: ' + r.get('error', '')) + (' (disturbed)' if r.get('disturbed') else '')}")
        P("")
    w9runs = [r for r in runs if r.get("mode") == "w9"]
    if w9runs:
        hdr = (f"{'#':>2} {'pr':>2} {'mta':<7} {'kill@':>6} {'acked':>6} {'unknwn':>6} {'notsent':>7} {'uniq dlv':>8} "
               f"{'arrivals':>8} {'dups':>5} {'lost':>5} {'down s':>6} {'drain s':>7} {'pend':>5} ok")
        P("W9 crash test (tools/inject.py records every 250; smtp-sink -d dumps give what arrived):")
        P(hdr)
        P("-" * len(hdr))
        for r in w9runs:
            w = r.get("w9") or {}
            inj = r.get("inject") or {}
            pend = (r.get("pending") or "-").split(" ")[0]
            P(f"{f(r.get('seq'), 'd'):>2} {f(r.get('pair'), 'd'):>2} {r.get('mta', '?'):<7} {f(r.get('kill_count'), 'd'):>6} "
              f"{f(w.get('acked'), 'd'):>6} {f(inj.get('unknown'), 'd'):>6} {f(inj.get('not_sent'), 'd'):>7} "
              f"{f(w.get('delivered_unique'), 'd'):>8} {f(w.get('arrivals'), 'd'):>8} {f(w.get('duplicates'), 'd'):>5} "
              f"{f(w.get('lost'), 'd'):>5} {f(r.get('down_s'), '.2f'):>6} {f(r.get('drain_after_kill_s'), '.1f'):>7} {pend:>5} "
              f"{'yes' if r['ok'] else 'NO: ' + r.get('error', '')}")
        P("")
    P("Per MTA and mode (median [min-max] over ok runs):")
    for mode in modes:
        for mta, s in summary[mode].items():
            parts = [f"{m} {s[m]['median']:g} [{s[m]['min']:g}-{s[m]['max']:g}]"
                     for m in (metrics_for(mode) if mode != "w9" else W9_METRICS) if s.get(m)]
            if parts or s["runs_failed"]:
                P(f"  {mode} {mta:<8} " + "; ".join(parts) + f"  (ok {s['runs_ok']}, failed {s['runs_failed']})")
            if s.get("per_domain_rate"):
                P(f"  {mode} {mta:<8} per-domain e2e msg/s (median): " + ", ".join(
                    f"{lab} {v['median']:.0f}" for lab, v in sorted(s["per_domain_rate"].items()) if v))
    if any(ratios.values()):
        P("Ratios outpost/Postfix per pair -> median [min-max]:")
        for mode in modes:
            for m, v in ratios[mode].items():
                P(f"  {mode} {m:<15} " + " ".join(f"{x['ratio']:g}" for x in v["per_pair"]) +
                  f"  -> {v['median']:g} [{v['min']:g}-{v['max']:g}]")
    if w6:
        P("W6: rate of the nine healthy domains / their W2 rate in the same pair (target >= 0.9):")
        for mta, v in w6.items():
            if v.get("per_pair"):
                P(f"  {mta:<8} " + " ".join(f"{x['fraction']:g}" for x in v["per_pair"]) +
                  f"  -> {v['median']:g} [{v['min']:g}-{v['max']:g}]; deferred logged " +
                  ", ".join(str(x["deferred_logged"]) for x in v["per_pair"]) + "; left queued " +
                  ", ".join(str((x["pending"] or "-").split(" ")[0]) for x in v["per_pair"]))
    nd = sum(1 for r in runs if r.get("disturbed"))
    if nd:
        P(f"{nd} of {len(runs)} runs disturbed (other tenants used > {DISTURBED_FOREIGN_PCT}% of all CPUs during the run).")
    if w5runs:
        P("W5 columns: stdy/s = 0.8 N / (time from 10 % to 90 % of N received); t90 s = injection start to 90 % of N")
        P("received; slow s = whole seconds with at most 10 arrivals before that; conn pk / md = established connections")
        P("to the sink, peak / median over that window; idle MB = PSS before the injection; peak MB = peak PSS from the")
        P("injection start to the last arrival; drn MB = peak PSS after the injection ended; KB/conn = (peak - idle) / C;")
        P("sess = SMTP sessions the sink saw (m/sess = messages per session); outpost's DNS lookups and UDP drops: JSON.")
        for r in w5runs:
            if r.get("udp_rcvbuf_drops") or r.get("resolver_udp_drops"):
                P(f"  run {r.get('seq')} ({r.get('mta')}, C={r['concurrency']}): UDP datagrams dropped for a full receive "
                  f"buffer: {f(r.get('resolver_udp_drops'), 'd')} on resolver sockets talking to the private Unbound, "
                  f"{f(r.get('udp_rcvbuf_drops'), 'd')} host-wide"
                  + (f"; outpost DNS lookups per message {r['op_dns_lookups_per_msg']}" if r.get("op_dns_lookups_per_msg") else ""))
    P("Columns: e2e/s = healthy msgs / (last arrival - injection start); inj/s = msgs / injection time; dlv/s = msgs /")
    P("(last - first arrival); 9dom/s = W2/W6 rate of d0,d1,d3..d9; CPUms/m = MTA cgroup CPU from injection start to the")
    P("last arrival per injected msg; p50/p99/max = queue latency from the MTA log; dns ms = Unbound CPU (outpost only);")
    P("busy% / frgn% = all CPU use / CPU used by neither MTA, harness (smtp-source, sinks, samplers) nor Unbound; pend =")
    P("unfinished recipients left in the queue at the end (W6: the d2 share).")
    text = "\n".join(L)
    out["table"] = text
    print(text)
    if args.json:
        with open(args.json + ".tmp", "w") as fo:
            json.dump(out, fo, indent=1)
        os.rename(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
