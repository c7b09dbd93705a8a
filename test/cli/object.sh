#!/usr/bin/env bash
# End-to-end object storage checks with Debian's unmodified
# python3-swiftclient and python3-openstackclient against a real
# `nimbus up` on a temp data dir and free ports. Prints "N passed, M
# failed" and fails if any did.
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"
SWIFT=${SWIFT:-/usr/bin/swift}
[ -x "$SWIFT" ] || { echo "swift CLI not found at $SWIFT (apt-get install python3-swiftclient)" >&2; exit 1; }
sw() { "$SWIFT" --os-auth-url "$OS_AUTH_URL" "$@"; }

expect "catalog lists object storage" 'swift +\| object-store' os catalog list
expect "swift stat" 'Account: AUTH_' sw stat
check  "swift post creates a container with metadata" sw post -m color:blue photos
expect "container metadata shown" 'Meta Color: blue' sw stat photos

head -c 3145728 /dev/urandom >"$work/big.bin"
echo "hello object storage" >"$work/hello.txt"
(cd "$work" && check "swift upload" sw upload photos big.bin hello.txt)
(cd "$work" && check "swift upload under a prefix" sw upload --object-name 2026/jan.txt photos hello.txt)
expect "swift list" 'big.bin' sw list photos
if out=$(sw list --prefix 2026/ photos 2>&1) && [ "$out" = "2026/jan.txt" ]; then ok "swift list --prefix"
else bad "swift list --prefix" "$out"; fi
check  "swift download" sw download photos big.bin -o "$work/big.out"
if cmp -s "$work/big.bin" "$work/big.out"; then ok "download is byte-identical"
else bad "downloaded object differs from the upload"; fi
expect "object stat shows size and etag" "ETag: $(md5sum "$work/big.bin" | cut -d' ' -f1)" sw stat photos big.bin
# replica_counts: how many .data copies each stored object has, deduplicated.
replica_counts() {
  find "$work/data/objects/devices" -path '*/objects/*' -name '*.data' -printf '%h\n' | xargs -n1 basename | sort | uniq -c | awk '{print $1}' | sort -u
}
expect "three replicas of each object on the devices" '^3$' replica_counts
refuse "missing object is a 404" 'not found|404' sw download photos nope.txt -o "$work/nope"

# Segmented upload: a Dynamic Large Object of 1 MiB segments.
(cd "$work" && check "swift upload --segment-size (DLO)" sw upload --segment-size 1048576 photos big.bin --object-name dlo.bin)
expect "DLO manifest" 'Manifest: photos_segments/' sw stat photos dlo.bin
check  "swift download DLO" sw download photos dlo.bin -o "$work/dlo.out"
if cmp -s "$work/big.bin" "$work/dlo.out"; then ok "DLO reads back byte-identical"
else bad "DLO content differs"; fi
if sw capabilities 2>/dev/null | grep -q '^Additional middleware: slo'; then
  (cd "$work" && check "swift upload --use-slo" sw upload --use-slo --segment-size 1048576 photos big.bin --object-name slo.bin)
  check "swift download SLO" sw download photos slo.bin -o "$work/slo.out"
  if cmp -s "$work/big.bin" "$work/slo.out"; then ok "SLO reads back byte-identical"
  else bad "SLO content differs"; fi
else
  echo "skip SLO: not in swift capabilities"
fi

# The openstack CLI's object commands.
check  "openstack container create" os container create docs
expect "openstack container list" 'docs' os container list
check  "openstack object create" bash -c "cd '$work' && '$OPENSTACK' object create docs hello.txt"
expect "openstack object list" 'hello.txt' os object list docs
expect "openstack object show" 'content-length +\| 21' os object show docs hello.txt
check  "openstack object save" os object save --file "$work/saved.txt" docs hello.txt
if cmp -s "$work/hello.txt" "$work/saved.txt"; then ok "saved object is byte-identical"
else bad "saved object differs"; fi
check  "openstack object delete" os object delete docs hello.txt
refuse "deleted object is gone" '404|Not Found' os object show docs hello.txt

# Bad names, through the API itself (the clients check some names first).
token=$(os token issue -f value -c id)
project=$(os token issue -f value -c project_id)
object_url=$(sed -n 's/^  object storage: *\(http[^ ]*\) *$/\1/p' "$work/up.out" | head -1)
long=$(printf 'x%.0s' $(seq 1 300))
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $token" "$object_url/AUTH_$project/$long")
if [ "$code" = 400 ]; then ok "too long a container name is a 400"; else bad "long container name: HTTP $code"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $token" "$object_url/AUTH_$project/bad%FFname")
if [ "$code" = 412 ]; then ok "invalid UTF-8 in a name is a 412"; else bad "invalid UTF-8 name: HTTP $code"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $token" "$object_url/AUTH_$project/photos/missing")
if [ "$code" = 404 ]; then ok "GET of a missing object is a 404"; else bad "missing object: HTTP $code"; fi

check  "swift delete object" sw delete photos hello.txt
check  "swift delete container with its objects" sw delete photos
refuse "deleted container is gone" 'not found|404' sw stat photos
report object
