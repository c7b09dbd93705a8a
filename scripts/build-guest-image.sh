#!/usr/bin/env bash
# Builds nimbus-guest.qcow2, a small CirrOS-like test guest, from Debian
# packages, without installing anything into the build host.
#
# Usage: scripts/build-guest-image.sh OUTDIR
#
# Output: OUTDIR/nimbus-guest.qcow2 (and .sha256), a disk with an MBR, one
# ext4 partition labelled nimbus-root holding the whole system, and
# extlinux; OUTDIR/nimbus-guest.vmlinuz is its kernel, which the qemu
# driver's acceleration probe boots. For a direct kernel boot (the image
# registered with kernel_id, ramdisk_id and os_command_line, as `nimbus
# up` seeds it): nimbus-guest.vmlinux (the kernel uncompressed),
# nimbus-guest.initrd and nimbus-guest.cmdline. To pick up newer
# packages, empty OUTDIR/cache.
# The kernel is Debian's linux-image-cloud-amd64; its virtio and isofs
# drivers are modules, so a tiny initramfs loads them, asks for a DHCP
# lease while the disk's drivers load, and switches to the disk.
#
# In the guest, /etc/init.d/rcS (the "agent") configures eth0 with busybox
# udhcpc, reads the config drive (ISO 9660 labelled config-2) or else the
# metadata service at 169.254.169.254, sets the hostname, installs SSH keys
# for root and the "nimbus" user (password "nimbus": a test image), runs
# user_data when it starts with "#!", starts dropbear and busybox acpid (so
# ACPI power-off works), and getty prints a login prompt on ttyS0 and tty1.
# Progress lines on the serial console start with "nimbus-init:".
#
# Downloaded .debs are cached in OUTDIR/cache; a build whose inputs (this
# script and the cached .debs) are unchanged returns at once. The build
# needs root (a loop device for extlinux) and the packages listed in
# scripts/install-deps.sh: extlinux syslinux-common e2fsprogs qemu-utils
# cpio binutils xz-utils (lz4 comes with the downloaded packages).
set -euo pipefail

OUT=${1:?usage: $0 OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CACHE=$OUT/cache
IMAGE=$OUT/nimbus-guest.qcow2
STAMP=$OUT/nimbus-guest.stamp
# A fixed time for every file and the file system, so that rebuilds from the
# same packages give the same content.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1767225600} # 2026-01-01
export E2FSPROGS_FAKE_TIME=$SOURCE_DATE_EPOCH
DISK_MB=64
INODES=2048
PART_START=2048 # sectors: 1 MiB, the usual alignment
ROOT_UUID=6e696d62-7573-4775-8573-742d726f6f74
ROOT_LABEL=nimbus-root

log() { echo "build-guest-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
trap 'die "line $LINENO: \"$BASH_COMMAND\" failed"' ERR

# vmlinux BZIMAGE writes the ELF kernel inside a bzImage. The boot
# protocol's setup header says where the compressed payload is
# (payload_offset and payload_length, from the protected-mode code, which
# follows the setup_sects 512-byte sectors of setup and the boot sector);
# its last 4 bytes are the uncompressed size the kernel build appends. The
# generic kernel's payload is xz, the cloud kernel's LZ4 (legacy frame),
# unpacked with the lz4 of the package list.
vmlinux() {
  local sects off len magic
  sects=$(od -An -tu1 -j $(( 0x1f1 )) -N1 "$1" | tr -d ' ')
  [ "$sects" -ne 0 ] || sects=4
  off=$(( (sects + 1) * 512 + $(od -An -tu4 -j $(( 0x248 )) -N4 "$1" | tr -d ' ') ))
  len=$(od -An -tu4 -j $(( 0x24c )) -N4 "$1" | tr -d ' ')
  [ "$len" -gt 4 ] || die "$1: no payload in its setup header (not a bzImage?)"
  magic=$(od -An -tx1 -j "$off" -N4 "$1" | tr -d ' ')
  # tail may die of SIGPIPE when head has read enough: not an error.
  { tail -c +$(( off + 1 )) "$1" || true; } | head -c $(( len - 4 )) |
    case $magic in
    fd377a58) xz -dc ;;
    02214c18) LD_LIBRARY_PATH="$X/usr/lib/x86_64-linux-gnu" "$X/usr/bin/lz4" -dc ;;
    *) die "$1: payload is neither xz nor LZ4 (magic $magic)" ;;
    esac
}

[ "$(id -u)" = 0 ] || die "must run as root (extlinux needs a loop-mounted file system)"
for tool in apt-get apt-cache dpkg-deb readelf mke2fs debugfs extlinux qemu-img cpio gzip xz losetup mount sha256sum; do
  command -v "$tool" >/dev/null || die "missing tool $tool: run scripts/install-deps.sh test (packages extlinux syslinux-common e2fsprogs qemu-utils cpio binutils xz-utils)"
done
MBR_BIN=
for f in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/EXTLINUX/mbr.bin; do
  [ -f "$f" ] && { MBR_BIN=$f; break; }
done
[ -n "$MBR_BIN" ] || die "no syslinux mbr.bin: install syslinux-common and extlinux"

# --- packages -------------------------------------------------------------
# The kernel is Debian's cloud flavour (linux-image-cloud-amd64): built for
# virtual machines, it has a third fewer built-in drivers than the generic
# linux-image-amd64, ext4 built in (no ext4/jbd2/mbcache modules to load)
# and an LZ4 bzImage, which a disk boot decompresses under TCG in a
# fraction of the time of the generic kernel's xz. NIMBUS_GUEST_KERNEL
# names another linux-image-* metapackage (e.g. linux-image-amd64, for
# comparison); its flavour is what follows "linux-image-".
KERNEL_META=${NIMBUS_GUEST_KERNEL:-linux-image-cloud-amd64}
FLAVOUR=${KERNEL_META#linux-image-}
mkdir -p "$CACHE"
# cached PKG prints the cached .deb of package PKG (exactly that name).
cached() { ls "$CACHE/${1}_"*.deb 2>/dev/null | head -n1; }
kernel_pkg=$(ls "$CACHE" | grep -E "^linux-image-[0-9.]+-[0-9]+-${FLAVOUR}_.*\.deb\$" | head -n1 || true)
if [ -z "$kernel_pkg" ]; then
  kernel_name=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
  [ -n "$kernel_name" ] || die "cannot resolve $KERNEL_META (run apt-get update)"
else
  kernel_name=${kernel_pkg%%_*}
fi
# lz4 (and its library) only unpacks the cloud kernel's payload on the
# build host (see vmlinux); nothing of it goes into the image.
# util-linux gives lsblk (and its libraries), which Tempest runs in guests
# to count their disks (list_disks: `lsblk -lb --nodeps`); busybox has none.
PKGS=("$kernel_name" busybox-static dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 libgmp10 zlib1g e2fsprogs libext2fs2 libcom-err2 lz4 liblz4-1
  util-linux libblkid1 libmount1 libsmartcols1 libudev1 libselinux1 libpcre2-8-0)
fetch=()
for p in "${PKGS[@]}"; do
  [ -n "$(cached "$p")" ] || fetch+=("$p")
done
if [ ${#fetch[@]} -gt 0 ]; then
  log "downloading ${fetch[*]}"
  # apt-get download writes to the current directory; _apt cannot write to
  # root-owned cache dirs, which only costs a warning.
  if ! (cd "$CACHE" && apt-get download -q "${fetch[@]}") >"$CACHE/.download.log" 2>&1; then
    grep -v '^W: Download is performed unsandboxed' "$CACHE/.download.log" >&2 || true
    die "apt-get download ${fetch[*]} failed (run apt-get update?)"
  fi
fi
# Only the packages named here: the cache may hold other kernels (from an
# earlier flavour), which must not be unpacked over this one.
DEBS=$(for p in "${PKGS[@]}"; do cached "$p"; done | sort)

inputs_sum=$( (sha256sum "$0"; for d in $DEBS; do echo "$(basename "$d") $(stat -c %s "$d")"; done) | sha256sum | cut -d' ' -f1)
if [ -f "$IMAGE" ] && [ -f "$OUT/nimbus-guest.vmlinuz" ] && [ -f "$OUT/nimbus-guest.vmlinux" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs_sum" ]; then
  log "up to date: $IMAGE"
  exit 0
fi

WORK=$(mktemp -d "$OUT/work.XXXXXX")
MNT=
LOOP=
cleanup() {
  [ -n "$MNT" ] && mountpoint -q "$MNT" && umount "$MNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

X=$WORK/extract
mkdir -p "$X"
for d in $DEBS; do dpkg-deb -x "$d" "$X"; done
KVER=$(ls "$X/lib/modules" | head -n1)
[ -n "$KVER" ] && [ -f "$X/boot/vmlinuz-$KVER" ] || die "no kernel in the extracted linux-image package"
BB=$X/bin/busybox
[ -x "$BB" ] || die "busybox-static did not provide /bin/busybox"
log "kernel $KVER"

# --- kernel modules ---------------------------------------------------------
# Debian's kernels have the virtio drivers and isofs as modules (the generic
# one ext4 too). Take the closure of what the guest needs from modules.dep
# (computed by busybox's depmod, which needs no host kmod) and load them, in
# dependency order, in the initramfs: the network's first, so that DHCP
# runs while the rest load (NET_MODULES), then the others (MODULES). What
# the kernel has built in (modules.builtin) is skipped.
NET_MODULES="virtio_pci virtio_net"
MODULES="virtio_blk crc32c_generic ext4 isofs button evdev"
"$BB" depmod -b "$X" "$KVER"
MODDIR=lib/modules/$KVER
closure() { # prints the module files of $1 and its dependencies, dependencies first
  local line f deps
  if ! line=$(grep -E "(^|/)$1\.ko:" "$X/$MODDIR/modules.dep"); then
    grep -qE "(^|/)$1\.ko\$" "$X/$MODDIR/modules.builtin" || die "module $1 neither in modules.dep nor built in"
    return 0
  fi
  f=${line%%:*}
  deps=${line#*:}
  for d in $(echo "$deps" | tr ' ' '\n' | tac); do echo "$d"; done
  echo "$f"
}

# --- root file system -------------------------------------------------------
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,etc/dropbear,etc/acpi/PWRF,proc,sys,dev,run,tmp,mnt/config,root/.ssh,home/nimbus/.ssh,var/log,boot/extlinux,usr/share/udhcpc}
cp "$BB" "$R/bin/busybox"
for applet in $("$BB" --list-full); do
  [ -e "$R/$applet" ] || ln -s /bin/busybox "$R/$applet"
done
cp "$X/usr/sbin/dropbear" "$R/usr/sbin/"
cp "$X/usr/bin/dropbearkey" "$X/usr/bin/dbclient" "$R/usr/bin/"
# resize2fs grows the root file system online when the disk is larger than
# the image (the flavor's root disk), as CirrOS's growroot does.
resize2fs=
for f in "$X/sbin/resize2fs" "$X/usr/sbin/resize2fs"; do
  [ -x "$f" ] && { resize2fs=$f; break; }
done
[ -n "$resize2fs" ] || die "e2fsprogs did not provide resize2fs"
cp "$resize2fs" "$R/sbin/resize2fs"
lsblk=
for f in "$X/bin/lsblk" "$X/usr/bin/lsblk"; do
  [ -x "$f" ] && { lsblk=$f; break; }
done
[ -n "$lsblk" ] || die "util-linux did not provide lsblk"
rm -f "$R/bin/lsblk" && cp "$lsblk" "$R/bin/lsblk"
# Copy the shared libraries (recursively) and the dynamic loader.
libdir=lib/x86_64-linux-gnu
mkdir -p "$R/$libdir" "$R/lib64"
cp -L "$X/lib64/ld-linux-x86-64.so.2" "$R/lib64/"
queue="$R/usr/sbin/dropbear $R/usr/bin/dropbearkey $R/usr/bin/dbclient $R/sbin/resize2fs $R/bin/lsblk"
while [ -n "$queue" ]; do
  next=
  for bin in $queue; do
    for lib in $(readelf -d "$bin" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
      [ -e "$R/$libdir/$lib" ] && continue
      src=
      for d in "$X/lib/x86_64-linux-gnu" "$X/usr/lib/x86_64-linux-gnu"; do
        [ -e "$d/$lib" ] && { src=$d/$lib; break; }
      done
      [ -n "$src" ] || die "library $lib (needed by $(basename "$bin")) not found in the packages"
      cp -L "$src" "$R/$libdir/$lib"
      next="$next $R/$libdir/$lib"
    done
  done
  queue=$next
done

pwhash=$("$BB" mkpasswd -m sha512 -S nimbusguest nimbus)
cat >"$R/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nimbus:x:1000:1000:nimbus:/home/nimbus:/bin/sh
EOF
cat >"$R/etc/shadow" <<EOF
root:*:20454:0:99999:7:::
nimbus:$pwhash:20454:0:99999:7:::
EOF
cat >"$R/etc/group" <<'EOF'
root:x:0:
nimbus:x:1000:
EOF
echo /bin/sh >"$R/etc/shells"
echo nimbus >"$R/etc/hostname"
printf 'Nimbus test guest (user nimbus, password nimbus)\n\n' >"$R/etc/issue"
cat >"$R/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
printf '127.0.0.1 localhost\n' >"$R/etc/hosts"
cat >"$R/etc/fstab" <<EOF
LABEL=$ROOT_LABEL / ext4 rw,noatime 0 1
EOF

cat >"$R/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
tty1::respawn:/sbin/getty 38400 tty1
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/init.d/rcK
EOF

cat >"$R/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "nimbus-init: ACPI power button: powering off" >/dev/console
exec /sbin/poweroff
EOF
chmod 755 "$R/etc/acpi/PWRF/00000080"

# The udhcpc event handler, in the root file system and in the initramfs
# (which asks for the first lease while the disk drivers load; see there).
# It saves each lease in /run/udhcpc.IFACE.lease, which the initramfs hands
# to rcS. An address already on the interface is kept as it is, and the
# first "deconfig" of a udhcpc that rcS starts on a handed-over lease
# (marked by /run/udhcpc.IFACE.keep) leaves the interface alone: the
# renewing udhcpc of userspace takes the lease over without the guest
# losing its address for a moment.
UDHCPC_SCRIPT='#!/bin/sh
# udhcpc event handler: configures the interface from the lease.
case "$1" in
deconfig)
  if [ -e "/run/udhcpc.$interface.keep" ]; then
    rm -f "/run/udhcpc.$interface.keep"
    exit 0
  fi
  ip -4 addr flush dev "$interface"
  ip link set "$interface" up
  rm -f "/run/udhcpc.$interface.lease"
  ;;
bound|renew)
  if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/${mask:-24} "; then
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$ip/${mask:-24}" dev "$interface"
  fi
  [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
  for r in $router; do ip -4 route replace default via "$r" dev "$interface"; break; done
  # Classless static routes (option 121), e.g. the metadata route.
  if [ -n "$staticroutes" ]; then
    set -- $staticroutes
    while [ $# -ge 2 ]; do
      ip -4 route replace "$1" via "$2" dev "$interface" 2>/dev/null
      shift 2
    done
  fi
  mkdir -p /etc
  : >/etc/resolv.conf
  [ -n "$domain" ] && echo "search $domain" >>/etc/resolv.conf
  for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
  echo "ip=$ip" >"/run/udhcpc.$interface.lease"
  echo "nimbus-init: $interface lease $ip/${mask:-24} router ${router:-none} (uptime $(cut -d" " -f1 /proc/uptime)s)" >/dev/console
  ;;
esac
exit 0
'
printf '%s' "$UDHCPC_SCRIPT" >"$R/usr/share/udhcpc/default.script"
chmod 755 "$R/usr/share/udhcpc/default.script"

cat >"$R/etc/init.d/rcK" <<'EOF'
#!/bin/sh
echo "nimbus-init: shutting down" >/dev/console
killall dropbear udhcpc acpid 2>/dev/null
sync
umount -a -r 2>/dev/null
mount -o remount,ro / 2>/dev/null
exit 0
EOF
chmod 755 "$R/etc/init.d/rcK"

cat >"$R/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# The guest agent: network, identity, SSH keys and user data, from the config
# drive when there is one, else from the metadata service.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
say() { echo "nimbus-init: $*"; }
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
# The initramfs hands over its /run (with the lease it got) when it has one.
grep -q " /run tmpfs " /proc/mounts || mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -o remount,rw / 2>/dev/null
say "userspace up (uptime $(cut -d' ' -f1 /proc/uptime)s)"
hostname -F /etc/hostname
ip link set lo up
acpid -c /etc/acpi -l /run/acpid.log

MD=/run/nimbus
mkdir -p $MD
source=none
# Config drive: an ISO 9660 file system labelled config-2 (any disk).
cdev=$(findfs LABEL=config-2 2>/dev/null)
for dev in $cdev /dev/vd[b-z] /dev/sr0; do
  [ -b "$dev" ] || continue
  if mount -t iso9660 -o ro "$dev" /mnt/config 2>/dev/null; then
    if [ -f /mnt/config/openstack/latest/meta_data.json ]; then
      cp /mnt/config/openstack/latest/meta_data.json $MD/
      [ -f /mnt/config/openstack/latest/user_data ] && cp /mnt/config/openstack/latest/user_data $MD/
      [ -f /mnt/config/openstack/latest/network_data.json ] && cp /mnt/config/openstack/latest/network_data.json $MD/
      source="config drive $dev"
      umount /mnt/config
      break
    fi
    umount /mnt/config
  fi
done

# http_get PATH FILE fetches http://169.254.169.254/PATH into FILE and fails
# unless the answer is 200. busybox-static's wget crashes in static glibc's
# resolver, so this speaks HTTP/1.0 through nc.
http_get() {
  printf 'GET %s HTTP/1.0\r\nHost: 169.254.169.254\r\nUser-Agent: nimbus-guest\r\n\r\n' "$1" |
    timeout 15 nc -w 10 169.254.169.254 80 >"$2.raw" 2>/dev/null
  if head -n 1 "$2.raw" 2>/dev/null | grep -q '^HTTP/1\.[01] 200'; then
    awk 'body { print; next } /^\r?$/ { body = 1 }' "$2.raw" >"$2"
    rm -f "$2.raw"
    return 0
  fi
  rm -f "$2.raw" "$2"
  return 1
}

dhcp() { udhcpc -i eth0 -s /usr/share/udhcpc/default.script -x hostname:"$(hostname)" -O staticroutes -O mtu "$@"; }
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  # The initramfs asked for the first lease while the disk drivers loaded.
  lease_ip=$(sed -n 's/^ip=//p' /run/udhcpc.eth0.lease 2>/dev/null)
  if [ -n "$lease_ip" ]; then
    # eth0 keeps that address; udhcpc asks for the same one again (a
    # four-packet exchange) and then renews it like any lease of its own.
    say "eth0: lease $lease_ip from the initramfs; renewing in the background"
    : >/run/udhcpc.eth0.keep
    dhcp -f -t 0 -T 2 -A 3 -r "$lease_ip" -p /run/udhcpc.eth0.pid >/dev/null 2>&1 </dev/null &
  elif [ "$source" = none ]; then
    # The metadata service needs the network: wait for a lease (bounded).
    say "eth0: DHCP (waiting, no config drive)"
    dhcp -b -t 5 -T 1 -A 5 -p /run/udhcpc.eth0.pid >/dev/null 2>&1
  else
    say "eth0: DHCP (in the background)"
    dhcp -f -t 0 -T 2 -A 3 -p /run/udhcpc.eth0.pid >/dev/null 2>&1 </dev/null &
  fi
  if [ "$source" = none ]; then
    # Like cloud-init and CirrOS, keep asking for about a minute: on a
    # busy host the lease (udhcpc keeps trying in the background) or the
    # metadata service's first answer can take seconds; on a quiet one
    # the first try answers.
    for try in $(seq 1 30); do
      if http_get /openstack/latest/meta_data.json $MD/meta_data.json; then
        http_get /openstack/latest/user_data $MD/user_data
        source="metadata service"
        break
      fi
      sleep 2
    done
  fi
else
  say "no eth0"
fi
say "metadata source: $source"

if [ -f $MD/meta_data.json ]; then
  json=$(tr -d '\n' <$MD/meta_data.json)
  host=$(echo "$json" | sed -n 's/.*"hostname"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  [ -n "$host" ] || host=$(echo "$json" | sed -n 's/.*"name"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  host=${host%%.*}
  if [ -n "$host" ]; then
    echo "$host" >/etc/hostname
    hostname "$host"
    grep -q " $host\$" /etc/hosts || echo "127.0.1.1 $host" >>/etc/hosts
    say "hostname $host"
  fi
  uuid=$(echo "$json" | sed -n 's/.*"uuid"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  [ -n "$uuid" ] && say "instance $uuid"
  # SSH public keys: every "public_keys" value and "keys" data string.
  echo "$json" | grep -o '"\(ssh-\|ecdsa-\|sk-\)[^"]*"' | sed 's/^"//; s/"$//; s/\\n$//; s/\\n/\n/g' | sort -u >$MD/keys
  n=$(grep -c . $MD/keys)
  if [ "$n" -gt 0 ]; then
    for home in /root /home/nimbus; do
      mkdir -p $home/.ssh
      cp $MD/keys $home/.ssh/authorized_keys
      chmod 700 $home/.ssh
      chmod 600 $home/.ssh/authorized_keys
    done
    chown -R 1000:1000 /home/nimbus
    say "installed $n SSH key(s)"
  fi
fi

dropbear -R -p 22 -P /run/dropbear.pid && say "dropbear listening on 22"

if [ -f /etc/nimbus-grow-root ]; then
  # Online, in the background: the login prompt does not wait for it.
  ( if resize2fs /dev/vda1 >/run/resize2fs.log 2>&1; then
      rm -f /etc/nimbus-grow-root
      say "root file system grown to $(df -m / | awk 'NR == 2 { print $2 }') MiB"
    else
      say "resize2fs failed: $(tail -n 1 /run/resize2fs.log)"
    fi ) >/dev/console 2>&1 &
fi

if [ -s $MD/user_data ] && [ "$(head -c 2 $MD/user_data)" = "#!" ]; then
  say "running user_data"
  chmod 700 $MD/user_data
  $MD/user_data >$MD/user_data.log 2>&1
  rc=$?
  sed 's/^/user_data: /' $MD/user_data.log
  say "user_data exited $rc"
fi

say "up in $(cut -d' ' -f1 /proc/uptime)s"
EOF
chmod 755 "$R/etc/init.d/rcS"

# --- initramfs -----------------------------------------------------------------
I=$WORK/initramfs
mkdir -p "$I"/{bin,dev,proc,sys,run,newroot,usr/share/udhcpc}
cp "$BB" "$I/bin/busybox"
# The applets' links are made here, not by busybox --install at boot: a
# few hundred symlink calls cost tenths of a second of emulated CPU.
for applet in $("$BB" --list); do
  [ -e "$I/bin/$applet" ] || ln -s busybox "$I/bin/$applet"
done
printf '%s' "$UDHCPC_SCRIPT" >"$I/usr/share/udhcpc/default.script"
chmod 755 "$I/usr/share/udhcpc/default.script"
# modlist MODULE... copies the closure of the modules into the initramfs
# and prints the names of those that are modules (not built in), for one
# modprobe call each in /init: one process loads a whole list, where an
# insmod per file cost an exec of busybox per module.
modlist() {
  local m f fs names=
  for m in "$@"; do
    fs=$(closure "$m") || exit 1
    [ -n "$fs" ] || continue
    names="$names $m"
    for f in $fs; do
      mkdir -p "$I/$MODDIR/$(dirname "$f")"
      cp "$X/$MODDIR/$f" "$I/$MODDIR/$f"
    done
  done
  echo $names
}
net_mods=$(modlist $NET_MODULES)
disk_mods=$(modlist $MODULES)
cp "$X/$MODDIR/modules.builtin" "$I/$MODDIR/"
"$BB" depmod -b "$I" "$KVER"
cat >"$I/init" <<EOF
#!/bin/sh
# Loads the network and disk drivers, asks for a DHCP lease while the disk
# drivers load (like a distribution's ip=dhcp), then switches to the root
# file system, handing the lease over to it in /run.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
echo "nimbus-init: initramfs (uptime \$(cut -d' ' -f1 /proc/uptime)s)"
modprobe -a $net_mods || echo "nimbus-init: modprobe $net_mods failed"
dhcp=
if [ -e /sys/class/net/eth0 ]; then
  ip link set eth0 up
  # virtio_net turns the carrier on from a work queue; until then the
  # kernel drops what udhcpc sends, and its next try is a second later.
  for i in \$(seq 1 100); do
    [ "\$(cat /sys/class/net/eth0/carrier 2>/dev/null)" = 1 ] && break
    sleep 0.01
  done
  # -q: exit with the lease (userspace renews it); no release.
  udhcpc -i eth0 -s /usr/share/udhcpc/default.script -f -q -t 10 -T 1 -O staticroutes -O mtu >/dev/null 2>&1 </dev/null &
  dhcp=\$!
fi
# At the lowest priority, so that udhcpc and its script run first when the
# server answers (busybox has renice, not nice).
modprobe -a $disk_mods &
renice -n 19 -p \$! >/dev/null
wait \$! || echo "nimbus-init: modprobe $disk_mods failed"
root=
# The root disk is the first virtio disk (boot index 1); the label is the
# fallback for other layouts.
for i in \$(seq 1 100); do
  [ -b /dev/vda1 ] && { root=/dev/vda1; break; }
  root=\$(findfs LABEL=$ROOT_LABEL 2>/dev/null) && break
  sleep 0.05
done
# growroot: when the disk is larger than the image (an overlay grown to the
# flavor's root size), extend partition 1 of this image's MBR to the end of
# the disk while it is not mounted; rcS then grows the file system online.
grown=
if [ "\$root" = /dev/vda1 ] && [ "\$(cat /sys/block/vda/vda1/start)" = $PART_START ]; then
  disk=\$(cat /sys/block/vda/size)
  size=\$(cat /sys/block/vda/vda1/size)
  want=\$((disk - $PART_START))
  [ \$want -gt 4294967295 ] && want=4294967295
  if [ \$want -gt \$((size + 2048)) ]; then
    le=
    for shift in 0 8 16 24; do le="\$le\\\\\$(printf %o \$(( (want >> shift) & 255 )))"; done
    printf "\$le" | dd of=/dev/vda bs=1 seek=458 conv=notrunc 2>/dev/null
    sync
    blockdev --rereadpt /dev/vda && grown=\$((want / 2048))
    echo "nimbus-init: root partition grown to \${grown} MiB"
  fi
fi
if [ -n "\$root" ] && mount -t ext4 -o rw,noatime "\$root" /newroot; then
  [ -n "\$grown" ] && : >/newroot/etc/nimbus-grow-root
  # No waiting for DHCP: udhcpc is done (with -q it exits with the lease)
  # or, without a lease yet, stopped here and rcS asks again.
  if [ -n "\$dhcp" ]; then
    kill \$dhcp 2>/dev/null
    wait \$dhcp
  fi
  [ -f /run/udhcpc.eth0.lease ] && cp /etc/resolv.conf /newroot/etc/resolv.conf
  umount /proc /sys
  mount --move /dev /newroot/dev
  mount --move /run /newroot/run
  exec switch_root /newroot /sbin/init
fi
echo "nimbus-init: cannot mount the root file system (\$root); dropping to a shell"
exec sh
EOF
chmod 755 "$I/init"

# --- disk --------------------------------------------------------------------
cp "$X/boot/vmlinuz-$KVER" "$R/boot/vmlinuz"
find "$I" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$I" && find . | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible --owner=0:0) | gzip -n -9 >"$R/boot/initrd.img"
# Boot time under TCG: the kernel's crypto self-tests alone take 0.45 s
# (cryptomgr.notests); KASLR relocation and timer checks are skipped too.
# acpi=noirq routes PCI interrupts by the BIOS's $PIR table instead of the
# ACPI interrupt link objects: evaluating those for each virtio device on
# the pc machine took 0.4 s of emulated CPU per device (virtio_pci's probe
# went from 1.26 s to 0.02 s for three devices); the devices use MSI-X
# anyway, and the ACPI power button (the SCI) is unaffected. Two initcalls
# that only self-test or set up tracing are skipped: the KDF108 self-test
# (0.13 to 0.19 s) and the kprobe trace events (0.15 to 0.17 s).
CMDLINE="console=tty1 console=ttyS0,115200n8 quiet nokaslr tsc=reliable no_timer_check random.trust_cpu=on cryptomgr.notests acpi=noirq initcall_blacklist=crypto_kdf108_init,init_kprobe_trace rw"
cat >"$R/boot/extlinux/extlinux.conf" <<EOF
SERIAL 0 115200
DEFAULT nimbus
PROMPT 0
TIMEOUT 0
LABEL nimbus
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND $CMDLINE
EOF
find "$R" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

PART_SECTORS=$(( DISK_MB * 2048 - PART_START ))
RAW=$WORK/disk.raw
PART=$WORK/part.ext4
truncate -s $(( PART_SECTORS * 512 )) "$PART"
# extlinux (syslinux 6.04) cannot read ext4's 64bit layout.
mke2fs -q -t ext4 -b 4096 -O ^64bit,^metadata_csum,^orphan_file,^extent,^flex_bg,^huge_file -L "$ROOT_LABEL" -U "$ROOT_UUID" \
  -E hash_seed=$ROOT_UUID,root_owner=0:0 -m 0 -N $INODES -d "$R" "$PART" ||
  die "mke2fs failed"
MNT=$WORK/mnt
mkdir -p "$MNT"
LOOP=$(losetup -f --show "$PART") || die "losetup failed (no loop devices?)"
# noload: no journal replay or journal writes, so mounting leaves no trace
# beyond what the fixups below reset.
mount -t ext4 -o noload,noatime "$LOOP" "$MNT"
# Where ext4 puts extlinux's files must not depend on the CPU extlinux ran
# on: small writes go to per-CPU preallocations unless every request is
# treated as a stream.
echo 0 >"/sys/fs/ext4/$(basename "$LOOP")/mb_stream_req"
extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || die "extlinux --install failed"
umount "$MNT"
losetup -d "$LOOP"
LOOP=
# The kernel stamped the mount and extlinux's files with the real time:
# reset them so that the image only depends on its inputs.
# mke2fs -d stamps ctime and crtime with the real time, and the kernel
# gives extlinux's files random generation and version numbers: reset every
# inode (the unused ones get the same constants, which is as deterministic).
awk -v n="$INODES" -v t="@$SOURCE_DATE_EPOCH" 'BEGIN {
  print "ssv mtime " t; print "ssv wtime " t; print "ssv lastcheck " t
  print "ssv mnt_count 0"; print "ssv kbytes_written 0"
  for (i = 1; i <= n; i++) {
    split("atime mtime ctime crtime", f, " ")
    for (j = 1; j <= 4; j++) {
      printf "sif <%d> %s %s\n", i, f[j], t
      printf "sif <%d> %s_extra 0\n", i, f[j]
    }
    printf "sif <%d> generation 0\nsif <%d> version 0\n", i, i
  }
}' >"$WORK/fixups.debugfs"
debugfs -w -f "$WORK/fixups.debugfs" "$PART" >/dev/null 2>&1 || die "debugfs fixups failed"
# s_last_mounted holds the (temporary) mount point: zero all 64 bytes.
dd if=/dev/zero of="$PART" bs=1 seek=$(( 1024 + 0x88 )) count=64 conv=notrunc status=none

truncate -s $(( DISK_MB * 1024 * 1024 )) "$RAW"
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
# One bootable Linux partition from sector PART_START to the end (MBR entry 1).
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(( $1 & 255 )) $(( ($1 >> 8) & 255 )) $(( ($1 >> 16) & 255 )) $(( ($1 >> 24) & 255 )); }
printf "\x80\xfe\xff\xff\x83\xfe\xff\xff$(le32 $PART_START)$(le32 $PART_SECTORS)" |
  dd of="$RAW" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$RAW" bs=1 seek=510 conv=notrunc status=none
dd if="$PART" of="$RAW" bs=1M seek=1 conv=notrunc,sparse status=none

qemu-img convert -q -c -f raw -O qcow2 -o compression_type=zlib "$RAW" "$WORK/nimbus-guest.qcow2"
# The same kernel, for the qemu driver's acceleration probe (ProbeKernel).
cp "$X/boot/vmlinuz-$KVER" "$OUT/nimbus-guest.vmlinuz.tmp"
# The parts of a direct kernel boot (Nova's kernel_id / ramdisk_id /
# os_command_line image properties): the kernel uncompressed, which QEMU
# enters through its PVH note, skipping the BIOS, extlinux and the
# kernel's own xz decompression (about 9 s of emulated CPU under TCG);
# the same initramfs; the boot loader's command line, with the root the
# initramfs mounts.
vmlinux "$X/boot/vmlinuz-$KVER" >"$OUT/nimbus-guest.vmlinux.tmp"
# A whole ELF: its section headers, which come last, are in the file.
shend=$(readelf -h "$OUT/nimbus-guest.vmlinux.tmp" 2>/dev/null | awk -F: '
  /Start of section headers/ { o = $2 + 0 } /Size of section headers/ { z = $2 + 0 }
  /Number of section headers/ { n = $2 + 0 } END { print o + z * n }')
[ "${shend:-0}" -gt 0 ] && [ "$shend" -le "$(stat -c %s "$OUT/nimbus-guest.vmlinux.tmp")" ] ||
  die "the kernel payload of $KVER did not unpack to a whole ELF file"
# XEN_ELFNOTE_PHYS32_ENTRY (18): without it QEMU cannot enter the kernel.
readelf -n "$OUT/nimbus-guest.vmlinux.tmp" | grep 'Xen .*(0x00000012)' >/dev/null ||
  die "the kernel $KVER has no PVH entry note (CONFIG_PVH): no direct boot"
cp "$R/boot/initrd.img" "$OUT/nimbus-guest.initrd.tmp"
echo "root=/dev/vda1 $CMDLINE" >"$OUT/nimbus-guest.cmdline.tmp"
for f in vmlinuz vmlinux initrd cmdline; do mv "$OUT/nimbus-guest.$f.tmp" "$OUT/nimbus-guest.$f"; done
mv "$WORK/nimbus-guest.qcow2" "$IMAGE"
(cd "$OUT" && sha256sum nimbus-guest.qcow2 >nimbus-guest.sha256)
echo "$inputs_sum" >"$STAMP"
size=$(stat -c %s "$IMAGE")
log "wrote $IMAGE ($size bytes, kernel $KVER)"
[ "$size" -lt $(( 40 * 1024 * 1024 )) ] || die "image is $size bytes, over the 40 MB budget"
