#!/usr/bin/env bash
# Compute benchmarks (docs/performance.md, "Compute"); `make build` first.
#
#   - scale (bench/computescale -mode scale): `nimbus serve` with the
#     identity, image, network and compute roles on SQLite and free
#     loopback ports, BENCH_COMPUTE_HOSTS fake compute hosts on its bus,
#     BENCH_COMPUTE_SERVERS servers booted through the API: boots/s to
#     ACTIVE, POST /servers p50/p99, GET /servers/detail at that many
#     servers, memory of the nimbus process
#   - boot (bench/computescale -mode boot, needs root and the guest image
#     of scripts/build-guest-image.sh): `nimbus up` with its agents and
#     QEMU on a temp data dir whose guest/ is BENCH_GUEST_DIR, so first-run
#     seeding registers image nimbus-guest and network private. Cold start
#     (exec → first server list, → compute and network agents up) on the
#     empty data dir and again on the same dir bootstrapped; idle memory
#     (nimbus and its descendants, plus the dnsmasq servers it started);
#     then BENCH_BOOT_SERVERS servers booted one after another: POST →
#     ACTIVE, → DHCPACK in dnsmasq's log, → the guest's lease line on its
#     console. Each server is deleted before the next.
#
# Options (environment):
#   BENCH_COMPUTE_HOSTS=1000 BENCH_COMPUTE_SERVERS=10000
#   BENCH_COMPUTE_CONCURRENCY=32   concurrent POST /servers clients
#   BENCH_COMPUTE_OWN_NATS=1       scale: the bus in the benchmark process
#                                  with no cap on consumers per stream (the
#                                  embedded one stops at ~1,000 hosts); 0
#                                  uses nimbus's embedded bus
#   BENCH_COMPUTE_PROFILE=0|1      scale: CPU profile of nimbus during the
#                                  boots ($BENCH_OUT/scale-boot.pprof)
#   BENCH_BOOT_SERVERS=5           boot: servers (the first caches the image)
#   BENCH_GUEST_DIR=/tmp/nimbus-guest-image
#   BENCH_BOOT_PREFIX=nbc          boot: NIMBUS_NETWORK_AGENT_PREFIX (host
#                                  bridges, namespaces, nftables tables)
#   BENCH_PARTS="scale boot"
#   BENCH_SETTLE=5                 seconds idle before reading memory
#   BENCH_MAX_LOAD, BENCH_WAIT_LOAD, BENCH_OUT, NIMBUS: see bench-lib.sh
#   --quick                        100 hosts, 1,000 servers, 3 boots
# Results: $BENCH_OUT/results.jsonl and $BENCH_OUT/summary.md. Only
# processes this script started are stopped, by PID; API traffic is on
# 127.0.0.1, guest traffic inside the cloud's own bridges and namespaces,
# which `nimbus manage network-cleanup` removes at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

for a in "$@"; do
  case $a in
    --quick) BENCH_COMPUTE_HOSTS=${BENCH_COMPUTE_HOSTS:-100}; BENCH_COMPUTE_SERVERS=${BENCH_COMPUTE_SERVERS:-1000}
             BENCH_BOOT_SERVERS=${BENCH_BOOT_SERVERS:-3} ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
  esac
done
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init nimbus-bench-compute
HOSTS=${BENCH_COMPUTE_HOSTS:-1000}
SERVERS=${BENCH_COMPUTE_SERVERS:-10000}
CONC=${BENCH_COMPUTE_CONCURRENCY:-32}
OWN_NATS=${BENCH_COMPUTE_OWN_NATS:-1}
PROFILE=${BENCH_COMPUTE_PROFILE:-0}
BOOTS=${BENCH_BOOT_SERVERS:-5}
GUEST_DIR=${BENCH_GUEST_DIR:-/tmp/nimbus-guest-image}
PREFIX=${BENCH_BOOT_PREFIX:-nbc}
PARTS=${BENCH_PARTS:-scale boot}
SETTLE=${BENCH_SETTLE:-5}

npid="" data=$OUT/nimbus-data
cleanup() {
  if [ -n "$npid" ] && kill -0 "$npid" 2>/dev/null; then kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; fi
  if [ -d "$data" ]; then
    # The DHCP servers' logs, hosts and leases, to explain a missing lease.
    for d in "$data"/dataplane/dhcp/*/; do
      [ -d "$d" ] && mkdir -p "$OUT/dhcp/$(basename "$d")" && cp "$d"dnsmasq.log "$d"hosts "$d"leases "$OUT/dhcp/$(basename "$d")/" 2>/dev/null || true
    done
    NIMBUS_NETWORK_AGENT_PREFIX=$PREFIX "$NIMBUS" manage network-cleanup --data-dir "$data" >/dev/null 2>&1 ||
      say "network-cleanup failed: host state of prefix $PREFIX left behind"
    if pgrep -f "qemu-system.*$data/" >/dev/null; then say "QEMU processes of $data are still running"; fi
    rm -rf "$data"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building computescale and coldstart"
go build -o "$OUT/bin/" ./bench/computescale ./bench/coldstart
CS=$OUT/bin/computescale
machine_info
status=0

# ------------------------------------------------------------------ scale
if [[ " $PARTS " == *" scale "* ]]; then
  wait_quiet compute-scale
  say "scale: $HOSTS fake hosts, $SERVERS servers, $CONC clients"
  args=(-mode scale -nimbus "$NIMBUS" -hosts "$HOSTS" -servers "$SERVERS" -concurrency "$CONC" -log "$OUT/scale-nimbus.log")
  [ "$OWN_NATS" = 1 ] && args+=(-own-nats)
  [ "$PROFILE" = 1 ] && args+=(-cpuprofile "$OUT/scale-boot.pprof")
  "$CS" "${args[@]}" 2> >(tee -a "$OUT/computescale.log" >&2) | record || { status=1; say "scale run failed"; }
fi

# ------------------------------------------------------------------ boot
# up_boot LABEL N: starts `nimbus up` on $data with agents and seeding,
# times its cold start, records idle memory, boots N servers, stops it.
up_boot() {
  local label=$1 n=$2 started
  wait_quiet "compute-boot-$label"
  started=$(date +%s%N)
  NIMBUS_SEED=1 NIMBUS_NETWORK_AGENT_PREFIX=$PREFIX start_nimbus "$data" up
  local url
  url=$(up_url identity)
  "$CS" -mode boot -auth-url "$url" -password-file "$data/admin-password" -n 0 -started-ns "$started" \
    2> >(tee -a "$OUT/computeboot.log" >&2) | sed "s/^{/{\"label\":\"$label\",\"phase\":\"coldstart\",/" | record
  sed -n 's/^Nimbus is up in \(.*\)\.$/{"mode":"up-printed","label":"'"$label"'","up":"\1"}/p' "$OUT/nimbus.out" | record
  sleep "$SETTLE"
  "$OUT/bin/coldstart" -rss "$npid" -label nimbus -phase "idle-$label" | record
  # dnsmasq daemonises, so it is not nimbus's descendant; its pid files
  # are in the network agent's state dir.
  for f in "$data"/dataplane/dhcp/*/pid; do
    [ -s "$f" ] && "$OUT/bin/coldstart" -rss "$(cat "$f")" -label dnsmasq -phase "idle-$label" | record
  done
  if [ "$n" -gt 0 ]; then
    say "boot: $n servers one after another"
    "$CS" -mode boot -auth-url "$url" -password-file "$data/admin-password" -n "$n" \
      -dnsmasq-log "$data/dataplane/dhcp/*/dnsmasq.log" 2> >(tee -a "$OUT/computeboot.log" >&2) |
      sed "s/^{/{\"label\":\"$label\",/" | record || { status=1; say "boot run failed"; }
    "$OUT/bin/coldstart" -rss "$npid" -label nimbus -phase "after-boots-$label" | record
  fi
  kill -TERM "$npid"; wait "$npid" 2>/dev/null || true; npid=""
}
if [[ " $PARTS " == *" boot "* ]]; then
  if [ "$(id -u)" != 0 ]; then
    say "boot: skipped, needs root (QEMU, bridges, namespaces)"
  elif [ ! -s "$GUEST_DIR/nimbus-guest.qcow2" ]; then
    say "boot: skipped, no guest image in $GUEST_DIR (scripts/build-guest-image.sh)"
  else
    mkdir -p "$data" && ln -s "$GUEST_DIR" "$data/guest"
    say "boot: nimbus up on an empty data dir (guest image from $GUEST_DIR, prefix $PREFIX)"
    up_boot empty "$BOOTS"
    say "boot: nimbus up again on the same data dir"
    up_boot bootstrapped 0
  fi
fi

# ------------------------------------------------------------------ summary
python3 - "$RESULTS" "$OUT/machine.txt" >"$OUT/summary.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
print(open(sys.argv[2]).read().strip().replace("\n", "  \n"))
print()
print("| measurement | Nimbus | target | Nova 26 + Neutron (reference) | met? |")
print("|---|---|---|---|---|")
def row(name, val, target="–", nova="–", met=""):
    print(f"| {name} | {val} | {target} | {nova} | {met} |")
def yes(ok): return "yes" if ok else "no"
for r in rows:
    if r.get("mode") == "compute-scale":
        h, s = r["hosts"], r["servers"]
        bus = "own NATS, no consumer cap" if r["own_nats"] else "embedded NATS"
        row(f"boots/s to ACTIVE, {h:,} fake hosts, {s:,} servers, c={r['concurrency']} ({bus}; load {r['load_boot']})",
            f"**{r['boots_per_s']}/s** ({r['boot_wall_s']} s)", "≥ 50/s", "≈ 5/s (published, larger hardware)", yes(r["boots_per_s"] >= 50))
        p = r["post_servers"]; a = r["post_to_active"]
        row("POST /servers latency", f"p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms; {r['post_errors']} failed, {r['not_active']} not ACTIVE")
        row("POST → ACTIVE under that load", f"p50 {a['p50_ms']} ms, p99 {a['p99_ms']} ms")
        for k, name in (("detail_default", "default page"), ("detail_limit1000", "limit=1000"), ("detail_all_pages", "all pages")):
            d = r[k]
            tgt, nova, met = ("≤ 200 ms", "median 14 s (published)", yes(d["p50_ms"] <= 200)) if k != "detail_all_pages" else ("–", "–", "")
            row(f"GET /servers/detail at {s:,}, {name} ({d['servers_per_call']:,} servers/call, {d['count']} calls)",
                f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms", tgt, nova, met)
        row("nimbus serve VmRSS: idle with hosts / after boots / peak",
            f"{r['rss_idle_hosts_mib']} / {r['rss_after_boot_mib']} / {r['rss_peak_mib']} MiB")
for r in rows:
    if r.get("mode") == "compute-boot" and r.get("phase") == "coldstart":
        row(f"cold start ({r['label']} data dir): exec → first server list / → compute + network agents up",
            f"{r['cold_first_server_list_s']} s / {r['cold_agents_up_s']} s", "–", "28–31 s / 43 s")
for r in rows:
    if r.get("mode") == "compute-boot" and r.get("phase") != "coldstart":
        first = r["runs"][0] if r["runs"] else None
        a, k, c = r["cached_active"], r["cached_dhcpack"], r["cached_console_lease"]
        if first:
            row("first boot (image not cached): POST → ACTIVE / → DHCPACK / → console lease line",
                f"{first['active_s']} / {first['dhcpack_s']} / {first['console_lease_s']} s")
        if a.get("count"):
            row(f"POST → ACTIVE, image cached (p50 of {a['count']})", f"**{a['p50_ms']/1000:.2f} s** (max {a['max_ms']/1000:.2f})",
                "≤ 1 s", "3.64 s", yes(a["p50_ms"] <= 1000))
            row(f"POST → DHCPACK in dnsmasq's log (p50 of {k['count']})", f"**{k['p50_ms']/1000:.2f} s** (max {k['max_ms']/1000:.2f})",
                "≤ 3.5 s (TCG)", "7.95 s", yes(k["p50_ms"] <= 3500))
            row(f"POST → guest's lease line via console log API (p50 of {c['count']})", f"{c['p50_ms']/1000:.2f} s (max {c['max_ms']/1000:.2f})")
mem = {}
for r in rows:
    if r.get("mode") == "rss":
        m = mem.setdefault(r["phase"], {"procs": 0, "rss": 0, "pss": 0, "nimbus": 0})
        m["procs"] += r["procs"]; m["rss"] += r["rss_kib"]; m["pss"] += r["pss_kib"]
        if r["label"] == "nimbus": m["nimbus"] = r["rss_kib"]
for phase, m in mem.items():
    idle = phase.startswith("idle")
    row(f"memory, {phase}: nimbus VmRSS / all {m['procs']} processes (nimbus tree + dnsmasq) RSS, PSS",
        f"{m['nimbus']/1024:.1f} MiB / {m['rss']/1024:.1f} MiB, {m['pss']/1024:.1f} MiB",
        "< 50 MiB (compute + network roles)" if idle else "–", "4,719 MiB in 44 processes" if idle else "–", "")
print("\nload averages: " + "; ".join(f"{r['label']}: {r['load']}" + (f" (waited {r['waited_s']}s)" if r['waited_s'] else "") for r in rows if r.get("mode") == "load"))
PY
say "results: $RESULTS"
say "summary: $OUT/summary.md"
cat "$OUT/summary.md"
exit $status
