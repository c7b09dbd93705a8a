#!/usr/bin/env bash
# Identity benchmarks (docs/performance.md). Run by `make bench`, which
# builds bin/nimbus first.
#
# Against a `nimbus up` on a temp data dir and free loopback ports:
#   - cold start: exec of `nimbus up` to the first token, empty and
#     bootstrapped data dir, and idle VmRSS (bench/coldstart)
#   - token issue (repeated password login) and token validation at
#     concurrency 1 and 16, and the first login of fresh users (bench/loadgen)
#   - VmRSS idle and after the load
# With --keystone (or BENCH_KEYSTONE=1) the same against Keystone 22 from
# Debian, brought up by /work/shared/reference/ref-up.sh in a private state
# dir and stopped again by ref-down.sh.
#
# Options (environment):
#   BENCH_DURATION=15s        measured time per load test
#   BENCH_CONCURRENCY="1 16"  concurrencies for issue and validate
#   BENCH_FIRST_LOGIN_USERS=20
#   BENCH_COLDSTART_RUNS=5
#   BENCH_SETTLE=5            seconds idle before reading RSS
#   BENCH_KEYSTONE=0|1        also measure the reference Keystone (--keystone)
#   BENCH_PROFILE=0|1         perf-record Nimbus during the c=16 runs (--profile)
#   BENCH_MAX_LOAD=1.5        wait (up to BENCH_WAIT_LOAD=300 s) until the
#                             1-minute load average is below this before each part
#   BENCH_OUT=DIR             where results go (default: a new /tmp/nimbus-bench.*)
#   NIMBUS=bin/nimbus
# Results: $BENCH_OUT/results.jsonl (one JSON object per measurement) and
# $BENCH_OUT/summary.md. Only processes this script started are stopped,
# by PID; all traffic is on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

for a in "$@"; do
  case $a in
    --keystone) BENCH_KEYSTONE=1 ;;
    --no-keystone) BENCH_KEYSTONE=0 ;;
    --profile) BENCH_PROFILE=1 ;;
    --quick) BENCH_DURATION=${BENCH_DURATION:-3s}; BENCH_COLDSTART_RUNS=${BENCH_COLDSTART_RUNS:-1}; BENCH_FIRST_LOGIN_USERS=${BENCH_FIRST_LOGIN_USERS:-3}; BENCH_SETTLE=${BENCH_SETTLE:-2} ;;
    *) echo "usage: $0 [--keystone|--no-keystone] [--profile] [--quick]" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-bench
DURATION=${BENCH_DURATION:-15s}
CONCURRENCY=${BENCH_CONCURRENCY:-1 16}
FL_USERS=${BENCH_FIRST_LOGIN_USERS:-20}
CS_RUNS=${BENCH_COLDSTART_RUNS:-5}
SETTLE=${BENCH_SETTLE:-5}
KEYSTONE=${BENCH_KEYSTONE:-0}
PROFILE=${BENCH_PROFILE:-0}
REF=${BENCH_REF_SCRIPTS:-/work/shared/reference}

npid="" perfpid="" ks_started=""
cleanup() {
  [ -n "$perfpid" ] && kill -INT "$perfpid" 2>/dev/null && wait "$perfpid" 2>/dev/null
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; fi
  if [ -n "$ks_started" ]; then NIMBUS_REF_DIR=$OUT/ref "$REF/ref-down.sh" keystone >/dev/null 2>&1 || true; fi
  [ -d "$OUT/ref/log" ] && rm -rf "$OUT/keystone-log" && mv "$OUT/ref/log" "$OUT/keystone-log"
  rm -rf "$OUT/nimbus-data" "$OUT/ref"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building load generator and cold-start tool"
go build -o "$OUT/bin/" ./bench/loadgen ./bench/coldstart
LOADGEN=$OUT/bin/loadgen COLDSTART=$OUT/bin/coldstart

machine_info

BENCH_PW="Bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"

# create_bench_user ENV-FILE: project "bench", user "bench" with role member
# there, through the OpenStack CLI like an operator would.
create_bench_user() {
  (
    set -e
    # shellcheck disable=SC1090
    source "$1"
    export OS_CLIENT_CONFIG_FILE=/dev/null
    /usr/bin/openstack project create bench -f value -c id >/dev/null
    /usr/bin/openstack user create --password "$BENCH_PW" --project bench bench -f value -c id >/dev/null
    /usr/bin/openstack role add --project bench --user bench member
  )
}

# run_loads LABEL URL ADMIN-PASSWORD SERVER-PID
run_loads() {
  local label=$1 url=$2 apw=$3 pid=$4 mode c status=0
  for mode in issue validate; do
    for c in $CONCURRENCY; do
      local perfing=""
      if [ "$PROFILE" = 1 ] && [ "$label" = nimbus ] && [ "$c" -gt 1 ]; then
        perf record -F 499 -g -p "$pid" -o "$OUT/perf-$mode-c$c.data" -- sleep "${DURATION%s}" >/dev/null 2>"$OUT/perf-$mode-c$c.log" &
        perfpid=$!; perfing=1
      fi
      "$LOADGEN" -label "$label" -url "$url" -user bench -password "$BENCH_PW" -project bench \
        -admin-password "$apw" -mode "$mode" -concurrency "$c" -duration "$DURATION" -warmup 1s -pids "$pid" \
        2> >(tee -a "$OUT/loadgen.log" >&2) | record || { status=1; say "$label $mode c=$c had errors (see above)"; }
      if [ -n "$perfing" ]; then
        wait "$perfpid" || true; perfpid=""
        perf report -i "$OUT/perf-$mode-c$c.data" --stdio --no-children --sort symbol --percent-limit 0.7 2>/dev/null \
          | grep -v '^$' | head -150 >"$OUT/perf-$mode-c$c.txt" || true
        say "CPU profile of Nimbus: $OUT/perf-$mode-c$c.txt"
      fi
      sleep 1
    done
  done
  "$LOADGEN" -label "$label" -url "$url" -user bench -password "$BENCH_PW" -project bench \
    -admin-password "$apw" -mode first-login -users "$FL_USERS" \
    2> >(tee -a "$OUT/loadgen.log" >&2) | record || { status=1; say "$label first-login had errors"; }
  return $status
}

# ------------------------------------------------------------------ Nimbus
wait_quiet nimbus-coldstart
say "Nimbus cold start ($CS_RUNS runs; settle ${SETTLE}s for RSS)"
"$COLDSTART" -label nimbus -nimbus "$NIMBUS" -runs "$CS_RUNS" -settle "${SETTLE}s" | record

wait_quiet nimbus
say "starting nimbus up on $OUT/nimbus-data"
data=$OUT/nimbus-data
start_nimbus "$data" up
URL=$(up_url identity)
say "nimbus pid $npid at $URL"
sleep "$SETTLE"
"$COLDSTART" -rss "$npid" -label nimbus -phase idle | record
create_bench_user "$data/admin-openrc.sh"
if command -v sqlite3 >/dev/null; then
  kdf=$(sqlite3 -readonly "$data/nimbus.db" "SELECT substr(password_hash, 1, 21) FROM users WHERE name = 'bench'" 2>/dev/null || true)
  echo "{\"mode\":\"kdf\",\"label\":\"nimbus\",\"stored_prefix\":\"$kdf\"}" | record
fi
nstatus=0
run_loads nimbus "$URL" "$(cat "$data/admin-password")" "$npid" || nstatus=1
sleep "$SETTLE"
"$COLDSTART" -rss "$npid" -label nimbus -phase after-load | record
kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; npid=""
grep -E 'level=(ERROR|WARN)' "$OUT/nimbus.log" | head -5 >&2 || true

# ------------------------------------------------------------------ Keystone
kstatus=0
if [ "$KEYSTONE" = 1 ]; then
  export NIMBUS_REF_DIR=$OUT/ref
  if (exec 3<>/dev/tcp/127.0.0.1/35357) 2>/dev/null; then
    say "port 35357 is already in use (another Keystone?); skipping Keystone"
    echo '{"mode":"skipped","label":"keystone","why":"port 35357 in use"}' | record
  else
    say "Keystone: installing Debian packages if needed"
    "$REF/install.sh" >&2
    wait_quiet keystone-coldstart
    # ref-up.sh re-runs install.sh (a dpkg check) first; time that alone.
    t=$(date +%s.%N); "$REF/install.sh" >/dev/null; check_s=$(echo "$(date +%s.%N) - $t" | bc)
    say "Keystone cold start on an empty state dir (db_sync, fernet_setup, bootstrap, start)"
    ks_started=1
    t=$(date +%s.%N); "$REF/ref-up.sh" keystone >"$OUT/ref-up.log" 2>&1 || { cat "$OUT/ref-up.log" >&2; exit 1; }
    empty_s=$(echo "$(date +%s.%N) - $t - $check_s" | bc)
    boots=""
    for _ in $(seq 1 "$CS_RUNS"); do
      "$REF/ref-down.sh" keystone >/dev/null
      r=$("$REF/ref-up.sh" keystone 2>&1 | sed -n 's/.*"ready_s":\([0-9.]*\).*/\1/p')
      boots="$boots $r"
    done
    echo "{\"mode\":\"coldstart\",\"label\":\"keystone\",\"runs\":$CS_RUNS,\"empty_first_token_ms_median\":$(echo "$empty_s * 1000" | bc),\"boot_first_token_s\":\"${boots# }\",\"boot_first_token_ms_median\":$(printf '%s\n' $boots | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; print m*1000}'),\"note\":\"empty = ref-up.sh wall time minus its ${check_s}s package check; bootstrapped = ref-up.sh ready_s (uwsgi start to first unscoped token, polled every 0.1 s)\"}" | record
    kpid=$(cat "$NIMBUS_REF_DIR/pids/keystone.pid")
    say "keystone pid $kpid (uwsgi master; workers are its children)"
    sleep "$SETTLE"
    "$COLDSTART" -rss "$kpid" -label keystone -phase idle | record
    cat >"$OUT/keystone-openrc.sh" <<EOF
export OS_AUTH_URL=http://127.0.0.1:35357/v3 OS_IDENTITY_API_VERSION=3 OS_USERNAME=admin OS_PASSWORD=adminpass
export OS_PROJECT_NAME=admin OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
EOF
    create_bench_user "$OUT/keystone-openrc.sh"
    kdf=$(sqlite3 -readonly "$NIMBUS_REF_DIR/keystone/keystone.db" "SELECT substr(p.password_hash, 1, 7) FROM password p JOIN local_user l ON p.local_user_id = l.id WHERE l.name = 'bench'" 2>/dev/null || true)
    echo "{\"mode\":\"kdf\",\"label\":\"keystone\",\"stored_prefix\":\"$kdf\"}" | record
    wait_quiet keystone
    run_loads keystone http://127.0.0.1:35357/v3 adminpass "$kpid" || kstatus=1
    sleep "$SETTLE"
    "$COLDSTART" -rss "$kpid" -label keystone -phase after-load | record
    "$REF/ref-down.sh" keystone >&2; ks_started=""
  fi
fi

# ------------------------------------------------------------------ summary
python3 - "$RESULTS" "$OUT/machine.txt" >"$OUT/summary.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def get(label, mode, **kw):
    for r in rows:
        if r.get("label") == label and r.get("mode") == mode and all(r.get(k) == v for k, v in kw.items()):
            return r
    return None
def f(v, unit=""):
    if v is None: return "–"
    if isinstance(v, float) and v >= 100: v = round(v)
    elif isinstance(v, float): v = round(v, 2)
    return f"{v:,}{unit}"
def ratio(n, k, higher_better):
    if n in (None, 0) or k in (None, 0): return "–"
    return f"{(n / k if higher_better else k / n):,.1f}×"
print(open(sys.argv[2]).read().strip().replace("\n", "  \n"))
print()
print("| measurement | Nimbus | Keystone | Nimbus advantage |")
print("|---|---:|---:|---:|")
for mode in ("issue", "validate"):
    for c in sorted({r["concurrency"] for r in rows if r.get("mode") == mode}):
        n, k = get("nimbus", mode, concurrency=c), get("keystone", mode, concurrency=c)
        for key, name, hb in (("rps", "req/s", True), ("p50_ms", "p50 ms", False), ("p99_ms", "p99 ms", False), ("errors", "errors", None)):
            nv, kv = n and n[key], k and k[key]
            print(f"| {mode} c={c} {name} | {f(nv)} | {f(kv)} | {ratio(nv, kv, hb) if hb is not None else ''} |")
n, k = get("nimbus", "first-login"), get("keystone", "first-login")
for key, name in (("first_login_mean_ms", "first login (fresh user) mean ms"), ("first_login_p50_ms", "first login p50 ms"),
                  ("second_login_mean_ms", "second login mean ms"), ("user_create_mean_ms", "user create mean ms")):
    print(f"| {name} | {f(n and n[key])} | {f(k and k[key])} | {ratio(n and n[key], k and k[key], False)} |")
n, k = get("nimbus", "coldstart"), get("keystone", "coldstart")
for key, name in (("empty_first_token_ms_median", "cold start to first token, empty data dir, ms"),
                  ("boot_first_token_ms_median", "cold start to first token, bootstrapped, ms")):
    print(f"| {name} | {f(n and n.get(key))} | {f(k and k.get(key))} | {ratio(n and n.get(key), k and k.get(key), False)} |")
n = get("nimbus", "coldstart")
if n:
    print(f"| `nimbus up` prints \"up\", empty / bootstrapped data dir, ms | {f(n['empty_up_ms_median'])} / {f(n['boot_up_ms_median'])} | | |")
for phase in ("idle", "after-load"):
    n, k = get("nimbus", "rss", phase=phase), get("keystone", "rss", phase=phase)
    nm = n and n["rss_kib"] / 1024
    kcell, kp = "–", None
    if k:
        kp = k["pss_kib"] / 1024
        kcell = f"{f(k['rss_kib'] / 1024)} RSS sum / {f(kp)} PSS, {k['procs']} processes"
    print(f"| memory {phase}, MiB (Nimbus: VmRSS) | {f(nm)} | {kcell} | {ratio(nm, kp, False)} |")
for label in ("nimbus", "keystone"):
    r = get(label, "kdf")
    if r: print(f"\nstored password hash of the bench user ({label}) begins `{r['stored_prefix']}`", end="")
print("\n\nload averages: " + "; ".join(f"{r['label']}: {r['load']}" + (f" (waited {r['waited_s']}s)" if r['waited_s'] else "") for r in rows if r.get("mode") == "load"))
PY
say "results: $RESULTS"
say "summary: $OUT/summary.md"
cat "$OUT/summary.md"
[ $nstatus = 0 ] && [ $kstatus = 0 ]
