#!/usr/bin/env bash
# Tempest conformance run against a throwaway `nimbus up` (docs/conformance.md).
#
# Usage: scripts/conformance.sh [SUITE] [-- EXTRA TEMPEST RUN ARGS...]
#   identity          every Tempest identity API test (default):
#                     tempest run --regex '^tempest\.api\.identity'
#   interop-identity  the 7 identity tests the interop guideline 2020.06 requires:
#                     tempest run --include-list interop-2020.06/identity.txt
#   all               every suite here, one after the other (one Nimbus each)
#   image             every Tempest image API test (glance available)
#   interop-image     the 20 image tests the interop guideline 2020.06 requires
#   image-import      every image test with the features Tempest leaves off
#                     by default turned on (import_image, manage_locations,
#                     os_glance_reserved), a loopback file server for
#                     http_image, and Nimbus allowing 127.0.0.1 for it
#   network           every Tempest network API test (neutron available; an
#                     external network "public" is created first with the
#                     openstack CLI and given as public_network_id)
#   interop-network   the 61 network tests the interop guideline 2020.06
#                     requires
#   identity-extended the v3 identity tests with the two features Tempest
#                     leaves off by default turned on (access_rules,
#                     security_compliance) and Nimbus configured to match
#                     Tempest's user_lockout_* / unique password defaults
#   compute           every Tempest compute API test (nova, neutron, glance
#                     available; real QEMU guests booted from the test
#                     guest image, uploaded twice as image_ref/image_ref_alt)
#   interop-compute   the 75 compute tests the interop guideline 2020.06
#                     requires
#   volume            every Tempest block storage API test (cinder, nova,
#                     neutron, glance available, as for compute)
#   interop-volume    the 54 volume tests the interop guideline 2020.06
#                     requires
#   object            every Tempest object storage API test (swift
#                     available; the proxy and a 3-device storage node
#                     of `nimbus up`)
#   interop-object    the 56 object storage tests the interop guideline
#                     2020.06 requires
#   swift-functional  Swift's own functional suite (openstack/swift 2.30.1
#                     test/functional, pytest) with keystone v3 auth:
#                     test/swift-functional/run.sh (SWIFT_SRC)
#
# Nimbus runs with its networking and compute agents (on by default as
# root): their bridges and namespaces are named with AGENT_PREFIX, and the
# exit trap stops leftover guests of the run and removes them
# (nimbus manage network-cleanup).
#
# Environment:
#   CONCURRENCY=2        tempest workers
#   RESULTS_DIR=test/tempest/results   results go to RESULTS_DIR/SUITE/
#   RUN_TIMEOUT=2700     seconds before the whole tempest run is killed
#   OS_TEST_TIMEOUT=300  seconds per test (Tempest's own per-test timeout)
#   INTEROP_DIR          default ../shared/conformance/interop-2020.06
#   NIMBUS=bin/nimbus    the binary (make conformance builds it first)
#   KEEP_WORKSPACE=1     keep the temp data dir and Tempest workspace
#   TEMPEST_CONF_TEMPLATE=test/tempest/tempest.conf.in
#   AGENT_PREFIX=cNNN    NIMBUS_NETWORK_AGENT_PREFIX of the run's agents
#                        (default "c" and 3 hex digits of the script's PID,
#                        so that concurrent runs never share one: the
#                        exit trap removes everything with the prefix)
#   VXLAN_RANGE=N:N+999  network.vxlan_ranges of the run's cloud (default
#                        a range of 1000 ids above 100000 picked by PID,
#                        away from other clouds' and runs' VNIs)
#   GUEST_IMAGE_DIR=/var/cache/nimbus-guest  where scripts/build-guest-image.sh
#                        builds (once) the guest image and probe kernel
#   NBD_PORT             the volume agent's NBD port (default a free one)
#
# Prints "N passed, N failed, N skipped" per suite and exits non-zero if a
# test failed or the run did not complete.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# Debian's tempest and openstackclient live under /usr/bin; a pyenv python3
# earlier on PATH lacks their modules.
export PATH=/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/go/bin:$PATH
export PYTHON=/usr/bin/python3
TEMPEST=${TEMPEST:-/usr/bin/tempest}
NIMBUS=${NIMBUS:-bin/nimbus}
CONCURRENCY=${CONCURRENCY:-2}
RESULTS_DIR=${RESULTS_DIR:-test/tempest/results}
RUN_TIMEOUT=${RUN_TIMEOUT:-2700}
export OS_TEST_TIMEOUT=${OS_TEST_TIMEOUT:-300}
INTEROP_DIR=${INTEROP_DIR:-$repo/../shared/conformance/interop-2020.06}
AGENT_PREFIX=${AGENT_PREFIX:-$(printf 'c%03x' $(($$ % 4096)))}
vni_base=$((100000 + ($$ % 4096) * 1000))
VXLAN_RANGE=${VXLAN_RANGE:-$vni_base:$((vni_base + 999))}
GUEST_IMAGE_DIR=${GUEST_IMAGE_DIR:-/var/cache/nimbus-guest}
# The volume agent's NBD server gets a free port of its own, away from
# another cloud's 10809.
NBD_PORT=${NBD_PORT:-$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
# The agents' host objects (bridges, namespaces, nftables tables) get a
# prefix of their own, so the trap below removes exactly this run's.
export NIMBUS_NETWORK_AGENT_PREFIX=$AGENT_PREFIX

suite=${1:-identity}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
extra=("$@")

case "$suite" in
identity | interop-identity) ;;
image | interop-image)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-image.conf.in}
  ;;
image-import)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-image-import.conf.in}
  export NIMBUS_IMAGE_SHOW_MULTIPLE_LOCATIONS=true NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOWED_HOSTS=127.0.0.1
  # An image cache in the throwaway data dir (set below), with a short
  # prefetch interval so Tempest's caching test does not wait minutes.
  export NIMBUS_IMAGE_CACHE_PREFETCH_INTERVAL=5s
  image_cache=1
  file_server=1
  ;;
network | interop-network)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-network.conf.in}
  public_network=1
  ;;
compute | interop-compute)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-compute.conf.in}
  public_network=1
  guest_images=1
  ;;
volume | interop-volume)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-volume.conf.in}
  public_network=1
  guest_images=1
  ;;
swift-functional)
  # domain_remap on, with the storage domain Swift's in-process functional
  # setup uses; run.sh writes it to test.conf, where the tests read it
  # (they connect to the proxy's address and send Host: <account>.example.net).
  export NIMBUS_OBJECT_STORAGE_DOMAIN=example.net SWIFT_STORAGE_DOMAIN=example.net
  ;;
object | interop-object)
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-object.conf.in}
  ;;
identity-extended)
  export NIMBUS_LOCKOUT_FAILURES=2 NIMBUS_LOCKOUT_DURATION=5s NIMBUS_UNIQUE_LAST_PASSWORD_COUNT=2
  export TEMPEST_CONF_TEMPLATE=${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest-extended.conf.in}
  ;;
all)
  rc=0
  for s in identity interop-identity image image-import interop-image network interop-network interop-compute compute interop-volume volume interop-object object swift-functional; do
    "$0" "$s" -- "${extra[@]}" || rc=1
  done
  exit $rc
  ;;
-h | --help | help) sed -n '2,64p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
*) echo "usage: $0 [identity|interop-identity|identity-extended|image|interop-image|image-import|network|interop-network|compute|interop-compute|volume|interop-volume|object|interop-object|swift-functional|all] [-- tempest run args]" >&2; exit 2 ;;
esac

scripts/install-deps.sh conformance || exit 1
[ -x "$TEMPEST" ] || { echo "tempest not found at $TEMPEST (apt-get install tempest)" >&2; exit 1; }
[ -x "$NIMBUS" ] || { echo "$NIMBUS not built (make build)" >&2; exit 1; }

case "$suite" in
identity) selector=(--regex '^tempest\.api\.identity') ;;
identity-extended) selector=(--regex '^tempest\.api\.identity\.(v3|admin\.v3)\.') ;;
image | image-import) selector=(--regex '^tempest\.api\.image') ;;
interop-image)
  list="$INTEROP_DIR/image.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/image.txt")
  ;;
network) selector=(--regex '^tempest\.api\.network') ;;
interop-network)
  list="$INTEROP_DIR/network.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/network.txt")
  ;;
compute) selector=(--regex '^tempest\.api\.compute') ;;
interop-compute)
  list="$INTEROP_DIR/compute.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/compute.txt")
  ;;
volume) selector=(--regex '^tempest\.api\.volume') ;;
interop-volume)
  list="$INTEROP_DIR/volume.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/volume.txt")
  ;;
object) selector=(--regex '^tempest\.api\.object_storage') ;;
interop-object)
  list="$INTEROP_DIR/object_storage.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/object_storage.txt")
  ;;
interop-identity)
  list="$INTEROP_DIR/identity.txt"
  [ -f "$list" ] || { echo "interop list not found: $list (set INTEROP_DIR)" >&2; exit 1; }
  selector=(--include-list "$(cd "$(dirname "$list")" && pwd)/identity.txt")
  ;;
esac

out="$RESULTS_DIR/$suite"
rm -rf "$out" && mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d /tmp/nimbus-conformance.XXXXXX)
pid=""
http_pid=""

stop_nimbus() {
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  pid=""
}
# stop_guests kills the QEMU guests this run's compute agent left and the
# volume agent's qemu-storage-daemon (they daemonize and outlive Nimbus):
# each pidfile under the data dir whose process is still the QEMU that
# wrote it.
stop_guests() {
  local f gp pids=()
  for f in "$work"/data/compute/run/*.pid "$work"/data/volumes/run/qsd.pid; do
    [ -f "$f" ] || continue
    gp=$(cat "$f" 2>/dev/null)
    [ -n "$gp" ] && tr '\0' ' ' <"/proc/$gp/cmdline" 2>/dev/null | grep -qF -- "$f" && pids+=("$gp")
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  echo "stopping ${#pids[@]} leftover guest or storage daemon process(es): ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null
  for _ in $(seq 1 50); do
    local alive=0
    for gp in "${pids[@]}"; do kill -0 "$gp" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null
}
cleanup() {
  stop_nimbus
  stop_guests
  if [ "$(id -u)" = 0 ] && [ -d "$work/data" ]; then
    "$NIMBUS" manage network-cleanup --data-dir "$work/data" >"$work/network-cleanup.out" 2>&1 \
      || { echo "network-cleanup failed:" >&2; cat "$work/network-cleanup.out" >&2; }
    cp "$work/network-cleanup.out" "$out/network-cleanup.out" 2>/dev/null
  fi
  if [ -n "$http_pid" ]; then kill "$http_pid" 2>/dev/null; wait "$http_pid" 2>/dev/null; fi
  [ -f "$work/nimbus.log" ] && cp "$work/nimbus.log" "$out/nimbus.log"
  [ -f "$work/up.out" ] && cp "$work/up.out" "$out/nimbus-up.out"
  if [ "${KEEP_WORKSPACE:-}" = 1 ]; then echo "workspace kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. A throwaway cloud on free loopback ports, with its agents when root.
# No first-run resources (image, networks, router): the suites make their
# own, as an operator would.
export NIMBUS_SEED=false
# VXLAN ids of a range of their own: a VNI is host-wide (one per UDP port),
# and another Nimbus on this host (default range 1:65535) would take the
# same low ids.
cat >"$work/nimbus.yaml" <<EOF2
network:
  vxlan_ranges: ["$VXLAN_RANGE"]
EOF2
export NIMBUS_CONFIG="$work/nimbus.yaml"
[ -n "${image_cache:-}" ] && export NIMBUS_IMAGE_CACHE_DIR="$work/data/image-cache"
if [ "$(id -u)" = 0 ]; then
  # The guest image (built once, cached) and its kernel, which `nimbus up`
  # takes from <data-dir>/guest as the compute agent's boot probe kernel.
  if scripts/build-guest-image.sh "$GUEST_IMAGE_DIR" >"$work/guest-image.out" 2>&1; then
    mkdir -p "$work/data/guest"
    ln -s "$GUEST_IMAGE_DIR/nimbus-guest.vmlinuz" "$GUEST_IMAGE_DIR/nimbus-guest.qcow2" "$work/data/guest/"
  else
    echo "scripts/build-guest-image.sh $GUEST_IMAGE_DIR failed:" >&2
    cat "$work/guest-image.out" >&2
    [ -n "${guest_images:-}" ] && exit 1
  fi
  if ip -br link | grep -q "^$AGENT_PREFIX"; then
    echo "warning: host interfaces with the prefix $AGENT_PREFIX exist already (another run?)" >&2
  fi
fi
NIMBUS_IDENTITY_PORT=0 NIMBUS_IMAGE_PORT=0 NIMBUS_NETWORK_PORT=0 NIMBUS_COMPUTE_PORT=0 NIMBUS_VOLUME_PORT=0 NIMBUS_VOLUME_AGENT_NBD_PORT=$NBD_PORT NIMBUS_METADATA_PORT=0 NIMBUS_NOVNCPROXY_PORT=0 NIMBUS_SERIALPROXY_PORT=0 NIMBUS_OBJECT_PORT=0 NIMBUS_STORAGE_OBJECT_PORT=0 NIMBUS_STORAGE_CONTAINER_PORT=0 NIMBUS_STORAGE_ACCOUNT_PORT=0 NIMBUS_NATS_PORT=0 NIMBUS_SEED=${NIMBUS_SEED:-0} "$NIMBUS" up --data-dir "$work/data" >"$work/up.out" 2>"$work/nimbus.log" &
pid=$!
for _ in $(seq 1 600); do
  grep -q "Nimbus is up" "$work/up.out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "Nimbus is up" "$work/up.out"; then
  echo "nimbus up did not start:" >&2
  cat "$work/up.out" "$work/nimbus.log" >&2
  exit 1
fi
uri=$(sed -n 's/^  identity: *\(http[^ ]*\) *$/\1/p' "$work/up.out" | head -1)
password=$(cat "$work/data/admin-password" 2>/dev/null)
if [ -z "$uri" ] || [ -z "$password" ]; then
  echo "could not read the identity URL or the admin password:" >&2
  cat "$work/up.out" >&2
  exit 1
fi
case "$uri" in http://127.0.0.1:* | http://localhost:* | http://\[::1\]:*) ;;
*) echo "refusing to test a non-loopback identity URL: $uri" >&2; exit 1 ;;
esac
echo "nimbus (pid $pid) is up: $uri"

if [ "$suite" = swift-functional ]; then
  { echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "machine:   $(nproc) cores, $(uname -srm)"
    echo "nimbus:    $("$NIMBUS" version 2>&1)"; echo "suite:     $suite"; } | tee "$out/run-info.txt"
  test/swift-functional/run.sh "$work/data" "$out" "${extra[@]}"
  exit $?
fi

# 2. A Tempest workspace with our tempest.conf (and nothing from /etc/tempest).
ws="$work/tempest"
# (Run from $work: any tempest command loads /etc/tempest/logging.conf, which
# writes ./tempest.log.)
(cd "$work" && "$TEMPEST" init --workspace-path "$work/workspace.yaml" "$ws") >/dev/null 2>&1 \
  || { echo "tempest init failed" >&2; exit 1; }
conf=$(<"${TEMPEST_CONF_TEMPLATE:-test/tempest/tempest.conf.in}")
conf=${conf//@WORKSPACE@/"$ws"}
conf=${conf//@IDENTITY_URI@/"$uri"}
if [ -n "${file_server:-}" ]; then
  mkdir -p "$work/www"
  head -c 1048576 /dev/urandom >"$work/www/image.raw"
  (cd "$work/www" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 0 >"$work/http.out" 2>&1) &
  http_pid=$!
  for _ in $(seq 1 50); do grep -q " port " "$work/http.out" 2>/dev/null && break; sleep 0.1; done
  http_port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$work/http.out" | head -1)
  [ -n "$http_port" ] || { echo "loopback file server did not start" >&2; exit 1; }
  conf=${conf//@HTTP_IMAGE@/"http://127.0.0.1:$http_port/image.raw"}
fi
if [ -n "${public_network:-}" ]; then
  # The external network, made the way an operator would (admin openrc,
  # Debian's openstack CLI), with a subnet for gateways and floating IPs.
  # Flat: the agent routes external networks (no NIC is bridged to them),
  # which takes a flat or local network, not the default tenant type.
  public_id=$(
    # shellcheck disable=SC1091
    source "$work/data/admin-openrc.sh" && export OS_CLIENT_CONFIG_FILE=/dev/null &&
      /usr/bin/openstack network create --external --provider-network-type flat \
        --provider-physical-network public -f value -c id public &&
      /usr/bin/openstack subnet create --network public --subnet-range 172.24.4.0/24 \
        --no-dhcp -f value -c id public-subnet >/dev/null
  ) || { echo "could not create the external network: $public_id" >&2; exit 1; }
  echo "external network public: $public_id"
  conf=${conf//@PUBLIC_NETWORK_ID@/"$public_id"}
fi
if [ -n "${guest_images:-}" ]; then
  # The guest image, public, twice (image_ref and image_ref_alt), and a
  # second small flavor for the resize tests (flavor_ref_alt).
  refs=$(
    # shellcheck disable=SC1091
    source "$work/data/admin-openrc.sh" && export OS_CLIENT_CONFIG_FILE=/dev/null &&
      for name in nimbus-guest nimbus-guest-alt; do
        /usr/bin/openstack image create --public --disk-format qcow2 --container-format bare \
          --file "$GUEST_IMAGE_DIR/nimbus-guest.qcow2" -f value -c id "$name" || exit 1
      done &&
      /usr/bin/openstack flavor create --id 100 --vcpus 1 --ram 640 --disk 1 -f value -c id m1.tiny-alt
  ) || { echo "could not upload the guest image or create the flavor: $refs" >&2; exit 1; }
  read -r image_ref image_ref_alt flavor_alt <<<"$(echo $refs)"
  echo "images: $image_ref $image_ref_alt; flavor_ref_alt: $flavor_alt"
  conf=${conf//@IMAGE_REF@/"$image_ref"}
  conf=${conf//@IMAGE_REF_ALT@/"$image_ref_alt"}
  conf=${conf//@FLAVOR_REF_ALT@/"$flavor_alt"}
fi
printf '%s\n' "${conf//@ADMIN_PASSWORD@/"$password"}" >"$ws/etc/tempest.conf"
printf '%s\n' "${conf//@ADMIN_PASSWORD@/(generated)}" >"$out/tempest.conf"
# Debian's logging.conf (copied by init) logs to ./tempest.log in "w+" mode,
# which the workers overwrite; without it Tempest logs to logs/tempest.log.
rm -f "$ws/etc/logging.conf"

# 3. Run.
cmd=("$TEMPEST" run --concurrency "$CONCURRENCY" "${selector[@]}" "${extra[@]}")
{
  echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine:   $(nproc) cores, $(uname -srm)"
  echo "tempest:   $(cd "$ws" && "$TEMPEST" --version 2>&1 | tail -1)"
  echo "nimbus:    $("$NIMBUS" version 2>&1)"
  echo "suite:     $suite"
  echo "command:   (cd WORKSPACE && ${cmd[*]})"
  echo "OS_TEST_TIMEOUT=$OS_TEST_TIMEOUT RUN_TIMEOUT=$RUN_TIMEOUT"
} >"$out/run-info.txt"
cat "$out/run-info.txt"
(cd "$ws" && "$TEMPEST" run --list-tests "${selector[@]}" "${extra[@]}" 2>/dev/null) \
  | grep '^tempest\.' >"$out/test-list.txt"
echo "listed:    $(wc -l <"$out/test-list.txt") tests" | tee -a "$out/run-info.txt"
start=$(date +%s)
(cd "$ws" && timeout -k 30 "$RUN_TIMEOUT" "${cmd[@]}") 2>&1 | tee "$out/tempest-run.log"
rc=${PIPESTATUS[0]}
echo "elapsed:   $(($(date +%s) - start)) s, tempest exit $rc" | tee -a "$out/run-info.txt"
[ "$rc" = 124 ] && echo "tempest run timed out after $RUN_TIMEOUT s" | tee -a "$out/run-info.txt"

# 4. Stop the cloud, keep what the run left.
stop_nimbus
cp "$ws/logs/tempest.log" "$out/tempest.log" 2>/dev/null
if (cd "$ws" && stestr last --subunit) >"$out/results.subunit" 2>/dev/null && [ -s "$out/results.subunit" ]; then
  echo "results in $out (summary.txt, failures.txt, results.csv, tempest.log, nimbus.log)"
  echo "== $suite"
  /usr/bin/python3 test/tempest/summarize.py "$out/results.subunit" "$out" "$out/test-list.txt" || rc=1
else
  echo "no subunit results were recorded" >&2
  rc=1
fi
exit "$rc"
