#!/usr/bin/python3
"""Measurement helpers for the outpost benchmark harness (stdlib only).

Subcommands
  pss        sample summed PSS/RSS over an MTA's processes until SIGTERM/SIGINT (optionally
             the established connections to a port, and every sample as a series)
  pids       print the PIDs of an MTA (cgroup members or a process tree)
  tids       print every thread id of those processes (for `strace -p`)
  treecpu    CPU time (ns) of a process tree: sum of utime+stime+cutime+cstime
  sinkwatch  follow one or more `smtp-sink -c` output files; record first/last delivery
             per sink; optionally SIGKILL an MTA when the count passes a threshold (W9)
  mtalog     delivered/deferred counts and queue latency p50/p99 from an MTA's log
  w9check    acknowledged (tools/inject.py) vs received (smtp-sink -d dumps): lost, duplicates
  fsyncbench durable small-file creates (write+fsync+rename+fsync dir), N threads
  sinkcount  print the last `mesg=` counter of an `smtp-sink -c` output file

The MTA is selected with --cgroup DIR (cgroup v1 directory: cgroup.procs) or
--root-pid PID (that process and all its descendants, found through /proc).
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process sets
def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the comm field (index 0 = state)."""
    s = _read(f"/proc/{pid}/stat")
    if s is None:
        return None
    return s[s.rfind(")") + 2:].split()


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def tree_pids(root):
    children = {}
    for pid in _all_pids():
        f = _stat_fields(pid)
        if f is None:
            continue
        children.setdefault(int(f[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if _stat_fields(p) is None:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cgroup_pids(cg):
    s = _read(os.path.join(cg, "cgroup.procs"))
    if s is None:
        return []
    return [int(x) for x in s.split()]


def select_pids(args):
    if args.cgroup:
        pids = cgroup_pids(args.cgroup)
    else:
        pids = tree_pids(args.root_pid)
    # zombies have no memory and cannot be traced
    return [p for p in pids if (_stat_fields(p) or ["Z"])[0] != "Z"]


def tids_of(pid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


# ---------------------------------------------------------------- pss sampler
def mem_sample(pids):
    pss = rss = threads = procs = 0
    for p in pids:
        s = _read(f"/proc/{p}/smaps_rollup")
        if not s:
            continue  # exited, or a kernel thread
        procs += 1
        m = re.search(r"^Pss:\s+(\d+) kB", s, re.M)
        if m:
            pss += int(m.group(1))
        m = re.search(r"^Rss:\s+(\d+) kB", s, re.M)
        if m:
            rss += int(m.group(1))
        st = _read(f"/proc/{p}/status") or ""
        m = re.search(r"^Threads:\s+(\d+)", st, re.M)
        threads += int(m.group(1)) if m else 1
    return pss, rss, procs, threads


def tcp_established_to(port):
    """Established TCP connections whose remote port is PORT (the client ends of
    connections to a local server on PORT), from /proc/net/tcp and tcp6: the same count
    as `ss -Htn state established '( dport = :PORT )' | wc -l`."""
    n = 0
    want = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        s = _read(path)
        if not s:
            continue
        for line in s.splitlines()[1:]:
            f = line.split(None, 4)
            # sl local_address rem_address st ...; st 01 = ESTABLISHED
            if len(f) >= 4 and f[3] == "01" and f[2].endswith(want):
                n += 1
    return n


def udp_drops_to(port, seen):
    """Per UDP socket whose remote port is PORT (e.g. resolver clients of a private DNS
    server), the datagrams the kernel dropped on it (full receive buffer): kept in SEEN
    (inode -> highest count), since sockets may close between two samples."""
    want = ":%04X" % port
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        s = _read(path)
        if not s:
            continue
        for line in s.splitlines()[1:]:
            f = line.split()
            # sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
            if len(f) >= 13 and f[2].endswith(want):
                try:
                    seen[f[9]] = max(seen.get(f[9], 0), int(f[-1]))
                except ValueError:
                    pass
    return sum(seen.values())


def cmd_pss(args):
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    res = {"interval_s": args.interval, "samples": 0, "peak_pss_kb": 0, "peak_rss_kb": 0,
           "rss_kb_at_peak_pss": 0, "procs_at_peak_pss": 0, "peak_procs": 0, "peak_threads": 0,
           "t_start": time.time()}
    if args.conn_port:
        res.update(conn_port=args.conn_port, peak_conns=0, conns_at_peak_pss=None)
    udp_seen = {}
    if args.udp_peer_port:
        res.update(udp_peer_port=args.udp_peer_port, udp_peer_drops=0)
    if args.series:
        res["series_fields"] = ["t", "pss_kb", "rss_kb", "procs", "threads"] + (["conns"] if args.conn_port else [])
        res["series"] = []

    def sample():
        pss, rss, procs, threads = mem_sample(select_pids(args))
        conns = tcp_established_to(args.conn_port) if args.conn_port else None
        res["samples"] += 1
        if res["samples"] == 1:   # taken before --ready is signalled: the idle footprint
            res.update(first_pss_kb=pss, first_rss_kb=rss, first_procs=procs, t_first=time.time())
        if pss > res["peak_pss_kb"]:
            res.update(peak_pss_kb=pss, rss_kb_at_peak_pss=rss, procs_at_peak_pss=procs)
            if conns is not None:
                res["conns_at_peak_pss"] = conns
        res["peak_rss_kb"] = max(res["peak_rss_kb"], rss)
        res["peak_procs"] = max(res["peak_procs"], procs)
        res["peak_threads"] = max(res["peak_threads"], threads)
        if conns is not None:
            res["peak_conns"] = max(res["peak_conns"], conns)
        if args.udp_peer_port:
            res["udp_peer_drops"] = udp_drops_to(args.udp_peer_port, udp_seen)
        if args.series:
            res["series"].append([round(time.time(), 3), pss, rss, procs, threads] + ([conns] if conns is not None else []))

    sample()
    if args.ready:
        open(args.ready, "w").close()
    while not stop.wait(args.interval):
        sample()
    sample()  # one last look: short runs may end between two ticks
    res["t_end"] = time.time()
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f)
    os.rename(tmp, args.out)


def cmd_pids(args):
    print(" ".join(str(p) for p in select_pids(args)))


def cmd_tids(args):
    tids = []
    for p in select_pids(args):
        tids.extend(tids_of(p))
    print(" ".join(str(t) for t in sorted(set(tids))))


def cmd_treecpu(args):
    total = 0
    for p in tree_pids(args.root_pid):
        f = _stat_fields(p)
        if f is None:
            continue
        # after comm: state=0 ppid=1 ... utime=11 stime=12 cutime=13 cstime=14
        total += sum(int(x) for x in f[11:15])
    print(total * 1_000_000_000 // CLK_TCK)


# ---------------------------------------------------------------- smtp-sink
_MESG = re.compile(rb"mesg=(\d+)")


def sink_count(path):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4096))
            tail = f.read()
    except OSError:
        return 0
    found = _MESG.findall(tail)
    return int(found[-1]) if found else 0


def cmd_sinkcount(args):
    print(sink_count(args.file))


def _kill_targets(args):
    """PIDs to SIGKILL for --kill-at: --kill-pid values and the members of --kill-cgroup."""
    pids = list(args.kill_pid or [])
    if args.kill_cgroup:
        pids += cgroup_pids(args.kill_cgroup)
    return sorted(set(pids))


def cmd_sinkwatch(args):
    """Poll one or more smtp-sink counters (--sink LABEL=FILE:TARGET, or --file/--target).
    Per sink: when its count first moved past its start value and when it reached
    start+target. Ends when every sink with a target > 0 has reached it, on SIGTERM, or at
    --timeout, or (--stall S) when the summed count has not moved for S seconds. Also records the summed count every --series-interval seconds.
    --kill-at K: once the summed count reaches K, SIGKILL --kill-pid PIDs and every
    process in --kill-cgroup (repeated until the cgroup is empty), record when and at
    which count; --exit-after-kill then ends the watch."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    sinks = []
    for spec in args.sink or []:
        label, rest = spec.split("=", 1)
        path, target = rest.rsplit(":", 1)
        sinks.append({"label": label, "file": path, "target": int(target), "fresh": True})
    if args.file:
        sinks.append({"label": "sink", "file": args.file, "target": args.target or 0, "fresh": False})
    for k in sinks:
        # --sink: a fresh sink started for this run, so its count starts at 0 even if the
        # first messages arrive before this process has looked; --file: count from now
        k["base"] = 0 if k["fresh"] else sink_count(k["file"])
        k["n"] = k["base"]
        k["t_first"] = k["t_last"] = None
    kill = None
    series = []
    stalled = False
    t_start = time.time()
    last_total, last_change = -1, t_start
    t_end = t_start + args.timeout
    next_series = t_start
    ready = args.ready
    while not stop.is_set() and time.time() < t_end:
        now = time.time()
        for k in sinks:
            if k["t_last"] is not None:
                continue
            k["n"] = sink_count(k["file"])
            if k["t_first"] is None and k["n"] > k["base"]:
                k["t_first"] = now
            if k["target"] > 0 and k["n"] - k["base"] >= k["target"]:
                k["t_last"] = now
        total = sum(k["n"] - k["base"] for k in sinks)
        if now >= next_series:
            series.append([round(now, 3), total])
            next_series = now + args.series_interval
        if args.kill_at and kill is None and total >= args.kill_at:
            killed = []
            for _ in range(50):          # a dying master may still fork: repeat until none
                pids = _kill_targets(args)
                pids = [p for p in pids if (_stat_fields(p) or ["Z"])[0] != "Z"]
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                        killed.append(p)
                    except OSError:
                        pass
                time.sleep(0.02)
            kill = {"t": now, "count": total, "pids": sorted(set(killed))}
            if args.exit_after_kill:
                break
        if ready:
            open(ready, "w").close()
            ready = None
        targeted = [k for k in sinks if k["target"] > 0]
        if targeted and all(k["t_last"] is not None for k in targeted):
            break
        if total != last_total:
            last_total, last_change = total, now
        elif args.stall and now - last_change >= args.stall:
            stalled = True
            break
        stop.wait(args.interval)
    now = time.time()
    for k in sinks:
        if k["t_last"] is None:
            k["n"] = sink_count(k["file"])
    total = sum(k["n"] - k["base"] for k in sinks)
    series.append([round(now, 3), total])
    targeted = [k for k in sinks if k["target"] > 0]
    firsts = [k["t_first"] for k in sinks if k["t_first"] is not None]
    res = {"t_start": t_start, "t_stop": now, "count": total,
           "target": sum(k["target"] for k in sinks),
           "t_first": min(firsts) if firsts else None,
           "t_last": (max(k["t_last"] for k in targeted)
                      if targeted and all(k["t_last"] is not None for k in targeted) else None),
           "reached": bool(targeted) and all(k["t_last"] is not None for k in targeted),
           "sinks": {k["label"]: {"base": k["base"], "count": k["n"] - k["base"], "target": k["target"],
                                  "t_first": k["t_first"], "t_last": k["t_last"],
                                  "reached": k["t_last"] is not None} for k in sinks},
           "stalled": stalled, "kill": kill, "series": series}
    with open(args.out + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(args.out + ".tmp", args.out)


# ---------------------------------------------------------------- MTA logs
def _pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(p * len(sorted_vals)))]


def _lat_summary(vals):
    v = sorted(round(x, 4) for x in vals)
    return {"n": len(v), "p50_s": _pct(v, 0.50), "p90_s": _pct(v, 0.90), "p99_s": _pct(v, 0.99),
            "max_s": v[-1] if v else None, "mean_s": round(sum(v) / len(v), 4) if v else None}


_OP_TS = re.compile(r"^ts=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z")
_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def _op_ts(line):
    m = _OP_TS.match(line)
    if not m:
        return None
    y, mo, d, h, mi, se, ms = (int(x) for x in m.groups())
    import calendar
    return calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0)) + ms / 1000.0


def mtalog_outpost(paths):
    accepted, delivered_ts = {}, []
    res = {"accepted": 0, "delivered": 0, "deferred": 0, "failed": 0, "other_results": 0,
           "warnings": 0, "by_domain": {}, "starts": 0}
    lat = []
    for path in paths:
        try:
            f = open(path, errors="replace")
        except OSError:
            continue
        with f:
            for line in f:
                if "event=message_accepted " in line:
                    kv = dict(_KV.findall(line))
                    accepted[kv.get("qid")] = _op_ts(line)
                    res["accepted"] += 1
                elif "event=delivery " in line:
                    kv = dict(_KV.findall(line))
                    r = kv.get("result", "?")
                    dom = kv.get("rcpt", "").strip('"').rsplit("@", 1)[-1].lower()
                    bd = res["by_domain"].setdefault(dom, {"delivered": 0, "deferred": 0, "failed": 0})
                    if r in ("delivered", "deferred", "failed"):
                        res[r] += 1
                        bd[r] += 1
                    else:
                        res["other_results"] += 1
                    if r == "delivered":
                        t = _op_ts(line)
                        delivered_ts.append(t)
                        a = accepted.get(kv.get("qid"))
                        if a is not None and t is not None:
                            lat.append(t - a)
                    elif r == "deferred" and res.get("first_deferral_reply") is None:
                        res["first_deferral_reply"] = kv.get("reply", "").strip('"')
                elif "event=starting " in line:
                    res["starts"] += 1
                if re.search(r"level=(warn|error|fatal|crit)", line):
                    res["warnings"] += 1
                    if len(res.setdefault("warning_samples", [])) < 5:
                        res["warning_samples"].append(line.strip()[:300])
    res["latency"] = _lat_summary(lat)
    d = [t for t in delivered_ts if t is not None]
    res["t_first_delivered"] = min(d) if d else None
    res["t_last_delivered"] = max(d) if d else None
    a = [t for t in accepted.values() if t is not None]
    res["t_first_accepted"] = min(a) if a else None
    res["t_last_accepted"] = max(a) if a else None
    return res


def mtalog_postfix(paths):
    res = {"accepted": 0, "delivered": 0, "deferred": 0, "failed": 0, "other_results": 0,
           "warnings": 0, "by_domain": {}, "starts": 0}
    lat = []
    st = re.compile(r" to=<([^>]*)>,.* delay=([0-9.]+),.* status=(\w+)")
    for path in paths:
        try:
            f = open(path, errors="replace")
        except OSError:
            continue
        with f:
            for line in f:
                if "/cleanup[" in line and " message-id=" in line:
                    res["accepted"] += 1
                elif " status=" in line:
                    m = st.search(line)
                    if m:
                        dom = m.group(1).rsplit("@", 1)[-1].lower()
                        bd = res["by_domain"].setdefault(dom, {"delivered": 0, "deferred": 0, "failed": 0})
                        r = {"sent": "delivered", "deferred": "deferred", "bounced": "failed"}.get(m.group(3))
                        if r:
                            res[r] += 1
                            bd[r] += 1
                        else:
                            res["other_results"] += 1
                        if m.group(3) == "sent":
                            lat.append(float(m.group(2)))
                        elif m.group(3) == "deferred" and res.get("first_deferral_reply") is None:
                            res["first_deferral_reply"] = line.split("status=deferred", 1)[1].strip()[:200]
                elif "daemon started" in line:
                    res["starts"] += 1
                if re.search(r"(warning|fatal|panic):", line):
                    res["warnings"] += 1
                    if len(res.setdefault("warning_samples", [])) < 5:
                        res["warning_samples"].append(line.strip()[:300])
    res["latency"] = _lat_summary(lat)
    res["latency_source"] = "postfix delay= (arrival to delivery, 2 significant digits)"
    return res


def cmd_mtalog(args):
    """Counts and queue latency from an MTA's log. outpost: event=message_accepted ts= to
    event=delivery result=delivered ts= of the same qid (ms resolution). Postfix: delay= of
    status=sent lines."""
    res = (mtalog_outpost if args.mta == "outpost" else mtalog_postfix)(args.log)
    res["mta"] = args.mta
    if args.out:
        with open(args.out + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        os.rename(args.out + ".tmp", args.out)
    if args.field:
        v = res
        for part in args.field.split("."):
            v = v.get(part, 0) if isinstance(v, dict) else 0
        print(v)


# ---------------------------------------------------------------- W9 check
_RCPT_ARG = re.compile(r"<([^>]*)>")


def cmd_w9check(args):
    """Compare the injector's acknowledged recipients with what reached the sink
    (smtp-sink -d dump files: one file per received transaction, X-Rcpt-Args headers)."""
    def lines(path):
        try:
            with open(path) as f:
                return [x.strip() for x in f if x.strip()]
        except OSError:
            return []
    acked = lines(args.acked)
    unknown = set(lines(args.unknown)) if args.unknown else set()
    arrivals = {}
    files = 0
    bad_files = 0
    for root, _, names in os.walk(args.dump):
        for nm in names:
            files += 1
            rc = []
            try:
                with open(os.path.join(root, nm), errors="replace") as f:
                    for line in f:
                        if line.startswith("X-Rcpt-Args:"):
                            m = _RCPT_ARG.search(line)
                            if m:
                                rc.append(m.group(1).lower())
                        elif line.startswith("Received:") or not line.strip():
                            break
            except OSError:
                bad_files += 1
                continue
            if not rc:
                bad_files += 1
            for r in rc:
                arrivals[r] = arrivals.get(r, 0) + 1
    acked_set = set(a.lower() for a in acked)
    lost = sorted(acked_set - set(arrivals))
    dups = {r: n for r, n in arrivals.items() if n > 1}
    res = {"acked": len(acked), "acked_distinct": len(acked_set), "unknown": len(unknown),
           "dump_files": files, "dump_files_unreadable_or_without_rcpt": bad_files,
           "arrivals": sum(arrivals.values()), "delivered_unique": len(arrivals),
           "delivered_acked": len(acked_set & set(arrivals)),
           "delivered_unknown": len(unknown & set(arrivals)),
           "delivered_not_sent": len(set(arrivals) - acked_set - unknown),
           "duplicates": sum(n - 1 for n in arrivals.values()),
           "duplicated_recipients": len(dups),
           "duplicate_samples": sorted(dups.items())[:10],
           "lost": len(lost), "lost_samples": lost[:20]}
    if args.spool_db:
        import sqlite3
        try:
            db = sqlite3.connect(f"file:{args.spool_db}?mode=ro", uri=True, timeout=10)
            rows = db.execute("SELECT printf('%016X', m.id), lower(r.address), r.state "
                              "FROM messages m JOIN recipients r ON r.msg_id = m.id").fetchall()
            db.close()
            states = {}
            for _, _, s in rows:
                states[s] = states.get(s, 0) + 1
            names = {0: "queued", 1: "held", 2: "deferred", 3: "delivered", 4: "failed"}
            res["spool_recipients"] = len(rows)
            res["spool_states"] = {names.get(k, str(k)): v for k, v in states.items()}
            spool_rcpts = {r for _, r, _ in rows}
            res["acked_not_in_spool"] = len(acked_set - spool_rcpts)
            res["spool_not_delivered_to_sink"] = len(spool_rcpts - set(arrivals))
            res["spool_not_acked"] = len(spool_rcpts - acked_set)
            if args.log:
                accepted = set()
                for path in args.log:
                    try:
                        with open(path, errors="replace") as f:
                            for line in f:
                                if "event=message_accepted " in line:
                                    m = re.search(r" qid=(\S+)", line)
                                    if m:
                                        accepted.add(m.group(1))
                    except OSError:
                        pass
                spool_qids = {q for q, _, _ in rows}
                res["logged_accepted"] = len(accepted)
                res["logged_accepted_not_in_spool"] = len(accepted - spool_qids)
        except Exception as e:  # noqa: BLE001 - report, do not crash the run
            res["spool_error"] = str(e)
    with open(args.out + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.rename(args.out + ".tmp", args.out)
    print(json.dumps({k: res[k] for k in ("acked", "delivered_unique", "duplicates", "lost")}))


# ---------------------------------------------------------------- fsync bench
def cmd_fsyncbench(args):
    payload = os.urandom(4096)
    deadline = [0.0]
    counts = [0] * args.threads
    lats = [[] for _ in range(args.threads)]

    def worker(i):
        d = os.path.join(args.dir, f"w{i}")
        os.makedirs(d, exist_ok=True)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        n = 0
        try:
            while time.monotonic() < deadline[0]:
                t0 = time.monotonic()
                tmp = os.path.join(d, f"t{n}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, payload)
                os.fsync(fd)
                os.close(fd)
                os.rename(tmp, os.path.join(d, f"m{n}"))
                os.fsync(dfd)
                lats[i].append(time.monotonic() - t0)
                n += 1
        finally:
            os.close(dfd)
        counts[i] = n

    deadline[0] = time.monotonic() + args.seconds
    t0 = time.monotonic()
    ths = [threading.Thread(target=worker, args=(i,)) for i in range(args.threads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    wall = time.monotonic() - t0
    all_l = sorted(x for l in lats for x in l)

    def pct(p):
        return all_l[min(len(all_l) - 1, int(p * len(all_l)))] * 1000 if all_l else None

    res = {"threads": args.threads, "seconds": round(wall, 3), "ops": sum(counts),
           "ops_per_s": round(sum(counts) / wall, 1) if wall > 0 else None,
           "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
    with open(args.out, "w") as f:
        json.dump(res, f)
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def target(p):
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--cgroup")
        g.add_argument("--root-pid", type=int)

    p = sub.add_parser("pss"); target(p)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--conn-port", type=int, default=0,
                   help="also count established TCP connections to this remote port per sample")
    p.add_argument("--series", action="store_true", help="keep every sample (t, pss, rss, procs, threads[, conns])")
    p.add_argument("--udp-peer-port", type=int, default=0,
                   help="also sum the receive-buffer drops of UDP sockets talking to this remote port")
    p.add_argument("--ready", help="create this file once the first sample is taken")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_pss)
    p = sub.add_parser("pids"); target(p); p.set_defaults(fn=cmd_pids)
    p = sub.add_parser("tids"); target(p); p.set_defaults(fn=cmd_tids)
    p = sub.add_parser("treecpu"); p.add_argument("--root-pid", type=int, required=True)
    p.set_defaults(fn=cmd_treecpu)
    p = sub.add_parser("sinkcount"); p.add_argument("file"); p.set_defaults(fn=cmd_sinkcount)
    p = sub.add_parser("sinkwatch")
    p.add_argument("--file")
    p.add_argument("--target", type=int)
    p.add_argument("--sink", action="append", help="LABEL=FILE:TARGET (repeatable)")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--series-interval", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--stall", type=float, default=0, help="end when the count has not moved for this long")
    p.add_argument("--ready", help="create this file once the first poll is done")
    p.add_argument("--kill-at", type=int, default=0)
    p.add_argument("--kill-pid", type=int, action="append")
    p.add_argument("--kill-cgroup")
    p.add_argument("--exit-after-kill", action="store_true")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_sinkwatch)
    p = sub.add_parser("mtalog")
    p.add_argument("--mta", choices=("outpost", "postfix"), required=True)
    p.add_argument("--log", action="append", required=True)
    p.add_argument("--out")
    p.add_argument("--field", help="print one field (a.b for nested), e.g. deferred")
    p.set_defaults(fn=cmd_mtalog)
    p = sub.add_parser("w9check")
    p.add_argument("--acked", required=True)
    p.add_argument("--unknown")
    p.add_argument("--dump", required=True)
    p.add_argument("--spool-db")
    p.add_argument("--log", action="append")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_w9check)
    p = sub.add_parser("fsyncbench")
    p.add_argument("--dir", required=True)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_fsyncbench)
    args = ap.parse_args()
    args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
