# Shared by the benchmark scripts (scripts/bench*.sh): progress lines,
# waiting for a quiet machine, recording results and describing the
# machine. Source it after setting RESULTS, MAX_LOAD, WAIT_LOAD, OUT and
# NIMBUS.

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
