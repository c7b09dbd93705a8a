#!/usr/bin/env bash
# End-to-end image checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and free ports, done the way
# a new user would. Prints "N passed, M failed" and fails if any did.
set -uo pipefail
cd "$(dirname "$0")/../.."
OPENSTACK=${OPENSTACK:-/usr/bin/openstack}
NIMBUS=${NIMBUS:-bin/nimbus}
[ -x "$OPENSTACK" ] || { echo "openstack CLI not found at $OPENSTACK (apt-get install python3-openstackclient)" >&2; exit 1; }
[ -x "$NIMBUS" ] || { echo "$NIMBUS not built (make build)" >&2; exit 1; }

work=$(mktemp -d)
log="$work/nimbus.log"
NIMBUS_IDENTITY_PORT=0 NIMBUS_IMAGE_PORT=0 NIMBUS_NATS_PORT=0 "$NIMBUS" up --data-dir "$work/data" >"$work/up.out" 2>"$log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 100); do grep -q "Nimbus is up" "$work/up.out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "Nimbus is up" "$work/up.out"; then
  echo "nimbus up did not start:"; cat "$work/up.out" "$log"; exit 1
fi
# shellcheck disable=SC1091
source "$work/data/admin-openrc.sh"
export OS_CLIENT_CONFIG_FILE=/dev/null

pass=0 fail=0
check() {
  local name=$1; shift
  if out=$("$@" 2>&1); then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
expect() {
  local name=$1 pattern=$2; shift 2
  if out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name (wanted /$pattern/)"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
refuse() {
  local name=$1 pattern=$2; shift 2
  if ! out=$("$@" 2>&1) && grep -qE -- "$pattern" <<<"$out"; then pass=$((pass+1)); echo "ok   $name"
  else fail=$((fail+1)); echo "FAIL $name (wanted failure with /$pattern/)"; echo "$out" | sed 's/^/     /' | tail -20; fi
}
os() { "$OPENSTACK" "$@"; }

# A small "image": 3 MiB of random bytes (the format is only a label here).
head -c 3145728 /dev/urandom >"$work/tiny.qcow2"
md5=$(md5sum "$work/tiny.qcow2" | cut -d' ' -f1)

expect "catalog lists the image service" 'glance +\| image' os catalog list
expect "image create --file" 'name +\| tiny' os image create --file "$work/tiny.qcow2" --disk-format qcow2 --container-format bare tiny
expect "image list" 'tiny +\| active' os image list
expect "checksum of the upload recorded" "checksum +\| $md5" os image show tiny
expect "image show" 'disk_format +\| qcow2' os image show tiny
check  "image save" os image save --file "$work/saved" tiny
if cmp -s "$work/tiny.qcow2" "$work/saved"; then pass=$((pass+1)); echo "ok   saved image is byte-identical"
else fail=$((fail+1)); echo "FAIL saved image differs from the upload"; fi
check  "image set --property" os image set --property os_distro=debian --tag ci tiny
expect "property and tag shown" 'os_distro=.debian' os image show tiny
check  "image unset --property" os image unset --property os_distro tiny
# The CLI checks formats itself, so ask the API directly.
image_url=$(sed -n 's/^  image: *\(http[^ ]*\) *$/\1/p' "$work/up.out" | head -1)
token=$(os token issue -f value -c id)
code=$(curl -s -o "$work/bad.json" -w '%{http_code}' -X POST -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
  -d '{"name": "bad", "disk_format": "nosuchformat", "container_format": "bare"}' "$image_url/v2/images")
if [ "$code" = 400 ]; then pass=$((pass+1)); echo "ok   unknown disk format is a 400"
else fail=$((fail+1)); echo "FAIL unknown disk format: HTTP $code $(cat "$work/bad.json")"; fi
check  "image set --protected" os image set --protected tiny
refuse "protected image cannot be deleted" '403|protected|Forbidden' os image delete tiny
check  "image set --unprotected" os image set --unprotected tiny
check  "image delete" os image delete tiny
refuse "deleted image is gone" 'No Image found|404|Could not find' os image show tiny
if [ -z "$(ls -A "$work/data/images" 2>/dev/null)" ]; then pass=$((pass+1)); echo "ok   no image data left on disk"
else fail=$((fail+1)); echo "FAIL image data left behind: $(ls "$work/data/images")"; fi

echo "image CLI: $pass passed, $fail failed"
[ "$fail" = 0 ]
