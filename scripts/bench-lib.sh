# Shared by the benchmark scripts (scripts/bench*.sh): their common
# settings and output dir, starting Nimbus on free ports, progress lines,
# waiting for a quiet machine, recording results and describing the
# machine. Source it, then call bench_init.

# bench_init NAME: the settings every script takes (NIMBUS, BENCH_MAX_LOAD,
# BENCH_WAIT_LOAD, BENCH_OUT; see each script's header), the output dir
# (a new /tmp/NAME.* unless BENCH_OUT is set) and an empty results file.
bench_init() {
  NIMBUS=${NIMBUS:-bin/nimbus}
  MAX_LOAD=${BENCH_MAX_LOAD:-1.5}
  WAIT_LOAD=${BENCH_WAIT_LOAD:-300}
  OUT=${BENCH_OUT:-$(mktemp -d "/tmp/$1.XXXXXX")}
  mkdir -p "$OUT/bin"
  OUT=$(cd "$OUT" && pwd)
  RESULTS=$OUT/results.jsonl
  : >"$RESULTS"
  [ -x "$NIMBUS" ] || { echo "$NIMBUS not built (make build)" >&2; exit 1; }
  NIMBUS=$(cd "$(dirname "$NIMBUS")" && pwd)/$(basename "$NIMBUS")
}

# start_nimbus DATA-DIR CMD...: runs nimbus in the background with every
# listener on a free loopback port (so that it never meets another
# engineer's cloud), stdout to $OUT/nimbus.out, log to $OUT/nimbus.log; its
# PID is in npid, for the caller's cleanup. First-run seeding is off unless
# NIMBUS_SEED says otherwise, and so is the volume agent unless
# NIMBUS_VOLUME_AGENT says otherwise: its NBD server has a fixed port and
# outlives nimbus, so two benchmarks in a row would collide on it.
start_nimbus() {
  local data=$1; shift
  NIMBUS_IDENTITY_PORT=0 NIMBUS_IMAGE_PORT=0 NIMBUS_NATS_PORT=0 NIMBUS_NETWORK_PORT=0 NIMBUS_COMPUTE_PORT=0 NIMBUS_METADATA_PORT=0 NIMBUS_NOVNCPROXY_PORT=0 NIMBUS_SERIALPROXY_PORT=0 NIMBUS_OBJECT_PORT=0 NIMBUS_STORAGE_OBJECT_PORT=0 NIMBUS_STORAGE_CONTAINER_PORT=0 NIMBUS_STORAGE_ACCOUNT_PORT=0 NIMBUS_VOLUME_PORT=0 NIMBUS_VOLUME_AGENT=${NIMBUS_VOLUME_AGENT:-off} NIMBUS_SEED=${NIMBUS_SEED:-0} \
    "$NIMBUS" "$@" --data-dir "$data" >"$OUT/nimbus.out" 2>>"$OUT/nimbus.log" &
  npid=$!
}

# up_url SERVICE: waits (up to 30 s) until the `nimbus up` of start_nimbus
# prints SERVICE's URL (identity, image, network, ...) and prints it; fails
# with Nimbus's output when it never comes.
up_url() {
  local url=""
  for _ in $(seq 1 300); do
    url=$(sed -n "s/^  $1: *//p" "$OUT/nimbus.out" 2>/dev/null)
    [ -n "$url" ] && break
    kill -0 "$npid" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "nimbus up did not start (no $1 URL):" >&2; cat "$OUT/nimbus.out" "$OUT/nimbus.log" >&2; return 1; }
  echo "$url"
}

say() { echo "== $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

# wait_quiet LABEL [TIMEOUT]: other work shares the cores; give it a
# chance to finish (up to TIMEOUT s, default WAIT_LOAD) and record what the
# load was.
wait_quiet() {
  local waited=0 limit=${2:-$WAIT_LOAD}
  while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN{exit !(l >= m)}'; do
    if [ "$waited" -ge "$limit" ]; then say "load average still $(load1) after ${limit}s; going on (noted in the results)"; break; fi
    [ "$waited" = 0 ] && say "load average $(load1) >= $MAX_LOAD; waiting up to ${limit}s"
    sleep 10; waited=$((waited + 10))
  done
  echo "{\"mode\":\"load\",\"label\":\"$1\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"waited_s\":$waited}" >>"$RESULTS"
}

record() { tee -a "$RESULTS"; }

# machine_info [EXTRA-LINE-COMMAND]: writes $OUT/machine.txt (and stderr):
# when, which commit and binary, the hardware, and the load at the start.
machine_info() {
  {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null) ($(git describe --always --dirty 2>/dev/null))"
    echo "nimbus: $("$NIMBUS" version 2>/dev/null)"
    echo "cpu: $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
    echo "ram: $(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "kernel: $(uname -r)"
    [ $# -gt 0 ] && "$@"
    echo "go: $(go version | cut -d' ' -f3)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$OUT/machine.txt" >&2
}
