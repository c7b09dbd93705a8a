# Shared harness of the CLI end-to-end scripts: it starts a real
# `nimbus up` on a temp data dir and free ports, sources the admin openrc,
# and provides the check helpers. Source it from a script in test/cli;
# finish with `report NAME`, which prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OPENSTACK=${OPENSTACK:-/usr/bin/openstack}
NIMBUS=${NIMBUS:-bin/nimbus}
[ -x "$OPENSTACK" ] || { echo "openstack CLI not found at $OPENSTACK (apt-get install python3-openstackclient)" >&2; exit 1; }
[ -x "$NIMBUS" ] || { echo "$NIMBUS not built (make build)" >&2; exit 1; }

work=$(mktemp -d)
log="$work/nimbus.log"
# The host agents stay off unless a script asks for them (run as root):
# NIMBUS_NETWORK_AGENT=1 before sourcing this file runs the networking
# agent under its own name prefix, and the exit trap removes what it built.
export NIMBUS_NETWORK_AGENT=${NIMBUS_NETWORK_AGENT:-0} NIMBUS_COMPUTE_AGENT=${NIMBUS_COMPUTE_AGENT:-0} NIMBUS_VOLUME_AGENT=${NIMBUS_VOLUME_AGENT:-0}
export NIMBUS_NETWORK_AGENT_PREFIX=${NIMBUS_NETWORK_AGENT_PREFIX:-ncli}
# GUEST_DIR, when set, is a scripts/build-guest-image.sh output directory
# handed to the cloud as <data_dir>/guest (first-run image, probe kernel).
# free_port prints a loopback TCP port nobody listens on (for the volume
# agent's NBD server, which takes no port 0: compute hosts are told it).
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if [ -n "${GUEST_DIR:-}" ]; then mkdir -p "$work/data" && ln -s "$GUEST_DIR" "$work/data/guest"; fi
NIMBUS_IDENTITY_PORT=0 NIMBUS_IMAGE_PORT=0 NIMBUS_NETWORK_PORT=0 NIMBUS_COMPUTE_PORT=0 NIMBUS_VOLUME_PORT=0 NIMBUS_VOLUME_AGENT_NBD_PORT=$(free_port) NIMBUS_METADATA_PORT=0 NIMBUS_NOVNCPROXY_PORT=0 NIMBUS_SERIALPROXY_PORT=0 NIMBUS_OBJECT_PORT=0 NIMBUS_STORAGE_OBJECT_PORT=0 NIMBUS_STORAGE_CONTAINER_PORT=0 NIMBUS_STORAGE_ACCOUNT_PORT=0 NIMBUS_NATS_PORT=0 NIMBUS_SEED=${NIMBUS_SEED:-0} "$NIMBUS" up --data-dir "$work/data" >"$work/up.out" 2>"$log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  # The volume agent's qemu-storage-daemon outlives Nimbus, as guests do.
  local qsd
  qsd=$(cat "$work/data/volumes/run/qsd.pid" 2>/dev/null)
  if [ -n "$qsd" ] && tr '\0' ' ' <"/proc/$qsd/cmdline" 2>/dev/null | grep -qF -- "$work/data/volumes/run/qsd.pid"; then
    kill "$qsd" 2>/dev/null
  fi
  if [ "$NIMBUS_NETWORK_AGENT" != 0 ]; then
    "$NIMBUS" manage network-cleanup --data-dir "$work/data" >/dev/null || echo "network-cleanup failed: host state of prefix $NIMBUS_NETWORK_AGENT_PREFIX left behind" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "Nimbus is up" "$work/up.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "Nimbus is up" "$work/up.out"; then
  echo "nimbus up did not start:"; cat "$work/up.out" "$log"; exit 1
fi
# shellcheck disable=SC1091
source "$work/data/admin-openrc.sh"
export OS_CLIENT_CONFIG_FILE=/dev/null

pass=0 fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/     /' | tail -20; return 0; }
# check NAME COMMAND...: the command must succeed.
check() {
  local name=$1; shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}
# expect NAME PATTERN COMMAND...: the command must succeed and print PATTERN.
expect() {
  local name=$1 pattern=$2; shift 2
  if out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then ok "$name"; else bad "$name (wanted /$pattern/)" "$out"; fi
}
# refuse NAME PATTERN COMMAND...: the command must fail and print PATTERN.
refuse() {
  local name=$1 pattern=$2; shift 2
  if ! out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then ok "$name"; else bad "$name (wanted failure with /$pattern/)" "$out"; fi
}
# eventually NAME PATTERN COMMAND...: like expect, retried for up to
# EVENTUALLY_SECONDS (30; scripts with guests under TCG give more) — for
# what an agent realises after the API answered.
eventually() {
  local name=$1 pattern=$2; shift 2
  local deadline=$((SECONDS + ${EVENTUALLY_SECONDS:-30}))
  while :; do
    if out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then ok "$name"; return 0; fi
    [ "$SECONDS" -ge "$deadline" ] && break
    sleep 0.5
  done
  bad "$name (wanted /$pattern/ within ${EVENTUALLY_SECONDS:-30} s)" "$out"
}
os() { "$OPENSTACK" "$@"; }
# report NAME: prints the totals and sets the exit status.
report() {
  echo "$1 CLI: $pass passed, $fail failed"
  [ "$fail" = 0 ]
}
