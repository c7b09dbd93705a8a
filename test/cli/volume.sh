#!/usr/bin/env bash
# End-to-end block storage checks with Debian's unmodified
# python3-openstackclient against a real `nimbus up` as root: volumes made
# blank, from the guest image, from a snapshot and as a clone by the volume
# agent (qcow2 files served by qemu-storage-daemon over NBD with TLS-PSK),
# attached to a running QEMU guest and seen from inside it over SSH, detached,
# and a server booted from a volume, the way a user would. Prints "N passed,
# M failed" and fails if any did.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "volume CLI: needs root (QEMU guests, bridges, namespaces)" >&2
  exit 1
fi
GUEST_DIR=${NIMBUS_GUEST_IMAGE_DIR:-${TMPDIR:-/tmp}/nimbus-guest-image}
scripts/build-guest-image.sh "$GUEST_DIR" >/dev/null || { echo "volume CLI: the guest image did not build" >&2; exit 1; }
export EVENTUALLY_SECONDS=120
export GUEST_DIR NIMBUS_SEED=1 NIMBUS_NETWORK_AGENT=1 NIMBUS_COMPUTE_AGENT=1 NIMBUS_VOLUME_AGENT=1 NIMBUS_NETWORK_AGENT_PREFIX=nvcl
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"

status_of() { os volume show "$1" -f value -c status; }

eventually "the volume service is up" 'cinder-volume +\| [^|]+ \| [^|]+ \| enabled +\| up' os volume service list
expect "volume type __DEFAULT__ exists" '__DEFAULT__' os volume type list -f value -c Name
check  "volume create --size 1 v1" os volume create --size 1 v1
eventually "v1 becomes available" '^available$' status_of v1
expect "v1 is 1 GiB" '^1$' os volume show v1 -f value -c size
expect "v1 is not bootable" '^false$' os volume show v1 -f value -c bootable
refuse "a size of 0 is refused" 'size|Size' os volume create --size 0 bad0
refuse "a volume of an unknown type is refused" 'type|Type' os volume create --size 1 --type nosuchtype bad1
check  "volume create --image nimbus-guest --bootable b1" os volume create --image nimbus-guest --size 1 --bootable b1
eventually "b1 becomes available" '^available$' status_of b1
expect "b1 is bootable and keeps the image's metadata" '"kernel_id"' os volume show b1 -f json -c volume_image_metadata
check  "volume snapshot create s1 of v1" os volume snapshot create --volume v1 s1
eventually "s1 becomes available" '^available$' os volume snapshot show s1 -f value -c status
check  "volume create --snapshot s1 --size 2 v2" os volume create --snapshot s1 --size 2 v2
eventually "v2 (from s1, grown) becomes available" '^available$' status_of v2
expect "v2 is 2 GiB" '^2$' os volume show v2 -f value -c size
check  "volume create --source v1 (clone) v3" os volume create --source v1 v3
eventually "v3 becomes available" '^available$' status_of v3
check  "volume set --size 2 v3 (extend)" os volume set --size 2 v3
eventually "v3 is available again" '^available$' status_of v3
expect "v3 is 2 GiB" '^2$' os volume show v3 -f value -c size
check  "volume set --name/--property on v3" os volume set --name v3b --property purpose=cli v3
expect "v3b shows the property" "purpose='cli'|\"purpose\": \"cli\"" os volume show v3b -f json -c properties

# A guest to attach to, reached by SSH through a floating IP.
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
check  "keypair create" os keypair create --public-key "$work/key.pub" k
check  "allow SSH in the default group" os security group rule create --protocol tcp --dst-port 22 default
expect "server create --wait vm1 ends ACTIVE" 'status +\| ACTIVE' \
  os server create --image nimbus-guest --flavor m1.tiny --network private --key-name k --wait vm1
fip=$(os floating ip create public -f value -c floating_ip_address)
check  "server add floating ip" os server add floating ip vm1 "$fip"
ssh_guest() {
  ssh -i "$work/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -o ConnectTimeout=5 "root@$fip" "$@"
}
eventually "SSH reaches vm1" '^vm1$' ssh_guest hostname
v1=$(os volume show v1 -f value -c id)
check  "server add volume vm1 v1" os server add volume vm1 v1
eventually "v1 becomes in-use" '^in-use$' status_of v1
expect "server volume list shows v1 on /dev/vdb" "/dev/vdb.*$v1|$v1.*/dev/vdb" os server volume list vm1
expect "server show lists v1 in volumes_attached" "$v1" os server show vm1 -f value -c volumes_attached
# The guest's kernel shows a virtio disk's serial (the volume id's first
# 20 characters, as on Nova) in /sys/block/<disk>/serial.
disk_of() {
  ssh_guest "for d in /sys/block/*; do [ \"\$(cat \$d/serial 2>/dev/null)\" = '${1:0:20}' ] && echo \${d##*/}; done; true"
}
eventually "the guest sees v1 (serial ${v1:0:20}) as a disk" '^vd[b-z]$' disk_of "$v1"
dev=$(disk_of "$v1")
expect "lsblk in the guest lists v1's disk (as Tempest counts disks)" "^$dev +[0-9]+:[0-9]+ .* disk" ssh_guest lsblk -lb --nodeps
check  "the guest writes a marker to v1" ssh_guest "echo nimbus-volume-marker | dd of=/dev/$dev bs=512 count=1 conv=sync,fsync 2>/dev/null"
refuse "deleting an attached volume is refused" 'in-use|attached|status' os volume delete v1
refuse "attaching v1 a second time is refused" 'available|in-use|attach' os server add volume vm1 v1
check  "server stop vm1" os server stop vm1
eventually "vm1 is SHUTOFF" '^SHUTOFF$' os server show vm1 -f value -c status
check  "server start vm1" os server start vm1
eventually "after a power cycle the guest still has v1 with its marker" 'nimbus-volume-marker' \
  ssh_guest "for d in /sys/block/*; do [ \"\$(cat \$d/serial 2>/dev/null)\" = '${v1:0:20}' ] && head -c 64 /dev/\${d##*/} | tr -d '\\0'; done"
check  "server remove volume vm1 v1" os server remove volume vm1 v1
eventually "v1 is available again" '^available$' status_of v1
# (The guest must answer: an SSH failure is not "gone".)
v1_gone() { local d; d=$(disk_of "$v1") && [ -z "$d" ] && echo gone; }
eventually "the guest no longer has v1" '^gone$' v1_gone

# Boot from volume: b1 holds the guest image.
expect "server create --volume b1 vm2 ends ACTIVE" 'status +\| ACTIVE' \
  os server create --volume b1 --flavor m1.tiny --network private --key-name k --wait vm2
expect "vm2 shows no image (volume-backed)" '^$|N/A|Booted from volume' os server show vm2 -f value -c image
eventually "b1 is in-use by vm2" '^in-use$' status_of b1
eventually "vm2 reaches its DHCP lease from a root on the volume" 'nimbus-init: .*(lease|eth0).*10\.0\.0\.' os console log show vm2
check  "server delete --wait vm2" os server delete --wait vm2
eventually "b1 is available after vm2 is gone" '^available$' status_of b1

# Uploading a volume to an image.
check  "image create --volume v1 (upload to image)" os image create --volume v1 --disk-format raw img-from-v1
eventually "the image from v1 becomes active" '^active$' os image show img-from-v1 -f value -c status
eventually "v1 is available after the upload" '^available$' status_of v1

expect "limits show --absolute has volume limits" 'maxTotalVolumes' os limits show --absolute
expect "quota show has volumes" 'volumes' os quota show
check  "server delete --wait vm1" os server delete --wait vm1
check  "volume snapshot delete s1" os volume snapshot delete s1
check  "volume delete v1 v2 v3b b1" os volume delete v1 v2 v3b b1
eventually "every volume is gone" '^$' os volume list -f value -c ID
report volume
