#!/usr/bin/python3
"""Report of a W7 (TLS) session: table and JSON (bench/README.md, "W7").

usage: report_w7.py SESSION_DIR [--json OUT.json]
       report_w7.py --run RUN_DIR                 (one line about one run, while running)
       report_w7.py --tlslog postfix|outpost LOG   (TLS figures from an MTA log, JSON)

Per run, on top of report_delivery.py's W1 figures (e2e, inject and delivery msg/s,
CPU-ms/msg of the MTA's cgroup, PSS, latency, noise):
  hs/msg        TLS handshakes completed at the sink / messages (the sink counts every
                handshake whatever the client: the same instrument for both MTAs)
  resumed %     resumed handshakes / handshakes, at the sink (SSL_session_reused)
  MTA's view    outpost: outpost_delivery_tls_handshakes_total{resumed=yes|no} from its
                /metrics; Postfix: "TLS connection established" lines of smtp/tlsproxy at
                smtp_tls_loglevel 1 (tlsproxy's when it does the TLS), and how many of
                them name a server-digest (only a full handshake has one)
  sink CPU      the sink's cgroup CPU over the run, in % of one core; "sink-bound" when a
                worker used more than 85 % of a core
Ratios are outpost / Postfix within each pair, per case: median [min-max].
Targets (the project's issue, with verification on): reuse cases e2e msg/s ratio >= 5,
per-message cases >= 3.
"""
import argparse
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import DISTURBED_FOREIGN_PCT, load_ceilings, num, read_env, spread  # noqa: E402
from report_delivery import f, load_drun  # noqa: E402

TARGETS = {"reuse": 5.0, "permsg": 3.0}
SINK_BOUND_PCT = 85
_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_status(s):
    """tls_sink status line -> dict of ints."""
    out = {}
    for k, v in re.findall(r"(\w+)=([0-9.]+)", s or ""):
        out[k] = num(v)
    return out


def parse_metrics(path):
    """Prometheus text -> {name{labels}: value} for outpost's TLS and delivery counters."""
    out = {}
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("#") or not line.strip():
                    continue
                k, _, v = line.rpartition(" ")
                if any(x in k for x in ("tls", "dane", "connections", "plaintext", "dns_lookups")):
                    out[k] = num(v)
    except OSError:
        return None
    return out


def tlslog(mta, path):
    res = {"mta": mta}
    if mta == "outpost":
        by = {}
        n = 0
        with open(path, errors="replace") as fh:
            for line in fh:
                if "event=delivery " not in line:
                    continue
                kv = dict(_KV.findall(line))
                if kv.get("result") != "delivered":
                    continue
                n += 1
                key = "tls=%s policy=%s verified=%s" % ("yes" if kv.get("tls", "-") != "-" else "no",
                                                        kv.get("tls_policy", "-").strip('"'), kv.get("verified", "-"))
                by[key] = by.get(key, 0) + 1
        res["delivered"] = n
        res["delivered_by_tls"] = by
        return res
    # Postfix logs one summary per TLS session at smtp_tls_loglevel 1: "<trust> TLS connection
    # established to HOST: TLSv1.3 with cipher ... key-exchange X25519 server-signature ECDSA
    # (prime256v1) server-digest SHA256". Only a full handshake has a server-digest (a resumed
    # session has no CertificateVerify; server-signature is still named from the cached
    # certificate). With smtp_tls_connection_reuse, tlsproxy does the handshake and logs it, and
    # smtp logs the same summary again ("established") and once per reuse ("reused").
    cnt = {}
    trust = {}
    with open(path, errors="replace") as fh:
        for line in fh:
            m = re.search(r"postfix/(\w+)\[\d+\]: (\w+) TLS connection (established|reused) to ", line)
            if not m:
                continue
            k = (m.group(1), m.group(3))
            c = cnt.setdefault(k, {"lines": 0, "server_digest": 0})
            c["lines"] += 1
            if " server-digest " in line:
                c["server_digest"] += 1
            if m.group(3) == "established":
                trust[m.group(2)] = trust.get(m.group(2), 0) + 1
    hs = cnt.get(("tlsproxy", "established")) or cnt.get(("smtp", "established")) or {"lines": 0, "server_digest": 0}
    res.update({"handshakes": hs["lines"], "full": hs["server_digest"], "resumed": hs["lines"] - hs["server_digest"],
                "reused_connection_lines": (cnt.get(("smtp", "reused")) or {}).get("lines", 0),
                "established_by_trust": trust,
                "lines": {f"{p} {v}": c for (p, v), c in sorted(cnt.items())}})
    return res


def jload(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def load_w7run(d):
    r = load_drun(d)
    m = read_env(os.path.join(d, "meta.env"))
    for k in ("reuse", "key", "level", "outpost_conn_max_messages", "postfix_tls"):
        if k in m:
            r[k] = m[k]
    n = r.get("messages") or 0
    done = parse_status(m.get("sink_status_done"))
    end = parse_status(m.get("sink_status_end"))
    before = parse_status(m.get("sink_status_before"))
    r["sink"] = {"done": done, "end": end}
    if done and n:
        hs = done.get("hs", 0) - before.get("hs", 0)
        res = done.get("resumed", 0) - before.get("resumed", 0)
        r["handshakes"] = hs
        r["resumed"] = res
        r["hs_per_msg"] = round(hs / n, 4)
        r["sessions_per_msg"] = round((done.get("sess", 0) - before.get("sess", 0)) / n, 4)
        if hs:
            r["resumed_share"] = round(res / hs, 4)
    s0, s1 = num(m.get("sink_ns_before")), num(m.get("sink_ns_after"))
    if s0 is not None and s1 is not None:
        r["sink_cpu_ms"] = round((s1 - s0) / 1e6, 1)
        if n:
            r["sink_cpu_us_per_msg"] = round((s1 - s0) / 1e3 / n, 1)
        if r.get("e2e_s"):
            r["sink_cpu_pct"] = round(100.0 * (s1 - s0) / 1e9 / r["e2e_s"], 1)
            wmax = (done.get("wcpu_max_ms") or 0) - (before.get("wcpu_max_ms") or 0)
            r["sink_worker_max_pct"] = round(100.0 * wmax / 1e3 / r["e2e_s"], 1)
            r["sink_bound"] = r["sink_worker_max_pct"] > SINK_BOUND_PCT
    if r.get("cpu_ms") is not None and r.get("handshakes"):
        r["mta_cpu_ms_per_handshake_upper"] = round(r["cpu_ms"] / r["handshakes"], 3)
    tl = jload(os.path.join(d, "tlslog.json"))
    if tl:
        r["tlslog"] = tl
    met = parse_metrics(os.path.join(d, "metrics.txt"))
    if met is not None:
        r["metrics"] = met
        y = met.get('outpost_delivery_tls_handshakes_total{resumed="yes"}', 0) or 0
        no = met.get('outpost_delivery_tls_handshakes_total{resumed="no"}', 0) or 0
        r["mta_handshakes"] = y + no
        r["mta_resumed"] = y
    elif tl and tl.get("mta") == "postfix":
        r["mta_handshakes"] = tl["handshakes"]
        r["mta_resumed"] = tl["resumed"]
    if r.get("mta_handshakes") and n:
        r["mta_hs_per_msg"] = round(r["mta_handshakes"] / n, 4)
        r["mta_resumed_share"] = round(r["mta_resumed"] / r["mta_handshakes"], 4)
    # the run's foreign CPU as in report_delivery (the sink's cgroup is inside the harness's)
    return r


METRICS = ["e2e_rate", "inject_rate", "delivery_rate", "cpu_ms_per_msg", "hs_per_msg", "resumed_share",
           "peak_pss_mb", "lat_p50_s", "lat_p99_s", "sink_cpu_pct", "sink_cpu_us_per_msg"]
RATIO_METRICS = ["e2e_rate", "inject_rate", "delivery_rate", "cpu_ms_per_msg", "hs_per_msg", "peak_pss_mb",
                 "lat_p50_s", "lat_p99_s"]


def one_line(r):
    s = (f"{r.get('mode', '?')} {r.get('mta', '?')}: e2e {f(r.get('e2e_rate'), '.0f')} msg/s, inject "
         f"{f(r.get('inject_rate'), '.0f')}/s, {f(r.get('cpu_ms_per_msg'), '.3f')} CPU-ms/msg, "
         f"{f(r.get('hs_per_msg'), '.4f')} handshakes/msg ({f(100 * r['resumed_share'] if r.get('resumed_share') is not None else None, '.1f')}% resumed), "
         f"MTA's view {r.get('mta_handshakes', '-')} hs ({r.get('mta_resumed', '-')} resumed), "
         f"sink CPU {f(r.get('sink_cpu_pct'), '.0f')}% (max worker {f(r.get('sink_worker_max_pct'), '.0f')}%)")
    s += ", ok" if r["ok"] else f", FAILED: {r.get('error', '')}"
    if r.get("sink_bound"):
        s += " (SINK-BOUND)"
    if r.get("disturbed"):
        s += f" (disturbed: foreign {r['foreign_cpu_pct']}%)"
    return s


def hs_ceilings(S):
    out = {}
    for when in ("start", "end"):
        rows = []
        try:
            with open(os.path.join(S, "ceiling", f"tls-{when}.jsonl")) as fh:
                for line in fh:
                    try:
                        d = json.loads(line)
                    except ValueError:
                        continue
                    d["key"] = "rsa" if "rsa" in d.get("cert", "") else "ecdsa"
                    rows.append(d)
        except OSError:
            pass
        if rows:
            out[when] = rows
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("session", nargs="?")
    ap.add_argument("--json")
    ap.add_argument("--run")
    ap.add_argument("--tlslog", nargs=2, metavar=("MTA", "LOG"))
    args = ap.parse_args()
    if args.tlslog:
        print(json.dumps(tlslog(*args.tlslog)))
        return 0
    if args.run:
        print("[report] " + one_line(load_w7run(args.run)), file=sys.stderr)
        return 0
    S = args.session
    sess = read_env(os.path.join(S, "session.env"))
    out = {"session": {k: (num(v) if num(v) is not None and k not in ("timestamp", "git_rev") else v)
                       for k, v in sess.items()}}
    ceil = load_ceilings(S)
    lb = ceil["loopback"]
    ceil["tls_handshake"] = hs_ceilings(S)
    out["ceilings"] = ceil
    r_ss = lb["r_ss_median"]
    runs = [load_w7run(d) for d in sorted(glob.glob(os.path.join(S, "runs", "*")))]
    for r in runs:
        if r_ss and r.get("e2e_rate"):
            r["e2e_over_r_ss"] = round(r["e2e_rate"] / r_ss, 4)
    out["runs"] = runs
    modes = []
    for r in runs:
        if r.get("mode") and r["mode"] not in modes:
            modes.append(r["mode"])
    mtas = [m for m in ("postfix", "outpost") if any(r.get("mta") == m for r in runs)]
    pairs = sorted({r["pair"] for r in runs if isinstance(r.get("pair"), int)})

    def pick(pair, mta, mode):
        for r in runs:
            if r.get("pair") == pair and r.get("mta") == mta and r.get("mode") == mode and r["ok"]:
                return r
        return None

    summary, ratios, targets = {}, {}, {}
    for mode in modes:
        summary[mode] = {}
        for mta in mtas:
            sel = [r for r in runs if r.get("mta") == mta and r.get("mode") == mode and r["ok"]]
            s = {m: spread([r.get(m) for r in sel]) for m in METRICS + ["mta_hs_per_msg", "mta_resumed_share", "e2e_over_r_ss"]}
            s = {k: v for k, v in s.items() if v}
            s["runs_ok"] = len(sel)
            s["runs_failed"] = sum(1 for r in runs if r.get("mta") == mta and r.get("mode") == mode and not r["ok"])
            s["sink_bound_runs"] = sum(1 for r in sel if r.get("sink_bound"))
            summary[mode][mta] = s
        ratios[mode] = {}
        for m in RATIO_METRICS:
            per = []
            for p in pairs:
                a, b = pick(p, "outpost", mode), pick(p, "postfix", mode)
                if a and b and a.get(m) is not None and b.get(m):
                    per.append({"pair": p, "ratio": round(a[m] / b[m], 4)})
            if per:
                ratios[mode][m] = {"per_pair": per, **(spread([x["ratio"] for x in per]) or {})}
        t = TARGETS.get(mode.split("-")[0])
        e = ratios[mode].get("e2e_rate")
        if t and e:
            targets[mode] = {"target": t, "median": e["median"], "min": e["min"], "met": e["median"] >= t,
                             "met_by_every_pair": e["min"] >= t,
                             "verification_on": sess.get("w7_level") == "dane"}
    out["summary"] = summary
    out["ratios_outpost_over_postfix"] = ratios
    out["targets"] = targets

    L = []
    P = L.append
    P(f"W7 (TLS, level {sess.get('w7_level')}) session {sess.get('timestamp', '?')}: {sess.get('messages')} msgs x "
      f"{sess.get('size')} B, {sess.get('sessions')} injection sessions, {sess.get('pairs')} pair(s); cases "
      f"{sess.get('w7_cases')}; sink workers {sess.get('w7_sink_workers')}; host {sess.get('host_nproc')} CPU; "
      f"Postfix {sess.get('postfix_version')}" + (f", outpost {sess.get('outpost_version')} (sha256 {sess.get('outpost_sha256')})" if sess.get("outpost_version") else "")
      + f"; {sess.get('openssl_version', '')}")
    if lb["start"] or lb["end"]:
        P("Loopback ceiling smtp-source -> smtp-sink (plaintext, msg/s): start " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["start"]) + "; end " +
          ", ".join(f"{r.get('msgs_per_s', 0):.0f}" for r in lb["end"]) +
          f"; R_ss median {r_ss}" + (f"; drift {lb.get('start_end_drift_pct')}%" if "start_end_drift_pct" in lb else "") +
          ("  ** NOISY SESSION (>20% drift): repeat **" if lb.get("noisy") else ""))
    for when, rows in ceil["tls_handshake"].items():
        P(f"TLS handshake ceiling ({when}; tls_hsbench, one core, CPU per handshake client/server, client verifies): " +
          "; ".join(f"{d['key']} {'resumed' if d['resume'] else 'full'} {d['client_us']:.0f}/{d['server_us']:.0f} us"
                    f" = {d['client_per_core_s']:.0f}/{d['server_per_core_s']:.0f} per core-s" for d in rows))
    P("")
    hdr = (f"{'#':>2} {'pr':>2} {'case':<12} {'mta':<7} {'e2e/s':>6} {'inj/s':>6} {'dlv/s':>6} {'CPUms/m':>7} "
           f"{'hs/msg':>7} {'res%':>5} {'MTA hs/msg':>10} {'MTA res%':>8} {'sinkCPU%':>8} {'PSS MB':>6} "
           f"{'p50 s':>6} {'p99 s':>6} {'dns ms':>6} {'busy%':>5} {'frgn%':>5} ok")
    P(hdr)
    P("-" * len(hdr))
    for r in runs:
        rs = r.get("resumed_share")
        mrs = r.get("mta_resumed_share")
        P(f"{f(r.get('seq'), 'd'):>2} {f(r.get('pair'), 'd'):>2} {r.get('mode', '?'):<12} {r.get('mta', '?'):<7} "
          f"{f(r.get('e2e_rate'), '.0f'):>6} {f(r.get('inject_rate'), '.0f'):>6} {f(r.get('delivery_rate'), '.0f'):>6} "
          f"{f(r.get('cpu_ms_per_msg'), '.3f'):>7} {f(r.get('hs_per_msg'), '.4f'):>7} "
          f"{f(100 * rs if rs is not None else None, '.1f'):>5} {f(r.get('mta_hs_per_msg'), '.4f'):>10} "
          f"{f(100 * mrs if mrs is not None else None, '.1f'):>8} {f(r.get('sink_cpu_pct'), '.0f'):>8} "
          f"{f(r.get('peak_pss_mb'), '.1f'):>6} {f(r.get('lat_p50_s'), '.3f'):>6} {f(r.get('lat_p99_s'), '.3f'):>6} "
          f"{f(r.get('dns_cpu_ms'), '.0f'):>6} {f(r.get('host_busy_pct'), '.0f'):>5} {f(r.get('foreign_cpu_pct'), '.0f'):>5} "
          f"{('yes' if r['ok'] else 'NO: ' + r.get('error', '')) + (' (disturbed)' if r.get('disturbed') else '') + (' (SINK-BOUND)' if r.get('sink_bound') else '')}")
    P("")
    P("Per MTA and case (median [min-max] over ok runs):")
    for mode in modes:
        for mta, s in summary[mode].items():
            parts = [f"{m} {s[m]['median']:g} [{s[m]['min']:g}-{s[m]['max']:g}]" for m in METRICS if s.get(m)]
            P(f"  {mode:<12} {mta:<8} " + "; ".join(parts) + f"  (ok {s['runs_ok']}, failed {s['runs_failed']})")
    if any(ratios.values()):
        P("Ratios outpost/Postfix per pair -> median [min-max]:")
        for mode in modes:
            for m, v in ratios[mode].items():
                P(f"  {mode:<12} {m:<15} " + " ".join(f"{x['ratio']:g}" for x in v["per_pair"]) +
                  f"  -> {v['median']:g} [{v['min']:g}-{v['max']:g}]")
    if targets:
        P("Targets (e2e msg/s ratio, verification " + ("on: DANE" if sess.get("w7_level") == "dane" else "OFF: targets are stated for verification on") + "):")
        for mode, t in targets.items():
            P(f"  {mode:<12} target >= {t['target']:g}: median {t['median']:g} -> {'MET' if t['met'] else 'NOT MET'}"
              f" (min {t['min']:g}: {'every pair' if t['met_by_every_pair'] else 'not every pair'})")
    nd = sum(1 for r in runs if r.get("disturbed"))
    if nd:
        P(f"{nd} of {len(runs)} runs disturbed (other tenants used > {DISTURBED_FOREIGN_PCT}% of all CPUs during the run).")
    nb = sum(1 for r in runs if r.get("sink_bound"))
    if nb:
        P(f"{nb} of {len(runs)} runs SINK-BOUND (a tls_sink worker above {SINK_BOUND_PCT}% of a core): repeat with --sink-workers 2.")
    P("Columns: e2e/s = msgs / (last arrival at the sink - injection start); inj/s = msgs / injection time; dlv/s = msgs /")
    P("(last - first arrival); CPUms/m = MTA cgroup CPU, injection start to last arrival, per msg; hs/msg, res% = TLS")
    P("handshakes per message and resumed share counted by the sink; MTA hs/msg, MTA res% = the same from the MTA")
    P("(outpost /metrics; Postfix 'TLS connection established' log lines, resumed = those without server-digest);")
    P("sinkCPU% = tls_sink CPU in % of one core; dns ms = NSD + Unbound CPU; busy%/frgn% as in W1.")
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
