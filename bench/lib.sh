#!/bin/bash
# Shared functions of the outpost benchmark harness (bench/README.md).
# Sourced by bench/run.sh; workloads live in bench/workloads/<id>.sh.
#
# Every process the harness starts is recorded by PID and stopped by PID in
# bench_cleanup (EXIT trap, also on Ctrl-C / SIGTERM). Nothing is ever killed by name.
# shellcheck disable=SC2034   # globals are read by the workload scripts

BENCH_DIR=${BENCH_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
PY=${PY:-/usr/bin/python3}                 # Debian's python, stdlib only (docs/testing.md, "Pitfalls")
MON="$BENCH_DIR/tools/monitor.py"
CG_ROOT=${CG_ROOT:-/sys/fs/cgroup/cpuacct}  # cgroup v1 cpuacct hierarchy on this machine

# Ports (127.0.0.1), away from outpost's defaults and the test bed's (bench/README.md);
# W2/W6 put their ten sinks on 127.0.0.11-20, all on SINK_PORT; outpost's resolver (Unbound) is DNS_PORT (lib_delivery.sh).
PFX_PORT=${PFX_PORT:-24525}
SINK_PORT=${SINK_PORT:-24526}
OUTPOST_PORT=${OUTPOST_PORT:-24527}
OUTPOST_ADMIN_PORT=${OUTPOST_ADMIN_PORT:-24528}
OUTPOST=${OUTPOST:-/work/main/build/outpost}
OUTPOST_START_TIMEOUT=${OUTPOST_START_TIMEOUT:-30}
OUTPOST_STOP_TIMEOUT=${OUTPOST_STOP_TIMEOUT:-15}

# Envelope and HELO used by every injection (bench/README.md, "W1p: what is measured").
INJ_HELO=client.example.test
INJ_FROM=sender@example.test
INJ_RCPT=rcpt@dest.example.test
INJ_TIMEOUT=${INJ_TIMEOUT:-1800}           # seconds before a hung smtp-source is killed

# ------------------------------------------------------------------ bookkeeping
_BG_PIDS=()        # plain background helpers (samplers, strace, sink, outpost)
_PFX_RUNNING=()    # Postfix instance directories that are started
_CGROUPS=()        # cgroup directories created by this process

log()  { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { log "WARNING: $*"; }
die()  { log "ERROR: $*"; exit 1; }

now() { echo "$EPOCHREALTIME"; }     # seconds.microseconds

# size_bytes SIZE: BYTES, or with a suffix K/k (KiB) or M/m (MiB): prints the octets.
size_bytes() {
  case $1 in
    *[kK]) [[ ${1%?} =~ ^[0-9]+$ ]] && echo $((${1%?} * 1024)) ;;
    *[mM]) [[ ${1%?} =~ ^[0-9]+$ ]] && echo $((${1%?} * 1048576)) ;;
    *) [[ $1 =~ ^[0-9]+$ ]] && echo "$1" ;;
  esac
}

track_pid()   { _BG_PIDS+=("$1"); }
untrack_pid() {
  local p keep=()
  for p in "${_BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  _BG_PIDS=("${keep[@]}")
}

# alive PID: true if PID exists and is not a zombie
alive() {
  local st
  st=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[1] }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop_pid PID [SIG] [TIMEOUT_S]: signal one process we started, wait for it, SIGKILL if needed.
# Returns 0 if it ended after SIG, 1 if it needed SIGKILL.
stop_pid() {
  local pid=$1 sig=${2:-TERM} t=${3:-10} i rc=0
  [ -n "$pid" ] || return 0
  kill -"$sig" "$pid" 2>/dev/null
  for ((i = 0; i < t * 20; i++)); do alive "$pid" || break; sleep 0.05; done
  if alive "$pid"; then
    warn "PID $pid did not end within ${t}s after SIG$sig; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null; rc=1
  fi
  wait "$pid" 2>/dev/null
  untrack_pid "$pid"
  return $rc
}

# reap_pid PID TIMEOUT_S: give a process (e.g. strace whose tracees ended) time to exit on
# its own, then stop it.
reap_pid() {
  local pid=$1 t=${2:-5} i
  [ -n "$pid" ] || return 0
  for ((i = 0; i < t * 20; i++)); do alive "$pid" || break; sleep 0.05; done
  stop_pid "$pid" TERM 10
}

bench_cleanup() {
  local rc=$? p d i busy
  trap - EXIT INT TERM
  if [ ${#_BG_PIDS[@]} -gt 0 ] || [ ${#_PFX_RUNNING[@]} -gt 0 ] || [ ${#_CGROUPS[@]} -gt 0 ]; then
    log "cleanup: stopping what the harness started"
  fi
  # 1. the MTAs first: a wrapping `strace -o FILE PROG` blocks SIGINT/SIGTERM and ends by
  #    itself once its tracees are gone
  [ -n "${OP_PID:-}" ] && kill -TERM "$OP_PID" 2>/dev/null
  for d in "${_PFX_RUNNING[@]}"; do postfix -c "$d/etc" stop >/dev/null 2>&1; done
  _PFX_RUNNING=()
  # 2. give everything up to 5 s to end on its own, then SIGINT (strace -p detaches on it,
  #    samplers write their result), SIGTERM, SIGKILL, by PID
  for ((i = 0; i < 100; i++)); do
    busy=0
    for p in "${_BG_PIDS[@]}"; do alive "$p" && { busy=1; break; }; done
    [ "$busy" = 0 ] && break
    sleep 0.05
  done
  for p in "${_BG_PIDS[@]}"; do kill -INT "$p" 2>/dev/null; done
  for p in "${_BG_PIDS[@]}"; do stop_pid "$p" TERM 5; done
  # 3. whatever is left in our cgroups (Postfix children, the harness's helpers)
  for d in "${_CGROUPS[@]}"; do cg_destroy "$d"; done
  exit "$rc"
}

bench_traps() {
  trap bench_cleanup EXIT
  trap 'log "interrupted"; exit 130' INT
  trap 'log "terminated"; exit 143' TERM
}

need_root() { [ "$(id -u)" = 0 ] || die "run as root (cgroups, Postfix instance, strace -p)"; }

need_cmds() {
  local c
  for c in "$@"; do command -v "$c" >/dev/null 2>&1 || die "required command not found: $c"; done
}

# ------------------------------------------------------------------ deferred deletion
# Deleting a 20 000-file queue takes tens of seconds on this file system (ext4 mounted with
# online `discard`) and keeps the disk busy afterwards, so spools are not deleted between
# runs: trash_later moves them aside, trash_empty deletes them once all runs are done.
_TRASH_DIR=""
trash_later() { # trash_later PATH...
  local p
  [ -n "$_TRASH_DIR" ] || { _TRASH_DIR=$OUT/.trash; mkdir -p "$_TRASH_DIR"; }
  for p in "$@"; do [ -e "$p" ] && mv "$p" "$_TRASH_DIR/$(date +%s%N)-$(basename "$p")"; done
  return 0
}
trash_empty() {
  [ -n "$_TRASH_DIR" ] && [ -d "$_TRASH_DIR" ] || return 0
  log "deleting run spools ($(du -sh "$_TRASH_DIR" | cut -f1))"
  rm -rf "$_TRASH_DIR"
}

# ------------------------------------------------------------------ run records
# A run record is a KEY=VALUE file read by tools/report.py.
rec() { printf '%s=%s\n' "$2" "${*:3}" >> "$1"; }   # rec FILE KEY VALUE...

proc_stat_cpu() { awk '$1 == "cpu" { $1 = ""; sub(/^ /, ""); print; exit }' /proc/stat; }

# busy_pct_over S: percentage of all CPUs busy (not idle/iowait) over the next S seconds.
busy_pct_over() {
  local a b
  a=$(proc_stat_cpu); sleep "$1"; b=$(proc_stat_cpu)
  awk -v a="$a" -v b="$b" 'BEGIN { n = split(a, x, " "); split(b, y, " "); t = 0
    for (i = 1; i <= 8 && i <= n; i++) t += y[i] - x[i]
    idle = (y[4] - x[4]) + (y[5] - x[5]); printf "%.0f\n", (t > 0) ? 100 * (t - idle) / t : 0 }'
}

# wait_quiet MAX_S THRESHOLD_PCT: the machine is shared; before a run, wait (up to MAX_S)
# until less than THRESHOLD_PCT of the CPUs is busy over 1 s. Sets QUIET_BUSY, QUIET_WAITED.
wait_quiet() {
  local max=$1 thr=$2 t0=$SECONDS
  QUIET_BUSY=$(busy_pct_over 1)
  while [ "$QUIET_BUSY" -ge "$thr" ] && [ $((SECONDS - t0)) -lt "$max" ]; do
    QUIET_BUSY=$(busy_pct_over 1)
  done
  QUIET_WAITED=$((SECONDS - t0))
  [ "$QUIET_BUSY" -lt "$thr" ] || warn "host still ${QUIET_BUSY}% busy after waiting ${max}s for quiet; running anyway"
}

host_info() { # host_info FILE
  local f=$1
  rec "$f" host_kernel "$(uname -r)"
  rec "$f" host_nproc "$(nproc)"
  rec "$f" host_mem_kb "$(awk '/^MemTotal/ { print $2 }' /proc/meminfo)"
  rec "$f" host_cpu_model "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  rec "$f" host_loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
  rec "$f" host_fs "$(df -PT "$BENCH_DIR" | awk 'NR == 2 { print $2 " " $1 }')"
  rec "$f" postfix_version "$(postconf -h -d mail_version 2>/dev/null)"
}

# ------------------------------------------------------------------ ports
port_listening() { ss -H -ltn "sport = :$1" 2>/dev/null | grep -q .; }

port_free_or_die() {
  local p
  for p in "$@"; do
    port_listening "$p" && die "127.0.0.1:$p is already in use (ss -ltn 'sport = :$p'); stop that listener or change the port variable"
  done
  return 0
}

# wait_port PORT TIMEOUT_S [PID]: wait for a TCP listener; give up early if PID died.
wait_port() {
  local port=$1 t=$2 pid=${3:-} i
  for ((i = 0; i < t * 20; i++)); do
    port_listening "$port" && return 0
    if [ -n "$pid" ] && ! alive "$pid"; then return 2; fi
    sleep 0.05
  done
  return 1
}

# ------------------------------------------------------------------ cgroup CPU accounting
# cg_create LABEL: sets CG to a fresh cgroup v1 cpuacct directory, or "" when that is
# impossible (then CPU falls back to /proc/PID/stat of the process tree, see cpu_ns).
cg_create() {
  local path="$CG_ROOT/outpost-bench-$1-$$"
  CG=""
  [ -d "$path" ] && ! rmdir "$path" 2>/dev/null && { warn "stale cgroup $path is busy"; return 0; }
  if mkdir "$path" 2>/dev/null && [ -w "$path/cgroup.procs" ] && [ -r "$path/cpuacct.usage" ]; then
    CG=$path
    _CGROUPS+=("$path")
  else
    warn "cannot create cgroup $path; CPU falls back to /proc/PID/stat (utime+stime+cutime+cstime of the tree)"
  fi
}

# cg_exec CG CMD...: run CMD (exec, same PID as the subshell) inside cgroup CG.
# Call as: ( cg_exec "$CG" cmd args ) or in the background: ( cg_exec "$CG" cmd ) & pid=$!
cg_exec() {
  local cg=$1; shift
  if [ -n "$cg" ]; then echo "$BASHPID" > "$cg/cgroup.procs" || exit 125; fi
  exec "$@"
}

cg_pids() { [ -n "$1" ] && cat "$1/cgroup.procs" 2>/dev/null; }

# harness_cg_init: one cgroup per session for the harness itself (smtp-source, samplers,
# strace), so a run can tell MTA CPU, harness CPU and CPU used by other tenants apart.
HARNESS_CG=""
harness_cg_init() { cg_create harness; HARNESS_CG=$CG; }
harness_cpu_ns() { if [ -n "$HARNESS_CG" ]; then cat "$HARNESS_CG/cpuacct.usage"; else echo -; fi; }

# cpu_ns CG ROOTPID: CPU nanoseconds used so far by the MTA.
cpu_ns() {
  if [ -n "$1" ]; then cat "$1/cpuacct.usage"
  else "$PY" "$MON" treecpu --root-pid "$2"; fi
}

# cpu_user_sys_ms CG: "USER_MS SYS_MS" from cpuacct.stat (USER_HZ ticks), or "- -".
cpu_user_sys_ms() {
  local hz
  hz=$(getconf CLK_TCK)
  if [ -n "$1" ]; then
    awk -v hz="$hz" '$1 == "user" { u = $2 } $1 == "system" { s = $2 } END { printf "%d %d\n", u * 1000 / hz, s * 1000 / hz }' "$1/cpuacct.stat"
  else echo "- -"; fi
}

# cg_kill_all CG: TERM then KILL whatever is still in the cgroup (all started by us).
cg_kill_all() {
  local cg=$1 p i left
  [ -n "$cg" ] && [ -d "$cg" ] || return 0
  left=$(cg_pids "$cg")
  [ -n "$left" ] || return 0
  for p in $left; do kill -TERM "$p" 2>/dev/null; done
  for ((i = 0; i < 100; i++)); do
    left=$(cg_pids "$cg"); [ -n "$left" ] || return 0
    sleep 0.05
  done
  warn "processes still in $cg after SIGTERM: $left; sending SIGKILL"
  for p in $left; do kill -KILL "$p" 2>/dev/null; done
  for ((i = 0; i < 40; i++)); do [ -n "$(cg_pids "$cg")" ] || return 0; sleep 0.05; done
}

cg_destroy() {
  local cg=$1 d keep=()
  [ -n "$cg" ] || return 0
  cg_kill_all "$cg"
  [ -d "$cg" ] && ! rmdir "$cg" 2>/dev/null && warn "could not remove cgroup $cg"
  for d in "${_CGROUPS[@]}"; do [ "$d" = "$cg" ] || keep+=("$d"); done
  _CGROUPS=("${keep[@]}")
}

# ------------------------------------------------------------------ PSS sampler
# pss_start CG ROOTPID OUTFILE [INTERVAL [EXTRA monitor.py pss OPTIONS...]]: sets PSS_PID.
# With --ready FILE among the extras, it waits (up to 10 s) until the first sample is taken.
pss_start() {
  local sel cg=$1 root=$2 out=$3 iv=${4:-0.5} ready="" prev="" a i
  shift 3; [ $# -gt 0 ] && shift
  for a in "$@"; do [ "$prev" = --ready ] && ready=$a; prev=$a; done
  if [ -n "$cg" ]; then sel=(--cgroup "$cg"); else sel=(--root-pid "$root"); fi
  ( cg_exec "$HARNESS_CG" "$PY" "$MON" pss "${sel[@]}" --interval "$iv" "$@" --out "$out" ) &
  PSS_PID=$!
  track_pid "$PSS_PID"
  if [ -n "$ready" ]; then
    for ((i = 0; i < 200; i++)); do [ -e "$ready" ] && break; alive "$PSS_PID" || break; sleep 0.05; done
  fi
  return 0
}
pss_stop() { [ -n "${PSS_PID:-}" ] && stop_pid "$PSS_PID" TERM 10; PSS_PID=""; }

# ------------------------------------------------------------------ fsync counting (strace)
# Two ways, chosen by FSYNC_MODE:
#  seccomp (default): the MTA is started under `strace -f --seccomp-bpf`, so only the traced
#     syscalls stop the tracee and the run is barely slowed down; every call is logged with
#     a timestamp (-ttt) and report.py counts the calls made during the injection window.
#     Matters for a group-commit engine: its fsyncs per message depend on its load.
#  attach: `strace -f -c -p` on every process after start-up. Every syscall then stops
#     the tracee (seccomp-bpf cannot be used with -p), which slows the MTA several-fold.
FSYNC_SYSCALLS=fsync,fdatasync,sync_file_range,msync,sync,syncfs
FSYNC_MODE=${FSYNC_MODE:-seccomp}

# strace_wrap LOGFILE: sets STRACE_WRAP, the command prefix for FSYNC_MODE=seccomp.
strace_wrap() {
  STRACE_WRAP=(strace -f --seccomp-bpf -qq -ttt -e trace="$FSYNC_SYSCALLS" -e signal=none -o "$1")
}

# strace_start CG ROOTPID OUTFILE: attach to every process of the MTA (-f: all their
# threads and every later child). Sets STRACE_PID. Returns 1 if attaching failed.
strace_start() {
  local pids p n i a args=()
  if [ -n "$1" ]; then pids=$(cg_pids "$1"); else pids=$("$PY" "$MON" pids --root-pid "$2"); fi
  n=0
  for p in $pids; do args+=(-p "$p"); n=$((n + 1)); done
  [ "$n" -gt 0 ] || { warn "strace: no process to attach to"; return 1; }
  ( cg_exec "$HARNESS_CG" strace -f -c -o "$3" -e trace="$FSYNC_SYSCALLS" "${args[@]}" ) 2> "$3.err" &
  STRACE_PID=$!
  track_pid "$STRACE_PID"
  for ((i = 0; i < 200; i++)); do   # "strace: Process N attached [with M threads]" per -p
    a=$(grep -c ' attached' "$3.err" 2>/dev/null)
    [ "${a:-0}" -ge "$n" ] && return 0
    alive "$STRACE_PID" || break
    sleep 0.05
  done
  warn "strace attached to fewer than $n processes (see $3.err)"
  return 0
}
strace_stop() { [ -n "${STRACE_PID:-}" ] && stop_pid "$STRACE_PID" INT 30; STRACE_PID=""; }

# ------------------------------------------------------------------ smtp-sink
# SINK_MAX_CLIENTS: smtp-sink -m, the sessions one sink serves at once (more wait in the
# listen queue); SINK_BACKLOG: its listen(2) backlog (the kernel caps it at somaxconn).
SINK_MAX_CLIENTS=${SINK_MAX_CLIENTS:-2000}
SINK_BACKLOG=${SINK_BACKLOG:-4096}
# sink_start PORT OUTFILE [EXTRA smtp-sink OPTIONS...]: sets SINK_PID. -c writes running
# "sess=.. quit=.. mesg=N" counters separated by \r, polled from the file's tail.
sink_start() {
  local port=$1 out=$2; shift 2
  port_free_or_die "$port"
  smtp-sink -c -u nobody -m "$SINK_MAX_CLIENTS" "$@" "127.0.0.1:$port" "$SINK_BACKLOG" > "$out" 2>&1 &
  SINK_PID=$!
  track_pid "$SINK_PID"
  wait_port "$port" 10 "$SINK_PID" || { cat "$out" >&2; die "smtp-sink did not start on 127.0.0.1:$port"; }
}
sink_count() { "$PY" "$MON" sinkcount "$1"; }
sink_stop() { [ -n "${SINK_PID:-}" ] && stop_pid "$SINK_PID" TERM 5; SINK_PID=""; }

# ------------------------------------------------------------------ injection
# inject PORT MESSAGES SESSIONS SIZE OUTPREFIX: smtp-source with session reuse (-d),
# unique recipients (-N). Sets INJ_RC, INJ_T0, INJ_T1 (epoch seconds).
inject() {
  local port=$1 n=$2 s=$3 size=$4 out=$5
  INJ_T0=$(now)
  ( cg_exec "$HARNESS_CG" timeout --foreground --signal=TERM "$INJ_TIMEOUT" \
    smtp-source -d -s "$s" -m "$n" -l "$size" -N -M "$INJ_HELO" -f "$INJ_FROM" -t "$INJ_RCPT" \
    "127.0.0.1:$port" ) > "$out.out" 2> "$out.err"
  INJ_RC=$?
  INJ_T1=$(now)
  [ "$INJ_RC" = 124 ] && warn "smtp-source killed after ${INJ_TIMEOUT}s"
  return 0
}

# ------------------------------------------------------------------ Postfix private instance
# pfx_setup DIR PORT MODE: write a private instance under DIR (etc/, queue/, data/, maillog).
#   MODE hold  : injection only; smtpd_end_of_data_restrictions puts every message on hold.
#   MODE relay : relay everything to [127.0.0.1]:$SINK_PORT (W1).
# Services are Debian 12's master.cf with the chroot column set to n: a private instance
# outside /var/spool/postfix has no chroot jail (Debian syncs one with configure-instance.sh
# only for the system queue directory). The earlier Postfix baseline ran them chrooted;
# measured cost differences are small but this is a documented deviation (bench/README.md).
pfx_setup() {
  local d=$1 port=$2 mode=$3
  mkdir -p "$d/etc" "$d/queue" "$d/data" || return 1
  chown postfix "$d/data"
  cat > "$d/etc/main.cf" <<EOF
# Private benchmark instance (bench/lib.sh). Debian 12 defaults + the relay settings.
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
biff = no
append_dot_mydomain = no
readme_directory = no
mailbox_size_limit = 0
recipient_delimiter = +
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.example.test
mydestination =
relayhost = [127.0.0.1]:$SINK_PORT
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = /var, /dev/stdout, $d
maillog_file = $d/maillog
EOF
  [ "$mode" = hold ] && echo 'smtpd_end_of_data_restrictions = check_client_access static:HOLD' >> "$d/etc/main.cf"
  { echo "127.0.0.1:$port inet n - n - - smtpd"
    cat <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
  } > "$d/etc/master.cf"
}

# pfx_conf DIR 'name = value'...: extra main.cf settings (W2 transport_maps etc.)
pfx_conf() { local d=$1; shift; postconf -c "$d/etc" -e "$@"; }

# pfx_start DIR PORT CG [WRAPPER...]: start the instance with its master inside cgroup CG.
# With a WRAPPER (strace), it runs in the background as WRAP_PID and keeps tracing the
# daemonised master and all its children until `postfix stop`.
# Sets PFX_MASTER_PID. Returns non-zero with a message on failure.
pfx_start() {
  local d=$1 port=$2 cg=$3 i; shift 3
  port_free_or_die "$port"
  postfix -c "$d/etc" check > "$d/postfix-check.out" 2>&1 ||
    { cat "$d/postfix-check.out" >&2; warn "postfix check failed for $d/etc (see maillog_file_prefixes pitfall)"; return 1; }
  _PFX_RUNNING+=("$d")
  WRAP_PID=""
  if [ $# -gt 0 ]; then
    ( cg_exec "$cg" "$@" postfix -c "$d/etc" start ) > "$d/postfix-start.out" 2>&1 &
    WRAP_PID=$!
    track_pid "$WRAP_PID"
  else
    ( cg_exec "$cg" postfix -c "$d/etc" start ) > "$d/postfix-start.out" 2>&1 ||
      { cat "$d/postfix-start.out" >&2; warn "postfix start failed"; return 1; }
  fi
  PFX_MASTER_PID=""
  for ((i = 0; i < 100; i++)); do
    [ -s "$d/queue/pid/master.pid" ] && PFX_MASTER_PID=$(tr -dc 0-9 < "$d/queue/pid/master.pid")
    [ -n "$PFX_MASTER_PID" ] && break
    sleep 0.05
  done
  [ -n "$PFX_MASTER_PID" ] || { warn "no master.pid in $d/queue/pid"; return 1; }
  wait_port "$port" 15 "$PFX_MASTER_PID" ||
    { tail -20 "$d/maillog" >&2 2>/dev/null; warn "Postfix is not listening on 127.0.0.1:$port"; return 1; }
}

# pfx_stop DIR CG: postfix stop, wait for master, then reap leftovers in the cgroup.
pfx_stop() {
  local d=$1 cg=$2 i keep=() x
  postfix -c "$d/etc" stop > "$d/postfix-stop.out" 2>&1
  for ((i = 0; i < 200; i++)); do
    if [ -z "${PFX_MASTER_PID:-}" ] || ! alive "$PFX_MASTER_PID"; then break; fi
    sleep 0.05
  done
  if [ -n "${WRAP_PID:-}" ]; then reap_pid "$WRAP_PID" 10; WRAP_PID=""; fi  # strace ends with its tracees
  if [ -n "$cg" ]; then cg_kill_all "$cg"
  elif [ -n "${PFX_MASTER_PID:-}" ] && alive "$PFX_MASTER_PID"; then
    kill -KILL "$PFX_MASTER_PID" 2>/dev/null
  fi
  for x in "${_PFX_RUNNING[@]}"; do [ "$x" = "$d" ] || keep+=("$x"); done
  _PFX_RUNNING=("${keep[@]}")
}

# pfx_queue_count DIR QUEUE...: number of queue files in those queues (hold, incoming, ...).
pfx_queue_count() {
  local d=$1 q paths=(); shift
  for q in "$@"; do [ -d "$d/queue/$q" ] && paths+=("$d/queue/$q"); done
  [ ${#paths[@]} -gt 0 ] || { echo 0; return; }
  find "${paths[@]}" -type f | wc -l
}

# ------------------------------------------------------------------ outpost
# op_setup DIR PORT ADMIN_PORT PAUSED(yes|no): write DIR/outpost.conf (docs/configuration.md).
op_setup() {
  local d=$1 port=$2 admin=$3 paused=$4
  mkdir -p "$d/data" || return 1
  cat > "$d/outpost.conf" <<EOF
# outpost benchmark instance (bench/lib.sh)
[server]
hostname = mta.example.test
data_dir = $d/data

[submission]
listen = 127.0.0.1:$port

[admin]
listen = 127.0.0.1:$admin

[delivery]
paused = $paused
EOF
  # OP_EXTRA_CONF=FILE: more sections for the engine under test, e.g. a [dkim] key
  # for the injected messages' From domain (example.test), to measure signing
  if [ -n "${OP_EXTRA_CONF:-}" ]; then cat "$OP_EXTRA_CONF" >> "$d/outpost.conf" || return 1; fi
}

# op_check_binary: clear error if the engine is not there.
op_check_binary() {
  local i
  for ((i = 0; i < 5; i++)); do [ -x "$OUTPOST" ] && return 0; sleep 2; done  # maybe being relinked
  [ -e "$OUTPOST" ] || die "outpost binary not found: $OUTPOST (build it, or pass --outpost PATH / OUTPOST=PATH; --postfix-only runs the Postfix half alone)"
  [ -x "$OUTPOST" ] || die "outpost binary is not executable: $OUTPOST"
}

# op_start DIR PORT CG [WRAPPER...]: start `outpost serve -c DIR/outpost.conf` inside CG;
# ready when the submission port listens. Sets OP_PID (the engine) and WRAP_PID (the
# wrapper, e.g. strace, if any). On failure prints the reason and returns 1.
op_start() {
  local d=$1 port=$2 cg=$3 r rc i; shift 3
  port_free_or_die "$port" "$OUTPOST_ADMIN_PORT"
  if [ "${OP_LOG_APPEND:-0}" = 1 ]; then   # a restart (W9): keep the first life's log
    ( cg_exec "$cg" "$@" "$OUTPOST" serve -c "$d/outpost.conf" ) >> "$d/outpost.log" 2>&1 &
  else
    ( cg_exec "$cg" "$@" "$OUTPOST" serve -c "$d/outpost.conf" ) > "$d/outpost.log" 2>&1 &
  fi
  OP_PID=$!
  track_pid "$OP_PID"
  WRAP_PID=""
  wait_port "$port" "$OUTPOST_START_TIMEOUT" "$OP_PID"; r=$?
  if [ "$r" = 0 ] && [ $# -gt 0 ]; then   # the engine is the wrapper's only child
    WRAP_PID=$OP_PID; OP_PID=""
    for ((i = 0; i < 100; i++)); do
      OP_PID=$(ps -o pid= --ppid "$WRAP_PID" | tr -d ' ' | head -1)
      [ -n "$OP_PID" ] && break; sleep 0.05
    done
    [ -n "$OP_PID" ] || { r=1; OP_PID=$WRAP_PID; }
  fi
  [ "$r" = 0 ] && return 0
  if [ "$r" = 2 ]; then
    wait "$OP_PID"; rc=$?; untrack_pid "$OP_PID"
    OP_ERROR="outpost serve exited with status $rc before listening on 127.0.0.1:$port"
  else
    OP_ERROR="outpost serve did not listen on 127.0.0.1:$port within ${OUTPOST_START_TIMEOUT}s"
    stop_pid "$OP_PID" TERM 5
  fi
  OP_PID=""
  warn "$OP_ERROR; last lines of $d/outpost.log:"
  tail -15 "$d/outpost.log" | sed 's/^/    /' >&2
  return 1
}

# op_preflight DIR: start and stop the engine once outside any measurement, so a broken
# build fails the session before the first Postfix run.
op_preflight() {
  local d=$1
  op_setup "$d" "$OUTPOST_PORT" "$OUTPOST_ADMIN_PORT" yes || die "cannot write $d/outpost.conf"
  "$OUTPOST" config check -c "$d/outpost.conf" > "$d/config-check.out" 2>&1 ||
    warn "outpost config check -c $d/outpost.conf failed: $(head -3 "$d/config-check.out" | tr '\n' ' ')"
  op_start "$d" "$OUTPOST_PORT" "" || die "outpost does not start: $OP_ERROR (config: $d/outpost.conf)"
  op_stop "" || warn "outpost did not stop on SIGTERM within ${OUTPOST_STOP_TIMEOUT}s"
  trash_later "$d/data"
}

# op_stop CG: SIGTERM, wait; returns 1 if it needed SIGKILL.
op_stop() {
  local cg=$1 rc=0
  if [ -n "${OP_PID:-}" ]; then stop_pid "$OP_PID" TERM "$OUTPOST_STOP_TIMEOUT" || rc=1; fi
  if [ -n "${WRAP_PID:-}" ]; then reap_pid "$WRAP_PID" 10; fi   # strace ends with its tracee
  OP_PID=""; WRAP_PID=""
  cg_kill_all "$cg"
  return $rc
}

# op_queue_count DIR: queued messages, via the CLI (daemon must run), else sqlite3 on
# DATA_DIR/spool.db. Prints "COUNT METHOD", or "- none" if neither works.
op_queue_count() {
  local d=$1 n
  n=$("$OUTPOST" queue list --json -c "$d/outpost.conf" 2> "$d/queue-list.err" |
      "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>> "$d/queue-list.err")
  if [ -n "$n" ]; then echo "$n cli"; return; fi
  if [ -f "$d/data/spool.db" ] && command -v sqlite3 >/dev/null; then
    n=$(sqlite3 -readonly -cmd '.timeout 5000' "$d/data/spool.db" 'select count(*) from messages' 2>> "$d/queue-list.err")
    if [ -n "$n" ]; then echo "$n sqlite"; return; fi
  fi
  echo "- none"
}

# ------------------------------------------------------------------ session ceilings (bench/README.md)
# ceiling_run OUTDIR LABEL MESSAGES SESSIONS SIZE: smtp-source -> smtp-sink, session reuse.
ceiling_run() {
  local dir=$1/$2 n=$3 s=$4 size=$5 f got
  mkdir -p "$dir"; f=$dir/meta.env
  sink_start "$SINK_PORT" "$dir/sink.out"
  sleep 0.5
  rec "$f" kind ceiling; rec "$f" label "$2"; rec "$f" messages "$n"; rec "$f" sessions "$s"
  if [ "${W_QUIET_MAX:-0}" -gt 0 ]; then
    wait_quiet "$W_QUIET_MAX" "$W_QUIET_PCT"
    rec "$f" pre_run_busy_pct "$QUIET_BUSY"; rec "$f" quiet_waited_s "$QUIET_WAITED"
  fi
  rec "$f" stat_before "$(proc_stat_cpu)"; rec "$f" harness_ns_before "$(harness_cpu_ns)"
  inject "$SINK_PORT" "$n" "$s" "$size" "$dir/smtp-source"
  rec "$f" stat_after "$(proc_stat_cpu)"; rec "$f" harness_ns_after "$(harness_cpu_ns)"
  sleep 0.2
  got=$(sink_count "$dir/sink.out")
  sink_stop
  rec "$f" t_inject_start "$INJ_T0"; rec "$f" t_inject_end "$INJ_T1"; rec "$f" source_rc "$INJ_RC"
  rec "$f" sink_count "$got"
  log "ceiling $2: $n msgs in $(awk -v a="$INJ_T0" -v b="$INJ_T1" 'BEGIN { printf "%.2fs = %.0f/s", b - a, '"$n"' / (b - a) }') (sink got $got, rc $INJ_RC)"
}

# fsync_ceiling OUTDIR LABEL SECONDS: durable-create microbenchmark, 1 and 16 threads.
fsync_ceiling() {
  local dir=$1/$2 t
  mkdir -p "$dir"
  for t in 1 16; do
    mkdir -p "$dir/work$t"
    "$PY" "$MON" fsyncbench --dir "$dir/work$t" --seconds "$3" --threads "$t" --out "$dir/fsync-$t.json" > /dev/null
    trash_later "$dir/work$t"
    log "fsync ceiling $2, $t thread(s): $("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f creates/s, p99 %.2f ms" % (d["ops_per_s"], d["p99_ms"]))' "$dir/fsync-$t.json")"
  done
}
