#!/bin/bash
# W10, listing a big queue (bench/README.md, "W10"): submission latency while the API lists 200 000 recipients
# outpost only (the question is outpost against itself): a queue of N recipients (delivery
# paused), then in interleaved phases the submission latency at a steady rate with nothing
# else running (idle), while a lean client walks the whole queue through the API in a loop
# (api), and while `outpost queue list --json` does (cli); optionally (api0) as api with the
# daemon's read workers reniced to the process's priority (what the niceness of the read
# workers is worth). Reported per phase: p50/p99/max latency; per round: p99 of each listing
# phase / p99 of the idle phase (target: <= 2).
# Sourced by bench/run.sh after lib.sh.

w10_usage() {
  cat <<EOF
usage: bench/run.sh w10 [options]
  --recipients N        queued recipients before the measurements, one per message (default 200000)
  --rate R              submissions per second during a phase (default 200)
  --phase-s S           seconds of submission per phase (default 20)
  --rounds K            rounds of the phases, interleaved (default 3)
  --sessions N          submission sessions sharing the schedule (default 8)
  --size BYTES          message size (default 1024)
  --listers LIST        listing phases besides idle, from "api cli api0" (default "api cli");
                        api0: api with the read workers reniced from 10 to 0 for the phase
  --limit N             page size of the API lister (default 1000, the API's largest)
  --outpost PATH        outpost binary (default \$OUTPOST or /work/main/build/outpost)
  --keep                keep the spool (about N x 1.5 KiB)
  --out DIR             output directory (default bench/out)
Ports (env): OUTPOST_PORT=$OUTPOST_PORT OUTPOST_ADMIN_PORT=$OUTPOST_ADMIN_PORT
EOF
}

# w10_cli_lister CONF STOP OUT: `outpost queue list --json` in a loop; "t0 t1" per walk.
w10_cli_lister() {
  local t0
  while [ ! -e "$2" ]; do
    t0=$EPOCHREALTIME
    "$OUTPOST" -c "$1" queue list --json > /dev/null 2>> "$3.err" || echo "walk failed" >> "$3.err"
    echo "$t0 $EPOCHREALTIME" >> "$3"
  done
}

# w10_readers_nice0 / w10_readers_nice10: the daemon's read workers (its threads at nice 10,
# the others run at 0) to nice 0 for an api0 phase, and back.
W_RENICED=()
w10_readers_nice0() {
  local tid ni
  W_RENICED=()
  while read -r tid ni; do
    [ "$ni" = 10 ] && W_RENICED+=("$tid")
  done < <(ps -L -o tid=,ni= -p "$OP_PID")
  [ ${#W_RENICED[@]} -gt 0 ] || warn "no thread of outpost at nice 10: is this a build without niced read workers?"
  for tid in "${W_RENICED[@]}"; do renice -n 0 -p "$tid" > /dev/null; done
}
w10_readers_nice10() {
  local tid
  for tid in "${W_RENICED[@]}"; do renice -n 10 -p "$tid" > /dev/null; done
  W_RENICED=()
}

# w10_lister_start KIND DIR: the listing loop in the background (harness cgroup); sets LISTER_PID.
w10_lister_start() {
  local kind=$1 dir=$2
  rm -f "$dir/stop"
  if [ "$kind" = api0 ]; then w10_readers_nice0; fi
  if [ "$kind" = api ] || [ "$kind" = api0 ]; then
    ( cg_exec "$HARNESS_CG" "$PY" "$BENCH_DIR/tools/lister.py" "$OUTPOST_ADMIN_PORT" \
      "$W_INST/data/admin.token" --stop "$dir/stop" --out "$dir/walks" --limit "$W_LIMIT" ) \
      > "$dir/lister.out" 2>&1 &
  else
    ( [ -n "$HARNESS_CG" ] && echo "$BASHPID" > "$HARNESS_CG/cgroup.procs"
      w10_cli_lister "$W_INST/outpost.conf" "$dir/stop" "$dir/walks" ) > "$dir/lister.out" 2>&1 &
  fi
  LISTER_PID=$!
  track_pid "$LISTER_PID"
}

w10_lister_stop() {
  touch "$1/stop"
  reap_pid "$LISTER_PID" 120   # the walk in progress ends first
  LISTER_PID=""
  if [ "$2" = api0 ]; then w10_readers_nice10; fi
}

# w10_phase ROUND KIND: one phase; its summary goes to $OUT/phases.jsonl.
w10_phase() {
  local r=$1 kind=$2 dir cpu0 cpu1 h0 h1 st0 st1 s
  dir=$OUT/r$r-$kind
  mkdir -p "$dir"
  [ "$kind" = idle ] || { w10_lister_start "$kind" "$dir"; sleep 2; }  # the walks under way
  st0=$(proc_stat_cpu); h0=$(harness_cpu_ns)
  cpu0=$(cpu_ns "$CG" "$OP_PID")
  s=$( ( cg_exec "$HARNESS_CG" "$PY" "$BENCH_DIR/tools/latency.py" "$OUTPOST_PORT" \
    --rate "$W_RATE" --seconds "$W_PHASE" --sessions "$W_SESSIONS" --size "$W_SIZE" \
    --out "$dir/latency.txt" ) 2> "$dir/latency.err")
  cpu1=$(cpu_ns "$CG" "$OP_PID")
  st1=$(proc_stat_cpu); h1=$(harness_cpu_ns)
  [ "$kind" = idle ] || w10_lister_stop "$dir" "$kind"
  [ -n "$s" ] || s='{"sent": 0}'
  "$PY" - "$r" "$kind" "$dir" "$cpu0" "$cpu1" "$W_PHASE" "$s" "$st0" "$st1" "$h0" "$h1" >> "$OUT/phases.jsonl" <<'EOF'
import json, os, sys
r, kind, d, c0, c1, secs, s, st0, st1, h0, h1 = sys.argv[1:]
out = json.loads(s)
# /proc/stat: user nice system idle iowait irq softirq steal (USER_HZ ticks)
a, b = [int(x) for x in st0.split()[:8]], [int(x) for x in st1.split()[:8]]
total = sum(b) - sum(a)
idle = (b[3] + b[4]) - (a[3] + a[4])
ncpu, hz = os.cpu_count(), os.sysconf("SC_CLK_TCK")
busy = 100.0 * (total - idle) / total if total else 0.0
engine = (int(c1) - int(c0)) / 1e9
harness = (int(h1) - int(h0)) / 1e9 if h0 != "-" and h1 != "-" else 0.0
wall = total / hz / ncpu if total else float(secs)
out.update(round=int(r), kind=kind, engine_cpu_pct=round(100.0 * engine / wall, 1),
           host_busy_pct=round(busy, 1),
           foreign_pct=round(busy - 100.0 * (engine + harness) / (wall * ncpu), 1))
walks = []
if os.path.exists(d + "/walks"):
    for line in open(d + "/walks"):
        f = line.split()
        walks.append(float(f[1]) - float(f[0]) if kind == "cli" else float(f[0]))
out["walks"] = len(walks)
out["walk_s"] = round(sorted(walks)[len(walks) // 2], 2) if walks else None
print(json.dumps(out))
EOF
  log "round $r $kind: $(tail -1 "$OUT/phases.jsonl")"
}

w10_report() {
  "$PY" - "$OUT/phases.jsonl" "$OUT/summary.json" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
kinds = []
for x in rows:
    if x["kind"] not in kinds:
        kinds.append(x["kind"])
print("%-5s %-5s %6s %8s %8s %8s %6s %6s %7s %7s %6s %8s" % ("round", "phase", "sent", "p50 ms",
      "p99 ms", "max ms", "errors", "walks", "walk s", "engine%", "busy%", "foreign%"))
for x in rows:
    print("%-5d %-5s %6d %8.1f %8.1f %8.1f %6d %6s %7s %7s %6s %8s" % (x["round"], x["kind"],
          x["sent"], x.get("p50_ms") or 0, x.get("p99_ms") or 0, x.get("max_ms") or 0,
          x.get("errors", 0), x["walks"], x["walk_s"], x["engine_cpu_pct"], x["host_busy_pct"],
          x["foreign_pct"]))
summary = {"phases": rows, "ratios": {}}
for k in kinds:
    if k == "idle":
        continue
    ratios = []
    for r in sorted({x["round"] for x in rows}):
        idle = [x for x in rows if x["round"] == r and x["kind"] == "idle"]
        this = [x for x in rows if x["round"] == r and x["kind"] == k]
        if idle and this and idle[0].get("p99_ms") and this[0].get("p99_ms"):
            ratios.append(this[0]["p99_ms"] / idle[0]["p99_ms"])
    if ratios:
        summary["ratios"][k] = {"median": statistics.median(ratios), "min": min(ratios),
                                "max": max(ratios), "per_round": ratios}
        print("p99 %s / p99 idle: median %.2f [%.2f-%.2f] (target <= 2)" % (k,
              statistics.median(ratios), min(ratios), max(ratios)))
json.dump(summary, open(sys.argv[2], "w"), indent=1)
EOF
}

w10_main() {
  local outdir="$BENCH_DIR/out" n=200000 rounds=3 listers="api cli" ts k r q t0 t1
  W_RATE=200 W_PHASE=20 W_SESSIONS=8 W_SIZE=1024 W_LIMIT=1000 W_KEEP=0
  while [ $# -gt 0 ]; do
    case $1 in
      --recipients) n=$2; shift ;;
      --rate) W_RATE=$2; shift ;;
      --phase-s) W_PHASE=$2; shift ;;
      --rounds) rounds=$2; shift ;;
      --sessions) W_SESSIONS=$2; shift ;;
      --size) W_SIZE=$2; shift ;;
      --listers) listers=$2; shift ;;
      --limit) W_LIMIT=$2; shift ;;
      --outpost) OUTPOST=$2; shift ;;
      --keep) W_KEEP=1 ;;
      --out) outdir=$2; shift ;;
      -h|--help) w10_usage; return 0 ;;
      *) w10_usage >&2; die "unknown option: $1" ;;
    esac
    shift
  done
  for k in $listers; do case $k in api|cli|api0) ;; *) die "--listers: api, cli, api0, not $k" ;; esac; done
  need_root
  need_cmds smtp-source ss timeout sqlite3 "$PY"
  op_check_binary
  OUTPOST=$(readlink -f "$OUTPOST")
  port_free_or_die "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT"
  ts=$(date +%Y%m%dT%H%M%S)
  OUT=$outdir/w10-$ts
  mkdir -p "$OUT/bin" || die "cannot create $OUT"
  bench_traps
  cp "$OUTPOST" "$OUT/bin/outpost" || die "cannot copy $OUTPOST"
  OUTPOST=$OUT/bin/outpost
  local s=$OUT/session.env
  rec "$s" workload w10; rec "$s" timestamp "$ts"; rec "$s" recipients "$n"; rec "$s" rate "$W_RATE"
  rec "$s" phase_s "$W_PHASE"; rec "$s" rounds "$rounds"; rec "$s" sessions "$W_SESSIONS"
  rec "$s" size "$W_SIZE"; rec "$s" listers "$listers"; rec "$s" limit "$W_LIMIT"
  rec "$s" outpost_version "$("$OUTPOST" version 2>&1 | head -1)"
  rec "$s" outpost_sha256 "$(sha256sum "$OUTPOST" | cut -c1-16)"
  rec "$s" git_rev "$(git -C "$BENCH_DIR" rev-parse --short HEAD 2>/dev/null || echo none)"
  host_info "$s"
  harness_cg_init

  W_INST=$OUT/inst
  op_setup "$W_INST" "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT" yes || die "cannot write $W_INST/outpost.conf"
  cg_create outpost
  op_start "$W_INST" "$OUTPOST_PORT" "$CG" || die "outpost does not start: $OP_ERROR"
  wait_port "$OUTPOST_ADMIN_PORT" 30 "$OP_PID" || die "the admin listener does not come up"

  log "filling the queue: $n messages of $W_SIZE bytes, one recipient each"
  inject "$OUTPOST_PORT" "$n" 20 "$W_SIZE" "$OUT/fill"
  [ "$INJ_RC" = 0 ] || die "smtp-source failed ($INJ_RC): $(head -c 300 "$OUT/fill.err")"
  q=$(sqlite3 -readonly -cmd '.timeout 5000' "$W_INST/data/spool.db" "SELECT count(*) FROM recipients WHERE state = 0")
  log "filled in $(awk -v a="$INJ_T0" -v b="$INJ_T1" 'BEGIN { printf "%.0f s", b - a }'): $q recipients queued"
  rec "$s" queued_before "$q"
  [ "$q" -ge "$n" ] || die "only $q of $n recipients queued"

  # one walk of each kind alone: what a listing costs with nothing else running
  t0=$(now)
  "$OUTPOST" -c "$W_INST/outpost.conf" queue list --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))' > "$OUT/cli-walk.count"
  t1=$(now)
  rec "$s" cli_walk_alone_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  log "queue list --json alone: $(cat "$OUT/cli-walk.count") messages in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }')"

  for ((r = 1; r <= rounds; r++)); do
    for k in idle $listers; do w10_phase "$r" "$k"; done
  done
  rec "$s" queued_after "$(sqlite3 -readonly -cmd '.timeout 5000' "$W_INST/data/spool.db" "SELECT count(*) FROM recipients")"
  op_stop "$CG" || warn "outpost needed SIGKILL"
  rec "$s" warnings "$(grep -cE 'level=(warn|error)' "$W_INST/outpost.log")"
  cg_destroy "$CG"
  [ "$W_KEEP" = 1 ] || rm -rf "$W_INST/data"
  w10_report | tee "$OUT/report.txt"
  log "results: $OUT"
}
