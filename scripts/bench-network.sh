#!/usr/bin/env bash
# Networking benchmarks (docs/performance.md, "Networking"). Run by
# `make bench` after scripts/bench-image.sh; `make build` first. The data
# plane part needs root (it creates network namespaces).
#
#   - API: bench/netbench against `nimbus up` on a temp data dir and free
#     loopback ports: port create and floating IP associate, p50/p99, at
#     each concurrency in BENCH_NET_CONCURRENCY
#   - data plane: the Go benchmarks of internal/dataplane, in namespaces
#     they create and remove (prefix t + 3 random characters):
#       BenchmarkRuleToEnforcement        security group rule change → a new
#                                         connection the rule allows goes through
#       BenchmarkFloatingIPToReachability floating IP association (routed
#                                         mode) → the outside completes a TCP exchange
#       BenchmarkThroughput               TCP MB/s guest↔guest on one bridge,
#                                         outside → floating IP (DNAT), guest →
#                                         outside (SNAT), each interleaved with
#                                         a plain veth pair (%veth)
#     Throughput runs BENCH_DP_ROUNDS times; the summary gives medians.
#
# Options (environment):
#   BENCH_NET_OPS=400             port creates (and as many associations) per
#                                 concurrency, split among the workers; more
#                                 than 500 runs into the floating IP ports'
#                                 quota (they count against project "")
#   BENCH_NET_CONCURRENCY="1 4"
#   BENCH_DP_LATENCY_RUNS=20      iterations of each latency benchmark
#   BENCH_DP_TIME=3s              timed path traffic per throughput
#                                 measurement (the baseline's comes on top)
#   BENCH_DP_ROUNDS=3
#   BENCH_MAX_LOAD=1.5            wait (up to BENCH_WAIT_LOAD=300 s) until the
#                                 1-minute load average is below this before each part
#   BENCH_OUT=DIR                 where results go (default: a new /tmp/nimbus-bench-network.*)
#   NIMBUS=bin/nimbus
# Results: $BENCH_OUT/results.jsonl (one JSON object per measurement),
# $BENCH_OUT/dataplane-bench.txt (raw `go test -bench` output) and
# $BENCH_OUT/summary.md. Only processes this script started are stopped,
# by PID; API traffic is on 127.0.0.1, data plane traffic inside the
# benchmarks' own namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

for a in "$@"; do
  case $a in
    --quick) BENCH_NET_OPS=${BENCH_NET_OPS:-40}; BENCH_DP_LATENCY_RUNS=${BENCH_DP_LATENCY_RUNS:-3}
             BENCH_DP_TIME=${BENCH_DP_TIME:-1x}; BENCH_DP_ROUNDS=${BENCH_DP_ROUNDS:-1} ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-bench-network
OPS=${BENCH_NET_OPS:-400}
CONCURRENCY=${BENCH_NET_CONCURRENCY:-1 4}
LAT_RUNS=${BENCH_DP_LATENCY_RUNS:-20}
DP_TIME=${BENCH_DP_TIME:-3s}
ROUNDS=${BENCH_DP_ROUNDS:-3}
[ "$(id -u)" = 0 ] || { echo "$0: the data plane benchmarks need root (network namespaces)" >&2; exit 1; }

npid=""
cleanup() {
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; fi
  rm -rf "$OUT/nimbus-data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building netbench and the data plane test binary"
go build -o "$OUT/bin/" ./bench/netbench
go test -c -o "$OUT/bin/dataplane.test" ./internal/dataplane
machine_info

# ------------------------------------------------------------------ API
status=0
wait_quiet network-api
data=$OUT/nimbus-data
say "starting nimbus up on $data"
start_nimbus "$data" up
URL=$(up_url identity)
up_url network >/dev/null
say "nimbus pid $npid at $URL"
for c in $CONCURRENCY; do
  "$OUT/bin/netbench" -auth-url "$URL" -password "$(cat "$data/admin-password")" -n $((OPS / c)) -concurrency "$c" \
    2> >(tee -a "$OUT/netbench.log" >&2) | record || { status=1; say "netbench c=$c failed"; }
done
kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; npid=""
grep -E 'level=(ERROR|WARN)' "$OUT/nimbus.log" | head -5 >&2 || true

# ------------------------------------------------------------------ data plane
# gobench ROUND ARGS...: runs the test binary's benchmarks (output to
# stderr and $OUT/dataplane-bench.txt) and records each result line as
# JSON: name, iterations and every metric by its unit.
gobench() {
  local round=$1 raw=$OUT/dataplane-bench.last; shift
  if ! (cd internal/dataplane && "$OUT/bin/dataplane.test" -test.run '^$' "$@") 2>&1 | tee "$raw" >&2; then
    status=1; say "data plane benchmarks failed (round $round)"
  fi
  cat "$raw" >>"$OUT/dataplane-bench.txt"
  awk -v round="$round" '/^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      printf "{\"mode\":\"dataplane\",\"round\":%d,\"name\":\"%s\",\"iterations\":%s", round, name, $2
      for (i = 3; i < NF; i += 2) printf ",\"%s\":%s", $(i + 1), $i
      print "}"
    }' "$raw" | record
  rm -f "$raw"
}
wait_quiet dataplane-latency
say "data plane: rule → enforced and floating IP → reachable, $LAT_RUNS iterations each"
gobench 1 -test.bench 'RuleToEnforcement|FloatingIPToReachability' -test.benchtime "${LAT_RUNS}x"
for r in $(seq 1 "$ROUNDS"); do
  wait_quiet "dataplane-throughput-$r"
  say "data plane: throughput round $r of $ROUNDS ($DP_TIME per measurement)"
  gobench "$r" -test.bench 'Throughput' -test.benchtime "$DP_TIME"
done

# ------------------------------------------------------------------ summary
python3 - "$RESULTS" "$OUT/machine.txt" >"$OUT/summary.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
med = statistics.median
print(open(sys.argv[2]).read().strip().replace("\n", "  \n"))
print()
print("| measurement | result | target | met? |")
print("|---|---|---|---|")
for r in rows:
    if r.get("mode") != "network-api":
        continue
    for op, name in (("port_create", "port create"), ("fip_associate", "floating IP associate")):
        s = r[op]
        print(f"| API {name}, c={r['concurrency']} ({s['count']} ops) | p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms, {s['per_s']:,}/s | p99 < 20 ms | {'yes' if s['p99_ms'] < 20 else 'no'} |")
dp = [r for r in rows if r.get("mode") == "dataplane"]
for bench, name, target in (("BenchmarkRuleToEnforcement", "security group rule → enforced", 200),
                            ("BenchmarkFloatingIPToReachability", "floating IP association → reachable (routed)", None)):
    for r in dp:
        if r["name"] == bench:
            mean = r["ns/op"] / 1e6
            cell = f"mean {mean:.0f} ms, p50 {r['p50-ms']:.0f} ms, max {r['max-ms']:.0f} ms ({r['iterations']} runs)"
            if target:
                print(f"| {name} | {cell} | < {target} ms | {'yes' if r['max-ms'] < target else 'no'} |")
            else:
                print(f"| {name} | {cell} | – | |")
tp = {}
for r in dp:
    if r["name"].startswith("BenchmarkThroughput/"):
        tp.setdefault(r["name"].removeprefix("BenchmarkThroughput/"), []).append(r)
for name, rs in tp.items():
    path, streams = name.split("/")
    mbs, veth, pct = [x["MB/s"] for x in rs], [x["veth-MB/s"] for x in rs], [x["%veth"] for x in rs]
    cell = f"{med(mbs):,.0f} MB/s vs veth {med(veth):,.0f} MB/s = **{med(pct):.0f} %** (rounds: {', '.join(f'{p:.0f}' for p in pct)} %)"
    nat = path in ("fip-dnat", "snat")
    print(f"| throughput {path}, {streams} | {cell} | {'≥ 80 % of veth' if nat else '–'} | {('yes' if med(pct) >= 80 else 'no') if nat else ''} |")
print("\nload averages: " + "; ".join(f"{r['label']}: {r['load']}" + (f" (waited {r['waited_s']}s)" if r['waited_s'] else "") for r in rows if r.get("mode") == "load"))
PY
say "results: $RESULTS"
say "summary: $OUT/summary.md"
cat "$OUT/summary.md"
exit $status
