#!/usr/bin/env bash
# Image service benchmarks (docs/performance.md, "Image service"). Run by
# `make bench` after scripts/bench.sh; `make build` first.
#
# In one run, with everything on the filesystem that holds $BENCH_OUT:
#   - disk baseline: dd of 1 GiB with conv=fdatasync (sequential write that
#     ends in a flush to the disk), BENCH_DD_RUNS times, file removed
#   - idle cost of the image role: VmRSS of `nimbus serve --roles=identity`
#     next to `--roles=identity,image` on the same bootstrapped data dir,
#     alternating, BENCH_ROLE_RUNS times each
#   - `nimbus up` on a temp data dir and free loopback ports: idle VmRSS,
#     then bench/imagebench (upload streamed, wait for active, check size
#     and MD5, download BENCH_DOWNLOADS times) for each size in
#     BENCH_IMAGE_SIZES, BENCH_IMAGE_RUNS times, the peak RSS reset before
#     each run; idle VmRSS again at the end
# With --glance (or BENCH_GLANCE=1) the same imagebench runs against Glance
# 25 from Debian, brought up with Keystone by /work/shared/reference/ref-up.sh
# in a private state dir under $BENCH_OUT and stopped by ref-down.sh. Both
# servers are up at once and the runs alternate (Nimbus, Glance, Nimbus,
# ...), so that load from other work on the machine falls on both alike.
#
# Options (environment):
#   BENCH_IMAGE_SIZES="256 1024"  image sizes, MiB
#   BENCH_IMAGE_RUNS=3            uploads per size and server (medians reported)
#   BENCH_DOWNLOADS=3             downloads per upload (the best is reported)
#   BENCH_DD_RUNS=3
#   BENCH_ROLE_RUNS=3
#   BENCH_SETTLE=5                seconds idle before reading RSS
#   BENCH_GLANCE=0|1              also measure the reference Glance (--glance)
#   BENCH_MAX_LOAD=1.5            wait (up to BENCH_WAIT_LOAD=300 s before each part,
#                                 BENCH_WAIT_RUN=60 s before each upload) until the
#                                 1-minute load average is below this
#   BENCH_OUT=DIR                 where results go (default: a new /tmp/nimbus-bench-image.*)
#   NIMBUS=bin/nimbus
# Results: $BENCH_OUT/results.jsonl (one JSON object per measurement) and
# $BENCH_OUT/summary.md. Only processes this script started are stopped,
# by PID; all traffic is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

for a in "$@"; do
  case $a in
    --glance) BENCH_GLANCE=1 ;;
    --no-glance) BENCH_GLANCE=0 ;;
    --quick) BENCH_IMAGE_SIZES=${BENCH_IMAGE_SIZES:-64}; BENCH_IMAGE_RUNS=${BENCH_IMAGE_RUNS:-1}; BENCH_DD_RUNS=${BENCH_DD_RUNS:-1}
             BENCH_ROLE_RUNS=${BENCH_ROLE_RUNS:-1}; BENCH_SETTLE=${BENCH_SETTLE:-2}; BENCH_DD_MIB=${BENCH_DD_MIB:-256} ;;
    *) echo "usage: $0 [--glance|--no-glance] [--quick]" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-bench-image
SIZES=${BENCH_IMAGE_SIZES:-256 1024}
RUNS=${BENCH_IMAGE_RUNS:-3}
DOWNLOADS=${BENCH_DOWNLOADS:-3}
DD_RUNS=${BENCH_DD_RUNS:-3}
DD_MIB=${BENCH_DD_MIB:-1024}
ROLE_RUNS=${BENCH_ROLE_RUNS:-3}
SETTLE=${BENCH_SETTLE:-5}
GLANCE=${BENCH_GLANCE:-0}
WAIT_RUN=${BENCH_WAIT_RUN:-60}
REF=${BENCH_REF_SCRIPTS:-/work/shared/reference}

npid="" ref_started=""
stop_nimbus() {
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; fi
  npid=""
}
cleanup() {
  stop_nimbus
  if [ -n "$ref_started" ]; then
    NIMBUS_REF_DIR=$OUT/ref "$REF/ref-down.sh" glance >/dev/null 2>&1 || true
    NIMBUS_REF_DIR=$OUT/ref "$REF/ref-down.sh" keystone >/dev/null 2>&1 || true
  fi
  [ -d "$OUT/ref/log" ] && rm -rf "$OUT/glance-log" && mv "$OUT/ref/log" "$OUT/glance-log"
  rm -rf "$OUT/nimbus-data" "$OUT/roles-data" "$OUT/ref" "$OUT/ddtest"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rss_json LABEL PHASE PID...: VmRSS and PSS (smaps_rollup) summed over the PIDs.
rss_json() {
  local label=$1 phase=$2 rss=0 pss=0 p; shift 2
  for p in "$@"; do
    rss=$((rss + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status")))
    pss=$((pss + $(awk '/^Pss:/{print $2}' "/proc/$p/smaps_rollup")))
  done
  echo "{\"mode\":\"rss\",\"label\":\"$label\",\"phase\":\"$phase\",\"procs\":$#,\"rss_kib\":$rss,\"pss_kib\":$pss}"
}

say "building imagebench"
go build -o "$OUT/bin/" ./bench/imagebench
IMAGEBENCH=$OUT/bin/imagebench

data_fs() {
  local src
  src=$(findmnt -n -o SOURCE -T "$OUT" | head -1)
  echo "data filesystem: $OUT on $src, $(findmnt -n -o FSTYPE,OPTIONS -T "$OUT" | head -1 | tr -s ' '), rotational=$(lsblk -n -d -o ROTA "$src" 2>/dev/null | tr -d ' ' || echo '?')"
}
machine_info data_fs

# ------------------------------------------------------------------ disk
wait_quiet dd
for i in $(seq 1 "$DD_RUNS"); do
  s=$(dd if=/dev/zero of="$OUT/ddtest" bs=1M count="$DD_MIB" conv=fdatasync 2>&1 | sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p')
  rm -f "$OUT/ddtest"
  echo "{\"mode\":\"dd\",\"label\":\"disk\",\"run\":$i,\"mib\":$DD_MIB,\"seconds\":$s,\"mibps\":$(echo "scale=1; $DD_MIB / $s" | bc)}" | record
  sleep 2
done

# ------------------------------------------------------------------ servers
wait_quiet nimbus
data=$OUT/nimbus-data
say "starting nimbus up on $data"
start_nimbus "$data" up
IMAGE_URL=$(up_url image)
URL=$(up_url identity)
say "nimbus pid $npid, identity $URL, image $IMAGE_URL"
sleep "$SETTLE"
rss_json nimbus idle-before "$npid" | record
APW=$(cat "$data/admin-password")

gpids=""
if [ "$GLANCE" = 1 ]; then
  export NIMBUS_REF_DIR=$OUT/ref
  if (exec 3<>/dev/tcp/127.0.0.1/19292) 2>/dev/null || (exec 3<>/dev/tcp/127.0.0.1/35357) 2>/dev/null; then
    say "port 19292 or 35357 is already in use (another Glance or Keystone?); skipping Glance"
    echo '{"mode":"skipped","label":"glance","why":"port 19292 or 35357 in use"}' | record
  else
    say "Glance: installing Debian packages if needed, then Keystone + Glance in $NIMBUS_REF_DIR"
    ref_started=1
    "$REF/ref-up.sh" glance >"$OUT/ref-up.log" 2>&1 || { cat "$OUT/ref-up.log" >&2; exit 1; }
    gpid=$(cat "$NIMBUS_REF_DIR/pids/glance.pid")
    # uwsgi master and its workers (its children); the workers hold the data.
    gpids=$(echo "$gpid" $(ps -o pid= --ppid "$gpid") | tr -s ' ' ',')
    say "glance pids $gpids (uwsgi master, then workers)"
    sleep "$SETTLE"
    rss_json glance idle-before ${gpids//,/ } | record
  fi
fi

status=0
# bench LABEL AUTH-URL PASSWORD PIDS SIZE-MIB RUN
bench() {
  wait_quiet "$1-$5-$6" "$WAIT_RUN"
  "$IMAGEBENCH" -label "$1" -auth-url "$2" -password "$3" -pids "$4" -size $(($5 << 20)) -downloads "$DOWNLOADS" \
    2> >(tee -a "$OUT/imagebench.log" >&2) | record || { status=1; say "$1 $5 MiB run $6 failed"; }
}
for size in $SIZES; do
  for run in $(seq 1 "$RUNS"); do
    bench nimbus "$URL" "$APW" "$npid" "$size" "$run"
    [ -z "$gpids" ] || bench glance http://127.0.0.1:35357/v3 adminpass "$gpids" "$size" "$run"
  done
done
sleep "$SETTLE"
rss_json nimbus idle-after "$npid" | record
du -sk "$data" | awk '{print "{\"mode\":\"leftover\",\"label\":\"nimbus\",\"data_dir_kib\":" $1 "}"}' | record
if [ -n "$gpids" ]; then
  rss_json glance idle-after ${gpids//,/ } | record
  "$REF/ref-down.sh" glance >&2
  "$REF/ref-down.sh" keystone >&2
  ref_started=""
fi
stop_nimbus
grep -E 'level=(ERROR|WARN)' "$OUT/nimbus.log" | head -5 >&2 || true

# ------------------------------------------------------------------ idle cost of the image role
# `serve` on the data dir `up` bootstrapped, with and without the image
# role, alternating so drift in the machine affects both alike.
wait_quiet roles
for i in $(seq 1 "$ROLE_RUNS"); do
  for roles in identity identity,image; do
    start_nimbus "$data" serve --roles="$roles"
    ok=""
    for _ in $(seq 1 100); do
      if ss -ltnp 2>/dev/null | grep -q "pid=$npid,"; then ok=1; break; fi
      kill -0 "$npid" || break; sleep 0.1
    done
    [ -n "$ok" ] || { echo "nimbus serve --roles=$roles did not start:" >&2; tail -20 "$OUT/nimbus.log" >&2; exit 1; }
    sleep "$SETTLE"
    rss_json "serve:$roles" "idle-$i" "$npid" | record
    stop_nimbus
  done
done

# ------------------------------------------------------------------ summary
python3 - "$RESULTS" "$OUT/machine.txt" >"$OUT/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def med(xs): return statistics.median(xs) if xs else None
def f(v, nd=1): return "–" if v is None else f"{v:,.{nd}f}"
def runs(label, size): return [r for r in rows if r.get("mode") == "image" and r["label"] == label and r["size_mib"] == size]
print(open(sys.argv[2]).read().strip().replace("\n", "  \n"))
print()
dd = [r["mibps"] for r in rows if r.get("mode") == "dd"]
print(f"disk, dd 1 MiB blocks + fdatasync: median {f(med(dd))} MiB/s (runs: {', '.join(f(x) for x in dd)})")
print()
print("| server | size MiB | runs | upload MiB/s median (runs) | download MiB/s median of bests | peak RSS MiB (max) | server CPU s per GiB up / down |")
print("|---|---:|---:|---|---:|---:|---:|")
sizes = sorted({r["size_mib"] for r in rows if r.get("mode") == "image"})
res = {}
for label in ("nimbus", "glance"):
    for size in sizes:
        rs = runs(label, size)
        if not rs: continue
        up, down = [r["upload_mibps"] for r in rs], [r["download_mibps"] for r in rs]
        peak = max(r.get("server_peak_rss_mib", 0) for r in rs)
        gib = size / 1024
        cu = med([r.get("server_upload_cpu_s", 0) for r in rs]) / gib
        cd = med([r.get("server_download_cpu_s_each", 0) for r in rs]) / gib
        res[label, size] = (med(up), med(down), peak)
        print(f"| {label} | {size} | {len(rs)} | {f(med(up))} ({', '.join(f(x) for x in up)}) | {f(med(down))} | {f(peak)} | {f(cu, 2)} / {f(cd, 2)} |")
print()
for r in rows:
    if r.get("mode") == "rss":
        print(f"- RSS {r['label']} {r['phase']}: {r['rss_kib']/1024:.1f} MiB VmRSS, {r['pss_kib']/1024:.1f} MiB PSS ({r['procs']} process{'es' if r['procs'] > 1 else ''})")
ident = [r["rss_kib"] for r in rows if r.get("label") == "serve:identity"]
both = [r["rss_kib"] for r in rows if r.get("label") == "serve:identity,image"]
print()
if ident and both:
    print(f"idle cost of the image role (median VmRSS identity,image − identity): {(med(both) - med(ident))/1024:.1f} MiB")
print()
print("targets:")
ddm = med(dd)
big = max(sizes) if sizes else None
if ddm and ("nimbus", big) in res:
    up = res["nimbus", big][0]
    print(f"- upload {big} MiB ≥ 90 % of dd: {up:.1f} / {ddm:.1f} = {100*up/ddm:.0f} % → {'met' if up >= 0.9*ddm else 'missed'}")
for size in sizes:
    if ("nimbus", size) in res and ("glance", size) in res:
        n, g = res["nimbus", size], res["glance", size]
        print(f"- {size} MiB: upload {n[0]/g[0]:.2f}× Glance (target ≥ 1.5×) → {'met' if n[0] >= 1.5*g[0] else 'missed'}; download {n[1]/g[1]:.2f}× Glance (target ≥ 1×) → {'met' if n[1] >= g[1] else 'missed'}")
peaks = {s: res["nimbus", s][2] for s in sizes if ("nimbus", s) in res}
if peaks:
    print("- Nimbus peak RSS by size: " + ", ".join(f"{s} MiB → {p:.1f} MiB" for s, p in peaks.items()))
print("\nload averages: " + "; ".join(f"{r['label']}: {r['load']}" + (f" (waited {r['waited_s']}s)" if r['waited_s'] else "") for r in rows if r.get("mode") == "load"))
PY
say "results: $RESULTS"
say "summary: $OUT/summary.md"
cat "$OUT/summary.md"
exit $status
