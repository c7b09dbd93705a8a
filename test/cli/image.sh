#!/usr/bin/env bash
# End-to-end image checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and free ports, done the way
# a new user would. Prints "N passed, M failed" and fails if any did.
# web-download may fetch from this machine's loopback file server only
# because the operator says so here; everything else internal stays refused.
export NIMBUS_IMAGE_WEB_DOWNLOAD_ALLOWED_HOSTS=127.0.0.1
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"

# A small "image": 3 MiB of random bytes (the format is only a label here).
head -c 3145728 /dev/urandom >"$work/tiny.qcow2"
md5=$(md5sum "$work/tiny.qcow2" | cut -d' ' -f1)

expect "catalog lists the image service" 'glance +\| image' os catalog list
expect "image create --file" 'name +\| tiny' os image create --file "$work/tiny.qcow2" --disk-format qcow2 --container-format bare tiny
expect "image list" 'tiny +\| active' os image list
expect "checksum of the upload recorded" "checksum +\| $md5" os image show tiny
expect "image show" 'disk_format +\| qcow2' os image show tiny
check  "image save" os image save --file "$work/saved" tiny
if cmp -s "$work/tiny.qcow2" "$work/saved"; then ok "saved image is byte-identical"
else bad "saved image differs from the upload"; fi
check  "image set --property" os image set --property os_distro=debian --tag ci tiny
expect "property and tag shown" 'os_distro=.debian' os image show tiny
check  "image unset --property" os image unset --property os_distro tiny
# The CLI checks formats itself, so ask the API directly.
image_url=$(sed -n 's/^  image: *\(http[^ ]*\) *$/\1/p' "$work/up.out" | head -1)
token=$(os token issue -f value -c id)
code=$(curl -s -o "$work/bad.json" -w '%{http_code}' -X POST -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
  -d '{"name": "bad", "disk_format": "nosuchformat", "container_format": "bare"}' "$image_url/v2/images")
if [ "$code" = 400 ]; then ok "unknown disk format is a 400"
else bad "unknown disk format: HTTP $code $(cat "$work/bad.json")"; fi
check  "image set --protected" os image set --protected tiny
refuse "protected image cannot be deleted" '403|protected|Forbidden' os image delete tiny
check  "image set --unprotected" os image set --unprotected tiny
check  "image delete" os image delete tiny
refuse "deleted image is gone" 'No Image found|404|Could not find' os image show tiny
if [ -z "$(ls -A "$work/data/images" 2>/dev/null)" ]; then ok "no image data left on disk"
else bad "image data left behind: $(ls "$work/data/images")"; fi

# wait_status NAME STATUS: polls until the image has STATUS (30 s at most).
wait_status() {
  local st=""
  for _ in $(seq 1 150); do
    st=$(os image show "$1" -f value -c status 2>/dev/null)
    [ "$st" = "$2" ] && return 0
    sleep 0.2
  done
  echo "image $1 is '$st', not $2"
  return 1
}

# Interoperable import: glance-direct through the CLI's --import.
head -c 1048576 /dev/urandom >"$work/direct.raw"
check  "image create --import (glance-direct)" os image create --import --file "$work/direct.raw" --disk-format raw --container-format bare direct
check  "glance-direct import turns active" wait_status direct active
expect "imported data checksum recorded" "checksum +\| $(md5sum "$work/direct.raw" | cut -d' ' -f1)" os image show direct

# web-download with Debian's glance client, from a file server on loopback.
head -c 2097152 /dev/urandom >"$work/www.raw"
(cd "$work" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 0 >"$work/http.out" 2>&1) &
http_pid=$!
trap 'kill "$http_pid" 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 50); do grep -q "port" "$work/http.out" 2>/dev/null && break; sleep 0.1; done
http_port=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$work/http.out" | head -1)
# stdin closed: otherwise the client takes it for image data (its own
# advice for scripts and cron jobs).
glance() { /usr/bin/glance --os-image-api-version 2 "$@" <&-; }
check  "glance image-create-via-import web-download" glance image-create-via-import --import-method web-download \
  --uri "http://127.0.0.1:$http_port/www.raw" --disk-format raw --container-format bare --name webdl
check  "web-download import turns active" wait_status webdl active
expect "web-downloaded data checksum recorded" "checksum +\| $(md5sum "$work/www.raw" | cut -d' ' -f1)" os image show webdl
refuse "web-download of a cloud metadata address is refused" 'does not pass filtering|400' \
  glance image-create-via-import --import-method web-download --uri "http://169.254.169.254/latest/meta-data/" \
  --disk-format raw --container-format bare --name ssrf
refuse "web-download of another loopback address is refused" 'does not pass filtering|400' \
  glance image-create-via-import --import-method web-download --uri "http://[::1]:$http_port/www.raw" \
  --disk-format raw --container-format bare --name ssrf6

# Sharing with another project, accepted by its member.
share_pw="Share-$RANDOM-$RANDOM"
check  "project and user to share with" sh -c "$OPENSTACK project create share >/dev/null && \
  $OPENSTACK user create --project share --password '$share_pw' sharer >/dev/null && \
  $OPENSTACK role add --project share --user sharer member"
check  "image create --shared" os image create --file "$work/direct.raw" --disk-format raw --container-format bare --shared tobeshared
shared_id=$(os image show tobeshared -f value -c id)
check  "image add project" os image add project tobeshared share
as_sharer() { OS_USERNAME=sharer OS_PASSWORD=$share_pw OS_PROJECT_NAME=share "$OPENSTACK" "$@"; }
if as_sharer image list -f value -c ID | grep -q "$shared_id"; then bad "pending share already listed for the member"
else ok "pending share not listed before it is accepted"; fi
check  "image set --accept (as the member)" as_sharer image set --accept "$shared_id"
expect "accepted image listed for the member" "$shared_id" as_sharer image list -f value -c ID
check  "member can download it" as_sharer image save --file "$work/shared.out" "$shared_id"
refuse "member cannot delete it" '403|Forbidden|not allowed|No Image found' as_sharer image delete "$shared_id"

report image
