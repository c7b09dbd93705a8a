#!/usr/bin/env bash
# Installs the Debian packages a Nimbus role needs, when run as root and
# they are missing. Usage: install-deps.sh run|test|conformance
set -euo pipefail
case "${1:-run}" in
run) pkgs=(qemu-utils qemu-system-common iproute2 nftables dnsmasq-base dnsmasq-utils iputils-arping procps conntrack qemu-system-x86 genisoimage extlinux syslinux-common e2fsprogs cpio binutils xz-utils novnc) ;;
test) pkgs=(postgresql openssh-client python3-openstackclient python3-glanceclient python3-swiftclient python3-cinderclient qemu-utils qemu-system-common curl iproute2 nftables dnsmasq-base dnsmasq-utils iputils-arping procps conntrack iputils-ping busybox isc-dhcp-client qemu-system-x86 genisoimage extlinux syslinux-common e2fsprogs cpio binutils xz-utils) ;;
conformance) pkgs=(postgresql python3-openstackclient python3-glanceclient python3-swiftclient python3-cinderclient python3-swift python3-mock python3-pytest qemu-utils tempest curl iproute2 nftables dnsmasq-base dnsmasq-utils iputils-arping procps conntrack qemu-system-x86 genisoimage extlinux syslinux-common e2fsprogs cpio binutils xz-utils) ;;
*) echo "usage: $0 run|test|conformance" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
