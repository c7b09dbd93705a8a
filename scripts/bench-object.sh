#!/usr/bin/env bash
# Object storage benchmarks (docs/performance.md, "Object storage"). Needs
# `make build` first.
#
# In one run, with every data dir on the filesystem that holds $BENCH_OUT:
#   - disk baseline, right before the large-object tests: dd of
#     BENCH_DD_MIB (1 GiB) in 1 MiB blocks with conv=fdatasync,
#     BENCH_DD_RUNS times, file removed each time
#   - `nimbus up` on a temp data dir and free loopback ports (its object
#     proxy and one storage node with 3 devices and 3-replica rings, all in
#     the one process): VmRSS idle, then bench/objbench through Keystone
#     auth: BENCH_OBJECTS new 4 KiB objects PUT then GET at each
#     BENCH_CONCURRENCY, and one BENCH_LARGE_MIB object PUT and GET; the
#     large test also in a container of a 1-replica policy ("single", in
#     a config file here), label nimbus-1-replica: one copy's write path
#     against dd, where three replicas share the one disk
#   - the same objbench against Swift 2.30 from Debian, brought up by
#     /work/shared/reference/ref-up.sh with REPLICAS=3 (3 device dirs, one
#     zone each, as Nimbus) in a private state dir under $BENCH_OUT, with
#     tempauth (v1.0) auth, and stopped by ref-down.sh. Swift's processes
#     (proxy, account, container, object servers with their workers, and
#     memcached) are measured together.
# Both servers are up at once and the tests alternate (Nimbus, Swift,
# Nimbus, ...), so that load from other work falls on both alike. With
# BENCH_OBJECT_RUNS > 1, the small-object tests of every run come first,
# then each run's dd baseline and large-object tests.
# With --profile, Nimbus runs with NIMBUS_DEBUG_ADDR and a CPU profile of
# each Nimbus test is saved as $BENCH_OUT/nimbus-<test>.pprof.
#
# Options (environment):
#   BENCH_OBJECTS=1000            small objects per test (each PUT, then GET)
#   BENCH_GET_PASSES=3            times each GET test reads every object (a
#                                 GET test of 1,000 requests at 4,000/s was a
#                                 quarter second: noise; the reference figures
#                                 in /work/shared/reference ran 15 s per test)
#   BENCH_CONCURRENCY="1 16"
#   BENCH_LARGE_MIB=1024
#   BENCH_OBJECT_RUNS=1           repetitions of the whole set (medians reported)
#   BENCH_DD_RUNS=3  BENCH_DD_MIB=1024
#   BENCH_SETTLE=5                seconds idle before reading idle RSS
#   BENCH_SWIFT=1|0               also measure the reference Swift (--no-swift)
#   BENCH_MAX_LOAD=1.5            wait (up to BENCH_WAIT_LOAD=300 s before each part,
#                                 BENCH_WAIT_RUN=60 s before each test) until the
#                                 1-minute load average is below this
#   BENCH_OUT=DIR                 where results go (default: a new /tmp/nimbus-bench-object.*)
#   NIMBUS=bin/nimbus
# Each objbench result also counts the writes and cache flushes of the
# block device under $BENCH_OUT during the test (all of the machine's, so
# other work on the disk shows too).
# Results: $BENCH_OUT/results.jsonl (one JSON object per measurement) and
# $BENCH_OUT/summary.md. Only processes this script started are stopped,
# by PID; all traffic is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

PROFILE=0
for a in "$@"; do
  case $a in
    --swift) BENCH_SWIFT=1 ;;
    --no-swift) BENCH_SWIFT=0 ;;
    --profile) PROFILE=1 ;;
    --quick) BENCH_OBJECTS=${BENCH_OBJECTS:-200}; BENCH_LARGE_MIB=${BENCH_LARGE_MIB:-128}; BENCH_DD_RUNS=${BENCH_DD_RUNS:-1}
             BENCH_DD_MIB=${BENCH_DD_MIB:-256}; BENCH_SETTLE=${BENCH_SETTLE:-2} ;;
    *) echo "usage: $0 [--swift|--no-swift] [--profile] [--quick]" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-bench-object
OBJECTS=${BENCH_OBJECTS:-1000}
GET_PASSES=${BENCH_GET_PASSES:-3}
CONCURRENCY=${BENCH_CONCURRENCY:-1 16}
LARGE_MIB=${BENCH_LARGE_MIB:-1024}
RUNS=${BENCH_OBJECT_RUNS:-1}
DD_RUNS=${BENCH_DD_RUNS:-3}
DD_MIB=${BENCH_DD_MIB:-1024}
SETTLE=${BENCH_SETTLE:-5}
SWIFT=${BENCH_SWIFT:-1}
WAIT_RUN=${BENCH_WAIT_RUN:-60}
REF=${BENCH_REF_SCRIPTS:-/work/shared/reference}
export NIMBUS_REF_DIR=$OUT/ref

npid="" swift_started=""
cleanup() {
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; fi
  if [ -n "$swift_started" ]; then "$REF/ref-down.sh" swift >&2 || true; fi
  [ -d "$OUT/ref/log" ] && rm -rf "$OUT/swift-log" && mv "$OUT/ref/log" "$OUT/swift-log"
  rm -rf "$OUT/nimbus-data" "$OUT/ref" "$OUT/dd.tmp" "$OUT"/fsprobe-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# memory_json LABEL PHASE PID...: VmRSS summed over the PIDs and their children.
memory_json() {
  local label=$1 phase=$2 kib=0 n=0 p; shift 2
  for p in $(for r in "$@"; do echo "$r"; ps -o pid= --ppid "$r"; done); do
    kib=$((kib + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status"))); n=$((n + 1))
  done
  echo "{\"mode\":\"rss\",\"label\":\"$label\",\"phase\":\"$phase\",\"procs\":$n,\"rss_kib\":$kib}"
}

say "building objbench"
go build -o "$OUT/bin/" ./bench/objbench
OBJBENCH=$OUT/bin/objbench

disk_line() {
  local dev
  dev=$(findmnt -n -o SOURCE -T "$OUT" | head -1)
  echo "disk: $OUT is on $dev ($(findmnt -n -o FSTYPE -T "$OUT" | head -1), rotational $(lsblk -n -d -o ROTA "$dev" 2>/dev/null | tr -d ' ' || echo '?'))"
}
machine_info disk_line
# The block device under $OUT: objbench counts its writes and flushes.
DISK=$(basename "$(findmnt -n -o SOURCE -T "$OUT" | head -1)")

# disk_baseline: the disk's sequential write rate with fsync, measured
# right before the large-object tests (other work on the machine shares
# the disk, so a baseline taken minutes earlier says little).
disk_baseline() {
  wait_quiet dd "$WAIT_RUN"
  for i in $(seq 1 "$DD_RUNS"); do
    secs=$(LC_ALL=C dd if=/dev/zero of="$OUT/dd.tmp" bs=1M count="$DD_MIB" conv=fdatasync 2>&1 | sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p')
    rm -f "$OUT/dd.tmp"
    awk -v s="$secs" -v m="$DD_MIB" -v i="$i" -v l="$(load1)" \
      'BEGIN{printf "{\"mode\":\"dd\",\"run\":%d,\"mib\":%d,\"seconds\":%s,\"mb_per_s\":%.1f,\"load\":\"%s\"}\n", i, m, s, m*1048576/1e6/s, l}' | record
    sleep 2
  done
}

# ------------------------------------------------------------------ servers
wait_quiet servers
[ "$PROFILE" = 1 ] && export NIMBUS_DEBUG_ADDR=127.0.0.1:0
say "starting nimbus up in $OUT/nimbus-data"
# The default policies of `nimbus up`, and one with a single replica.
cat >"$OUT/nimbus.yaml" <<'YAML'
object:
  policies:
    - {index: 0, name: gold, aliases: [Policy-0], default: true}
    - {index: 1, name: silver}
    - {index: 2, name: single, replicas: 1}
YAML
start_nimbus "$OUT/nimbus-data" --config "$OUT/nimbus.yaml" up
KEYSTONE=$(up_url identity)
up_url "object storage" >/dev/null
say "nimbus pid $npid, identity $KEYSTONE"
sleep "$SETTLE"
memory_json nimbus idle-before "$npid" | record
NPW=$(cat "$OUT/nimbus-data/admin-password")
debug_addr=""
[ "$PROFILE" = 1 ] && debug_addr=$(sed -n 's/.*msg="pprof listening" addr=\([0-9.:]*\).*/\1/p' "$OUT/nimbus.log" | head -1)

spids=""
if [ "$SWIFT" = 1 ]; then
  busy=""
  for port in 18080 11211 16200 16201 16202; do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && busy="$busy $port"
  done
  if [ -n "$busy" ]; then
    say "port(s)$busy already in use (someone else's Swift or memcached?); skipping Swift"
    echo "{\"mode\":\"skipped\",\"label\":\"swift\",\"why\":\"ports$busy in use\"}" | record
  else
    say "Swift: Debian packages if needed, then REPLICAS=3 in $NIMBUS_REF_DIR"
    swift_started=1
    REPLICAS=3 "$REF/ref-up.sh" swift >"$OUT/ref-up.log" 2>&1 || { cat "$OUT/ref-up.log" >&2; exit 1; }
    for n in swift-proxy swift-account swift-container swift-object memcached; do
      spids="$spids,$(cat "$NIMBUS_REF_DIR/pids/$n.pid")"
    done
    spids=${spids#,}
    say "swift pids $spids (and their workers)"
    sleep "$SETTLE"
    memory_json swift idle-before ${spids//,/ } | record
  fi
fi

status=0
# objbench LABEL NAME ARGS...: one objbench run against LABEL's server,
# container NAME; with --profile, a CPU profile of Nimbus meanwhile.
objbench() {
  local label=$1 name=$2 prof=""; shift 2
  wait_quiet "$label-$name" "$WAIT_RUN"
  if [ "$label" = nimbus ]; then
    set -- -auth-url "$KEYSTONE" -password "$NPW" -pids "$npid" "$@"
    if [ -n "$debug_addr" ]; then
      curl -s -o "$OUT/nimbus-$name.pprof" "http://$debug_addr/debug/pprof/profile?seconds=${BENCH_PROFILE_SECONDS:-10}" &
      prof=$!
    fi
  else
    set -- -auth-v1 http://127.0.0.1:18080/auth/v1.0 -user admin:admin -key testing -pids "$spids" "$@"
  fi
  "$OBJBENCH" -label "$label" -container "objbench-$name" -disk "$DISK" -fs-probe-dir "$OUT" "$@" \
    2> >(tee -a "$OUT/objbench.log" >&2) | record || { status=1; say "$label $name failed"; }
  [ -z "$prof" ] || wait "$prof" || true
}
targets=nimbus
[ -z "$spids" ] || targets="nimbus swift"
# Every small-object run comes before the first large one: a large test
# deletes its 1 GiB objects (and dd its file), and the freed blocks and
# their discards slowed the small PUTs of the next run (fs_probe_ms 7.4
# after them, 3.4-3.9 before).
for run in $(seq 1 "$RUNS"); do
  for c in $CONCURRENCY; do
    for t in $targets; do
      objbench "$t" "small-c$c-r$run" -tests small -concurrency "$c" -objects "$OBJECTS" -get-passes "$GET_PASSES"
    done
  done
done
for run in $(seq 1 "$RUNS"); do
  disk_baseline
  for t in $targets; do
    objbench "$t" "large-r$run" -tests large -large-size $((LARGE_MIB << 20))
  done
  objbench nimbus "large-1r-r$run" -label nimbus-1-replica -policy single -tests large -large-size $((LARGE_MIB << 20))
done
sleep "$SETTLE"
memory_json nimbus idle-after "$npid" | record
if [ -n "$spids" ]; then
  memory_json swift idle-after ${spids//,/ } | record
  "$REF/ref-down.sh" swift >&2
  swift_started=""
fi
grep -E 'level=(ERROR|WARN)' "$OUT/nimbus.log" | head -5 >&2 || true

# ------------------------------------------------------------------ summary
python3 - "$RESULTS" "$OUT/machine.txt" >"$OUT/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
med = lambda xs: statistics.median(xs) if xs else None
def num(v, nd=1): return "–" if v is None else f"{v:,.{nd}f}"
def pick(label, test, op, conc=None):
    return [r for r in rows if r.get("label") == label and r.get("test") == test and r.get("op") == op
            and (conc is None or r.get("concurrency") == conc)]
print(open(sys.argv[2]).read().strip().replace("\n", "  \n"))
print()
dd = [r["mb_per_s"] for r in rows if r.get("mode") == "dd"]
ddm = med(dd)
print(f"disk, dd 1 MiB blocks + fdatasync: median {num(ddm)} MB/s (runs: {', '.join(num(x) for x in dd)})")
print()
print("| measurement | Nimbus | Swift 2.30 | Nimbus / Swift | target | met? | load (1/5/15 min) at the end, Nimbus ; Swift |")
print("|---|---:|---:|---:|---|---|---|")
concs = sorted({r["concurrency"] for r in rows if r.get("test") == "small"})
for op in ("put", "get"):
    for c in concs:
        n, s = pick("nimbus", "small", op, c), pick("swift", "small", op, c)
        nv, sv = med([r["ops_per_s"] for r in n]), med([r["ops_per_s"] for r in s])
        ratio = nv / sv if nv and sv else None
        lat = lambda rs: "" if not rs else f" (p50 {num(med([r['p50_ms'] for r in rs]), 2)} / p99 {num(med([r['p99_ms'] for r in rs]), 2)} ms)"
        met = "–" if ratio is None else ("yes" if ratio >= 5 else "no")
        print(f"| 4 KiB {op.upper()} c={c}, ops/s | {num(nv)}{lat(n)} | {num(sv)}{lat(s)} | {num(ratio, 2)}× | ≥ 5× Swift | {met} | {'; '.join(r['load'] for r in n[-1:] + s[-1:])} |")
for op in ("put", "get"):
    n, s = pick("nimbus", "large", op), pick("swift", "large", op)
    nv, sv = med([r["mb_per_s"] for r in n]), med([r["mb_per_s"] for r in s])
    ratio = nv / sv if nv and sv else None
    share = f"{100 * nv / ddm:.0f} % of dd" if nv and ddm else "–"
    met = "–" if not (nv and ddm) else ("yes" if nv >= 0.9 * ddm else "no")
    size = n[0]["bytes"] >> 20 if n else "?"
    print(f"| {size} MiB {op.upper()}, MB/s | {num(nv)} ({share}) | {num(sv)} | {num(ratio, 2)}× | ≥ 90 % of dd ({num(ddm)}) | {met} | {'; '.join(r['load'] for r in n[-1:] + s[-1:])} |")
for op in ("put", "get"):
    n = pick("nimbus-1-replica", "large", op)
    nv = med([r["mb_per_s"] for r in n])
    if nv:
        share = f"{100 * nv / ddm:.0f} % of dd" if ddm else "–"
        print(f"| {n[0]['bytes'] >> 20} MiB {op.upper()}, 1 replica, MB/s | {num(nv)} ({share}) | | | ≥ 90 % of dd ({num(ddm)}) | {'–' if not ddm else ('yes' if nv >= 0.9 * ddm else 'no')} | {n[-1]['load']} |")
def peak(label):
    vals = [r.get("server_peak_rss_mib") for r in rows if r.get("label") == label and r.get("test") == "large"]
    vals += [r["rss_kib"] / 1024 for r in rows if r.get("mode") == "rss" and r.get("label") == label]
    vals += [r.get("server_rss_mib") for r in rows if r.get("label") == label and r.get("test") == "small"]
    vals = [v for v in vals if v]
    return max(vals) if vals else None
np_, sp = peak("nimbus"), peak("swift")
procs = {r["label"]: r["procs"] for r in rows if r.get("mode") == "rss"}
print(f"| peak RSS, MiB (processes) | {num(np_)} ({procs.get('nimbus', '?')}) | {num(sp)} ({procs.get('swift', '?')}) | {num(np_ / sp if np_ and sp else None, 2)}× | < 100 MiB | {'–' if np_ is None else ('yes' if np_ < 100 else 'no')} | |")
print()
for r in rows:
    if r.get("mode") == "rss":
        print(f"- RSS {r['label']} {r['phase']}: {r['rss_kib'] / 1024:.1f} MiB in {r['procs']} process(es)")
for r in rows:
    if r.get("test") and r.get("server_cpu_s") is not None:
        per = f"{r['server_cpu_ms_per_op']} ms/op" if r.get("server_cpu_ms_per_op") else f"{r['server_cpu_s'] / (r['bytes'] / 2**30):.2f} s/GiB"
        sys_share = f" ({100 * r['server_sys_s'] / r['server_cpu_s']:.0f} % system)" if r.get("server_sys_s") is not None and r["server_cpu_s"] else ""
        flushes = f"; disk flushes {r['disk_flushes_per_op']}/op" if r.get("disk_flushes_per_op") is not None else ""
        print(f"- server CPU {r['label']} {r['test']} {r['op']}" + (f" c={r['concurrency']}" if r.get("concurrency") else "") + f": {per}{sys_share}; client {r['client_cpu_s']} s; errors {r.get('errors', 0)}{flushes}")
for key, what in (("cpu_probe_ms", "compute: 50M xorshift steps"), ("memory_probe_ms", "memory: 2M random reads in 16 MiB"),
                  ("fs_probe_ms", "filesystem: 100 directories with a 4 KiB file each")):
    probes = [r[key] for r in rows if r.get(key)]
    if probes:
        print(f"\nprobe at each result ({what}, one core, lower is faster): median {med(probes):.1f} ms, range {min(probes):.1f}–{max(probes):.1f}")
print("\nload averages: " + "; ".join(f"{r['label']}: {r['load']}" + (f" (waited {r['waited_s']}s)" if r['waited_s'] else "") for r in rows if r.get("mode") == "load"))
PY
say "results: $RESULTS"
say "summary: $OUT/summary.md"
cat "$OUT/summary.md"
exit $status
