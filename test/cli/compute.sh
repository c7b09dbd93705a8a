#!/usr/bin/env bash
# End-to-end compute checks with Debian's unmodified python3-openstackclient
# against a real `nimbus up` as root: the first-run image and networks, a
# real QEMU guest (KVM or TCG, as the agent's boot probe decides) booted,
# reached by SSH through a floating IP in routed mode, stopped, started,
# rebooted and deleted, the way a new user would. Prints "N passed, M
# failed" and fails if any did.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "compute CLI: needs root (QEMU guests, bridges, namespaces)" >&2
  exit 1
fi
GUEST_DIR=${NIMBUS_GUEST_IMAGE_DIR:-${TMPDIR:-/tmp}/nimbus-guest-image}
scripts/build-guest-image.sh "$GUEST_DIR" >/dev/null || { echo "compute CLI: the guest image did not build" >&2; exit 1; }
# A TCG guest on a busy 2-core host can take a minute to boot.
export EVENTUALLY_SECONDS=120
export GUEST_DIR NIMBUS_SEED=1 NIMBUS_NETWORK_AGENT=1 NIMBUS_COMPUTE_AGENT=1 NIMBUS_NETWORK_AGENT_PREFIX=nccl
# shellcheck source=test/cli/lib.sh
source "$(dirname "$0")/lib.sh"

expect "first run registered the guest image" 'nimbus-guest +\| active' os image list
expect "first run created public and private" 'private' os network list -f value -c Name
expect "router1 has its gateway on public" '172\.24\.4\.' os router show router1 -f json -c external_gateway_info
eventually "the compute service is up" 'nova-compute +\| [^|]+ \| [^|]+ \| enabled +\| up' os compute service list
check  "flavor m1.tiny exists" os flavor show m1.tiny
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
check  "keypair create from a public key" os keypair create --public-key "$work/key.pub" k
check  "allow ICMP in the default group" os security group rule create --protocol icmp default
check  "allow SSH in the default group" os security group rule create --protocol tcp --dst-port 22 default
expect "server create --wait ends ACTIVE" 'status +\| ACTIVE' \
  os server create --image nimbus-guest --flavor m1.tiny --network private --key-name k --wait vm1
expect "the server has an address on private" "private.*10\.0\.0\." os server show vm1 -f value -c addresses
eventually "its port is ACTIVE" '^ACTIVE$' sh -c "$OPENSTACK port list --server vm1 -f value -c Status"
# The guest's init logs its progress on the serial console (nimbus-init:).
for _ in $(seq 1 120); do
  os console log show vm1 2>/dev/null | grep -q 'nimbus-init: .*lease\|nimbus-init: eth0' && break
  sleep 1
done
expect "console log shows the guest took its DHCP address" 'nimbus-init: .*(lease|eth0).*10\.0\.0\.' os console log show vm1
# The seeded image names its kernel and ramdisk (a direct kernel boot):
# the disk's extlinux never ran, so its banner is not on the console.
expect "the seeded image names its kernel" '"kernel_id": "[0-9a-f-]{36}"' os image show nimbus-guest -f json -c properties
expect "the seeded image names its ramdisk" '"ramdisk_id": "[0-9a-f-]{36}"' os image show nimbus-guest -f json -c properties
if os console log show vm1 2>&1 | grep -q SYSLINUX; then bad "the guest booted its kernel directly" "extlinux banner on the console"; else ok "the guest booted its kernel directly"; fi
# ws_console URL [SEND [UNTIL]]: opens a console URL's websocket as
# noVNC does (a noVNC page URL's websocket path is its path parameter),
# sends SEND, and prints what the console answers (until UNTIL).
ws_console() {
  python3 - "$@" <<'EOF'
import base64, os, socket, struct, sys, urllib.parse as up
u = up.urlsplit(sys.argv[1]); send, until = [a.encode() for a in (sys.argv[2:] + ["", ""])[:2]]
path = "/" + up.parse_qs(u.query)["path"][0] if "path=" in u.query else "/?" + u.query
s = socket.create_connection((u.hostname, u.port), timeout=60)
s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Protocol: binary\r\n\r\n" % (path, u.netloc, base64.b64encode(os.urandom(16)).decode())).encode())
f = s.makefile("rb")
status = f.readline()
if b" 101 " not in status: sys.exit("handshake: " + status.decode().strip())
while f.readline() not in (b"\r\n", b""): pass
if send:
    key = os.urandom(4)
    s.sendall(bytes([0x82, 0x80 | len(send)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(send)))
out = b""
while not out or until not in out:
    h = f.read(2); n = h[1] & 0x7f
    n = struct.unpack("!H", f.read(2))[0] if n == 126 else struct.unpack("!Q", f.read(8))[0] if n == 127 else n
    data = f.read(n)
    if h[0] & 0x0f == 8: break
    out += data
print(out.decode("latin-1"))
EOF
}
novnc_url=$(os console url show --novnc -f value -c url vm1 2>&1)
expect "console url show --novnc gives the proxy's noVNC page" '^http://.*/vnc_lite\.html\?path=%3Ftoken%3D' echo "$novnc_url"
expect "its websocket carries the guest's RFB banner" '^RFB 003\.008' ws_console "$novnc_url"
serial_url=$(os console url show --serial -f value -c url vm1 2>&1)
expect "console url show --serial gives the serial proxy" '^ws://.*\?token=' echo "$serial_url"
expect "the serial websocket answers Enter with a login prompt" ' login:' ws_console "$serial_url" $'\r' ' login: '
refuse "a console URL with a forged token is refused" 'handshake: .*401' ws_console "${serial_url%%token=*}token=forged"
check  "floating ip create on public" os floating ip create public
fip=$(os floating ip list -f value -c "Floating IP Address" | head -1)
check  "server add floating ip" os server add floating ip vm1 "$fip"
eventually "server show lists the floating IP with the fixed one" "private.*10\.0\.0\.[0-9]+'?, '?${fip//./\\.}" os server show vm1 -f value -c addresses
eventually "the guest answers ping on its floating IP" '1 received|1 packets received' ping -c 1 -W 1 "$fip"
ssh_guest() {
  ssh -i "$work/key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
    -o ConnectTimeout=3 -o LogLevel=ERROR "nimbus@$fip" "$@"
}
eventually "SSH with the key through the floating IP reaches vm1" '^vm1$' ssh_guest hostname
check  "server stop" os server stop vm1
eventually "the server is SHUTOFF" '^SHUTOFF$' os server show vm1 -f value -c status
check  "server start" os server start vm1
eventually "the server is ACTIVE again" '^ACTIVE$' os server show vm1 -f value -c status
eventually "the guest answers SSH again after start" '^vm1$' ssh_guest hostname
check  "server reboot --wait" os server reboot --wait vm1
eventually "the guest answers SSH after reboot" '^vm1$' ssh_guest hostname
refuse "an unknown flavor is refused" '[Ff]lavor|400|No Flavor' os server create --image nimbus-guest --flavor nope --network private vm2
check  "server delete --wait" os server delete --wait vm1
expect "no server left" '^$' os server list -f value -c ID
if pgrep -f "qemu-system.*$work" >/dev/null; then bad "no QEMU process left for the deleted guest"; else ok "no QEMU process left for the deleted guest"; fi

report compute
