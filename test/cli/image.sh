#!/usr/bin/env bash
# End-to-end image checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` on a temp data dir and free ports, done the way
# a new user would. Prints "N passed, M failed" and fails if any did.
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

report image
