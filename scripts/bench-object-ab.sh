#!/usr/bin/env bash
# A/B comparison of object storage builds (docs/performance.md): runs
# bench/objbench against `nimbus up` of each binary in turn, ROUNDS times
# (A, B, A, B, ...), so that a change is judged against the binary before
# it under the same conditions.
#
#   scripts/bench-object-ab.sh ROUNDS BIN-A BIN-B [BIN...]
#
# Each run starts its binary on a fresh data dir with every listener on a
# free loopback port, waits for object storage, runs objbench, and stops
# the binary by PID. Data dirs are not deleted until the end: on ext4
# without a journal, creating inodes for minutes after a large delete
# costs two to three times its usual CPU, which would fall on whichever
# binary runs next (objbench's fs_probe_ms shows it).
#
# Options (environment):
#   AB_TESTS=small               objbench -tests (small, large, or both)
#   AB_CONCURRENCY=1,16  AB_OBJECTS=1000  AB_GET_PASSES=3
#   AB_LARGE_MIB=1024
#   BENCH_OUT=DIR                results (default: a new /tmp/nimbus-ab.*)
# Results: $BENCH_OUT/results.jsonl (the label is the binary's file name
# and the round) and a table on stdout. Nothing else may run meanwhile:
# a test run beside one binary turned a +31 % change into -9 %.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ $# -ge 3 ] || { echo "usage: $0 ROUNDS BIN-A BIN-B [BIN...]" >&2; exit 2; }
ROUNDS=$1; shift
for b in "$@"; do [ -x "$b" ] || { echo "$b: not an executable" >&2; exit 2; }; done
NIMBUS=$1
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-ab
TESTS=${AB_TESTS:-small}

npid=""
cleanup() {
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill "$npid"; wait "$npid" 2>/dev/null || true; fi
  rm -rf "$OUT"/run-*/data "$OUT"/run-*/fsprobe-*
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$OUT/bin/" ./bench/objbench
DISK=$(basename "$(findmnt -n -o SOURCE -T "$OUT" | head -1)")

for r in $(seq 1 "$ROUNDS"); do
  for b in "$@"; do
    label=$(basename "$b")-$r
    run=$OUT/run-$label
    mkdir -p "$run"
    NIMBUS=$(cd "$(dirname "$b")" && pwd)/$(basename "$b")
    start_nimbus "$run/data" up
    keystone=$(up_url identity)
    up_url "object storage" >/dev/null
    sleep 3
    "$OUT/bin/objbench" -label "$label" -auth-url "$keystone" -password "$(cat "$run/data/admin-password")" \
      -pids "$npid" -tests "$TESTS" -concurrency "${AB_CONCURRENCY:-1,16}" -objects "${AB_OBJECTS:-1000}" \
      -get-passes "${AB_GET_PASSES:-3}" -large-size $((${AB_LARGE_MIB:-1024} << 20)) \
      -fs-probe-dir "$run" -disk "$DISK" -container ab | record >/dev/null
    kill "$npid"; wait "$npid" 2>/dev/null || true
    npid=""
    sleep 5
  done
done

python3 - "$RESULTS" <<'EOF'
import json, sys
print(f"{'run':24} {'op':4} {'c':>3} {'ops/s':>9} {'MB/s':>8} {'CPU/op':>8} {'p50 ms':>7} {'flush/op':>8} {'fs ms':>6}")
for line in open(sys.argv[1]):
    d = json.loads(line)
    if "op" not in d:
        continue
    cpu = d.get("server_cpu_ms_per_op", d.get("server_cpu_s"))
    print(f"{d['label']:24} {d['op']:4} {d.get('concurrency', ''):>3} {d.get('ops_per_s', 0):9.1f} "
          f"{d.get('mb_per_s', 0):8.1f} {cpu:8.3f} {d.get('p50_ms', 0):7.2f} "
          f"{d.get('disk_flushes_per_op', 0):8.2f} {d.get('fs_probe_ms', 0):6.1f}")
EOF
echo "results: $RESULTS" >&2
