#!/usr/bin/python3
"""Measurement helpers for the outpost benchmark harness (stdlib only).

Subcommands
  pss        sample summed PSS/RSS over an MTA's processes until SIGTERM/SIGINT
  pids       print the PIDs of an MTA (cgroup members or a process tree)
  tids       print every thread id of those processes (for `strace -p`)
  treecpu    CPU time (ns) of a process tree: sum of utime+stime+cutime+cstime
  sinkwatch  follow an `smtp-sink -c` output file; record first/last delivery
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


def cmd_pss(args):
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    res = {"interval_s": args.interval, "samples": 0, "peak_pss_kb": 0, "peak_rss_kb": 0,
           "rss_kb_at_peak_pss": 0, "procs_at_peak_pss": 0, "peak_procs": 0, "peak_threads": 0,
           "t_start": time.time()}

    def sample():
        pss, rss, procs, threads = mem_sample(select_pids(args))
        res["samples"] += 1
        if pss > res["peak_pss_kb"]:
            res.update(peak_pss_kb=pss, rss_kb_at_peak_pss=rss, procs_at_peak_pss=procs)
        res["peak_rss_kb"] = max(res["peak_rss_kb"], rss)
        res["peak_procs"] = max(res["peak_procs"], procs)
        res["peak_threads"] = max(res["peak_threads"], threads)

    sample()
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


def cmd_sinkwatch(args):
    """Poll the sink counter; record when the count first moved past its start
    value and when it reached start+target. Ends at target, on SIGTERM, or timeout."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    base = sink_count(args.file)
    first = last = None
    n = base
    t_end = time.time() + args.timeout
    while not stop.is_set() and time.time() < t_end:
        n = sink_count(args.file)
        now = time.time()
        if first is None and n > base:
            first = now
        if n - base >= args.target:
            last = now
            break
        stop.wait(args.interval)
    res = {"base": base, "count": n - base, "target": args.target,
           "t_first": first, "t_last": last, "reached": last is not None}
    with open(args.out + ".tmp", "w") as f:
        json.dump(res, f)
    os.rename(args.out + ".tmp", args.out)


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
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_pss)
    p = sub.add_parser("pids"); target(p); p.set_defaults(fn=cmd_pids)
    p = sub.add_parser("tids"); target(p); p.set_defaults(fn=cmd_tids)
    p = sub.add_parser("treecpu"); p.add_argument("--root-pid", type=int, required=True)
    p.set_defaults(fn=cmd_treecpu)
    p = sub.add_parser("sinkcount"); p.add_argument("file"); p.set_defaults(fn=cmd_sinkcount)
    p = sub.add_parser("sinkwatch")
    p.add_argument("--file", required=True)
    p.add_argument("--target", type=int, required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_sinkwatch)
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
